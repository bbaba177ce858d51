import { describe, expect, it } from "vitest";
import { StartKind } from "../events/event.js";
import type { AgentConnection } from "../providers/connection.js";
import { AgentRun, AgentRunState, AgentRunStateError, startKindFor } from "./agent-run.js";
import { Turn } from "./turn.js";

const connection = (alive = true) => ({ alive }) as unknown as AgentConnection;

describe("AgentRun", () => {
  it("goes STARTING → CONNECTED → RUNNING → STOPPING → ENDED, answered once", () => {
    const run = new AgentRun(StartKind.COLD, false, new Turn("p", "", 0));
    expect(run.state).toBe(AgentRunState.STARTING);
    expect(run.takesPrompts).toBe(false);
    run.connected(connection());
    expect(run.state).toBe(AgentRunState.CONNECTED);
    expect(run.takesPrompts).toBe(true);
    expect(run.markAnswered()).toBe(true);
    expect(run.markAnswered()).toBe(false);
    expect(run.state).toBe(AgentRunState.RUNNING);
    run.stopping("stopped");
    run.stopping("idle");
    expect(run.endReason).toBe("stopped");
    expect(run.takesPrompts).toBe(false);
    expect(run.answered).toBe(true);
    run.ended();
    expect(run.state).toBe(AgentRunState.ENDED);
  });

  it("refuses transitions its state does not allow, by name", () => {
    const run = new AgentRun(StartKind.RESUMED, true, new Turn("p", "", 0));
    expect(() => run.markAnswered()).toThrow(AgentRunStateError);
    expect(() => run.markAnswered()).toThrow('agent run: "answered" in state starting');
    run.connected(connection());
    expect(() => run.connected(connection())).toThrow('"connected" in state connected');
    run.ended();
    expect(() => run.stopping("x")).toThrow('"stopping" in state ended');
    expect(() => run.markAnswered()).toThrow(AgentRunStateError);
  });

  it("takes no prompts once its agent is gone, and stays unanswered if it never spoke", () => {
    const run = new AgentRun(StartKind.COLD, false, new Turn("p", "", 0));
    run.connected(connection(false));
    expect(run.takesPrompts).toBe(false);
    run.stopping("crashed");
    expect(run.answered).toBe(false);
    expect(startKindFor(true)).toBe(StartKind.RESUMED);
    expect(startKindFor(false)).toBe(StartKind.COLD);
  });
});
