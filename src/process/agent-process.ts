import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import type { Command } from "./command.js";
import { LineSplitter, TailBuffer } from "./line-splitter.js";

/** How an agent process ended: one shape whether it exited, was killed or never ran. */
export interface ProcessExit {
  exitCode: number | undefined;
  signal: string | undefined;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  spawnError: string | undefined;
  /** The last part of what the process wrote to stderr. */
  stderrTail: string;
  /**
   * The last signal the daemon sent to end it (SIGTERM, then SIGKILL after the grace),
   * when it did: a sandboxed agent's wrapper reports the agent's death as an exit code.
   */
  signalSent?: string;
}

export interface AgentProcessOptions {
  command: Command;
  cwd: string;
  env: Record<string, string>;
  /** Run as this user and group (the daemon must be root). */
  uid?: number;
  gid?: number;
  /**
   * Wrapper processes above the agent (a sandbox): a stop's SIGTERM goes to the agent
   * itself, that deep below the leader, so the wrappers stay and wait for it to finish
   * (Claude Code writes its transcript after its last output); SIGKILL goes to the group.
   */
  agentDepth?: number;
  onLine: (line: string) => void;
  /** The longest stdout line read; a longer one is dropped and reported through onOverlongLine. */
  maxLineBytes: number;
  onOverlongLine: (bytes: number) => void;
  /** stdout reached its end while the process still runs: it can no longer answer. */
  onOutputClosed: () => void;
}

// After the process exits, how long its output may take to drain. A descendant that left
// the process group (setsid) can hold the pipes open forever; the exit must not wait for it.
const OUTPUT_DRAIN_MS = 250;
// How often a sandboxed agent's output is looked at (see #checkAgentOutput).
const OUTPUT_WATCH_MS = 500;

/**
 * One agent CLI process in its own process group, so that stopping it also ends every
 * process it started (shells, builds, background servers).
 */
export class AgentProcess {
  readonly pid: number;
  /**
   * Resolves when the process has exited and its output has been read: to the end, or for
   * a short while when something else still holds the pipes.
   */
  readonly exited: Promise<ProcessExit>;
  readonly #child: ChildProcessWithoutNullStreams | undefined;
  readonly #stderr = new TailBuffer();
  readonly #stderrListeners = new Set<(chunk: Buffer) => void>();
  readonly #agentDepth: number;
  #exit: ProcessExit | undefined;
  /** The 'exit' event has fired (the process is gone, its pipes may not be). */
  #gone = false;

