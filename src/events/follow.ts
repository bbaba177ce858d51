import { HotplexError } from "../errors.js";
import type { Event } from "./event.js";
import type { EventLog } from "./event-log.js";

export interface FollowOptions {
  /** Keep waiting for new events after the replay. */
  follow: boolean;
  /** Ends the iteration (without an error) when aborted: the reader went away. */
  signal?: AbortSignal;
  /**
   * The daemon is shutting down and has logged its last events: a following reader reads
   * what is there and then ends with UNAVAILABLE instead of waiting for more.
   */
  closing?: AbortSignal;
  /** The daemon can wait no longer: the reader ends with UNAVAILABLE at once. */
  cut?: AbortSignal;
  /** Events fetched per read; bounds what a reader holds at once. */
  batch?: number;
}

/**
 * Yields the log's events with seq > afterSeq in order, in batches of what is available
 * at once: first what is logged, then (with `follow`) new events as they are appended.
 * Reading and waiting use one cursor, so the hand-over from replay to live has no gap
 * and no duplicate. Throws OutOfRangeError if the log drops events this reader has not
 * reached yet.
 */
export async function* readEventBatches(log: EventLog, afterSeq: number, options: FollowOptions): AsyncGenerator<Event[]> {
  const { signal, closing, cut, batch = 256 } = options;
  let cursor = afterSeq;
  let backToBack = 0;
  for (;;) {
    if (cut?.aborted) throw shuttingDown(cursor);
    if (signal?.aborted) return;
    const events = await log.read(cursor, batch);
    if (events.length > 0) {
      cursor = Number(events[events.length - 1]?.seq);
      yield events;
      // A reader far behind reads batch after batch without waiting for anything (a
      // socket that takes every write at once): every few batches it lets the event loop
      // serve the other connections, or one catch-up holds the whole daemon for seconds.
      backToBack += 1;
      if (backToBack >= BATCHES_BEFORE_YIELD) {
        backToBack = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      continue;
    }
    backToBack = 0;
    if (!options.follow) return;
    if (closing?.aborted) throw shuttingDown(cursor);
    await log.waitBeyond(cursor, signal, closing, cut);
  }
}

// Batches read back to back before the reader gives way to the event loop.
const BATCHES_BEFORE_YIELD = 16;

export function shuttingDown(cursor: number): HotplexError {
  return new HotplexError("unavailable", `the daemon is shutting down; every event up to seq ${cursor} was sent: resume after it`);
}

/** The events of `readEventBatches` one by one. */
export async function* readEvents(log: EventLog, afterSeq: number, options: FollowOptions): AsyncGenerator<Event> {
  for await (const events of readEventBatches(log, afterSeq, options)) {
    for (const event of events) {
      // The batch was read before the abort; stop mid-batch rather than keep yielding.
      if (options.signal?.aborted) return;
      yield event;
    }
  }
}
