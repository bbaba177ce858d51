import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { executeEvents, followUntil, hostPidOf, isAlive, startTestDaemon, type TestDaemon, textOf, turnEndOf, waitUntil } from "../harness.js";

// What an agent prints is as hostile as what a client sends: bounded in size and time.
describe("an agent that misbehaves on its output", () => {
  let daemon: TestDaemon;
  const strays: number[] = [];
  beforeAll(async () => {
    daemon = await startTestDaemon({ engine: { limits: { maxLineBytes: 1024 * 1024, turnTimeoutMs: 60_000, stopGraceMs: 500 } } });
  });
  afterEach(() => {
    for (const pid of strays.splice(0)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("fails the turn of a line longer than the limit, ends the agent, and resumes on the next turn", async () => {
    const events = await executeEvents(daemon.client.execute({ sessionId: "endless", prompt: "[[noeol:3000000]]" }));
    const error = events.find((e) => e.payload.case === "error");
    expect(error?.payload.case === "error" && error.payload.value.code).toBe("output_line_too_long");
    const end = turnEndOf(events);
    expect(end.outcome).toBe(TurnOutcome.FAILED);
    expect(end.errorMessage).toContain("more than 1048576 bytes");
    // The session goes on: the next turn starts the agent again on the same conversation.
    const next = await executeEvents(daemon.client.execute({ sessionId: "endless", prompt: "[[history]]" }));
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    expect(next.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: 2 });
  });

  it("answers StopSession at once although a setsid grandchild holds the agent's output open", async () => {
    const first = await executeEvents(daemon.client.execute({ sessionId: "setsid", prompt: "[[setsid]]" }));
    const stray = hostPidOf(textOf(first), "setsid");
    strays.push(stray);
    expect(isAlive(stray)).toBe(true);
    const started = Date.now();
    const stopped = await daemon.client.stopSession({ sessionId: "setsid" });
    // Within the stop grace and the output drain, not waiting for the grandchild's pipes.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(stopped.session?.status).toBe(SessionStatus.DEAD);
    // And the session is usable at once.
    const again = await executeEvents(daemon.client.execute({ sessionId: "setsid", prompt: "hi" }));
    expect(turnEndOf(again).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("ends a turn of a setsid grandchild's agent that exits, without waiting for the grandchild", async () => {
    const events = await executeEvents(daemon.client.execute({ sessionId: "setsid-crash", prompt: "[[setsid]] [[crash:3]]" }));
    const end = turnEndOf(events);
    const leftover = hostPidOf(end.stderrTail, "setsid");
    if (leftover) strays.push(leftover);
    expect(end.outcome).toBe(TurnOutcome.FAILED);
    expect(end.exitCode).toBe(3);
    const snapshot = await daemon.client.getSnapshot({ sessionId: "setsid-crash" });
    expect(snapshot.session?.status).toBe(SessionStatus.DEAD);
  });

  it("fails a turn promptly when the agent closes its output but keeps running, and ends that agent", async () => {
    const started = Date.now();
    const events = await executeEvents(daemon.client.execute({ sessionId: "mute", prompt: "[[closestdout]]" }));
    const end = turnEndOf(events);
    expect(end.outcome).toBe(TurnOutcome.FAILED);
    expect(end.errorMessage).toContain("closed its output");
    // Long before the 60 s turn timeout.
    expect(Date.now() - started).toBeLessThan(20_000);
    const pid = events.find((e) => e.payload.case === "sessionStarted");
    const agent = pid?.payload.case === "sessionStarted" ? pid.payload.value.pid : 0;
    await waitUntil(() => !isAlive(agent), 10_000, "the mute agent to be ended");
    const ended = await followUntil(daemon.client, "mute", (e) => e.payload.case === "sessionEnded");
    expect(ended.at(-1)?.payload.case).toBe("sessionEnded");
  });
});