  constructor(options: AgentProcessOptions) {
    // node:child_process directly: execa's own work per spawn (~2 ms here) is on every
    // cold start's path, and this class needs none of what it adds.
    let spawnFailure: string | undefined;
    try {
      this.#child = spawn(options.command.file, options.command.args, {
        cwd: options.cwd,
        env: options.env,
        ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid }),
        // A new process group, led by the agent: kill(-pid) reaches its descendants.
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
    } catch (error) {
      // Invalid arguments or a refused uid throw at once; both mean it never ran.
      this.#child = undefined;
      spawnFailure = error instanceof Error ? error.message : String(error);
    }
    this.pid = this.#child?.pid ?? 0;
    this.#agentDepth = options.agentDepth ?? 0;
    const lines = new LineSplitter(options.onLine, options.maxLineBytes, options.onOverlongLine);
    const stdout = this.#child?.stdout;
    const stdoutEnded = new Promise<void>((resolve) => {
      if (!stdout) return resolve();
      stdout.on("data", (chunk: Buffer) => lines.push(chunk));
      stdout.once("end", () => {
        lines.end();
        resolve();
        // A process that is exiting closes its output first; one still running after a
        // moment closed it on purpose (or lost it) and will never answer again.
        const timer = setTimeout(() => {
          if (!this.#gone && this.pid !== 0) options.onOutputClosed();
        }, OUTPUT_DRAIN_MS);
        timer.unref();
        this.#child?.once("exit", () => clearTimeout(timer));
      });
      stdout.once("close", () => resolve());
    });
    // Drained continuously: a chatty agent must never block on a full stderr pipe.
    this.#child?.stderr.on("data", (chunk: Buffer) => {
      this.#stderr.push(chunk.toString("utf8"));
      for (const listener of this.#stderrListeners) listener(chunk);
    });
    // Writes after the agent exited fail with EPIPE, and a read of a broken pipe can fail
    // too: the exit is reported on its own, and a stream error must never be unhandled.
    this.#child?.stdin.on("error", () => {});
    this.#child?.stdout.on("error", () => {});
    this.#child?.stderr.on("error", () => {});
    // Inside a sandbox the wrappers above the agent hold our stdout pipe too, so its end
    // never shows when only the agent closes it: look at the agent's fd 1 instead.
    const watch = this.#agentDepth > 0 && this.pid !== 0 ? setInterval(() => this.#checkAgentOutput(options.onOutputClosed), OUTPUT_WATCH_MS) : undefined;
    watch?.unref();
    const child = this.#child;
    let exitCode: number | undefined;
    let exitSignal: string | undefined;
    const gone = new Promise<void>((resolve) => {
      child?.once("exit", (code, signal) => {
        exitCode = code ?? undefined;
        exitSignal = signal ?? undefined;
        this.#gone = true;
        clearInterval(watch);
        resolve();
      });
    });
    // Give the pipes a moment after the exit, then close our ends, so a pipe held by a
    // stray descendant cannot keep the exit (and a stop, and shutdown) waiting.
    void gone.then(async () => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stdoutEnded, new Promise<void>((resolve) => (timer = setTimeout(resolve, OUTPUT_DRAIN_MS)))]);
      clearTimeout(timer);
      child?.stdout.destroy();
      child?.stderr.destroy();
    });
    // Settles once the process exited and its pipes closed ('close'), or when it could
    // not be started: 'error' without a pid (ENOENT, EACCES…), or the throw above.
    const settled = new Promise<string | undefined>((resolve) => {
      if (child === undefined) return resolve(spawnFailure ?? "the process could not be started");
      child.once("close", () => resolve(undefined));
      child.on("error", (error) => {
        if (child.pid !== undefined) return;
        child.stdout.destroy();
        child.stderr.destroy();
        child.stdin.destroy();
        resolve(error.message);
      });
    });
    this.exited = settled.then((failure) => {
      const failedToSpawn = failure !== undefined || this.pid === 0 || (exitCode === undefined && exitSignal === undefined);
      this.#exit = {
        exitCode,
        signal: exitSignal,
        spawnError: failedToSpawn ? (failure ?? "the process ended without an exit status") : undefined,
        stderrTail: this.#stderr.toString(),
        ...(this.#signalSent ? { signalSent: this.#signalSent } : {}),
      };
      return this.#exit;
    });
  }

  #signalSent: string | undefined;
  #agentOutput: string | undefined;
  #agentPid: number | undefined;
  #outputClosedReported = false;

  #checkAgentOutput(onClosed: () => void): void {
    if (this.#outputClosedReported || !this.alive) return;
    const agent = descendantAt(this.pid, this.#agentDepth);
    if (agent <= 0) return;
    // Another process at the agent's depth (one it left behind) means the agent is gone,
    // and a dead agent (a zombie until the wrapper reaps it) has no fds to read: its exit
    // is on the way, which is no broken output.
    this.#agentPid ??= agent;
    if (agent !== this.#agentPid || isZombie(agent)) return;
    let target: string | undefined;
    try {
      target = readlinkSync(`/proc/${agent}/fd/1`);
    } catch {
      target = undefined;
    }
    if (target !== undefined && this.#agentOutput === undefined) {
      this.#agentOutput = target;
      return;
    }
    // Closed (every agent starts with its output open), or pointing elsewhere, while the
    // agent still runs.
    if ((target === undefined || target !== this.#agentOutput) && existsSync(`/proc/${agent}`)) {
      this.#outputClosedReported = true;
      onClosed();
    }
  }

  /**
   * Hands every stderr chunk to `listener` from now on (the session's agent log); returns
   * the function that stops it. Chunks arrive from I/O callbacks, never before the caller
   * that started the process had a chance to attach.
   */
  onStderr(listener: (chunk: Buffer) => void): () => void {
    this.#stderrListeners.add(listener);
    return () => this.#stderrListeners.delete(listener);
  }

  /** True until the process has exited. */
  get alive(): boolean {
    return !this.#gone && this.#exit === undefined && this.pid !== 0;
  }

  /** Writes one line to the agent's stdin. Returns false if the agent is gone. */
  writeLine(line: string): boolean {
    const stdin = this.#child?.stdin;
    if (!this.alive || !stdin || stdin.destroyed || stdin.writableEnded) return false;
    stdin.write(line + "\n");
    return true;
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
      const agent = descendantAt(this.pid, this.#agentDepth);
      this.#signalSent = "SIGTERM";
      if (agent > 0 && agent !== this.pid) signalProcess(agent, "SIGTERM");
      else this.signalGroup("SIGTERM");
      const timer = setTimeout(() => {
        this.#signalSent = "SIGKILL";
        this.signalGroup("SIGKILL");
      }, graceMs);
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

/** Signals one process; one that is already gone is not an error. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

// The first child of the first child… `depth` levels below `pid` (from /proc; 0 when the
// chain is not there, e.g. the agent is gone or this is not Linux).
function descendantAt(pid: number, depth: number): number {
  let current = pid;
  for (let level = 0; level < depth; level += 1) {
    let children: string;
    try {
      children = readFileSync(`/proc/${current}/task/${current}/children`, "utf8");
    } catch {
      return 0;
    }
    const first = Number(children.trim().split(/\s+/)[0]);
    if (!first) return 0;
    current = first;
  }
  return current;
}

/** The start time of a process (clock ticks since boot), from /proc: with the pid, a unique identity. */
export function processStartTime(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may hold spaces: starttime is field 22.
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return 0;
  }
}

// A process that ended and was not reaped yet (or is being reaped).
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}
