import { HotplexError, OutOfRangeError } from "../errors.js";
import type { LogWatch, Store, WatchedEvent } from "../store/store.js";
import type { Event } from "./event.js";
import { type FollowOptions, shuttingDown } from "./follow.js";

/** What a reader of a shared store's log needs of the store. */
export type StoredLog = Pick<Store, "readEvents"> & Required<Pick<Store, "watch">>;

export interface StoredFollowOptions extends FollowOptions {
  /** For error messages. */
  sessionId: string;
  /** The ownership period (epoch) of the event at afterSeq, as the client got it (0: unknown). */
  epoch: number;
  /**
   * Throws (a HotplexError: not_found, failed_precondition) when the session the reader
   * follows is gone from the store: called once a catch-up from the store's pages is done,
   * when the log moves to another ownership period (a delete and a new session under the
   * same id also starts one), every
   * `checkEveryMs` without new events, and when `recheck` aborts.
   */
  check: () => Promise<void>;
  /** How often an idle reader checks that its session still exists. */
  checkEveryMs?: number;
  /** Aborted when the session may just have gone (deleted on this node): check at once. */
  recheck?: AbortSignal;
  /**
   * The most live events held for a reader that does not keep up; past it the reader stops
   * watching and reads the store page by page from where it is, so it misses nothing and a
   * slow reader never holds more than this.
   */
  maxBuffered?: number;
}

const DEFAULT_CHECK_EVERY_MS = 5_000;
const DEFAULT_MAX_BUFFERED = 4_096;
// Batches read back to back before the reader gives way to the event loop.
const BATCHES_BEFORE_YIELD = 16;

/**
 * A session's events after `afterSeq`, read from a store many nodes share, then (with
 * `follow`) the events any node stores as they come: pages of `readEvents` to catch up,
 * then the store's watch from the last seq read, so the hand-over has no gap and no
 * duplicate. Seqs rise by exactly one; events the store dropped before this reader got
 * them end it with OUT_OF_RANGE instead of a gap. Ends like `readEventBatches`: at once
 * when `signal` aborts; with UNAVAILABLE after what is stored when `closing` aborts, at
 * once when `cut` does.
 */
