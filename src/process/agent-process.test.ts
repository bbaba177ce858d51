import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
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

describe("how an agent process ends", () => {
  function plain(file: string, args: string[], cwd = "/"): AgentProcess {
    const lines: string[] = [];
    const agent = new AgentProcess({
      command: { file, args },
      cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      onLine: (line) => lines.push(line),
      maxLineBytes: 1 << 20,
      onOverlongLine: () => {},
      onOutputClosed: () => {},
    });
    started.push(agent);
    return agent;
  }

  it("reports an exit code, its output read to the end, and stderr's tail", async () => {
    const agent = plain("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"]);
    expect(agent.pid).toBeGreaterThan(0);
    const exit = await agent.exited;
    expect(exit).toEqual({ exitCode: 3, signal: undefined, spawnError: undefined, stderrTail: "err\n" });
    expect(agent.alive).toBe(false);
    expect(agent.writeLine("late")).toBe(false);
  });

  it("reports the signal that ended it, and the one the daemon sent", async () => {
    const agent = plain("/bin/sh", ["-c", "echo ready; exec sleep 30"]);
    const exit = await agent.terminate(5_000);
    expect(exit.exitCode).toBeUndefined();
    expect(exit.signal).toBe("SIGTERM");
    expect(exit.signalSent).toBe("SIGTERM");
    expect(exit.spawnError).toBeUndefined();
  });

  it("reports a program that does not exist, is not executable or cannot be passed, as a spawn error", async () => {
    const missing = await plain("/nonexistent/agent", []).exited;
    expect(missing.spawnError).toMatch(/ENOENT/);
    expect(missing.exitCode).toBeUndefined();
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-agent-"));
    const file = path.join(dir, "not-executable");
    writeFileSync(file, "#!/bin/sh\necho never\n", { mode: 0o644 });
    const notExecutable = await plain(file, []).exited;
    expect(notExecutable.spawnError).toMatch(/EACCES/);
    rmSync(dir, { recursive: true });
    // A NUL byte cannot reach execve: node refuses the arguments before any process exists.
    const invalid = plain("/bin/echo", ["a\u0000b"]);
    expect(invalid.pid).toBe(0);
    expect(invalid.alive).toBe(false);
    expect((await invalid.exited).spawnError).toMatch(/null bytes/);
    const badCwd = await plain("/bin/echo", [], "/nonexistent/dir").exited;
    expect(badCwd.spawnError).toMatch(/ENOENT/);
  });
});
