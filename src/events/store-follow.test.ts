import { create } from "@bufbuild/protobuf";
import { describe, expect, it, vi } from "vitest";
import { EventSchema } from "../../gen/hotplex/v1/event_pb.js";
import { HotplexError, OutOfRangeError } from "../errors.js";
import type { LogWatch, WatchedEvent } from "../store/store.js";
import type { Event } from "./event.js";
import { followStoredLog, type StoredFollowOptions, type StoredLog } from "./store-follow.js";
import { range, text } from "./test-support.js";

const KEY = "t/s";

/**
 * A shared store's log as the Redis store presents it: pages by seq, and watches that
 * deliver what is stored after their position (what was there already too), asynchronously.
 */
class SharedLog implements StoredLog {
  events: { event: Event; epoch: number }[] = [];
  epoch = 1;
  watches = 0;
  readonly #watching = new Set<{ after: number; watch: LogWatch }>();
  failReads = false;

  append(count: number): void {
    for (let i = 0; i < count; i++) {
      const seq = (this.events.at(-1) ? Number(this.events.at(-1)!.event.seq) : 0) + 1;
      this.events.push({ event: create(EventSchema, { seq: BigInt(seq), sessionId: "s", turnId: "t", epoch: BigInt(this.epoch), payload: text(`e${seq}`) }), epoch: this.epoch });
    }
    this.#pushAll();
  }

  /** Drops every event up to `seq` (retention), telling watches behind it. */
  trim(seq: number): void {
    this.events = this.events.filter(({ event }) => Number(event.seq) > seq);
    for (const watching of this.#watching) {
      if (watching.after < seq) {
        this.#watching.delete(watching);
        watching.watch.trimmed(seq + 1);
      }
    }
  }

  /** A failover to a replica that had only the events up to `seq`: the rest is gone. */
  loseAfter(seq: number): void {
    this.events = this.events.filter(({ event }) => Number(event.seq) <= seq);
  }

