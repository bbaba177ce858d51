import { describe, expect, it } from "vitest";
import type { AgentConnection, ConnectionHandlers } from "../providers/connection.js";
import type { LaunchConfig, ParsedOutput } from "../providers/provider.js";
import { AgentLog, AgentLogSource } from "./agent-log.js";
import { WarmAgent, WarmAgentState } from "./warm-agent.js";

const launch: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: false, gateToolCalls: false };
const paths = { workDir: "/w/.prewarmed-1", home: "/s/.prewarmed-1/home", stateDir: "/s/.prewarmed-1" };
const connection = (alive = true) => ({ pid: 42, alive }) as unknown as AgentConnection;
const warmAgent = () => new WarmAgent("1", "default", "fake", "conv-1", launch, paths, new AgentLog());
const collecting = () => {
  const seen: ParsedOutput[] = [];
  const faults: string[] = [];
  const handlers: ConnectionHandlers = { onOutput: (item) => seen.push(item), onFault: (code) => faults.push(code) };
  return { seen, faults, handlers };
};
const init: ParsedOutput = { type: "turn_start", providerSessionId: "conv-1", model: "m" };

describe("a pre-warmed agent", () => {
  it("hands what it said while it waited to the session that takes it, in order, then the rest as it comes", () => {
    const agent = warmAgent();
    agent.handlers.onOutput(init);
    agent.connected(connection());
    expect(agent.takeable).toBe(true);
    const { seen, handlers } = collecting();
    expect(agent.adopt(handlers).pid).toBe(42);
    expect(seen).toEqual([init]);
    const later: ParsedOutput = { type: "control_request", requestId: "r1", subtype: "x" };
    agent.handlers.onOutput(later);
    expect(seen).toEqual([init, later]);
    expect(agent.state).toBe(WarmAgentState.ADOPTED);
    expect(() => agent.adopt(handlers)).toThrow(/adopted in state adopted/);
  });

  it("cannot be taken once it faulted, refused to start, flooded or died", () => {
    const faulted = warmAgent();
    faulted.connected(connection());
    faulted.handlers.onFault("line_too_long", "too long");
    expect(faulted.takeable).toBe(false);
    expect(faulted.unusable).toContain("line_too_long");

    const refused = warmAgent();
    refused.connected(connection());
    refused.handlers.onOutput({ type: "fatal_startup", message: "no" });
    expect(refused.takeable).toBe(false);

    const flooding = warmAgent();
    const told: string[] = [];
    flooding.onUnusable = (why) => told.push(why);
    flooding.connected(connection());
    for (let i = 0; i < 100; i += 1) flooding.handlers.onOutput(init);
    expect(flooding.takeable).toBe(false);
    expect(flooding.unusable).toContain("more than 16 outputs");
    // Told once, so the pool ends it at once.
    expect(told).toEqual([flooding.unusable]);

    const dead = warmAgent();
    dead.connected(connection(false));
    expect(dead.takeable).toBe(false);

    const gone = warmAgent();
    gone.connected(connection());
    gone.gone();
    expect(gone.takeable).toBe(false);
  });
});

describe("AgentLog.absorb", () => {
  it("takes another log's entries, numbered on, and everything written to it afterwards", () => {
    const session = new AgentLog();
    session.lifecycle("starting the agent");
    const warm = new AgentLog();
    warm.lifecycle("process 42 started", 42);
    session.absorb(warm);
    warm.lifecycle("process 42 ended", 42);
    const entries = session.read(0, 10);
    expect(entries.map((entry) => [entry.index, entry.text, entry.pid, entry.source])).toEqual([
      [1, "starting the agent", 0, AgentLogSource.LIFECYCLE],
      [2, "process 42 started", 42, AgentLogSource.LIFECYCLE],
      [3, "process 42 ended", 42, AgentLogSource.LIFECYCLE],
    ]);
    expect(warm.read(0, 10)).toEqual([]);
  });
});
