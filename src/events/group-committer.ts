import type { Logger } from "pino";
import { type Retained, type SessionRecord, SessionsFencedError, type Store, type StoredEvent } from "../store/store.js";
import type { Event } from "./event.js";
import type { EventLog } from "./event-log.js";

// After a failed commit (disk full, I/O error), wait this long before trying again.
const RETRY_MS = 200;

/**
 * Sees every store commit of the group committer: how long the store took, how many
 * events it was given and whether it failed (metrics). Must be cheap and must not throw.
 */
export type CommitObserver = (seconds: number, events: number, failed: boolean) => void;

/**
 * Group commit: events appended during one turn of the event loop, across all
 * sessions, are stored in one transaction and only then published. A streaming turn
 * thus pays one commit per batch of output lines, not one per token. Commits are
 * serialized: while one is with the store, new events gather for the next, so a slow
 * store gets fewer, larger commits rather than many overlapping ones.
 */
export class GroupCommitter {
  readonly #store: Store;
  readonly #logger: Logger;
  #dirty = new Set<EventLog>();
  // The next flush: on the next turn of the event loop, or a retry after a failure. Kept
  // apart: clearImmediate given a Timeout corrupts Node's timer and immediate counts.
  #scheduled: NodeJS.Immediate | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  /** The commit with the store now, or the last one (settled). */
  #running: Promise<void> = Promise.resolve();
  /** A commit is with the store (or applying its result). */
  #busy = false;
  /** A commit waiting for the running one; everything pending when it starts goes with it. */
  #next: Promise<void> | undefined;
  readonly #observer: CommitObserver | undefined;

  constructor(store: Store, logger: Logger, observer?: CommitObserver) {
    this.#store = store;
    this.#logger = logger;
    this.#observer = observer;
  }

  /** Marks a log as having pending events (or a changed registry entry). */
  schedule(log: EventLog): void {
    if (this.#closed) return;
    this.#dirty.add(log);
    if (!this.#retry) this.#scheduled ??= setImmediate(() => void this.flush());
  }

  /**
   * Commits what is pending and stops: the store is about to close, and nothing may be
   * scheduled against it any more (a late registry checkpoint would retry forever).
   */
  async close(): Promise<void> {
    await this.flush();
    // Appended while that commit was with the store: one more commit takes them.
    if (this.#dirty.size > 0) await this.flush();
    const left = [...this.#dirty].reduce((sum, log) => sum + log.pendingCount, 0);
    if (left > 0) this.#logger.error({ events: left }, "the store is closing with events it could not store");
    this.#closed = true;
    clearImmediate(this.#scheduled);
    clearTimeout(this.#retry);
    this.#scheduled = undefined;
    this.#retry = undefined;
    this.#dirty.clear();
  }

  /**
   * Commits everything pending now (after the commit with the store, if one is). Resolves
   * once that commit is done: stored and published, or failed (and a retry scheduled).
   */
  flush(): Promise<void> {
    clearImmediate(this.#scheduled);
    clearTimeout(this.#retry);
    this.#scheduled = undefined;
    this.#retry = undefined;
    if (this.#next) return this.#next;
    // Nothing with the store: the commit starts now, in this turn of the event loop (the
    // store sees the batch at once; a hop through the promise chain costs every commit).
    if (!this.#busy) return this.#start();
    const next = this.#running.then(() => {
      this.#next = undefined;
      return this.#start();
    });
    this.#next = next;
    return next;
  }

  // Runs one commit; #running settles (never rejects) once it is done.
  #start(): Promise<void> {
    this.#busy = true;
    const commit = this.#commit().finally(() => {
      this.#busy = false;
    });
    // The chain never rejects, or every later commit would be skipped.
    this.#running = commit.catch(() => {});
    return commit;
  }

  /**
   * One commit. Each log's registry entry (when one is due) is taken as of the events
   * going with it; events and entries are stored;
   * once the store acknowledged, each log's events are applied to its session (onCommit)
   * and published in one synchronous step, so no reader ever sees a state between them
   * and a snapshot never names a seq the store could still lose.
   */
  async #commit(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const logs = [...this.#dirty];
    this.#dirty.clear();
    const batches = new Map<EventLog, Event[]>();
    const events: StoredEvent[] = [];
    const records: SessionRecord[] = [];
    const recorded: [EventLog, number][] = [];
    let moved: Map<string, Retained> | undefined;
    let started = 0;
    for (const log of logs) {
      const backing = log.backing;
      if (!backing) continue;
      const pending = log.takePending();
      batches.set(log, pending);
      for (const event of pending) events.push({ key: backing.key, event });
    }
    try {
      for (const log of logs) {
        const record = log.recordDue ? log.backing?.record(batches.get(log) ?? []) : undefined;
        if (!record) continue;
        log.recordTaken();
        records.push(record);
        recorded.push([log, record.lastSeq]);
      }
      started = this.#observer ? performance.now() : 0;
      moved = await this.#store.commit(events, records);
    } catch (error) {
      this.#guarded(undefined, () => this.#observer?.(0, events.length, true));
      this.#logger.error({ err: error, events: events.length }, "storing events failed; retrying");
      // Sessions another node runs: nothing of them may be stored from here (their agents
      // are stopped through the store's onLost); the other sessions' events go again.
      const fenced = error instanceof SessionsFencedError ? new Set(error.keys) : undefined;
      for (const [log, pending] of batches) {
        if (fenced?.has(log.backing?.key ?? "")) continue;
        log.restorePending(pending);
        this.#dirty.add(log);
      }
      for (const [log] of recorded) if (!fenced?.has(log.backing?.key ?? "")) log.recordFailed();
      // A commit already queued takes them; otherwise a retry after a pause.
      if (!this.#closed && !this.#next) this.#retry = setTimeout(() => void this.flush(), RETRY_MS);
      return;
    }
    // Stored: from here on nothing may pass for a failed commit, and one log's observer
    // that throws must not keep the other logs' events from being published.
    this.#guarded(undefined, () => this.#observer?.((performance.now() - started) / 1000, events.length, false));
    for (const [log, seq] of recorded) log.recorded(seq);
    for (const [log, pending] of batches) {
      this.#guarded(log, () => log.published(pending));
      const retained = moved?.get(log.backing?.key ?? "");
      if (retained !== undefined) this.#guarded(log, () => log.retainedFrom(retained));
    }
  }

  #guarded(log: EventLog | undefined, step: () => void): void {
    try {
      step();
    } catch (error) {
      this.#logger.error({ err: error, session: log?.sessionId }, "a commit's observer failed after the events were stored");
    }
  }
}
