import { StringDecoder } from "node:string_decoder";
import type { AgentLauncher, LaunchedAgent } from "../process/launcher.js";

/** Where an entry of a session's agent log came from (the numbers of the proto's AgentLogSource). */
export enum AgentLogSource {
  /** A line the agent (or its sandbox wrapper) wrote to stderr. */
  STDERR = 1,
  /** What the daemon did with or saw of the agent's processes: started, exited, stopped, restarted. */
  LIFECYCLE = 2,
}

/** One entry: a stderr line or a lifecycle note, as text that is safe to print. */
export interface AgentLogEntry {
  /** Increases by one per entry of the session, from 1; never reused while the session exists. */
  readonly index: number;
  readonly timeMs: number;
  readonly source: AgentLogSource;
  readonly text: string;
  /** The line was longer than an entry holds: `text` ends with a marker saying how long it was. */
  readonly truncated: boolean;
  /** The process the entry is about (0: none, or the process is not the session's own). */
  readonly pid: number;
}

/** A session's log keeps this many bytes of entries unless configured otherwise. */
export const DEFAULT_SESSION_LOG_BYTES = 64 * 1024;
/** The most the option may ask per session. */
export const MAX_SESSION_LOG_BYTES = 16 * 1024 * 1024;
/** Logs of sessions whose agent no longer runs go, oldest written first, past this many sessions' worth. */
export const IDLE_LOGS_KEPT = 256;
// The longest text of one entry, in UTF-16 units: a longer line is cut and marked.
const MAX_ENTRY_CHARS = 4096;
// What an entry costs beside its text (the object, its fields): counted so that a flood of
// empty lines is bounded like one of long lines.
const ENTRY_OVERHEAD = 64;

