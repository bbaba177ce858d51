// AdminService.GetSessionLogs against a daemon running the fake Claude Code: what the agent
// writes to stderr and what happens to its processes, bounded however much it writes, for
// admins only, with every hostile request value refused.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService, AgentLogSource, type AgentLogEntry, type GetSessionLogsRequest } from "../../gen/hotplex/v1/admin_service_pb.js";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { executeEvents, startTestDaemon, type TestDaemon, testToken, transportFor, turnEndOf } from "../harness.js";

const CLIENT_TOKEN = testToken("logs-client");
const ADMIN_TOKEN = testToken("logs-admin");
const LOG_BYTES = 16 * 1024;

async function codeOf(promise: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await promise;
    return "ok";
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

describe("AdminService.GetSessionLogs", () => {
  let daemon: TestDaemon;
  let admin: ReturnType<typeof createClient<typeof AdminService>>;
  let n = 0;
  const sessionId = () => `logs-${++n}`;
  const execute = (id: string, prompt: string) => executeEvents(daemon.client.execute({ sessionId: id, prompt }));

  // One page (no follow).
  const page = async (request: Omit<Partial<GetSessionLogsRequest>, "$typeName">) => {
    const pages = [];
    for await (const response of admin.getSessionLogs({ tenant: "default", ...request })) pages.push(response);
    expect(pages).toHaveLength(1);
    return pages[0]!;
  };
  // Follows the log until an entry matches, and returns every entry read by then.
  const followUntil = async (id: string, match: (entry: AgentLogEntry) => boolean) => {
    const seen: AgentLogEntry[] = [];
    const controller = new AbortController();
    try {
      for await (const response of admin.getSessionLogs({ tenant: "default", sessionId: id, follow: true, limit: 1000 }, { signal: controller.signal })) {
        seen.push(...response.entries);
        if (response.entries.some(match)) return seen;
      }
    } finally {
      controller.abort();
    }
    throw new Error(`the log of ${id} ended without a matching entry: ${JSON.stringify(seen.map((e) => e.text).slice(-5))}`);
  };
  const lifecycle = (entries: AgentLogEntry[]) => entries.filter((e) => e.source === AgentLogSource.LIFECYCLE).map((e) => e.text);

  beforeAll(async () => {
    daemon = await startTestDaemon({
      token: CLIENT_TOKEN,
      credentials: [
        { name: "app", tenant: "default", roles: ["client"], tokenSha256: hashToken(CLIENT_TOKEN) },
        { name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken(ADMIN_TOKEN) },
      ],
      engine: { limits: { sessionLogBytes: LOG_BYTES } },
    });
    admin = createClient(AdminService, transportFor(daemon.server.url, "connect", ADMIN_TOKEN));
  });
  afterAll(async () => {
    await daemon?.close();
  });

  it("holds the agent's stderr lines, control characters escaped, and its start with pid and sandbox", async () => {
    const id = sessionId();
    const events = await execute(id, "[[stderr:warning: \u001b[31mred\u001b[0m and a bell\u0007]] hello");
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const entries = await followUntil(id, (e) => e.source === AgentLogSource.STDERR);
    const line = entries.find((e) => e.source === AgentLogSource.STDERR)!;
    expect(line.text).toBe("warning: \\u001b[31mred\\u001b[0m and a bell\\u0007");
    const started = entries.find((e) => e.text.startsWith(`process ${line.pid} started`));
    expect(started?.pid).toBe(line.pid);
    expect(started?.text).toMatch(/(in|without) the sandbox/);
    expect(lifecycle(entries)[0]).toMatch(/^starting the agent: provider claude-code, cold start/);
    // Indexes increase by one from 1; the page says where the log stands.
    expect(entries.map((e) => Number(e.index))).toEqual(entries.map((_, i) => i + 1));
    const all = await page({ sessionId: id });
    expect(all.firstIndex).toBe(1n);
    expect(all.lastIndex).toBe(all.entries.at(-1)!.index);
    expect(all.dropped).toBe(0n);
  });

  it("keeps memory bounded under a 10 MB stderr flood: only the newest lines stay, and the reader is told how many went", async () => {
    const id = sessionId();
    const events = await execute(id, "[[stderrflood:10000000]] after the flood");
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    // 100-byte lines: the last one is number 99999.
    await followUntil(id, (e) => e.text.startsWith("stderr flood line 99999 "));
    const log = daemon.engine.pool.get({ tenant: "default", sessionId: id })!.agentLog;
    expect(log.bytes).toBeLessThanOrEqual(LOG_BYTES);
    const kept = await page({ sessionId: id, limit: 1000 });
    expect(kept.firstIndex).toBeGreaterThan(99_000n);
    expect(kept.lastIndex).toBeGreaterThanOrEqual(100_000n);
    expect(kept.dropped).toBe(kept.firstIndex - 1n);
    const text = kept.entries.map((e) => e.text).join("\n");
    expect(text).toContain("stderr flood line 99999 ");
    expect(text).not.toContain("stderr flood line 1 ");
    expect(Buffer.byteLength(text)).toBeLessThan(LOG_BYTES);
  });

  it("cuts an over-long stderr line to one entry with a marker", async () => {
    const id = sessionId();
    await execute(id, `[[stderr:${"z".repeat(20_000)}]] long`);
    const entries = await followUntil(id, (e) => e.source === AgentLogSource.STDERR);
    const line = entries.find((e) => e.source === AgentLogSource.STDERR)!;
    expect(line.truncated).toBe(true);
    expect(line.text).toMatch(/^z{4096} …\[truncated: the line had 20000 characters\]$/);
  });

  it("records a crash, its exit code and stderr, then the restart that resumes the conversation, then a stop", async () => {
    const id = sessionId();
    const crashed = await execute(id, "[[crash:3]] this one dies");
    expect(turnEndOf(crashed).outcome).toBe(TurnOutcome.FAILED);
    expect(turnEndOf(await execute(id, "again"))).toMatchObject({ outcome: TurnOutcome.COMPLETED });
    await daemon.engine.stop({ tenant: "default", name: "test" }, id);
    const entries = await followUntil(id, (e) => e.text.startsWith("process") && e.text.includes("the daemon sent SIGTERM"));
    const notes = lifecycle(entries);
    // Each in this order (others may come between).
    let from = 0;
    for (const pattern of [
      /^starting the agent: provider claude-code, cold start/,
      /^process \d+ started/,
      /^the agent answered: conversation /,
      /^process \d+ ended: exit code 3$/,
      /^the agent run ended: crashed \(exit code 3\)$/,
      /^starting the agent: provider claude-code, resumed start/,
      /^process \d+ started/,
      /^the agent answered: conversation /,
      /^stopping the agent: stopped$/,
      /^process \d+ ended: .*\(the daemon sent SIGTERM\)$/,
    ]) {
      const index = notes.findIndex((text, i) => i >= from && pattern.test(text));
      expect(index, `${pattern} after entry ${from} of ${JSON.stringify(notes, null, 1)}`).toBeGreaterThanOrEqual(0);
      from = index + 1;
    }
    expect(entries.some((e) => e.source === AgentLogSource.STDERR && e.text === "fatal: simulated crash")).toBe(true);
  });

  it("ends a follow when the session is deleted, and the log goes with it", async () => {
    const id = sessionId();
    await execute(id, "hello");
    const controller = new AbortController();
    const stream = admin.getSessionLogs({ tenant: "default", sessionId: id, follow: true }, { signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).value?.entries.length).toBeGreaterThan(0);
    await admin.deleteTenantSession({ tenant: "default", sessionId: id });
    // What the stop logged comes first; then the stream ends (the test would time out otherwise).
    const after: string[] = [];
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) after.push(...next.value.entries.map((e) => e.text));
    expect(after).toContain("stopping the agent: deleted");
    expect(await codeOf(page({ sessionId: id }))).toBe(Code.NotFound);
  });

  it("refuses hostile requests with the code that says what to fix", async () => {
    const id = sessionId();
    await execute(id, "hello");
    expect(await codeOf(page({ sessionId: "no-such-session" }))).toBe(Code.NotFound);
    // Another tenant's session is as missing as one that never existed.
    expect(await codeOf(page({ tenant: "other", sessionId: id }))).toBe(Code.NotFound);
    expect(await codeOf(page({ sessionId: "../../etc" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(page({ sessionId: "" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(page({ sessionId: "x".repeat(100_000) }))).toBe(Code.InvalidArgument);
    expect(await codeOf(page({ tenant: "", sessionId: id }))).toBe(Code.InvalidArgument);
    expect(await codeOf(page({ tenant: "Bad Tenant\u0000", sessionId: id }))).toBe(Code.InvalidArgument);
    const tooMany = await page({ sessionId: id, limit: 1001 }).catch((e: unknown) => ConnectError.from(e));
    expect(tooMany).toMatchObject({ code: Code.InvalidArgument, rawMessage: "limit 1001 is more than 1000" });
    expect(await codeOf(page({ sessionId: id, limit: 0xffffffff }))).toBe(Code.InvalidArgument);
    // An index past any there can be: an empty page that says where the log stands.
    const far = await page({ sessionId: id, afterIndex: 0xffffffffffffffffn });
    expect(far.entries).toEqual([]);
    expect(far.lastIndex).toBeGreaterThan(0n);
    expect(far.dropped).toBe(0n);
    expect((await page({ sessionId: id, limit: 1 })).entries).toHaveLength(1);
  });

  it("is for admins only: a client credential gets PERMISSION_DENIED, no credential UNAUTHENTICATED", async () => {
    const id = sessionId();
    await execute(id, "hello");
    const asClient = createClient(AdminService, transportFor(daemon.server.url, "connect", CLIENT_TOKEN));
    const anonymous = createClient(AdminService, transportFor(daemon.server.url, "connect"));
    const drain = async (stream: AsyncIterable<unknown>) => {
      for await (const _ of stream) void _;
    };
    expect(await codeOf(drain(asClient.getSessionLogs({ tenant: "default", sessionId: id })))).toBe(Code.PermissionDenied);
    expect(await codeOf(drain(anonymous.getSessionLogs({ tenant: "default", sessionId: id })))).toBe(Code.Unauthenticated);
    // The admin's read is in the audit log.
    await page({ sessionId: id });
    const audit = await admin.listAuditEvents({ limit: 1000 });
    expect(audit.events.some((e) => e.method === "hotplex.v1.AdminService/GetSessionLogs" && e.sessionId === id && e.principal === "ops")).toBe(true);
  });
});
