import { create } from "@bufbuild/protobuf";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Event, StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionConfigSchema } from "../../gen/hotplex/v1/session_pb.js";
import { DEFAULT_SANDBOX } from "../../src/engine/config.js";
import type { PrewarmSpec } from "../../src/engine/prewarm.js";
import { WarmAgentState } from "../../src/session/warm-agent.js";
import { defaultPolicy, NO_TENANT_LIMITS, TenantDirectory } from "../../src/security/tenant-policy.js";
import { createClient } from "@connectrpc/connect";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { startObservedDaemon } from "./observed-daemon.js";
import { executeEvents, isAlive, startTestDaemon, type TestDaemon, testToken, textOf, transportFor, turnEndOf, waitUntil } from "../harness.js";

const spec = (overrides: Partial<PrewarmSpec> = {}): PrewarmSpec => ({
  tenant: "default",
  config: create(SessionConfigSchema, { model: "claude-warm" }),
  size: 2,
  idleMs: 0,
  ...overrides,
});
const warmConfig = () => create(SessionConfigSchema, { model: "claude-warm" });

let daemon: TestDaemon | undefined;
afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
});

const ready = (d: TestDaemon) => d.engine.prewarmed.list().filter((agent) => agent.state === WarmAgentState.READY);
const startedOf = (events: Event[]) => {
  const started = events.find((e) => e.payload.case === "sessionStarted");
  if (started?.payload.case !== "sessionStarted") throw new Error("no SessionStarted");
  return started.payload.value;
};
const toolOutput = (events: Event[]) => {
  const result = events.find((e) => e.payload.case === "toolResult");
  return result?.payload.case === "toolResult" ? result.payload.value.content : "";
};
const run = async (d: TestDaemon, sessionId: string, prompt: string, config = warmConfig()) =>
  executeEvents(d.client.execute({ sessionId, prompt, config }));

