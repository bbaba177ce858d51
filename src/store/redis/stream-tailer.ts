/**
 * Tails many sessions' logs on one blocking Redis connection per node: one `XREAD BLOCK`
 * over every watched stream, each from the last seq it delivered, so a node serves any
 * number of live subscribers with one connection and one round trip per batch.
 *
 * What is delivered for a stream rises by exactly one seq at a time: a reply that starts
 * past the next seq means Redis trimmed what lies between, and that watch ends with an
 * OutOfRangeError instead of a gap. A lost connection (Redis restarted, a failover) is
 * retried from the same positions, so nothing is skipped or delivered twice. A change to
 * the watched set wakes the blocked read at once: the read always includes a doorbell stream
 * of this tailer's own, and a change adds an entry to it from a second connection. (CLIENT
 * UNBLOCK would race: sent before the read reaches Redis, it wakes nothing; an entry added
 * before the read arrives still ends it at once, since the read asks for entries after the
 * last one it saw.)
 *
 * A watch should start at a seq the log has (readLog checks that; the tailer cannot tell a
 * position past the end from one not reached yet). One connection reads streams of any
 * hash slot only on a single Redis; on Redis Cluster
 * XREAD across slots fails (CROSSSLOT), so a cluster needs one tailer per shard.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { entryOf, OutOfRangeError, type StoredBytes } from "./stream-log.js";

export interface TailerOptions {
  /** Prefix of the doorbell's key (the tailer's own stream, removed by close). */
  prefix: string;
  /** The longest one XREAD blocks (it is woken early when the watched set changes). */
  blockMs: number;
  /** The most entries one reply carries per stream. */
  count: number;
  /** How long to wait after a failed read before the next. */
  retryMs: number;
}

export interface TailWatch {
  /** Called with each batch of new events, in seq order, never with a gap or a repeat. */
  deliver(events: StoredBytes[]): void;
  /** The watch ended because events it had not delivered were trimmed. */
  failed(error: OutOfRangeError): void;
}

interface Watched {
  key: string;
  afterSeq: number;
  watch: TailWatch;
}

export class StreamTailer {
  readonly #reader: Redis;
  readonly #control: Redis;
  readonly #options: TailerOptions;
  readonly #watched = new Map<symbol, Watched>();
  readonly #doorbell: string;
  /** The id of the last doorbell entry a read returned. */
  #rang = "0-0";
  #closed = false;
  #wake: (() => void) | undefined;
  readonly #loop: Promise<void>;

  /** `reader` is used for nothing else (it blocks); `control` may be shared. */
  constructor(reader: Redis, control: Redis, options: TailerOptions) {
    this.#reader = reader;
    this.#control = control;
    this.#options = options;
    this.#doorbell = `${options.prefix}tailer:${randomUUID()}`;
    this.#loop = this.#run();
  }

  /** Delivers the events of the stream at `key` after `afterSeq` as they come; returns the function that stops it. */
  watch(key: string, afterSeq: number, watch: TailWatch): () => void {
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new RangeError(`after seq ${afterSeq} is not a non-negative integer`);
    const id = Symbol(key);
    this.#watched.set(id, { key, afterSeq, watch });
    this.#changed();
    return () => {
      if (this.#watched.delete(id)) this.#changed();
    };
  }

  /** Stops tailing; resolves once the read loop ended. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#changed();
    await this.#loop;
    await this.#control.del(this.#doorbell).catch(() => {});
  }

  #changed(): void {
    this.#wake?.();
    // A blocked read would otherwise wait out its block time with the old set. The entry
    // expires with the key a day after the last change, should this process die.
    void this.#control
      .multi()
      .xadd(this.#doorbell, "MAXLEN", "1", "*", "r", "1")
      .pexpire(this.#doorbell, 86_400_000)
      .exec()
      .catch(() => {});
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      if (this.#watched.size === 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      try {
        // Several watches of one stream read from the lowest position; each gets what it lacks.
        const from = new Map<string, number>();
        for (const { key, afterSeq } of this.#watched.values()) from.set(key, Math.min(from.get(key) ?? afterSeq, afterSeq));
        const keys = [...from.keys()];
        const ids = keys.map((key) => `${from.get(key)}-0`);
        const reply = (await this.#reader.xreadBuffer("COUNT", this.#options.count, "BLOCK", this.#options.blockMs, "STREAMS", ...keys, this.#doorbell, ...ids, this.#rang)) as [Buffer, [Buffer, Buffer[]][]][] | null;
        for (const [keyBytes, entries] of reply ?? []) {
          const key = keyBytes.toString("utf8");
          if (key === this.#doorbell) this.#rang = entries.at(-1)?.[0].toString("latin1") ?? this.#rang;
          else this.#deliver(key, entries.map(entryOf));
        }
      } catch {
        // The connection was lost (or Redis refused): the positions stay, the next read resumes there.
        if (!this.#closed) await new Promise((resolve) => setTimeout(resolve, this.#options.retryMs));
      }
    }
  }

  #deliver(key: string, events: StoredBytes[]): void {
    for (const [id, watched] of this.#watched) {
      if (watched.key !== key) continue;
      const fresh = events.filter((event) => event.seq > watched.afterSeq);
      if (fresh.length === 0) continue;
      if (fresh[0]!.seq !== watched.afterSeq + 1) {
        this.#watched.delete(id);
        watched.watch.failed(new OutOfRangeError(watched.afterSeq, fresh[0]!.seq));
        continue;
      }
      watched.afterSeq = fresh[fresh.length - 1]!.seq;
      watched.watch.deliver(fresh);
    }
  }
}
