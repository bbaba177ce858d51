import { execa, type ResultPromise } from "execa";
import type { Command } from "../providers/provider.js";
import { LineSplitter, TailBuffer } from "./line-splitter.js";

/** How an agent process ended: one shape whether it exited, was killed or never ran. */
export interface ProcessExit {
  exitCode: number | undefined;
  signal: string | undefined;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  spawnError: string | undefined;
  /** The last part of what the process wrote to stderr. */
  stderrTail: string;
}

export interface AgentProcessOptions {
  command: Command;
  cwd: string;
  env: Record<string, string>;
  onLine: (line: string) => void;
}

/**
 * One agent CLI process in its own process group, so that stopping it also ends every
 * process it started (shells, builds, background servers).
 */
export class AgentProcess {
  readonly pid: number;
  /** Resolves when the process has exited and its output has been read to the end. */
  readonly exited: Promise<ProcessExit>;
  readonly #child: ResultPromise;
  readonly #stderr = new TailBuffer();
  #exit: ProcessExit | undefined;

  constructor(options: AgentProcessOptions) {
    this.#child = execa(options.command.file, options.command.args, {
      cwd: options.cwd,
      env: options.env,
      extendEnv: false,
      // A new process group, led by the agent: kill(-pid) reaches its descendants.
      detached: true,
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      buffer: false,
      reject: false,
      // The session decides when to stop the agent; execa's exit hook would only kill
      // the leader, not the group.
      cleanup: false,
      stripFinalNewline: false,
    });
    this.pid = this.#child.pid ?? 0;
    const lines = new LineSplitter(options.onLine);
    this.#child.stdout?.on("data", (chunk: Buffer) => lines.push(chunk));
    this.#child.stdout?.on("end", () => lines.end());
    // Drained continuously: a chatty agent must never block on a full stderr pipe.
    this.#child.stderr?.on("data", (chunk: Buffer) => this.#stderr.push(chunk.toString("utf8")));
    // Writes after the agent exited fail with EPIPE; the exit is reported on its own.
    this.#child.stdin?.on("error", () => {});
    this.exited = this.#child.then((result) => {
      const failedToSpawn = this.pid === 0 || (result.exitCode === undefined && result.signal === undefined);
      this.#exit = {
        exitCode: result.exitCode,
        signal: result.signal,
        spawnError: failedToSpawn ? (result.cause instanceof Error ? result.cause.message : result.shortMessage) : undefined,
        stderrTail: this.#stderr.toString(),
      };
      return this.#exit;
    });
  }

  /** True until the process has exited. */
  get alive(): boolean {
    return this.#exit === undefined && this.pid !== 0;
  }

  /** Writes one line to the agent's stdin. Returns false if the agent is gone. */
  writeLine(line: string): boolean {
    const stdin = this.#child.stdin;
    if (!this.alive || !stdin || stdin.destroyed || stdin.writableEnded) return false;
    stdin.write(line + "\n");
    return true;
  }

  /** Closes stdin: a stream-json agent finishes what it is doing and exits. */
  closeInput(): void {
    this.#child.stdin?.end();
  }

  /** Sends a signal to the whole process group. */
  signalGroup(signal: NodeJS.Signals): void {
    signalProcessGroup(this.pid, signal);
  }

  /**
   * Ends the process group: SIGTERM, then SIGKILL if the leader has not exited after
   * `graceMs`. Whatever is left of the group after the leader exits (background jobs the
   * agent started) is killed too, so nothing outlives the session.
   */
  async terminate(graceMs: number): Promise<ProcessExit> {
    if (this.alive) {
      this.signalGroup("SIGTERM");
      const timer = setTimeout(() => this.signalGroup("SIGKILL"), graceMs);
      try {
        await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    const exit = await this.exited;
    this.signalGroup("SIGKILL");
    return exit;
  }
}

/** Signals a process group; a group that is already gone is not an error. */
export function signalProcessGroup(pgid: number, signal: NodeJS.Signals): void {
  if (pgid <= 0) return;
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}