describe("pre-warmed agents", () => {
  it("serve a new session's first turn with an agent started before the request, with the events of a cold start", async () => {
    daemon = await startTestDaemon({ engine: { prewarm: [spec()] } });
    const d = daemon;
    await waitUntil(() => ready(d).length === 2, 10_000, "two pre-warmed agents");
    const warmPids = ready(d).map((agent) => agent.pid);

    const warm = await run(d, "w1", "hello warm");
    const started = startedOf(warm);
    expect(warmPids).toContain(started.pid);
    expect(started.kind).toBe(StartKind.COLD);
    expect(started.model).toBe("claude-warm");
    expect(path.basename(started.workDir)).toMatch(/^\.prewarmed-/);
    expect(turnEndOf(warm).outcome).toBe(TurnOutcome.COMPLETED);

    // A config no pool holds starts cold, and shows the same kinds of events in the same order.
    const cold = await run(d, "c1", "hello warm", create(SessionConfigSchema, { model: "claude-cold" }));
    expect(warmPids).not.toContain(startedOf(cold).pid);
    expect(warm.map((e) => e.payload.case)).toEqual(cold.map((e) => e.payload.case));
    expect(textOf(warm)).toBe(textOf(cold));

    // The session keeps its agent: the next turn is hot, on the same process, same conversation.
    const second = await run(d, "w1", "[[history]]");
    expect(second.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect(textOf(second)).toContain("hello warm");
    const snapshot = await d.client.getSnapshot({ sessionId: "w1" });
    expect(snapshot.session?.workDir).toBe(started.workDir);
    expect(snapshot.session?.providerSessionId).toBe(started.providerSessionId);

    // The pool refills: two ready again, one of them new.
    await waitUntil(() => ready(d).length === 2, 10_000, "the pool to refill");
    expect(ready(d).map((agent) => agent.pid)).not.toContain(started.pid);
  });

  it("end an agent that talks before its first prompt, retry with backoff, and start sessions cold meanwhile", async () => {
    // The fake CLI prints 40 text deltas at start with this model (no real CLI does).
    const chatty = () => create(SessionConfigSchema, { model: "chatty-before-input-40" });
    daemon = await startTestDaemon({ engine: { prewarm: [spec({ config: chatty(), size: 1 })] } });
    const d = daemon;
    const seen = new Set<number>();
    const watch = setInterval(() => {
      for (const agent of d.engine.prewarmed.list()) if (agent.pid > 0) seen.add(agent.pid);
    }, 5);
    try {
      // Started, found unusable, ended, and started again (with backoff) at least twice.
      await waitUntil(() => seen.size >= 2 && [...seen].every((pid) => !isAlive(pid) || d.engine.prewarmed.list().some((a) => a.pid === pid)), 15_000, "two chatty agents started and ended");
      // Backing off between attempts: no agent ready, so a session with that config starts cold.
      await waitUntil(() => d.engine.prewarmed.list().length === 0, 15_000, "the pool to back off");
      const events = await run(d, "chatty", "hello", chatty());
      // A cold start: a process of its own, and none of the unasked output in the turn.
      const started = startedOf(events);
      expect(seen.has(started.pid)).toBe(false);
      expect(path.basename(started.workDir)).not.toMatch(/^\.prewarmed-/);
      expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    } finally {
      clearInterval(watch);
    }
    for (const pid of seen) if (!d.engine.prewarmed.list().some((a) => a.pid === pid)) expect(isAlive(pid), `chatty agent ${pid}`).toBe(false);
  });

  it("are counted in Prometheus by tenant, provider and state, and leave the count when taken", async () => {
    const observed = await startObservedDaemon({ engine: { prewarm: [spec()] } });
    try {
      const d = observed.daemon;
      await waitUntil(() => ready(d).length === 2, 10_000, "two pre-warmed agents");
      const provider = ready(d)[0]!.provider;
      const labels = { tenant: "default", provider, state: "ready" };
      expect((await observed.metrics()).get("hotplex_prewarmed_agents", labels)).toBe(2);
      const taken = startedOf(await executeEvents(observed.client.execute({ sessionId: "counted", prompt: "hello", config: warmConfig() }))).pid;
      // Taken: it serves its session now and is no pre-warmed agent any more; the refill is.
      await waitUntil(() => ready(d).length === 2 && !ready(d).some((agent) => agent.pid === taken), 10_000, "the pool to refill");
      const after = await observed.metrics();
      expect(after.get("hotplex_prewarmed_agents", labels)).toBe(2);
      expect(after.get("hotplex_prewarmed_agents")).toBe(2);
      expect(new Set(after.matching("hotplex_prewarmed_agents").map((sample) => sample.labels.state))).toEqual(new Set(["ready"]));
    } finally {
      await observed.close();
    }
  });

  it("share nothing between two sessions that took consecutive agents: files, HOME, work dir, environment", async () => {
    daemon = await startTestDaemon({ engine: { prewarm: [spec({ size: 1 })] } });
    const d = daemon;
    await waitUntil(() => ready(d).length === 1, 10_000, "a pre-warmed agent");
    const probe = (marker: string) =>
      `[[exec]][[tool:Bash:${JSON.stringify({ command: `echo "home=$HOME cwd=$(pwd)"; ls -a "$HOME" .; cat "$HOME/secret-a" ./secret-a 2>&1; echo ${marker} > "$HOME/secret-$SESSION_MARK"; env | sort` })}]]`;
    const a = await run(d, "a", probe("from-a").replace("$SESSION_MARK", "a"));
    const aText = toolOutput(a);
    const aWork = startedOf(a).workDir;
    // A writes into its work dir too.
    await run(d, "a", `[[exec]][[tool:Bash:${JSON.stringify({ command: "echo from-a > ./secret-a" })}]]`);
    await waitUntil(() => ready(d).length === 1, 10_000, "the next pre-warmed agent");
    const b = await run(d, "b", probe("from-b").replace("$SESSION_MARK", "b"));
    const bText = toolOutput(b);
    const bWork = startedOf(b).workDir;
    expect(bWork).not.toBe(aWork);
    const homeOf = (text: string) => /home=(\S+)/.exec(text)?.[1];
    expect(homeOf(aText)).toBeTruthy();
    expect(homeOf(bText)).not.toBe(homeOf(aText));
    // Neither listing shows A's files, and reading them fails.
    expect(existsSync(path.join(homeOf(aText)!, "secret-a"))).toBe(true);
    expect(bText.split("\n")).not.toContain("secret-a");
    expect(bText).not.toContain("from-a");
    expect(bText.match(/No such file/g)).toHaveLength(2);
    expect(existsSync(path.join(aWork, "secret-a"))).toBe(true);
    expect(existsSync(path.join(bWork, "secret-a"))).toBe(false);
    // The environment is the daemon's allow-listed one, the same for both but for HOME.
    const envOf = (text: string) => text.split("\n").filter((line) => /^[A-Z_][A-Z0-9_]*=/.test(line) && !/^(HOME|PWD|OLDPWD|SHLVL|_)=/.test(line));
    expect(envOf(bText)).toEqual(envOf(aText));
  });

  it("start inside the sandbox: their own PID namespace, no other agent's work dir", async () => {
    daemon = await startTestDaemon({ engine: { prewarm: [spec({ size: 2 })], sandbox: { ...DEFAULT_SANDBOX, mode: "required" } } });
    const d = daemon;
    await waitUntil(() => ready(d).length === 2, 10_000, "two pre-warmed agents");
    const agents = ready(d);
    const events = await run(d, "boxed", `[[exec]][[tool:Bash:${JSON.stringify({ command: `readlink /proc/self/ns/pid; ls ${agents.map((a) => a.workDir).join(" ")} 2>&1; echo end` })}]]`);
    const mine = agents.find((agent) => agent.pid === startedOf(events).pid)!;
    const other = agents.find((agent) => agent !== mine)!;
    const output = toolOutput(events);
    expect(output.split("\n")[0]).toMatch(/^pid:\[\d+\]$/);
    expect(output.split("\n")[0]).not.toBe(readlinkSync("/proc/self/ns/pid"));
    expect(output).toContain(`cannot access '${other.workDir}': No such file or directory`);
    expect(output).toContain(`${mine.workDir}:`);
  });

  it("count against the tenant's live agents and make way for a cold start", async () => {
    daemon = await startTestDaemon({
      engine: {
        prewarm: [spec({ size: 2 })],
        tenants: new TenantDirectory({ policy: defaultPolicy(0), limits: { ...NO_TENANT_LIMITS, liveAgents: 2 } }),
      },
    });
    const d = daemon;
    await waitUntil(() => ready(d).length === 2, 10_000, "two pre-warmed agents");
    const live = () => d.engine.pool.liveCount("default") + d.engine.prewarmed.count("default");
    // A cold session (another config): one pre-warmed agent ends so that it may start.
    const cold = await run(d, "cold", "hi", create(SessionConfigSchema, { model: "other" }));
    expect(turnEndOf(cold).outcome).toBe(TurnOutcome.COMPLETED);
    expect(live()).toBeLessThanOrEqual(2);
    expect(d.engine.prewarmed.count("default")).toBe(1);
    // A warm one takes the other; then the pool has no room to refill.
    const warm = await run(d, "warm", "hi");
    expect(turnEndOf(warm).outcome).toBe(TurnOutcome.COMPLETED);
    expect(d.engine.prewarmed.count("default")).toBe(0);
    d.engine.prewarmed.refill();
    expect(d.engine.prewarmed.count("default")).toBe(0);
    // Room again once a session stops: the pool fills up to the limit, no further.
    await d.client.stopSession({ sessionId: "cold" });
    d.engine.prewarmed.refill();
    await waitUntil(() => ready(d).length === 1, 10_000, "a pre-warmed agent in the freed room");
    expect(live()).toBe(2);
  });

  it("count against the node's limit too, and show in GetServerInfo", async () => {
    const token = testToken("ops");
    daemon = await startTestDaemon({
      engine: { prewarm: [spec({ size: 3 })], maxLiveSessions: 2 },
      credentials: [
        { name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken(token) },
        { name: "app", tenant: "default", roles: ["client"], tokenSha256: hashToken(testToken("app")) },
      ],
      token: testToken("app"),
    });
    const d = daemon;
    await waitUntil(() => ready(d).length === 2, 10_000, "pre-warmed agents up to the node's limit");
    expect(d.engine.prewarmed.count()).toBe(2);
    const admin = createClient(AdminService, transportFor(d.server.url, "connect", token));
    expect((await admin.getServerInfo({})).prewarmedAgents).toBe(2);
    const cold = await run(d, "cold", "hi", create(SessionConfigSchema, { model: "other" }));
    expect(turnEndOf(cold).outcome).toBe(TurnOutcome.COMPLETED);
    expect(d.engine.pool.liveCount() + d.engine.prewarmed.count()).toBeLessThanOrEqual(2);
  });

  it("shrink when idle and come back when a session asks", async () => {
    daemon = await startTestDaemon({ engine: { prewarm: [spec({ size: 1, idleMs: 60_000 })] } });
    const d = daemon;
    await waitUntil(() => ready(d).length === 1, 10_000, "a pre-warmed agent");
    const pid = ready(d)[0]!.pid;
    // Not yet idle long enough: kept.
    d.engine.prewarmed.shrinkIdle(Date.now() + 30_000);
    expect(d.engine.prewarmed.count()).toBe(1);
    // A minute without demand (the clock moved on, as the periodic check would see it).
    d.engine.prewarmed.shrinkIdle(Date.now() + 61_000);
    expect(d.engine.prewarmed.count()).toBe(0);
    await waitUntil(() => !isAlive(pid), 5_000, "the idle agent to end");
    const workDirs = () => d.engine.prewarmed.list().map((agent) => agent.workDir);
    expect(workDirs()).toEqual([]);
    // The next session starts cold (none ready) and wakes the lane up.
    const first = await run(d, "s1", "hi");
    expect(startedOf(first).pid).not.toBe(pid);
    await waitUntil(() => ready(d).length === 1, 10_000, "the lane to refill on demand");
    const refilled = ready(d)[0]!.pid;
    const second = await run(d, "s2", "hi");
    expect(startedOf(second).pid).toBe(refilled);
  });

  it("resume after the agent dies like a cold session: same work dir, HOME and conversation", async () => {
    daemon = await startTestDaemon({ engine: { prewarm: [spec({ size: 1 })] } });
    const d = daemon;
    await waitUntil(() => ready(d).length === 1, 10_000, "a pre-warmed agent");
    const first = await run(d, "r1", "remember PLUM");
    const started = startedOf(first);
    process.kill(started.pid, "SIGKILL");
    await waitUntil(() => !d.engine.pool.get({ tenant: "default", sessionId: "r1" })?.live, 5_000, "the session to see its agent die");
    const next = await run(d, "r1", "[[history]]");
    const restarted = startedOf(next);
    expect(restarted.kind).toBe(StartKind.RESUMED);
    expect(restarted.workDir).toBe(started.workDir);
    expect(restarted.providerSessionId).toBe(started.providerSessionId);
    expect(textOf(next)).toContain("remember PLUM");
  });

  it("refuse specs no session could have, naming the entry, and keep the pool in force", async () => {
    daemon = await startTestDaemon({ engine: { prewarm: [spec({ size: 1 })] } });
    const d = daemon;
    await waitUntil(() => ready(d).length === 1, 10_000, "a pre-warmed agent");
    const refused = (bad: Partial<PrewarmSpec>) => {
      try {
        d.engine.configurePrewarm([spec({ size: 1, ...bad })]);
      } catch (error) {
        return (error as Error).message;
      }
      return "accepted";
    };
    expect(refused({ tenant: "../etc" })).toMatch(/^prewarm\.0: tenant "\.\.\/etc" is not a tenant name/);
    expect(refused({ config: create(SessionConfigSchema, { model: "--settings=/tmp/x" }) })).toMatch(/^prewarm\.0: config\.model must be/);
    expect(refused({ config: create(SessionConfigSchema, { model: "m".repeat(100_000) }) })).toMatch(/^prewarm\.0: config\.model must be/);
    expect(refused({ config: create(SessionConfigSchema, { workDir: "elsewhere" }) })).toMatch(/^prewarm\.0: work_dir must be empty/);
    expect(refused({ config: create(SessionConfigSchema, { provider: "nope" }) })).toMatch(/^prewarm\.0: .*nope/);
    expect(refused({ size: -1 })).toMatch(/size must be a whole number/);
    expect(refused({ size: Number.NaN })).toMatch(/size must be a whole number/);
    expect(refused({ idleMs: -5 })).toMatch(/idleMs must be/);
    expect(refused({ idleMs: 2 ** 40 })).toBe("accepted");
    // Nothing refused replaced the pool, and an idle time past the timer's range did not break it.
    await waitUntil(() => ready(d).length === 1, 10_000, "the pool still in force");
    expect(d.engine.prewarmed.count()).toBe(1);
  });

  it("end with the daemon and leave no dirs behind but the sessions'", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-prewarm-"));
    const dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    const d = await startTestDaemon({ dirs, engine: { prewarm: [spec({ size: 2 })] } });
    try {
      await waitUntil(() => ready(d).length === 2, 10_000, "two pre-warmed agents");
      const taken = startedOf(await run(d, "keep", "hi")).workDir;
      await waitUntil(() => ready(d).length === 2, 10_000, "the refill");
      const left = ready(d);
      await d.close();
      for (const agent of left) {
        expect(isAlive(agent.pid)).toBe(false);
        expect(existsSync(agent.workDir)).toBe(false);
      }
      expect(existsSync(taken)).toBe(true);
      const leftovers = readdirSync(path.join(scratch, "state", "default")).filter((entry) => entry.startsWith(".prewarmed-"));
      expect(leftovers).toEqual([path.basename(taken)]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
