import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { OutOfRangeError } from "../errors.js";
import { type Event, type EventPayload, EventSchema } from "./event.js";

/** How much of a session's log stays in memory. */
export interface LogBounds {
  /** The most events kept; older ones are dropped first. */
  maxEvents: number;
  /** The most (approximate) bytes kept; older events are dropped first. */
  maxBytes: number;
}

export const DEFAULT_LOG_BOUNDS: LogBounds = { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024 };

/**
 * One session's events, in order, with sequence numbers from 1.
 *
 * Append-then-publish: `append` stores the event and only then wakes readers, and
 * readers pull from the log at their own pace (`read` + `waitBeyond`), so a slow reader
 * never blocks the agent or other readers. When a bound drops events a reader has not
 * read yet, its next `read` throws OutOfRangeError instead of skipping them silently.
 */
export class EventLog {
  readonly sessionId: string;
  readonly #bounds: LogBounds;
  // A queue with a moving head: dropping the oldest event is O(1), and the array is
  // compacted only when the dead prefix is large.
  #events: Event[] = [];
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;
  #lastSeq = 0;
  #waiters = new Set<() => void>();

  constructor(sessionId: string, bounds: LogBounds = DEFAULT_LOG_BOUNDS, lastSeq = 0) {
    if (bounds.maxEvents < 1) throw new RangeError(`maxEvents must be at least 1, got ${bounds.maxEvents}`);
    this.sessionId = sessionId;
    this.#bounds = bounds;
    this.#lastSeq = lastSeq;
  }

  /** The last assigned sequence number (0 when nothing was ever logged). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The oldest retained sequence number; lastSeq + 1 when nothing is retained. */
  get firstSeq(): number {
    return this.#lastSeq - (this.#events.length - this.#head) + 1;
  }

  /** Approximate bytes retained. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Number of retained events. */
  get size(): number {
    return this.#events.length - this.#head;
  }

  /** Assigns the next sequence number, stores the event, then wakes readers. */
  append(turnId: string, payload: EventPayload, timeMs = Date.now()): Event {
    const event = create(EventSchema, {
      seq: BigInt(this.#lastSeq + 1),
      sessionId: this.sessionId,
      turnId,
      time: timestampFromMs(timeMs),
      payload,
    });
    this.#lastSeq += 1;
    const size = approximateSize(payload);
    this.#events.push(event);
    this.#sizes.push(size);
    this.#bytes += size;
    this.#trim();
    this.#wake();
    return event;
  }

  /**
   * Up to `limit` events with seq > afterSeq, in order. Throws OutOfRangeError when
   * events after `afterSeq` were dropped, or `afterSeq` lies beyond the last event.
   */
  read(afterSeq: number, limit = 256): Event[] {
    const first = this.firstSeq;
    if (afterSeq > this.#lastSeq || afterSeq < first - 1) {
      throw new OutOfRangeError(this.sessionId, afterSeq, this.size === 0 ? this.#lastSeq + 1 : first, this.#lastSeq);
    }
    const start = this.#head + (afterSeq - first + 1);
    return this.#events.slice(start, Math.min(start + limit, this.#events.length));
  }

  /**
   * Resolves once an event with seq > afterSeq exists or the signal aborts. Resolves at
   * once if one exists already, so a reader can never miss a wake-up between its last
   * read and this call.
   */
  waitBeyond(afterSeq: number, signal?: AbortSignal): Promise<void> {
    if (this.#lastSeq > afterSeq || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
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
    while (this.size > 1 && (this.size > maxEvents || this.#bytes > maxBytes)) {
      this.#bytes -= this.#sizes[this.#head] ?? 0;
      this.#head += 1;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }
}

// A cheap estimate of an event's memory: its strings (UTF-16) plus a fixed overhead.
// Encoding every event just to weigh it would cost more than the bound saves.
const EVENT_OVERHEAD_BYTES = 160;

function approximateSize(payload: EventPayload): number {
  let size = EVENT_OVERHEAD_BYTES;
  for (const value of Object.values(payload.value)) {
    if (typeof value === "string") size += value.length * 2;
  }
  return size;
}
