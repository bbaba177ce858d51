import type { Logger } from "pino";
import { pino } from "pino";

export interface LogDestinationOptions {
  /** Most log output that may wait for the reader; past it, lines are dropped. */
  bufferBytes: number;
  /** Lines are written in chunks of at least this much... */
  chunkBytes: number;
  /** ...or once this long passed. */
  flushMs: number;
}

export const DEFAULT_LOG_DESTINATION: LogDestinationOptions = { bufferBytes: 16 * 1024 * 1024, chunkBytes: 4096, flushMs: 250 };

export type LogDestination = ReturnType<typeof pino.destination>;

/**
 * A file descriptor (hotplexd's stdout), written asynchronously and in chunks: a line is
 * queued and written off the event loop with the lines around it, so a slow reader (a full
 * pipe, a busy disk: a synchronous write to a file measured ~100 µs per line here while the
 * store committed, and every asynchronous one wakes a thread) never stalls a turn. A line
 * waits at most `flushMs`. Bounded: a reader that stops reading costs at most `bufferBytes`,
 * then lines are dropped (see reportDrops). pino flushes what waits when the process exits.
 */
export function logDestination(fd: number, options: LogDestinationOptions = DEFAULT_LOG_DESTINATION): LogDestination {
  return pino.destination({ dest: fd, sync: false, minLength: options.chunkBytes, periodicFlush: options.flushMs, maxLength: options.bufferBytes });
}

/**
 * Counts the lines `destination` dropped and says so through `logger` (which writes to it)
 * once the reader has had a moment, one warning per burst of drops, never one per line.
 */
export function reportDrops(destination: LogDestination, logger: Logger, afterMs = 1_000): void {
  let dropped = 0;
  destination.on("drop", () => {
    dropped += 1;
    if (dropped > 1) return;
    setTimeout(() => {
      logger.warn({ dropped }, "log lines dropped: stdout was not read fast enough");
      dropped = 0;
    }, afterMs).unref();
  });
}
