import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { HotplexError, OutOfRangeError } from "../errors.js";
import type { Retained, SessionRecord, Store } from "../store/store.js";
import { type Event, type EventPayload, EventSchema } from "./event.js";
import { encodeEvent } from "./encoded-event.js";
import type { GroupCommitter } from "./group-committer.js";

/**
 * Where a log's events are kept beyond its in-memory tail. Without one, the tail is the
 * whole log and events are published as soon as they are appended.
 */
export interface LogBacking {
  store: Store;
  /** The session's store key, `<tenant>/<session id>`. */
  key: string;
  committer: GroupCommitter;
  /**
   * The session's registry entry as of the published events followed by `pending` (the
   * ones about to be stored with it): its lastSeq is the last of them.
   */
  record: (pending: readonly Event[]) => SessionRecord | undefined;
  /** What the store held of the session when the log was opened (nothing for a new one). */
  retained?: Retained;
}

/** How much of a session's log stays in memory. */
export interface LogBounds {
  /** The most events kept; older ones are dropped first. */
  maxEvents: number;
  /** The most (approximate) bytes kept; older events are dropped first. */
  maxBytes: number;
}

/**
 * Sees a log's events once they are published, a batch at a time, in order. It runs inside
 * the group commit, so it must be cheap and must not throw.
 */
export type EventObserver = (events: readonly Event[]) => void;

export const DEFAULT_LOG_BOUNDS: LogBounds = { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024 };

/**
 * One session's events, in order, with sequence numbers from 1.
 *
 * Append-then-publish: `append` assigns the next sequence number; the event becomes
 * visible (to `read`, to waiting readers and to `onCommit`) only once it is stored: at
 * once for a log without backing, once the store acknowledged the group commit for a
 * store-backed log, so a sequence number a reader (or a snapshot) has seen is never lost. Readers pull at their own pace
 * (`read` + `waitBeyond`), so a slow reader never blocks the agent or other readers.
 * When retention drops events a reader has not read yet, its next `read` throws
 * OutOfRangeError instead of skipping them silently.
 */
export class EventLog {
  readonly sessionId: string;
  readonly #bounds: LogBounds;
  readonly #backing: LogBacking | undefined;
  // The in-memory tail: a queue with a moving head, so dropping the oldest event is
  // O(1) and the array is compacted only when the dead prefix is large.
  #events: Event[] = [];
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;
  /** Last published seq. */
  #lastSeq = 0;
  /** Last assigned seq (ahead of #lastSeq while a commit is pending). */
  #assignedSeq = 0;
  #pending: Event[] = [];
  /** First seq retained by the backing store (store-backed logs only). */
  #storeFirstSeq = 1;
  /** Encoded bytes of the events the backing store holds (store-backed logs only). */
  #storedBytes = 0;
  /**
   * Pages of events read back from the store, shared by readers behind the tail: many
   * subscribers catching up on one session read and decode each page once. Page k holds
   * seqs k * STORE_PAGE + 1 .. (k + 1) * STORE_PAGE; only full pages are kept. Map order
   * is use order (least recently used first). A page being read is kept as its promise,
   * so readers arriving meanwhile wait for the same read.
   */
  #pages = new Map<number, Promise<Event[] | undefined>>();
  #waiters = new Set<() => void>();
  #closed = false;
  /** Why the log was closed, for its readers (a deleted session when unset). */
  #closedBy: HotplexError | undefined;
  /** The registry entry must go with the next commit (touch). */
  #recordDue = false;
  /** assignedSeq as of the last registry entry stored. */
  #recordedSeq = 0;
  /** Called with events once they are stored, right before they become visible (same step). */
  onCommit: ((events: readonly Event[]) => void) | undefined;
  /** Called with events once they are visible (stored, published): metrics and tracing. */
  onPublish: EventObserver | undefined;

