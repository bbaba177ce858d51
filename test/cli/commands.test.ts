// The one-call commands against a real daemon: what they print, and that they did it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { executeEvents, followUntil, startTestDaemon, type TestDaemon, testToken } from "../harness.js";
import { cli, fakeIo } from "./cli-io.js";

const CLIENT = testToken("client");
const ADMIN = testToken("admin");
let daemon: TestDaemon;
const as = (token: string) => ["--addr", daemon.server.url, "--token", token];

beforeAll(async () => {
  daemon = await startTestDaemon({
    credentials: [
      { name: "client", tenant: "default", roles: ["client"], tokenSha256: hashToken(CLIENT) },
      { name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken(ADMIN) },
    ],
  });
  const client = daemon.clientFor("connect", CLIENT);
  await executeEvents(client.execute({ sessionId: "alpha", prompt: '[[tool:Bash:{"command":"echo x"}]] one' }));
  await executeEvents(client.execute({ sessionId: "alpha", prompt: "two" }));
  await executeEvents(client.execute({ sessionId: "beta", prompt: "one" }));
  await client.setTitle({ sessionId: "beta", title: "the second one" });
});
afterAll(async () => {
  await daemon?.close();
});

describe("session commands", () => {
  it("sessions: a table of id, status, provider, title, turns and last activity, most recent first", async () => {
    const { code, out } = await cli([...as(CLIENT), "sessions"]);
    expect(code).toBe(0);
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^SESSION +STATUS +PROVIDER +TITLE +TURNS +LAST ACTIVE$/);
    expect(lines[1]).toMatch(/^beta +ready +claude-code +the second one +1 +\d+s ago$/);
    expect(lines[2]).toMatch(/^alpha +ready +claude-code +- +2 +\d+s ago$/);
    const json = JSON.parse((await cli([...as(CLIENT), "sessions", "--json"])).out) as { sessions: { sessionId: string; provider: string; turns: number }[] };
    expect(json.sessions.map((s) => s.sessionId)).toEqual(["beta", "alpha"]);
    // The summaries themselves carry provider and turns (the table needs no snapshot per row).
    expect(json.sessions.map((s) => [s.provider, s.turns])).toEqual([["claude-code", 1], ["claude-code", 2]]);
  });

  it("snapshot, stats and providers print what the daemon says", async () => {
    const snapshot = await cli([...as(CLIENT), "snapshot", "alpha"]);
    expect(snapshot.code).toBe(0);
    expect(snapshot.out).toMatch(/^session: +alpha$/m);
    expect(snapshot.out).toMatch(/^status: +ready$/m);
    expect(snapshot.out).toMatch(/^turns: +2$/m);
    const stats = await cli([...as(CLIENT), "stats", "alpha"]);
    expect(stats.out).toMatch(/^turns: +2 \(0 not completed\)$/m);
    expect(stats.out).toMatch(/^tool calls: +1 \(Bash 1\)$/m);
    expect(stats.out).toMatch(/^cost: +\$0\.0020$/m);
    const statsJson = JSON.parse((await cli([...as(CLIENT), "stats", "alpha", "--json"])).out) as { stats: { turns: number } };
    expect(statsJson.stats.turns).toBe(2);
    const providers = await cli([...as(CLIENT), "providers"]);
    expect(providers.out).toMatch(/^claude-code \(default\) +\S.* interrupt approvals/m);
  });

  it("interrupt ends the running turn; stop ends the agent; delete removes the session", async () => {
    const client = daemon.clientFor("connect", CLIENT);
    const turn = executeEvents(client.execute({ sessionId: "gamma", prompt: "[[hang]]" }));
    await followUntil(client, "gamma", (e) => e.payload.case === "turnStarted");
    const interrupted = await cli([...as(CLIENT), "interrupt", "gamma"]);
    expect(interrupted.code).toBe(0);
    expect(interrupted.out).toMatch(/^turn \S+ ended interrupted \(last seq \d+\)\n$/);
    expect((await turn).at(-1)?.payload.case === "turnEnded" && (await turn).at(-1)?.payload.value).toMatchObject({ outcome: TurnOutcome.INTERRUPTED });
    const idle = await cli([...as(CLIENT), "interrupt", "gamma"]);
    expect(idle.code).toBe(1);
    expect(idle.err).toMatch(/^error: failed_precondition: /);

    const stopped = await cli([...as(CLIENT), "stop", "gamma"]);
    expect(stopped).toMatchObject({ code: 0, out: expect.stringMatching(/^stopped gamma: dead \(last seq \d+\)\n$/) });
    expect((await client.getSnapshot({ sessionId: "gamma" })).session?.status).toBe(SessionStatus.DEAD);

    const deleted = await cli([...as(CLIENT), "delete", "gamma"]);
    expect(deleted.code).toBe(0);
    expect((await cli([...as(CLIENT), "snapshot", "gamma"])).code).toBe(5);
  });
});

describe("admin commands", () => {
  it("info, sessions and audit with an admin token", async () => {
    const info = await cli([...as(ADMIN), "admin", "info"]);
    expect(info.code).toBe(0);
    expect(info.out).toMatch(/^version: +test$/m);
    expect(info.out).toMatch(/^providers: +claude-code$/m);
    expect(info.out).toMatch(/^draining: +no$/m);
    const sessions = await cli([...as(ADMIN), "admin", "sessions"]);
    expect(sessions.out).toMatch(/^TENANT +SESSION +STATUS/);
    expect(sessions.out).toMatch(/^default +alpha +ready/m);
    expect((await cli([...as(ADMIN), "admin", "sessions", "--tenant", "nobody"])).out).toBe("no sessions\n");
    const audit = await cli([...as(ADMIN), "admin", "audit"]);
    expect(audit.code).toBe(0);
    expect(audit.out).toMatch(/admin_action +ops .*ListAllSessions/);
    const page = JSON.parse((await cli([...as(ADMIN), "admin", "audit", "--json", "--limit", "1"])).out) as { events: unknown[] };
    expect(page.events).toHaveLength(1);
  });

  it("drain stops new turns: exec then fails unavailable (exit 3) with the draining hint", async () => {
    const drained = await cli([...as(ADMIN), "admin", "drain", "--grace", "1"]);
    expect(drained.code).toBe(0);
    expect(drained.out).toMatch(/^drained: \d+ turn\(s\) finished, \d+ session\(s\) stopped\n$/);
    expect((await cli([...as(ADMIN), "admin", "info"])).out).toMatch(/^draining: +yes$/m);
    const io = fakeIo();
    const refused = await cli([...as(CLIENT), "exec", "alpha", "three"], {}, io);
    expect(refused.code).toBe(3);
    expect(refused.err).toMatch(/^error: unavailable: .+\nhint: .*draining/);
  });
});
