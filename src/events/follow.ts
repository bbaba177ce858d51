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
 * Yields the log's events with seq > afterSeq in order: first what is logged, then (with
 * `follow`) new events as they are appended. Reading and waiting use one cursor, so the
 * hand-over from replay to live has no gap and no duplicate. Throws OutOfRangeError if
 * the log drops events this reader has not reached yet.
 */
export async function* readEvents(log: EventLog, afterSeq: number, options: FollowOptions): AsyncGenerator<Event> {
  const { signal, batch = 256 } = options;
  let cursor = afterSeq;
  while (!signal?.aborted) {
    const events = log.read(cursor, batch);
    for (const event of events) {
      // The batch was read before the abort; stop mid-batch rather than keep yielding.
      if (signal?.aborted) return;
      cursor = Number(event.seq);
      yield event;
    }
    if (events.length > 0) continue;
    if (!options.follow) return;
    await log.waitBeyond(cursor, signal);
  }
}