export async function* followStoredLog(store: StoredLog, key: string, afterSeq: number, options: StoredFollowOptions): AsyncGenerator<Event[]> {
  const { signal, closing, cut, batch = 256 } = options;
  let cursor = afterSeq;
  let epoch = options.epoch;
  // Events that continue the log in another ownership period than the last one sent: a
  // hand-over, a delete and a new session under the same id, or a failover of Redis that
  // lost events this reader sent and gave their numbers to others. The last one sent must
  // still be there, and the session (this incarnation of it) must still exist.
  // Whether the session was checked since this catch-up began.
  let checked = false;
  const checkContinues = async (headEpoch: number) => {
    if (headEpoch === 0 || headEpoch === epoch) return;
    // A session deleted and created again is told as such, before any gap it leaves.
    await options.check();
    checked = true;
    if (epoch > 0 && cursor > 0) {
      const [sent] = await readPage(store, key, cursor - 1, 1, options.sessionId);
      const now = Number(sent?.epoch ?? 0);
      // 0: stored before events carried their epoch; nothing to compare.
      if (!sent || Number(sent.seq) !== cursor || (now !== 0 && now !== epoch)) throw lostInFailover(options.sessionId, cursor, epoch, sent ? now : undefined);
    }
  };
  for (;;) {
    let backToBack = 0;
    let paged = false;
    checked = false;
    for (;;) {
      if (cut?.aborted) throw shuttingDown(cursor);
      if (signal?.aborted) return;
      const page = await readPage(store, key, cursor, batch, options.sessionId);
      if (page.length === 0) break;
      if (Number(page[0]?.seq) !== cursor + 1) throw new OutOfRangeError(options.sessionId, BigInt(cursor), Number(page[0]?.seq), cursor);
      await checkContinues(Number(page[0]?.epoch ?? 0));
      cursor = Number(page[page.length - 1]?.seq);
      epoch = Number(page[page.length - 1]?.epoch ?? 0) || epoch;
      paged = true;
      yield page;
      backToBack += 1;
      if (backToBack >= BATCHES_BEFORE_YIELD) {
        // A catch-up of a long log lets the event loop serve the other connections.
        backToBack = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    if (!options.follow) return;
    if (closing?.aborted) throw shuttingDown(cursor);
    // Once before going live, unless a new epoch in the pages checked already: events stored
    // before they carried their epoch cannot tell a session deleted and created again meanwhile.
    if (paged && !checked) await options.check();
    const live = new LiveEvents(options.maxBuffered ?? DEFAULT_MAX_BUFFERED);
    const unwatch = store.watch(key, cursor, live);
    live.unwatch = unwatch;
    try {
      for (;;) {
        const next = await live.next(options.checkEveryMs ?? DEFAULT_CHECK_EVERY_MS, signal, closing, cut, options.recheck);
        if (next.kind === "events") {
          await checkContinues(next.events[0]!.epoch);
          epoch = next.events[next.events.length - 1]!.epoch || epoch;
          for (let at = 0; at < next.events.length; at += batch) {
            const events = next.events.slice(at, at + batch).map((watched) => watched.event);
            cursor = Number(events[events.length - 1]?.seq);
            yield events;
          }
          continue;
        }
        if (next.kind === "idle" || next.kind === "recheck") {
          await options.check();
          continue;
        }
        if (next.kind === "trimmed") throw new OutOfRangeError(options.sessionId, BigInt(cursor), next.firstSeq, cursor);
        if (next.kind === "unreadable") throw new HotplexError("internal", `${next.error.message}; events up to seq ${cursor} were sent`, { cause: next.error });
        if (next.kind === "cut") throw shuttingDown(cursor);
        if (next.kind === "gone") return;
        // "behind" (page through the store from the cursor) or "closing" (read what is stored, then end).
        break;
      }
    } finally {
      unwatch();
    }
  }
}

function lostInFailover(sessionId: string, seq: number, epoch: number, now: number | undefined): HotplexError {
  return new HotplexError(
    "failed_precondition",
    `the event at seq ${seq} of session "${sessionId}" that was sent (epoch ${epoch}) is not in its log any more ` +
      (now === undefined ? "(the log ends before it)" : `(seq ${seq} is of epoch ${now} now)`) +
      ": the store lost events in a failover; read the session again (GetSnapshot, or Subscribe from after_seq 0)",
  );
}

async function readPage(store: StoredLog, key: string, afterSeq: number, limit: number, sessionId: string): Promise<Event[]> {
  try {
    return await store.readEvents(key, afterSeq, limit);
  } catch (error) {
    throw new HotplexError("unavailable", `the events of session "${sessionId}" cannot be read from the store (${(error as Error).message}); every event up to seq ${afterSeq} was sent: resume after it`, {
      cause: error,
    });
  }
}

type Next =
  | { kind: "events"; events: WatchedEvent[] }
  | { kind: "trimmed"; firstSeq: number }
  | { kind: "unreadable"; error: Error }
  /** More arrived than the reader may hold: it reads the store instead. */
  | { kind: "behind" }
  /** No event for the check interval. */
  | { kind: "idle" }
  | { kind: "recheck" }
  /** The reader went away. */
  | { kind: "gone" }
  | { kind: "closing" }
  | { kind: "cut" };

// What a watch delivered and the reader has not taken yet, bounded.
class LiveEvents implements LogWatch {
  #events: WatchedEvent[] = [];
  #ended: Next | undefined;
  #wake: (() => void) | undefined;
  #rechecked = false;
  /** Ends the watch that feeds this. */
  unwatch: (() => void) | undefined;

  constructor(private readonly maxBuffered: number) {}

  deliver(events: WatchedEvent[]): void {
    if (this.#ended) return;
    if (this.#events.length + events.length > this.maxBuffered) {
      // What is held is dropped too: the store has it, and the reader reads it from there.
      this.#events = [];
      this.#ended = { kind: "behind" };
      // Nothing more is delivered for a reader that may not run again for long.
      this.unwatch?.();
    } else {
      this.#events.push(...events);
    }
    this.#wake?.();
  }

  trimmed(firstSeq: number): void {
    this.#ended ??= { kind: "trimmed", firstSeq };
    this.#wake?.();
  }

  unreadable(error: Error): void {
    this.#ended ??= { kind: "unreadable", error };
    this.#wake?.();
  }

  async next(idleMs: number, signal?: AbortSignal, closing?: AbortSignal, cut?: AbortSignal, recheck?: AbortSignal): Promise<Next> {
    for (;;) {
      if (cut?.aborted) return { kind: "cut" };
      if (signal?.aborted) return { kind: "gone" };
      if (this.#events.length > 0) {
        const events = this.#events;
        this.#events = [];
        return { kind: "events", events };
      }
      if (this.#ended) return this.#ended;
      if (closing?.aborted) return { kind: "closing" };
      if (recheck?.aborted && !this.#rechecked) {
        // Once: the signal stays aborted.
        this.#rechecked = true;
        return { kind: "recheck" };
      }
      const idle = await this.#wait(idleMs, [signal, closing, cut, this.#rechecked ? undefined : recheck]);
      if (idle && this.#events.length === 0 && !this.#ended) return { kind: "idle" };
    }
  }

  // Resolves true when `ms` passed without a wake-up.
  #wait(ms: number, signals: (AbortSignal | undefined)[]): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        for (const s of signals) s?.removeEventListener("abort", onAbort);
        this.#wake = undefined;
        resolve(idle);
      };
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(true), ms);
      for (const s of signals) s?.addEventListener("abort", onAbort, { once: true });
      this.#wake = () => done(false);
    });
  }
}