  breakWatches(error: Error): void {
    for (const watching of this.#watching) watching.watch.unreadable(error);
    this.#watching.clear();
  }

  async readEvents(key: string, afterSeq: number, limit: number): Promise<Event[]> {
    expect(key).toBe(KEY);
    if (this.failReads) throw new Error("connection refused");
    return this.events
      .filter(({ event }) => Number(event.seq) > afterSeq)
      .slice(0, limit)
      .map(({ event }) => event);
  }

  watch(key: string, afterSeq: number, watch: LogWatch): () => void {
    expect(key).toBe(KEY);
    this.watches += 1;
    const watching = { after: afterSeq, watch };
    this.#watching.add(watching);
    queueMicrotask(() => this.#push(watching));
    return () => this.#watching.delete(watching);
  }

  get watching(): number {
    return this.#watching.size;
  }

  #pushAll(): void {
    for (const watching of this.#watching) queueMicrotask(() => this.#push(watching));
  }

  #push(watching: { after: number; watch: LogWatch }): void {
    if (!this.#watching.has(watching)) return;
    const fresh: WatchedEvent[] = this.events.filter(({ event }) => Number(event.seq) > watching.after);
    if (fresh.length === 0) return;
    if (Number(fresh[0]!.event.seq) !== watching.after + 1) {
      this.#watching.delete(watching);
      watching.watch.trimmed(Number(fresh[0]!.event.seq));
      return;
    }
    watching.after = Number(fresh.at(-1)!.event.seq);
    watching.watch.deliver(fresh);
  }
}

function options(overrides: Partial<StoredFollowOptions> = {}): StoredFollowOptions {
  return { follow: true, sessionId: "s", epoch: 1, check: async () => {}, ...overrides };
}

/** Reads until seq `last` arrived (or the stream ends); the seqs seen, in order. */
async function readUntil(stream: AsyncGenerator<Event[]>, last: number, between?: () => Promise<void> | void): Promise<number[]> {
  const seen: number[] = [];
  for await (const batch of stream) {
    seen.push(...batch.map((event) => Number(event.seq)));
    if (seen.at(-1)! >= last) break;
    await between?.();
  }
  return seen;
}

async function failure(stream: AsyncGenerator<Event[]>, onBatch?: (seqs: number[]) => void): Promise<HotplexError> {
  try {
    for await (const batch of stream) onBatch?.(batch.map((event) => Number(event.seq)));
  } catch (error) {
    return error as HotplexError;
  }
  throw new Error("the stream ended without an error");
}

describe("following a shared store's log", () => {
  it("replays what is stored, then what is stored later, each seq once and in order", async () => {
    const log = new SharedLog();
    log.append(600);
    const stream = followStoredLog(log, KEY, 10, options({ batch: 100 }));
    const seen = readUntil(stream, 900, () => {
      // New events while the reader is still catching up, and after it went live.
      if (log.events.length < 900) log.append(50);
    });
    expect(await seen).toEqual(range(11, 900));
    expect(log.watching).toBe(0);
  });

  it("without follow, reads what is stored and ends", async () => {
    const log = new SharedLog();
    log.append(5);
    const seen: number[] = [];
    for await (const batch of followStoredLog(log, KEY, 2, options({ follow: false }))) seen.push(...batch.map((event) => Number(event.seq)));
    expect(seen).toEqual([3, 4, 5]);
    expect(log.watches).toBe(0);
  });

  it("a reader that falls behind the buffer bound reads the store instead, and misses nothing", async () => {
    const log = new SharedLog();
    log.append(1);
    const stream = followStoredLog(log, KEY, 0, options({ maxBuffered: 50, batch: 20 }));
    const seen: number[] = [];
    const take = async () => {
      const next = await stream.next();
      if (!next.done) seen.push(...next.value.map((event) => Number(event.seq)));
    };
    await take();
    const live = take();
    await vi.waitFor(() => expect(log.watching).toBe(1));
    log.append(1);
    await live;
    // The reader is slow: far more arrives before it reads again than it may hold.
    for (let i = 0; i < 4; i++) log.append(500);
    await new Promise((resolve) => setImmediate(resolve));
    expect(log.watching).toBe(0);
    while (seen.at(-1)! < 2_002) await take();
    // Caught up from the store's pages, it watches again.
    const again = take();
    await vi.waitFor(() => expect(log.watching).toBe(1));
    log.append(1);
    await again;
    await stream.return(undefined);
    expect(seen).toEqual(range(1, 2_003));
    expect(log.watches).toBe(2);
  });

  it("never skips events retention dropped before the reader got them: OUT_OF_RANGE, naming where the log starts", async () => {
    const log = new SharedLog();
    log.append(10);
    const stream = followStoredLog(log, KEY, 2, options({ batch: 2 }));
    const error = await failure(stream, () => {
      if (log.events.length === 10) log.trim(6);
    });
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect(error.message).toMatch(/first retained seq is 7 \(resume with after_seq = 6\)/);
  });

  it("a watch that finds its next events trimmed ends with OUT_OF_RANGE", async () => {
    const log = new SharedLog();
    log.append(3);
    const ended = failure(followStoredLog(log, KEY, 0, options()));
    await vi.waitFor(() => expect(log.watching).toBe(1));
    log.append(4);
    log.trim(5);
    const error = await ended;
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect(error.message).toMatch(/after seq 3 .* first retained seq is 6/);
  });

  it("checks the session still exists once it caught up, and when the log moves to another ownership period; ends when it was replaced", async () => {
    const log = new SharedLog();
    log.append(2);
    let checks = 0;
    const seen: number[] = [];
    const ended = failure(
      followStoredLog(
        log,
        KEY,
        0,
        options({
          check: async () => {
            checks += 1;
            if (log.epoch === 3) throw new HotplexError("failed_precondition", "deleted and created again");
          },
        }),
      ),
      (seqs) => seen.push(...seqs),
    );
    await vi.waitFor(() => expect(log.watching).toBe(1));
    // The catch-up from the store's pages is checked once, before it goes live.
    expect(checks).toBe(1);
    log.append(3);
    await vi.waitFor(() => expect(seen).toEqual([1, 2, 3, 4, 5]));
    // Events of the same period: no check.
    expect(checks).toBe(1);
    log.epoch = 2;
    log.append(2);
    await vi.waitFor(() => expect(seen.at(-1)).toBe(7));
    expect(checks).toBe(2);
    log.epoch = 3;
    log.append(1);
    expect((await ended).code).toBe("failed_precondition");
    expect(checks).toBe(3);
    // What the failed check was about is not sent.
    expect(seen.at(-1)).toBe(7);
  });

  it("ends FAILED_PRECONDITION when a failover lost events it sent and the numbers were given again, live or from a resume token", async () => {
    const log = new SharedLog();
    log.append(5);
    const seen: number[] = [];
    const ended = failure(followStoredLog(log, KEY, 0, options()), (seqs) => seen.push(...seqs));
    await vi.waitFor(() => expect(seen).toEqual([1, 2, 3, 4, 5]));
    // Redis lost 4 and 5; the next owner (another epoch) writes 4, 5, 6 again.
    log.loseAfter(3);
    log.epoch = 2;
    log.append(3);
    const error = await ended;
    expect(error.code).toBe("failed_precondition");
    expect(error.message).toMatch(/seq 5 .* \(epoch 1\) is not in its log any more \(seq 5 is of epoch 2 now\)/);
    expect(seen).toEqual([1, 2, 3, 4, 5]);

    // A client that resumes with (5, epoch 1): refused at once, from the store's pages.
    const resumed = await failure(followStoredLog(log, KEY, 5, options({ epoch: 1 })));
    expect(resumed.code).toBe("failed_precondition");
    // With the token of what the log holds now, it reads on.
    const fresh = followStoredLog(log, KEY, 5, options({ epoch: 2 }));
    expect((await fresh.next()).value?.map((e: Event) => Number(e.seq))).toEqual([6]);
    await fresh.return(undefined);
    // A hand-over (the event at the reader's position still there) is no failover.
    const handOver = new SharedLog();
    handOver.append(2);
    const reader = followStoredLog(handOver, KEY, 2, options({ epoch: 1 }));
    const next = reader.next();
    await vi.waitFor(() => expect(handOver.watching).toBe(1));
    handOver.epoch = 2;
    handOver.append(1);
    expect((await next).value?.map((e: Event) => Number(e.seq))).toEqual([3]);
    await reader.return(undefined);
  });

  it("checks its session once per catch-up, not once per check that would say the same", async () => {
    const log = new SharedLog();
    log.append(600);
    let checks = 0;
    const stream = followStoredLog(log, KEY, 0, options({ epoch: 0, batch: 100, check: async () => void (checks += 1) }));
    let last = 0;
    while (last < 600) last = Number((await stream.next()).value?.at(-1)?.seq);
    const live = stream.next();
    await vi.waitFor(() => expect(log.watching).toBe(1));
    // The first page's epoch (unknown before) was one check; going live needed no second.
    expect(checks).toBe(1);
    log.append(1);
    expect((await live).value?.map((e: Event) => Number(e.seq))).toEqual([601]);
    await stream.return(undefined);
  });

  it("an idle reader checks its session every interval, and ends with what the check throws", async () => {
    const log = new SharedLog();
    log.append(1);
    let checks = 0;
    const error = await failure(
      followStoredLog(
        log,
        KEY,
        1,
        options({
          checkEveryMs: 5,
          check: async () => {
            checks += 1;
            if (checks === 3) throw new HotplexError("not_found", `session "s" was deleted`);
          },
        }),
      ),
    );
    expect(error.code).toBe("not_found");
    expect(checks).toBe(3);
  });

  it("checks at once when told the session may have gone", async () => {
    const log = new SharedLog();
    const recheck = new AbortController();
    let checked: () => void = () => {};
    const checking = new Promise<void>((resolve) => (checked = resolve));
    const stream = followStoredLog(
      log,
      KEY,
      0,
      options({
        recheck: recheck.signal,
        checkEveryMs: 60_000,
        check: async () => {
          checked();
          throw new HotplexError("not_found", "deleted");
        },
      }),
    );
    const ended = failure(stream);
    recheck.abort();
    await checking;
    expect((await ended).code).toBe("not_found");
  });

  it("ends without an error when the reader goes away, and stops watching", async () => {
    const log = new SharedLog();
    log.append(1);
    const abort = new AbortController();
    const seen: number[] = [];
    for await (const batch of followStoredLog(log, KEY, 0, options({ signal: abort.signal }))) {
      seen.push(...batch.map((event) => Number(event.seq)));
      abort.abort();
    }
    expect(seen).toEqual([1]);
    expect(log.watching).toBe(0);
  });

  it("on shutdown sends what is stored, then ends with UNAVAILABLE naming the last seq sent; cut ends it at once", async () => {
    const log = new SharedLog();
    log.append(2);
    const closing = new AbortController();
    const seen: number[] = [];
    const error = await failure(followStoredLog(log, KEY, 0, options({ closing: closing.signal })), (seqs) => {
      seen.push(...seqs);
      if (seqs.at(-1) === 2) {
        // Stored but not delivered by the watch yet when the daemon closes.
        log.events.push({ event: create(EventSchema, { seq: 3n, sessionId: "s", payload: text("e3") }), epoch: 1 });
        closing.abort();
      }
    });
    expect(seen).toEqual([1, 2, 3]);
    expect(error.code).toBe("unavailable");
    expect(error.message).toMatch(/up to seq 3 was sent/);

    const cut = new AbortController();
    const stream = followStoredLog(log, KEY, 0, options({ cut: cut.signal }));
    cut.abort();
    expect((await failure(stream)).message).toMatch(/up to seq 0 was sent/);
  });

  it("a damaged event ends the stream with INTERNAL, a store that cannot be read with UNAVAILABLE", async () => {
    const log = new SharedLog();
    log.append(1);
    const ended = failure(followStoredLog(log, KEY, 0, options()));
    await vi.waitFor(() => expect(log.watching).toBe(1));
    log.breakWatches(new Error("an event cannot be read: bad varint"));
    const error = await ended;
    expect(error.code).toBe("internal");
    expect(error.message).toMatch(/bad varint; events up to seq 1 were sent/);

    log.failReads = true;
    const unreadable = await failure(followStoredLog(log, KEY, 0, options()));
    expect(unreadable.code).toBe("unavailable");
    expect(unreadable.message).toMatch(/connection refused.*up to seq 0 was sent: resume after it/);
  });
});
