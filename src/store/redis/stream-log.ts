/**
 * One session's event log as a Redis stream whose entry ids are `<seq>-0`: ids must rise
 * strictly, so an append is a compare-and-set and two writers never both store seq N.
 * Appends go through the fenced script (the lease is checked in the same atomic step);
 * reads detect trimming instead of silently starting at the first survivor.
 */
import type { Redis } from "ioredis";
import type { SessionKeys } from "./keys.js";
import type { SessionLease } from "./lease.js";
import { FENCED_COMMIT, TRIM } from "./scripts.js";

/** Most events in one script call: bounded arguments and a bounded time the shard is held. */
export const MAX_BATCH = 512;

/** The lease was lost: another node owns the session; the caller must stop its agent now. */
export class FencedError extends Error {
  override readonly name = "FencedError";
}

/**
 * The reader holds seqs the log never had: after a failover that lost acknowledged
 * events, those numbers may be given to other events, so resuming there is refused.
 */
export class AheadOfLogError extends Error {
  override readonly name = "AheadOfLogError";
  constructor(
    readonly afterSeq: number,
    readonly lastSeq: number,
  ) {
    super(`seq ${afterSeq} is past the log's last seq ${lastSeq}: the log lost events this reader saw`);
  }
}

/** The append's seqs do not continue the log (a gap or an overlap). */
export class SeqError extends Error {
  override readonly name = "SeqError";
}

/** What was asked for is gone (trimmed): reading resumes at `firstSeq` or not at all. */
export class OutOfRangeError extends Error {
  override readonly name = "OutOfRangeError";
  constructor(
    readonly afterSeq: number,
    readonly firstSeq: number,
  ) {
    super(`events after seq ${afterSeq} are no longer retained; the log starts at ${firstSeq}`);
  }
}

export interface StoredBytes {
  seq: number;
  /** The encoded event. */
  bytes: Buffer;
  /** The epoch of the owner that stored it. */
  epoch: number;
}

/**
 * Appends events `firstSeq`, `firstSeq + 1`, … under `lease`, and with the last batch the
 * session's registry entry `meta` when given (both or neither are stored). Resolves to how
 * many events were stored (0: all of them already were, a retry after an unknown outcome);
 * rejects with FencedError when the lease is not the caller's any more, SeqError on a gap
 * or overlap.
 */
export async function commitFenced(redis: Redis, keys: SessionKeys, lease: SessionLease, firstSeq: number, events: readonly Buffer[], meta?: Buffer): Promise<number> {
  if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) throw new RangeError(`first seq ${firstSeq} is not a positive integer`);
  if (meta !== undefined && meta.length === 0) throw new RangeError("an empty registry entry");
  if (events.length === 0 && meta === undefined) return 0;
  // A holder past its deadline may already be replaced: it must not write (self-fencing).
  if (!lease.valid) throw new FencedError("the lease was not renewed in time; this node must stop the session's agent");
  let stored = 0;
  for (let start = 0; start === 0 || start < events.length; start += MAX_BATCH) {
    const batch = events.slice(start, start + MAX_BATCH);
    const last = start + MAX_BATCH >= events.length;
    try {
      stored += (await redis.eval(FENCED_COMMIT, 4, keys.lease, keys.log, keys.meta, keys.bytes, lease.token, String(lease.epoch), String(firstSeq + start), last && meta ? meta : "", ...batch)) as number;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (message.startsWith("FENCED")) throw new FencedError(message.slice("FENCED ".length));
      if (message.startsWith("SEQ")) throw new SeqError(message.slice("SEQ ".length));
      throw error;
    }
  }
  return stored;
}

/** The session's registry entry as last committed; undefined when none was. */
export async function readMeta(redis: Redis, keys: SessionKeys): Promise<Buffer | undefined> {
  return (await redis.getBuffer(keys.meta)) ?? undefined;
}

/**
 * Up to `limit` events with seq > afterSeq, in order. Rejects with OutOfRangeError when
 * some of them were trimmed (a reader never gets a gap it cannot see), AheadOfLogError
 * when afterSeq is past the last seq the log ever had.
 */
export async function readLog(redis: Redis, keys: SessionKeys, afterSeq: number, limit: number): Promise<StoredBytes[]> {
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new RangeError(`after seq ${afterSeq} is not a non-negative integer`);
  const count = Number.isFinite(limit) ? Math.max(1, Math.min(Math.floor(limit), 10_000)) : 1;
  const entries = await redis.xrangeBuffer(keys.log, `(${afterSeq}-0`, "+", "COUNT", count);
  const events = entries.map(entryOf);
  const first = events[0];
  if (first !== undefined && first.seq !== afterSeq + 1) throw new OutOfRangeError(afterSeq, first.seq);
  if (first === undefined) {
    // Nothing after afterSeq: fine when the log ends there, trimmed when it went further,
    // and a lost tail when it never got that far.
    const lastSeq = await lastGeneratedSeq(redis, keys);
    if (lastSeq > afterSeq) throw new OutOfRangeError(afterSeq, lastSeq + 1);
    if (lastSeq < afterSeq) throw new AheadOfLogError(afterSeq, lastSeq);
  }
  return events;
}

/** The highest seq ever stored (trimmed or not); 0 for a log that never held an event. */
export async function lastGeneratedSeq(redis: Redis, keys: SessionKeys): Promise<number> {
  if ((await redis.exists(keys.log)) === 0) return 0;
  const info = (await redis.call("XINFO", "STREAM", keys.log)) as unknown[];
  for (let k = 0; k + 1 < info.length; k += 2) if (info[k] === "last-generated-id") return Number(String(info[k + 1]).split("-")[0]);
  return 0;
}

/**
 * Drops the events before `firstKept` and takes their sizes off the log's byte count, a
 * bounded number per script call (the shard is not held for long); the stream and its last
 * id stay (ids never go back). Resolves to how many events were dropped.
 */
export async function trimLog(redis: Redis, keys: SessionKeys, firstKept: number): Promise<number> {
  if (!Number.isSafeInteger(firstKept) || firstKept < 1) throw new RangeError(`first kept seq ${firstKept} is not a positive integer`);
  let dropped = 0;
  for (;;) {
    const step = (await redis.eval(TRIM, 2, keys.log, keys.bytes, String(firstKept), String(TRIM_STEP))) as number;
    dropped += step;
    if (step < TRIM_STEP) return dropped;
  }
}

/** Encoded bytes of the events a log holds (as its byte count says). */
export async function logBytes(redis: Redis, keys: SessionKeys): Promise<number> {
  return Number((await redis.get(keys.bytes)) ?? 0);
}

// Most events one trim script drops.
const TRIM_STEP = 1024;

/** A stream entry as it comes from XRANGE / XREAD (ids and fields as bytes). */
export function entryOf([id, fields]: [Buffer, Buffer[]]): StoredBytes {
  const seq = Number(id.toString("latin1").split("-")[0]);
  let bytes: Buffer | undefined;
  let epoch = 0;
  for (let k = 0; k + 1 < fields.length; k += 2) {
    const name = fields[k]!.toString("latin1");
    if (name === "e") bytes = fields[k + 1];
    else if (name === "ep") epoch = Number(fields[k + 1]!.toString("latin1"));
  }
  return { seq, bytes: bytes ?? Buffer.alloc(0), epoch };
}
