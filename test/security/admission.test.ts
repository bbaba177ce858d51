import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { executeEvents, startTestDaemon, type TestDaemon } from "../harness.js";

async function codeOf(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(error)}`);
  return error;
}

describe("a refused call leaves nothing behind", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({ storeKind: "sqlite", engine: { maxLiveSessions: 1 } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("creates no session for 3,000 Executes refused because the daemon runs its maximum of live agents", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "the-one", prompt: "hi" }));
    const codes = new Map<Code, number>();
    let next = 0;
    const worker = async () => {
      while (next < 3000) {
        const i = next++;
        const error = await codeOf(executeEvents(daemon.client.execute({ sessionId: `refused-${i}`, prompt: "hi" })));
        codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
        if (i === 0) expect(error.rawMessage).toContain("max-sessions = 1");
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(codes).toEqual(new Map([[Code.ResourceExhausted, 3000]]));
    expect((await daemon.client.listSessions({})).sessions.map((s) => s.sessionId)).toEqual(["the-one"]);
    expect(daemon.engine.pool.size).toBe(1);
    // Nothing reached the store either.
    await new Promise((resolve) => setImmediate(resolve));
    expect((await daemon.engine.store.loadSessions()).map((r) => r.sessionId)).toEqual(["the-one"]);
  });
});

describe("the cap on stored sessions", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({ engine: { maxStoredSessions: 3 } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("refuses a session beyond it with RESOURCE_EXHAUSTED naming the limit, and admits one once another is deleted", async () => {
    for (const id of ["s1", "s2", "s3"]) await executeEvents(daemon.client.execute({ sessionId: id, prompt: "hi" }));
    const error = await codeOf(executeEvents(daemon.client.execute({ sessionId: "s4", prompt: "hi" })));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toContain("max-stored-sessions = 3");
    // Existing sessions keep working.
    await executeEvents(daemon.client.execute({ sessionId: "s1", prompt: "again" }));
    await daemon.client.deleteSession({ sessionId: "s2" });
    await executeEvents(daemon.client.execute({ sessionId: "s4", prompt: "hi" }));
    expect((await daemon.client.listSessions({})).sessions).toHaveLength(3);
  });
});
