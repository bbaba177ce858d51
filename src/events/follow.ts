import type { Event } from "./event.js";
import type { EventLog } from "./event-log.js";

export interface FollowOptions {
  /** Keep waiting for new events after the replay. */
  follow: boolean;
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal;
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
  const { signal, batch = 256 } = options;
  let cursor = afterSeq;
  while (!signal?.aborted) {
    const events = log.read(cursor, batch);
    if (events.length > 0) {
      cursor = Number(events[events.length - 1]?.seq);
      yield events;
      continue;
    }
    if (!options.follow) return;
    await log.waitBeyond(cursor, signal);
  }
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
