import { type Code, ConnectError } from "@connectrpc/connect";
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fakeClaudePath, repoRoot } from "./harness.js";

/** A `hotplexd` running as its own process, as an operator would start it. */
export interface DaemonProcess {
  child: ChildProcess;
  url: string;
  /** The log line that says where it listens and where its data lives. */
  startup: Record<string, unknown>;
  /** The log lines before it (warnings about the config, for example). */
  earlierLines: Record<string, unknown>[];
  exit: Promise<number | null>;
  stderr: () => string;
}

const running = new Set<ChildProcess>();

/**
 * Starts the real `hotplexd` entry point on a free loopback port, running the fake agent,
 * with its work root, data dir and HOME under `dir`. Resolves once it listens.
 */
export function startDaemonProcess(dir: string, args: string[] = [], env: Record<string, string> = {}): Promise<DaemonProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/hotplexd.ts"), ...args], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: path.join(dir, "home"),
      HOTPLEX_WORK_ROOT: path.join(dir, "work"),
      HOTPLEX_DATA_DIR: path.join(dir, "data"),
      HOTPLEX_CLAUDE_PATH: fakeClaudePath,
      HOTPLEX_LISTEN: "127.0.0.1:0",
      HOTPLEX_STOP_GRACE: "1s",
      HOTPLEX_DRAIN_GRACE: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const earlierLines: Record<string, unknown>[] = [];
    let started = false;
    // Reads every line to the end, so the daemon never blocks on a full pipe; a test may
    // read the same lines from child.stdout too.
    lines.on("line", (line) => {
      if (started) return;
      const record = JSON.parse(line) as Record<string, unknown>;
      if (typeof record.url !== "string") {
        earlierLines.push(record);
        return;
      }
      started = true;
      resolve({ child, url: record.url, startup: record, earlierLines, exit, stderr: () => stderr });
    });
    void exit.then((code) => reject(new Error(`hotplexd exited with ${code}: ${stderr}`)));
  });
}

/** SIGKILLs every daemon a test left running. */
export function killDaemonProcesses(): void {
  for (const child of running) child.kill("SIGKILL");
}

/** Resolves with the next log line of the daemon that `match` accepts. */
export function logLine(daemon: DaemonProcess, match: (record: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: daemon.child.stdout! });
    lines.on("line", (line) => {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (match(record)) {
        lines.close();
        resolve(record);
      }
    });
  });
}

/** The Connect code a call fails with, or "ok". */
export async function codeOf(promise: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await promise;
    return "ok";
  } catch (error) {
    return ConnectError.from(error).code;
  }
}