  constructor(sessionId: string, bounds: LogBounds = DEFAULT_LOG_BOUNDS, lastSeq = 0, backing?: LogBacking) {
    if (bounds.maxEvents < 1) throw new RangeError(`maxEvents must be at least 1, got ${bounds.maxEvents}`);
    this.sessionId = sessionId;
    this.#bounds = bounds;
    this.#lastSeq = lastSeq;
    this.#assignedSeq = lastSeq;
    this.#recordedSeq = lastSeq;
    this.#backing = backing;
    if (backing) {
      // Handed in by whoever opened the log: a store read here would make creating a
      // session wait for the store.
      this.#storeFirstSeq = backing.retained?.firstSeq ?? lastSeq + 1;
      this.#storedBytes = backing.retained?.bytes ?? 0;
    }
  }

  /** Encoded bytes of the session's events in the store (0 for a log without one). */
  get storedBytes(): number {
    return this.#storedBytes;
  }

  /** The last published sequence number (0 when nothing was ever logged). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The last assigned sequence number, published or not. */
  get assignedSeq(): number {
    return this.#assignedSeq;
  }

  /** The oldest retained sequence number; lastSeq + 1 when nothing is retained. */
  get firstSeq(): number {
    const tailFirst = this.#lastSeq - (this.#events.length - this.#head) + 1;
    return this.#backing ? Math.min(this.#storeFirstSeq, tailFirst) : tailFirst;
  }

  /** Approximate bytes held in memory. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Number of events held in memory. */
  get size(): number {
    return this.#events.length - this.#head;
  }

  /** Number of retained events (in memory or in the store). */
  get retained(): number {
    return this.#lastSeq - this.firstSeq + 1;
  }