// C0 controls but tab, DEL, C1 controls, and the characters that reorder or break lines on a
// terminal (bidi marks, embeddings, overrides and isolates, line and paragraph separators).
const UNSAFE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/** Text with every control character written as an escape (`\u001b`), so it prints as it came. */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE, (c) => (c === "\r" ? "\\r" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`));
}

/**
 * The log budget of all sessions together: each session keeps at most `perSessionBytes`,
 * and once all logs pass `totalBytes` the logs of sessions whose agent no longer runs are
 * released, least recently written first. A live agent's log is never released, so the
 * memory is bounded by the live-agent limit times the per-session bound, plus the total.
 */
export class AgentLogBudget {
  #total = 0;
  // Logs holding entries, least recently written first.
  readonly #logs = new Map<AgentLog, true>();

  constructor(
    readonly perSessionBytes = DEFAULT_SESSION_LOG_BYTES,
    readonly totalBytes = perSessionBytes * IDLE_LOGS_KEPT,
  ) {}

  /** A new, empty log under this budget. */
  create(): AgentLog {
    return new AgentLog(this.perSessionBytes, this);
  }

  /** Bytes held by every log together. */
  get bytes(): number {
    return this.#total;
  }

  /** @internal A log's size changed by `delta` bytes; it was written to when `written`. */
  changed(log: AgentLog, delta: number, written: boolean): void {
    this.#total += delta;
    if (log.bytes === 0) {
      this.#logs.delete(log);
      return;
    }
    if (written) {
      this.#logs.delete(log);
      this.#logs.set(log, true);
    }
    if (this.#total <= this.totalBytes) return;
    for (const other of this.#logs.keys()) {
      if (this.#total <= this.totalBytes) break;
      if (other !== log && !other.pinned) other.release();
    }
  }
}

/**
 * A session's agent log: a ring of entries bounded in bytes, in memory only. stderr is
 * split into lines (per process, so two processes' partial lines never mix), each line
 * capped and its control characters escaped; lifecycle entries say what happened to the
 * session's processes. Readers page by index and may wait for more (follow).
 *
 * Not persisted, on purpose: stderr is diagnostics of a running agent, often noisy (a
 * flood would compete with the event log's commits) and may quote what the agent was
 * given; what clients need of it survives in the event log already (TurnEnded's
 * stderr_tail and exit code, SessionEnded's reason and signal), and lifecycle is in the
 * daemon's own log.
 */
export class AgentLog {
  readonly maxBytes: number;
  readonly #budget: AgentLogBudget | undefined;
  readonly #maxEntryChars: number;
  // The ring: entries[start..] are kept; the array is compacted once half of it is gone.
  #entries: AgentLogEntry[] = [];
  #start = 0;
  #bytes = 0;
  #nextIndex = 1;
  #liveProcesses = 0;
  #closed = false;
  /** Set once another log took this one's entries: everything written here goes there. */
  #forward: AgentLog | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(maxBytes = DEFAULT_SESSION_LOG_BYTES, budget?: AgentLogBudget) {
    this.maxBytes = maxBytes;
    this.#budget = budget;
    this.#maxEntryChars = Math.max(64, Math.min(MAX_ENTRY_CHARS, maxBytes - ENTRY_OVERHEAD));
  }

  /** Bytes the kept entries count for. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The index of the oldest entry kept (the next one's when none is). */
  get firstIndex(): number {
    return this.#entries[this.#start]?.index ?? this.#nextIndex;
  }

  /** The index of the newest entry written (0 before the first). */
  get lastIndex(): number {
    return this.#nextIndex - 1;
  }

  /** An agent process of the session runs: the budget keeps this log. */
  get pinned(): boolean {
    return this.#liveProcesses > 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Takes over `other` (a pre-warmed agent's log, when a session takes the agent): its
   * entries are appended here, newly numbered, and whatever its processes write from now
   * on lands here too. `other` keeps nothing.
   */
  absorb(other: AgentLog): void {
    if (other === this || other.#forward) return;
    for (const entry of other.read(0, Number.MAX_SAFE_INTEGER)) this.#append(entry.source, entry.text, entry.pid);
    this.#liveProcesses += other.#liveProcesses;
    other.#liveProcesses = 0;
    other.#forward = this;
    other.release();
  }

  // Where this log's writes go: itself, or the log that absorbed it.
  #sink(): AgentLog {
    return this.#forward ?? this;
  }

  /** Notes what happened to the agent (spawned, exited, stopped, restarted), as one entry. */
  lifecycle(text: string, pid = 0): void {
    this.#append(AgentLogSource.LIFECYCLE, text, pid);
  }

  /** Starts reading one process's stderr: the returned writer takes its chunks, `end` flushes a last partial line. */
  stderrOf(pid: number): { write(chunk: Buffer): void; end(): void } {
    const decoder = new StringDecoder("utf8");
    let partial = "";
    let partialChars = 0;
    const take = (piece: string) => {
      partialChars += piece.length;
      const room = this.#maxEntryChars - partial.length;
      if (room > 0) partial += piece.length <= room ? piece : piece.slice(0, room);
    };
    const flush = () => {
      const line = partial.endsWith("\r") ? partial.slice(0, -1) : partial;
      this.#append(AgentLogSource.STDERR, line, pid, partialChars);
      partial = "";
      partialChars = 0;
    };
    const push = (text: string) => {
      let from = 0;
      for (let nl = text.indexOf("\n", from); nl !== -1; nl = text.indexOf("\n", from)) {
        take(text.slice(from, nl));
        flush();
        from = nl + 1;
      }
      if (from < text.length) take(text.slice(from));
    };
    return {
      write: (chunk) => {
        if (!this.#closed) push(decoder.write(chunk));
      },
      end: () => {
        push(decoder.end());
        if (partialChars > 0) flush();
      },
    };
  }

  /**
   * Attaches to a started process: its stderr lines and its exit go into the log, and the
   * log is pinned (kept by the budget) while it runs.
   */
  watch(agent: LaunchedAgent): void {
    const { pid } = agent.process;
    const stderr = this.stderrOf(pid);
    const stop = agent.process.onStderr((chunk) => stderr.write(chunk));
    this.#liveProcesses += 1;
    void agent.exited.then((exit) => {
      stop();
      stderr.end();
      this.#sink().#liveProcesses -= 1;
      const how = exit.spawnError
        ? `could not start: ${exit.spawnError}`
        : exit.signal
          ? `killed by ${exit.signal}`
          : `exit code ${exit.exitCode ?? "unknown"}`;
      this.lifecycle(`process ${pid} ended: ${how}${exit.signalSent ? ` (the daemon sent ${exit.signalSent})` : ""}`, pid);
    });
  }

  /** The entries after `afterIndex`, oldest first, at most `limit`. */
  read(afterIndex: number, limit: number): AgentLogEntry[] {
    const first = this.firstIndex;
    const from = this.#start + Math.max(0, afterIndex + 1 - first);
    return this.#entries.slice(from, Math.min(this.#entries.length, from + limit));
  }

  /** Resolves once an entry after `afterIndex` exists, the log is closed or `signal` aborts. */
  async waitFor(afterIndex: number, signal: AbortSignal): Promise<void> {
    if (this.lastIndex > afterIndex || this.#closed || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Drops every entry (the budget needs the memory); indexes go on. */
  release(): void {
    const freed = this.#bytes;
    this.#entries = [];
    this.#start = 0;
    this.#bytes = 0;
    if (freed > 0) this.#budget?.changed(this, -freed, false);
  }

  /** The session is gone: the entries go, and waiting readers end. */
  close(): void {
    this.#closed = true;
    this.release();
    for (const waiter of [...this.#waiters]) waiter();
  }

  #append(source: AgentLogSource, raw: string, pid: number, rawChars = raw.length): void {
    if (this.#forward) return this.#forward.#append(source, raw, pid, rawChars);
    if (this.#closed || this.maxBytes === 0) return;
    let text = escapeControls(raw);
    const truncated = rawChars > this.#maxEntryChars || text.length > this.#maxEntryChars;
    if (truncated) {
      let cut = text.slice(0, this.#maxEntryChars);
      // Never half a surrogate pair.
      if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
      text = `${cut} …[truncated: the line had ${rawChars} characters]`;
    }
    const entry: AgentLogEntry = { index: this.#nextIndex, timeMs: Date.now(), source, text, truncated, pid };
    this.#nextIndex += 1;
    const size = Buffer.byteLength(text, "utf8") + ENTRY_OVERHEAD;
    this.#entries.push(entry);
    this.#bytes += size;
    let freed = 0;
    // The newest entry stays even when it alone is over the bound (it is at most one entry).
    while (this.#bytes > this.maxBytes && this.#entries.length - this.#start > 1) {
      const old = this.#entries[this.#start]!;
      this.#start += 1;
      const oldSize = Buffer.byteLength(old.text, "utf8") + ENTRY_OVERHEAD;
      this.#bytes -= oldSize;
      freed += oldSize;
    }
    if (this.#start > 1024 && this.#start * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#start);
      this.#start = 0;
    }
    this.#budget?.changed(this, size - freed, true);
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/**
 * The launcher a session hands its provider: every process started for the session's own
 * state dir is watched by the session's log (its pid, the sandbox, its stderr, its exit).
 * A process started for something shared (a tenant's server) is only noted: its output
 * belongs to no single session.
 */
export function observedLauncher(launcher: AgentLauncher, log: AgentLog, stateDir: string | (() => string)): AgentLauncher {
  const observed = Object.create(launcher) as AgentLauncher;
  observed.launch = async (request) => {
    const own = request.paths.stateDir === (typeof stateDir === "string" ? stateDir : stateDir());
    let agent: LaunchedAgent;
    try {
      agent = await launcher.launch(request);
    } catch (error) {
      log.lifecycle(`cannot start ${own ? "the agent" : "a shared agent server"}: ${(error as Error).message}`);
      throw error;
    }
    if (!own) {
      log.lifecycle(`started a process shared with other sessions (pid ${agent.process.pid}); its output is not in this log`);
      return agent;
    }
    const { sandbox } = launcher;
    const state = sandbox.state;
    const contained = sandbox.enabled ? `in the sandbox (network ${state.network}, limits by ${state.limitsBy})` : `without the sandbox (${state.reason || `--sandbox ${state.mode}`})`;
    log.lifecycle(`process ${agent.process.pid} started: ${request.command.file} ${contained}`, agent.process.pid);
    log.watch(agent);
    return agent;
  };
  return observed;
}

/** One page of a read: entries after the reader's index, and what the log holds. */
export interface AgentLogPage {
  entries: AgentLogEntry[];
  /** The oldest entry kept (the next one's when none is). */
  firstIndex: number;
  /** The newest entry written (0 before the first). */
  lastIndex: number;
  /** Entries after the reader's index that are no longer kept (the ring moved past them). */
  dropped: number;
}

/** Entries per page when the reader names no limit, and the most it may name. */
export const DEFAULT_LOG_PAGE = 500;
export const MAX_LOG_PAGE = 1000;

/**
 * Reads a log after `afterIndex` in pages of at most `limit` entries (0: the default).
 * Without `follow` one page (empty when nothing is there); with it, the backlog page by
 * page, then new entries as they are written, until the log closes or `signal` aborts. A
 * reader slower than the writer loses the entries the ring dropped, and is told how many.
 */
export async function* readAgentLog(log: AgentLog, afterIndex: number, limit: number, follow: boolean, signal: AbortSignal): AsyncGenerator<AgentLogPage> {
  const pageSize = limit === 0 ? DEFAULT_LOG_PAGE : Math.min(limit, MAX_LOG_PAGE);
  let cursor = afterIndex;
  let first = true;
  for (;;) {
    const entries = log.read(cursor, pageSize);
    const dropped = cursor < log.lastIndex ? Math.max(0, log.firstIndex - cursor - 1) : 0;
    if (first || entries.length > 0 || dropped > 0) {
      yield { entries, firstIndex: log.firstIndex, lastIndex: log.lastIndex, dropped };
    }
    first = false;
    const last = entries.at(-1);
    cursor = last ? last.index : cursor + dropped;
    if (!follow || log.closed || signal.aborted) return;
    if (cursor >= log.lastIndex) {
      await log.waitFor(cursor, signal);
      if (log.closed || signal.aborted) return;
      // Whatever else is written in this turn of the event loop goes in the same page.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}
