import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { executeEvents, startTestDaemon, type TestDaemon, waitUntil } from "../harness.js";
import { cli } from "./cli-io.js";

let daemon: TestDaemon;
const at = () => ["--addr", daemon.server.url];

beforeAll(async () => {
  daemon = await startTestDaemon();
  await executeEvents(daemon.client.execute({ sessionId: "idle", prompt: "hi" }));
});
afterAll(async () => {
  await daemon?.close();
});

describe("hotplex wait", () => {
  it("returns once the running turn has ended (the session is ready again)", async () => {
    const turn = executeEvents(daemon.client.execute({ sessionId: "slow", prompt: "[[delay:700]] slow" }));
    await waitUntil(() => daemon.engine.pool.get({ tenant: "default", sessionId: "slow" })?.view.status === SessionStatus.BUSY, 5_000, "the turn to run");
    const { code, out } = await cli([...at(), "wait", "slow", "--status", "ready"]);
    expect(code).toBe(0);
    expect(out).toBe("ready\n");
    // It returned at the turn's end, not before.
    expect(daemon.engine.pool.get({ tenant: "default", sessionId: "slow" })?.view.status).toBe(SessionStatus.READY);
    await turn;
  });

  it("returns at once for a status the session already has; takes several", async () => {
    expect(await cli([...at(), "wait", "idle", "--status", "busy,ready"])).toMatchObject({ code: 0, out: "ready\n" });
    expect(await cli([...at(), "wait", "idle", "--status", "dead", "--status", "ready"])).toMatchObject({ code: 0, out: "ready\n" });
  });

  it("gives up after --timeout (exit 3), refuses a status that does not exist (exit 2), and a missing session is exit 5", async () => {
    const late = await cli([...at(), "wait", "idle", "--status", "busy", "--timeout", "1"]);
    expect(late.code).toBe(3);
    expect(late.err).toContain('session "idle" did not reach BUSY within 1000 ms');
    const bad = await cli([...at(), "wait", "idle", "--status", "sleeping\u001b[31m"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("is not a status");
    expect(bad.err).not.toContain("\u001b[31m");
    expect((await cli([...at(), "wait", "nope", "--status", "ready"])).code).toBe(5);
    for (const timeout of ["-1", "1e9", "--status=busy", ""]) expect((await cli([...at(), "wait", "idle", "--status", "busy", "--timeout", timeout])).code).toBe(2);
    expect((await cli([...at(), "wait", "idle", "--status", ""])).code).toBe(2);
  });
});
