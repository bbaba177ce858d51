import { mkdirSync, symlinkSync } from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { afterDeferred, collect, executeEvents, startTestDaemon, type TestDaemon } from "../harness.js";

async function codeOf(promise: Promise<unknown>): Promise<{ code: Code; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(error)}`);
  return { code: error.code, message: error.rawMessage };
}

describe("bad requests get a clear error with the right Connect code", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon.close();
  });

  const execute = (req: Parameters<TestDaemon["client"]["execute"]>[0]) => executeEvents(daemon.client.execute(req));

  it.each([
    ["an empty session id", ""],
    ["a session id with a slash", "a/b"],
    ["a session id with a space", "a b"],
    ["a session id of 129 characters", "x".repeat(129)],
    ["the session id ..", ".."],
  ])("refuses %s with INVALID_ARGUMENT", async (_, sessionId) => {
    const { code, message } = await codeOf(execute({ sessionId, prompt: "hi" }));
    expect(code).toBe(Code.InvalidArgument);
    expect(message).toContain("session_id");
  });

  it("accepts a session id of 128 characters from the allowed set", async () => {
    const sessionId = "aZ09._:-".repeat(16);
    const events = await execute({ sessionId, prompt: "hi" });
    expect(events.at(-1)?.payload.case).toBe("turnEnded");
  });

  it("refuses an empty prompt", async () => {
    const { code, message } = await codeOf(execute({ sessionId: "empty-prompt", prompt: "  " }));
    expect(code).toBe(Code.InvalidArgument);
    expect(message).toContain("prompt");
  });

  it("refuses a work dir outside the work root, by .. or by symlink", async () => {
    const relative = await codeOf(execute({ sessionId: "jail-1", prompt: "hi", config: { workDir: "../outside" } }));
    expect(relative.code).toBe(Code.InvalidArgument);
    expect(relative.message).toContain("outside the work root");
    const absolute = await codeOf(execute({ sessionId: "jail-2", prompt: "hi", config: { workDir: "/etc" } }));
    expect(absolute.code).toBe(Code.InvalidArgument);
    // Each tenant's sessions live in its own directory of the work root.
    mkdirSync(path.join(daemon.workRoot, "default", "inner"), { recursive: true });
    symlinkSync("/tmp", path.join(daemon.workRoot, "default", "inner", "escape"));
    const viaLink = await codeOf(execute({ sessionId: "jail-3", prompt: "hi", config: { workDir: "inner/escape/deeper" } }));
    expect(viaLink.code).toBe(Code.InvalidArgument);
  });

  it("runs the agent in a requested work dir inside the root", async () => {
    const events = await execute({ sessionId: "jail-ok", prompt: "hi", config: { workDir: "projects/a" } });
    const started = events.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.workDir).toBe(
      path.join(daemon.workRoot, "default", "projects", "a"),
    );
  });

  it("refuses an unknown permission mode", async () => {
    const { code, message } = await codeOf(execute({ sessionId: "perm", prompt: "hi", config: { permissionMode: "yolo" } }));
    expect(code).toBe(Code.InvalidArgument);
    expect(message).toContain("permission_mode");
  });

  it("answers NOT_FOUND for every call on a session that does not exist", async () => {
    const sessionId = "never-created";
    expect((await codeOf(daemon.client.getSnapshot({ sessionId }))).code).toBe(Code.NotFound);
    expect((await codeOf(daemon.client.stopSession({ sessionId }))).code).toBe(Code.NotFound);
    expect((await codeOf(daemon.client.getSessionStats({ sessionId }))).code).toBe(Code.NotFound);
    expect((await codeOf(collect(daemon.client.subscribe({ sessionId })))).code).toBe(Code.NotFound);
  });

  it("refuses a different config while the session runs, and names the way out", async () => {
    await execute({ sessionId: "reconf", prompt: "hi", config: { model: "a" } });
    const { code, message } = await codeOf(execute({ sessionId: "reconf", prompt: "hi", config: { model: "b" } }));
    expect(code).toBe(Code.FailedPrecondition);
    expect(message).toContain("StopSession");
    // The same config, or none, is fine.
    await execute({ sessionId: "reconf", prompt: "hi", config: { model: "a" } });
    await execute({ sessionId: "reconf", prompt: "hi" });
  });

  it("fails a full queue with RESOURCE_EXHAUSTED", async () => {
    const sessionId = "queue-full";
    const running = daemon.client.execute({ sessionId, prompt: "[[delay:600]] busy" })[Symbol.asyncIterator]();
    await running.next();
    const queued = Array.from({ length: 4 }, (_, i) => executeEvents(daemon.client.execute({ sessionId, prompt: `q${i}`, queue: true })));
    const { code } = await codeOf(execute({ sessionId, prompt: "one too many", queue: true }));
    expect(code).toBe(Code.ResourceExhausted);
    await Promise.all(queued);
    for (let r = await running.next(); !r.done; r = await running.next());
  });

  it("keeps the session usable after a prompt that would be a malformed line", async () => {
    // Newlines and JSON-looking text are encoded, never written raw: the agent stays up.
    const events = await execute({ sessionId: "tricky", prompt: 'line one\n{"type":"user"}\nnull' });
    expect(events.at(-1)?.payload.case === "turnEnded" && events.at(-1)?.payload.value).toMatchObject({ outcome: 1 });
    const next = await execute({ sessionId: "tricky", prompt: "still here" });
    expect(next.map((e) => e.payload.case)).not.toContain("sessionStarted");
  });
});

describe("the daemon's logs", () => {
  it("write one structured line per RPC and per session lifecycle change", async () => {
    const records: Record<string, unknown>[] = [];
    const daemon = await startTestDaemon({ logRecords: records });
    try {
      await executeEvents(daemon.client.execute({ sessionId: "logged", prompt: "hi" }));
      await daemon.client.getSnapshot({ sessionId: "logged" });
      await codeOf(daemon.client.getSnapshot({ sessionId: "missing" }));
      await daemon.client.stopSession({ sessionId: "logged" });
      await afterDeferred();
      const rpcs = records.filter((r) => r.msg === "rpc").map((r) => [r.rpc, r.code]);
      expect(rpcs).toEqual([
        ["SessionService.Execute", "ok"],
        ["SessionService.GetSnapshot", "ok"],
        ["SessionService.GetSnapshot", "not_found"],
        ["SessionService.StopSession", "ok"],
      ]);
      const lifecycle = records.filter((r) => r.session === "logged" && r.msg !== "rpc").map((r) => r.msg);
      expect(lifecycle).toEqual(["agent process spawned", "session started", "session ended"]);
      expect(records.find((r) => r.msg === "session ended")).toMatchObject({ reason: "stopped", tenant: "default" });
    } finally {
      await daemon.close();
    }
  });
});

describe("the daemon's limits and credentials", () => {
  it("requires the bearer token on every call when one is set", async () => {
    const daemon = await startTestDaemon({ token: "s3cret" });
    try {
      const anonymous = daemon.clientFor("connect", "");
      const wrong = daemon.clientFor("grpc", "nope");
      expect((await codeOf(anonymous.listSessions({}))).code).toBe(Code.Unauthenticated);
      expect((await codeOf(wrong.listSessions({}))).code).toBe(Code.Unauthenticated);
      expect((await codeOf(executeEvents(anonymous.execute({ sessionId: "a", prompt: "hi" })))).code).toBe(Code.Unauthenticated);
      const ok = await daemon.client.listSessions({});
      expect(ok.sessions).toEqual([]);
    } finally {
      await daemon.close();
    }
  });

  it("refuses a new live session beyond the cap with RESOURCE_EXHAUSTED, and frees the slot on stop", async () => {
    const daemon = await startTestDaemon({ engine: { maxLiveSessions: 2 } });
    try {
      await executeEvents(daemon.client.execute({ sessionId: "one", prompt: "hi" }));
      await executeEvents(daemon.client.execute({ sessionId: "two", prompt: "hi" }));
      const { code, message } = await codeOf(executeEvents(daemon.client.execute({ sessionId: "three", prompt: "hi" })));
      expect(code).toBe(Code.ResourceExhausted);
      expect(message).toContain("maximum number of live sessions");
      // Existing live sessions keep working.
      await executeEvents(daemon.client.execute({ sessionId: "one", prompt: "hi" }));
      await daemon.client.stopSession({ sessionId: "two" });
      const events = await executeEvents(daemon.client.execute({ sessionId: "three", prompt: "hi" }));
      expect(events.at(-1)?.payload.case).toBe("turnEnded");
    } finally {
      await daemon.close();
    }
  });

  it("merges concurrent first calls for one session id into one session and one process", async () => {
    const daemon = await startTestDaemon();
    try {
      const calls = Array.from({ length: 5 }, (_, i) =>
        executeEvents(daemon.client.execute({ sessionId: "merged", prompt: `p${i}`, queue: true })),
      );
      const results = await Promise.all(calls);
      const starts = results.flat().filter((e) => e.payload.case === "sessionStarted");
      expect(starts).toHaveLength(1);
      expect(results.every((r) => r.at(-1)?.payload.case === "turnEnded")).toBe(true);
      expect((await daemon.client.listSessions({})).sessions).toHaveLength(1);
    } finally {
      await daemon.close();
    }
  });
});