  /** Assigns the next sequence number; the event is published once it is stored (never, once the log is closed). */
  append(turnId: string, payload: EventPayload, timeMs = Date.now()): Event {
    this.#assignedSeq += 1;
    // A literal rather than create(EventSchema, ...): every field is set, and the
    // reflective create() is a measurable part of appending a streamed delta.
    const event: Event = {
      $typeName: EventSchema.typeName,
      seq: BigInt(this.#assignedSeq),
      sessionId: this.sessionId,
      turnId,
      time: { $typeName: TimestampSchema.typeName, seconds: BigInt(Math.floor(timeMs / 1000)), nanos: (timeMs % 1000) * 1_000_000 },
      // Set by a store many nodes share as it stores the event (the writer's ownership period).
      epoch: 0n,
      payload,
    };
    if (this.#backing) {
      // A closed log's session is gone (deleted, or run by another node now): nothing more
      // of it is stored from here (a late event, say the killed agent's exit, would take the
      // session's hold in the store again).
      if (this.#closed) return event;
      this.#pending.push(event);
      this.#backing.committer.schedule(this);
    } else {
      this.published([event]);
    }
    return event;
  }

  /**
   * Asks for the session's registry entry to be saved with the next group commit. Events
   * alone do not: the entry is a checkpoint, and the daemon's recovery applies the events
   * stored after it (see catchUpRecord), so a turn's commits store only its events.
   */
  touch(): void {
    if (this.#closed || !this.#backing) return;
    this.#recordDue = true;
    this.#backing.committer.schedule(this);
  }

  /**
   * Whether the next commit carries the registry entry: touched, or the entry is so far
   * behind that catching up after a crash would read many events (a long streaming turn).
   */
  get recordDue(): boolean {
    return !this.#closed && (this.#recordDue || this.#assignedSeq - this.#recordedSeq >= RECORD_LAG_EVENTS);
  }

  /**
   * The committer took the registry entry for a commit: a touch from now on (while that
   * commit is with the store) asks for another entry with the next commit.
   */
  recordTaken(): void {
    this.#recordDue = false;
  }

  /** The commit that carried the entry failed: it is due again. */
  recordFailed(): void {
    if (!this.#closed) this.#recordDue = true;
  }

  /** The registry entry as of `seq` was stored. */
  recorded(seq: number): void {
    this.#recordedSeq = Math.max(this.#recordedSeq, seq);
  }

  /** The last seq the stored registry entry reflects. */
  get recordedSeq(): number {
    return this.#recordedSeq;
  }

  /** Events appended and not yet handed to the committer. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Store-backed logs: hands the pending events to the committer. */
  takePending(): Event[] {
    const pending = this.#pending;
    this.#pending = [];
    return pending;
  }

  /** Store-backed logs: puts events back after a failed commit, ahead of newer ones. */
  restorePending(events: Event[]): void {
    this.#pending = [...events, ...this.#pending];
  }

  /**
   * Commits what is pending now instead of on the next turn of the event loop: for an
   * event someone waits on (a permission request the agent is blocked on).
   */
  commitNow(): void {
    if (this.#pending.length > 0) void this.#backing?.committer.flush();
  }

  get backing(): LogBacking | undefined {
    return this.#backing;
  }

  /**
   * Makes stored events visible, in one synchronous step: applies them to the session
   * (onCommit), keeps them in the tail and wakes readers.
   */
  published(events: readonly Event[]): void {
    if (events.length === 0) return;
    try {
      this.onCommit?.(events);
    } finally {
      // Stored either way: a view that failed on them must not hide them from readers.
      this.#publish(events);
    }
  }

  #publish(events: readonly Event[]): void {
    const backed = this.#backing !== undefined;
    for (const event of events) {
      const size = approximateSize(event.payload);
      // Stored already, so its encoding exists: this only reads its length.
      if (backed) this.#storedBytes += encodeEvent(event).byteLength;
      this.#events.push(event);
      this.#sizes.push(size);
      this.#bytes += size;
    }
    this.#lastSeq = Number(events[events.length - 1]?.seq ?? this.#lastSeq);
    this.#trim();
    this.#wake();
    this.onPublish?.(events);
  }

  /**
   * Store-backed logs: keeps only the newest `keep` events in memory (an idle session
   * needs no hot tail; the store serves older reads), releasing the rest.
   */
  shrinkTail(keep = 16): void {
    if (!this.#backing || this.size <= keep) return;
    const start = this.#events.length - keep;
    this.#events = this.#events.slice(start);
    this.#sizes = this.#sizes.slice(start);
    this.#head = 0;
    this.#bytes = this.#sizes.reduce((sum, size) => sum + size, 0);
    this.#pages.clear();
  }

  /** The session was deleted: readers are woken and their next read fails with not_found. */
  close(reason?: HotplexError): void {
    this.#closed = true;
    this.#closedBy = reason;
    this.#wake();
  }

  /** Retention moved the store's first seq (after a compaction). */
  retainedFrom({ firstSeq, bytes }: Retained): void {
    this.#storeFirstSeq = firstSeq;
    if (this.#backing) this.#storedBytes = bytes;
    for (const index of this.#pages.keys()) if ((index + 1) * STORE_PAGE < firstSeq) this.#pages.delete(index);
    while (this.size > 0 && Number(this.#events[this.#head]?.seq) < firstSeq) this.#dropOldest();
  }

  /**
   * Up to `limit` events with seq > afterSeq, in order. Throws OutOfRangeError when
   * events after `afterSeq` were dropped (also while the read was on its way to the store),
   * or `afterSeq` lies beyond the last event.
   */
  async read(afterSeq: number, limit = 256): Promise<Event[]> {
    this.#checkRange(afterSeq);
    if (!(limit >= 1)) return [];
    const tailFirst = this.#lastSeq - this.size + 1;
    if (afterSeq < tailFirst - 1 && this.#backing) {
      // Older than the in-memory tail: read from the store, up to where the tail starts.
      const count = Math.min(limit, tailFirst - 1 - afterSeq);
      const page = await this.#storePage(afterSeq);
      const start = afterSeq % STORE_PAGE;
      // A read may end inside the page, or run over its end: then the rest comes next time.
      const events = page ? page.slice(start, start + count) : await this.#backing.store.readEvents(this.#backing.key, afterSeq, count);
      // Deleted, or retention ran, while the store answered: never hand out a gap.
      this.#checkRange(afterSeq);
      const first = Number(events[0]?.seq ?? 0);
      if (first !== afterSeq + 1) {
        // What the store answered says where the log starts now, ahead of retainedFrom.
        throw new OutOfRangeError(this.sessionId, BigInt(afterSeq), first > afterSeq + 1 ? first : Math.max(this.firstSeq, afterSeq + 2), this.#lastSeq);
      }
      return events;
    }
    const start = this.#head + (afterSeq - tailFirst + 1);
    return this.#events.slice(start, Math.min(start + limit, this.#events.length));
  }

  #checkRange(afterSeq: number): void {
    if (this.#closed) throw this.#closedBy ?? new HotplexError("not_found", `session "${this.sessionId}" was deleted`);
    const first = this.firstSeq;
    if (afterSeq > this.#lastSeq || afterSeq < first - 1) {
      throw new OutOfRangeError(this.sessionId, BigInt(afterSeq), first, this.#lastSeq);
    }
  }

  // The cached or freshly read store page holding afterSeq + 1; undefined when that page
  // is not full yet (the end of the log), which is then read directly.
  #storePage(afterSeq: number): Promise<Event[] | undefined> {
    const { store, key } = this.#backing as LogBacking;
    const index = Math.floor(afterSeq / STORE_PAGE);
    let page = this.#pages.get(index);
    if (page) {
      this.#pages.delete(index);
    } else {
      const pageStart = index * STORE_PAGE;
      if (pageStart + STORE_PAGE > this.#lastSeq) return Promise.resolve(undefined);
      page = store.readEvents(key, pageStart, STORE_PAGE).then(
        (events) => {
          if (events.length === STORE_PAGE && Number(events[0]?.seq) === pageStart + 1) return events;
          // Retention dropped the page's start: read around it, without caching.
          if (this.#pages.get(index) === page) this.#pages.delete(index);
          return undefined;
        },
        (error: unknown) => {
          if (this.#pages.get(index) === page) this.#pages.delete(index);
          throw error;
        },
      );
      if (this.#pages.size >= STORE_PAGES_KEPT) this.#pages.delete(this.#pages.keys().next().value as number);
    }
    this.#pages.set(index, page);
    return page;
  }

  /**
   * Resolves once an event with seq > afterSeq exists or one of the signals aborts.
   * Resolves at once if one exists already, so a reader can never miss a wake-up between
   * its last read and this call.
   */
  waitBeyond(afterSeq: number, ...signals: (AbortSignal | undefined)[]): Promise<void> {
    if (this.#lastSeq > afterSeq || this.#closed || signals.some((signal) => signal?.aborted)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        for (const signal of signals) signal?.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      for (const signal of signals) signal?.addEventListener("abort", done, { once: true });
    });
  }

  #wake(): void {
    if (this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    for (const wake of waiters) wake();
  }

  #trim(): void {
    const { maxEvents, maxBytes } = this.#bounds;
    // Always keep the newest event, even when it alone is over the byte bound.
    while (this.size > 1 && (this.size > maxEvents || this.#bytes > maxBytes)) this.#dropOldest();
  }

  #dropOldest(): void {
    this.#bytes -= this.#sizes[this.#head] ?? 0;
    this.#head += 1;
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** A registry entry is stored at least once per this many events of a session. */
const RECORD_LAG_EVENTS = 4096;

/** Events per page read back from the store (and the most a store read returns). */
const STORE_PAGE = 256;
/** Store pages kept per log: 16 × 256 events, released when the session goes idle. */
const STORE_PAGES_KEPT = 16;

// A cheap estimate of an event's memory: its strings (UTF-16) plus a fixed overhead.
// Encoding every event just to weigh it would cost more than the bound saves.
const EVENT_OVERHEAD_BYTES = 160;

/** A cheap estimate of an event payload's memory, for in-memory bounds. */
export function approximateSize(payload: Event["payload"]): number {
  // The common case without allocating (Object.values makes an array per event).
  if (payload.case === "textDelta" || payload.case === "thinkingDelta") {
    return EVENT_OVERHEAD_BYTES + (payload.value.text.length + payload.value.parentToolUseId.length) * 2;
  }
  let size = EVENT_OVERHEAD_BYTES;
  for (const value of Object.values(payload.value ?? {})) {
    if (typeof value === "string") size += value.length * 2;
  }
  return size;
}
