import type { Logger } from "pino";
import type { SessionRecord, Store, StoredEvent } from "../store/store.js";
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
 * thus pays one commit per batch of output lines, not one per token.
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
    if (!this.#retry) this.#scheduled ??= setImmediate(() => this.flush());
  }

  /**
   * Commits what is pending and stops: the store is about to close, and nothing may be
   * scheduled against it any more (a late registry checkpoint would retry forever).
   */
  close(): void {
    this.flush();
    this.#closed = true;
    clearImmediate(this.#scheduled);
    clearTimeout(this.#retry);
    this.#scheduled = undefined;
    this.#retry = undefined;
    this.#dirty.clear();
  }

  /**
   * Commits everything pending now. Each log's events are first applied to its session
   * (onCommit), then stored (with the session's updated record when one is due), then
   * published: all in one synchronous step, so no reader ever sees a state between them.
   */
  flush(): void {
    clearImmediate(this.#scheduled);
    clearTimeout(this.#retry);
    this.#scheduled = undefined;
    this.#retry = undefined;
    if (this.#dirty.size === 0) return;
    const logs = [...this.#dirty];
    this.#dirty.clear();
    const batches = new Map<EventLog, Event[]>();
    const events: StoredEvent[] = [];
    const records: SessionRecord[] = [];
    const recorded: [EventLog, number][] = [];
    let moved: Map<string, number> | undefined;
    let started = 0;
    for (const log of logs) {
      const backing = log.backing;
      if (!backing) continue;
      const pending = log.takePending();
      batches.set(log, pending);
      for (const event of pending) events.push({ key: backing.key, event });
    }
    try {
      for (const [log, pending] of batches) log.prepareCommit(pending);
      for (const log of logs) {
        const record = log.recordDue ? log.backing?.record() : undefined;
        if (!record) continue;
        records.push(record);
        recorded.push([log, record.lastSeq]);
      }
      started = this.#observer ? performance.now() : 0;
      moved = this.#store.commit(events, records);
    } catch (error) {
      this.#observer?.(0, events.length, true);
      this.#logger.error({ err: error, events: events.length }, "storing events failed; retrying");
      for (const [log, pending] of batches) {
        log.restorePending(pending);
        this.#dirty.add(log);
      }
      this.#retry = setTimeout(() => this.flush(), RETRY_MS);
      return;
    }
    // Outside the try: an observer's failure must never pass for a failed commit.
    this.#observer?.((performance.now() - started) / 1000, events.length, false);
    for (const [log, seq] of recorded) log.recorded(seq);
    for (const [log, pending] of batches) {
      log.published(pending);
      const first = moved?.get(log.backing?.key ?? "");
      if (first !== undefined) log.retainedFrom(first);
    }
  }
}
