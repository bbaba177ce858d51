import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { AgentProcess } from "./agent-process.js";

const started: AgentProcess[] = [];

// A wrapper (depth 0) around the "agent" (depth 1), as a sandbox runs it.
function wrapped(script: string, onOutputClosed: () => void): AgentProcess {
  const agent = new AgentProcess({
    command: { file: "/bin/sh", args: ["-c", script] },
    cwd: "/",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    agentDepth: 1,
    onLine: () => {},
    maxLineBytes: 1 << 20,
    onOverlongLine: () => {},
    onOutputClosed,
  });
  started.push(agent);
  return agent;
}

function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "";
  }
}

function childOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)[0]) || 0;
  } catch {
    return 0;
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 20) {
    if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

afterEach(async () => {
  for (const agent of started.splice(0)) await agent.terminate(100);
});

describe("a wrapped agent's output watch", () => {
  it("reports an agent that closed its output and runs on", async () => {
    let closed!: () => void;
    const reported = new Promise<void>((resolve) => (closed = resolve));
    // The agent closes its stdout and sleeps; the wrapper waits for it.
    wrapped("(sleep 0.7; exec 1>&-; exec sleep 30) & wait", closed);
    await reported;
  });

  it("does not take a dead agent, not yet reaped by its wrapper, for one that closed its output", async () => {
    let reports = 0;
    // The wrapper becomes `sleep`, which never reaps the dead agent: a zombie for 30 s.
    const agent = wrapped("sleep 0.7 & exec sleep 30", () => (reports += 1));
    let child = 0;
    await until(() => (child = childOf(agent.pid)) > 0, "the agent to start");
    await until(() => stateOf(child) === "Z", "the agent to die");
    // Several watch intervals with the zombie in place (a fixed wait: checking that nothing happens).
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    expect(reports).toBe(0);
    expect(agent.alive).toBe(true);
  });
});
