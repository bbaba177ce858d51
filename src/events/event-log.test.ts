import { getEventListeners } from "node:events";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { HotplexError, OutOfRangeError } from "../errors.js";
import { MemoryStore } from "../store/memory-store.js";
import type { Retained, RetentionPolicy, SessionRecord, StoredEvent } from "../store/store.js";
import type { Event, EventPayload } from "./event.js";
import { EventLog, type LogBacking } from "./event-log.js";
import { GroupCommitter } from "./group-committer.js";
import { range, seqs, text, tick } from "./test-support.js";

/** What `promise` rejects with; fails if it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${String(value)}`);
    },
    (error: unknown) => error,
  );
}

/** The weight the log gives a payload, measured on a fresh unbounded log. */
function weigh(payload: EventPayload): number {
  const log = new EventLog("weigh");
  log.append("t", payload);
  return log.bytes;
}

function expectOutOfRange(
  error: unknown,
  expected: { requestedAfterSeq: bigint; firstSeq: number; lastSeq: number },
): void {
  expect(error).toBeInstanceOf(OutOfRangeError);
  const outOfRange = error as OutOfRangeError;
  expect(outOfRange.code).toBe("out_of_range");
  expect(outOfRange.sessionId).toBe("s1");
  expect({
    requestedAfterSeq: outOfRange.requestedAfterSeq,
    firstSeq: outOfRange.firstSeq,
    lastSeq: outOfRange.lastSeq,
  }).toEqual(expected);
}

describe("EventLog ordering", () => {
  it("numbers events from 1 and adds 1 per append", () => {
    const log = new EventLog("s1");
    const appended = [log.append("t1", text("a")), log.append("t1", text("b")), log.append("t2", text("c"))];
    expect(seqs(appended)).toEqual([1, 2, 3]);
    expect(log.lastSeq).toBe(3);
    expect(log.firstSeq).toBe(1);
    expect(log.size).toBe(3);
  });

  it("stamps each event with the session id, the turn id, the time and the payload", () => {
    const log = new EventLog("s1");
    const event = log.append("turn-7", text("hello"), 1_700_000_000_123);
    expect(event.sessionId).toBe("s1");
    expect(event.turnId).toBe("turn-7");
    expect(event.time).toBeDefined();
    expect(timestampMs(event.time!)).toBe(1_700_000_000_123);
    expect(event.payload.case).toBe("textDelta");
    expect(event.payload.case === "textDelta" && event.payload.value.text).toBe("hello");
  });

  it("uses the current time when no time is given", () => {
    const log = new EventLog("s1");
    const before = Date.now();
    const event = log.append("", text("x"));
    const after = Date.now();
    const ms = timestampMs(event.time!);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
  });

  it("reports lastSeq 0 and firstSeq 1 while empty", () => {
    const log = new EventLog("s1");
    expect(log.lastSeq).toBe(0);
    expect(log.firstSeq).toBe(1);
    expect(log.size).toBe(0);
    expect(log.bytes).toBe(0);
  });

  it("continues from the lastSeq it was constructed with", async () => {
    const log = new EventLog("s1", undefined, 41);
    expect(log.lastSeq).toBe(41);
    expect(log.firstSeq).toBe(42);
    expect(await log.read(41)).toEqual([]);
    expect(Number(log.append("t", text("a")).seq)).toBe(42);
    expect(Number(log.append("t", text("b")).seq)).toBe(43);
    expect(log.firstSeq).toBe(42);
    expect(seqs(await log.read(41))).toEqual([42, 43]);
    // What came before the restart is not retained.
    expectOutOfRange(
      await rejectionOf(log.read(0)),
      { requestedAfterSeq: 0n, firstSeq: 42, lastSeq: 43 },
    );
  });

  it("rejects a bound of fewer than one event", () => {
    expect(() => new EventLog("s1", { maxEvents: 0, maxBytes: 1000 })).toThrow(RangeError);
  });
});

describe("EventLog.read", () => {
  function logOf(count: number): EventLog {
    const log = new EventLog("s1");
    for (let i = 1; i <= count; i++) log.append("t", text(`e${i}`));
    return log;
  }

  it("returns every event after 0", async () => {
    expect(seqs(await logOf(5).read(0))).toEqual([1, 2, 3, 4, 5]);
  });

  it("returns the rest after a given seq", async () => {
    const log = logOf(5);
    expect(seqs(await log.read(2))).toEqual([3, 4, 5]);
    expect(seqs(await log.read(4))).toEqual([5]);
  });

  it("returns the same event objects that append returned", async () => {
    const log = new EventLog("s1");
    const first = log.append("t", text("a"));
    expect((await log.read(0))[0]).toBe(first);
  });

  it("returns at most limit events", async () => {
    const log = logOf(10);
    expect(seqs(await log.read(0, 3))).toEqual([1, 2, 3]);
    expect(seqs(await log.read(7, 3))).toEqual([8, 9, 10]);
    expect(seqs(await log.read(8, 3))).toEqual([9, 10]);
  });

  it("returns at most 256 events by default", async () => {
    const log = logOf(300);
    expect(seqs(await log.read(0))).toEqual(range(1, 256));
    expect(seqs(await log.read(256))).toEqual(range(257, 300));
  });

  it("returns nothing after the last seq", async () => {
    expect(await logOf(5).read(5)).toEqual([]);
    expect(await logOf(0).read(0)).toEqual([]);
  });

  it("throws OutOfRangeError for an after seq beyond the last event", async () => {
    const log = logOf(5);
    const error = await rejectionOf(log.read(6));
    expectOutOfRange(error, { requestedAfterSeq: 6n, firstSeq: 1, lastSeq: 5 });
    expect((error as Error).message).toContain("beyond the last event (5)");
    expectOutOfRange(
      await rejectionOf(logOf(0).read(1)),
      { requestedAfterSeq: 1n, firstSeq: 1, lastSeq: 0 },
    );
  });

  it("throws OutOfRangeError naming the first retained seq for an after seq before the retained window", async () => {
    const log = new EventLog("s1", { maxEvents: 4, maxBytes: Number.MAX_SAFE_INTEGER });
    for (let i = 1; i <= 10; i++) log.append("t", text(`e${i}`));
    expect(log.firstSeq).toBe(7);
    const error = await rejectionOf(log.read(5));
    expectOutOfRange(error, { requestedAfterSeq: 5n, firstSeq: 7, lastSeq: 10 });
    expect((error as Error).message).toContain("resume with after_seq = 6");
    expectOutOfRange(
      await rejectionOf(log.read(0)),
      { requestedAfterSeq: 0n, firstSeq: 7, lastSeq: 10 },
    );
    // Just before the window is still fine.
    expect(seqs(await log.read(6))).toEqual([7, 8, 9, 10]);
  });
});

describe("EventLog bounds", () => {
  const size = weigh(text("x"));

  it("drops the oldest events beyond maxEvents", async () => {
    const log = new EventLog("s1", { maxEvents: 3, maxBytes: Number.MAX_SAFE_INTEGER });
    log.append("t", text("x"));
    log.append("t", text("x"));
    log.append("t", text("x"));
    expect(log.firstSeq).toBe(1);
    log.append("t", text("x"));
    expect(log.firstSeq).toBe(2);
    expect(log.size).toBe(3);
    log.append("t", text("x"));
    expect(log.firstSeq).toBe(3);
    expect(seqs(await log.read(2))).toEqual([3, 4, 5]);
    expect(log.bytes).toBe(3 * size);
  });

  it("keeps a single event with maxEvents 1", async () => {
    const log = new EventLog("s1", { maxEvents: 1, maxBytes: Number.MAX_SAFE_INTEGER });
    for (let i = 1; i <= 5; i++) {
      log.append("t", text("x"));
      expect(log.size).toBe(1);
      expect(log.firstSeq).toBe(i);
      expect(seqs(await log.read(i - 1))).toEqual([i]);
    }
  });

  it("drops the oldest events beyond maxBytes", () => {
    const log = new EventLog("s1", { maxEvents: 1000, maxBytes: Math.floor(3.5 * size) });
    for (let i = 1; i <= 3; i++) log.append("t", text("x"));
    expect(log.firstSeq).toBe(1);
    expect(log.bytes).toBe(3 * size);
    log.append("t", text("x"));
    expect(log.firstSeq).toBe(2);
    expect(log.size).toBe(3);
    expect(log.bytes).toBe(3 * size);
  });

  it("keeps bytes within maxBytes for events of varying size and counts exactly what it retains", async () => {
    const maxBytes = 5000;
    const log = new EventLog("s1", { maxEvents: 1000, maxBytes });
    const weights = new Map<number, number>();
    for (let i = 1; i <= 500; i++) {
      const payload = text("y".repeat((i * 37) % 900));
      weights.set(i, weigh(payload));
      log.append("t", payload);
      expect(log.bytes).toBeLessThanOrEqual(maxBytes);
      let retained = 0;
      for (let seq = log.firstSeq; seq <= log.lastSeq; seq++) retained += weights.get(seq) ?? Number.NaN;
      expect(log.bytes).toBe(retained);
      // Dropping is oldest-first and minimal: one more (older) event would not have fit.
      const older = weights.get(log.firstSeq - 1);
      if (older !== undefined) expect(retained + older).toBeGreaterThan(maxBytes);
    }
    expect(seqs(await log.read(log.firstSeq - 1, 1000))).toEqual(range(log.firstSeq, 500));
  });

  it("keeps a single newest event that alone is over maxBytes", async () => {
    const log = new EventLog("s1", { maxEvents: 1000, maxBytes: 4 * size });
    log.append("t", text("x"));
    log.append("t", text("x"));
    const big = text("z".repeat(10 * size));
    log.append("t", big);
    expect(log.size).toBe(1);
    expect(log.firstSeq).toBe(3);
    expect(log.bytes).toBe(weigh(big));
    expect(log.bytes).toBeGreaterThan(4 * size);
    expect(seqs(await log.read(2))).toEqual([3]);
    // The next small event pushes the oversized one out.
    log.append("t", text("x"));
    expect(log.firstSeq).toBe(4);
    expect(log.bytes).toBe(size);
  });

  it("keeps only the newest event when every event is over maxBytes", () => {
    const log = new EventLog("s1", { maxEvents: 1000, maxBytes: 1 });
    for (let i = 1; i <= 10; i++) {
      log.append("t", text("x"));
      expect(log.size).toBe(1);
      expect(log.firstSeq).toBe(i);
      expect(log.bytes).toBe(size);
    }
  });

  // Payload sizes vary with the seq so that a size booked against the wrong event
  // (say, after an internal compaction) shows up in `bytes`.
  const varied = (seq: number): EventPayload => text("v".repeat(seq % 13));
  const variedWeights = Array.from({ length: 13 }, (_, len) => weigh(text("v".repeat(len))));
  const variedWeight = (seq: number): number => variedWeights[seq % 13] ?? Number.NaN;
  const weightOf = (from: number, to: number): number => {
    let sum = 0;
    for (let seq = from; seq <= to; seq++) sum += variedWeight(seq);
    return sum;
  };

  it.each([
    { maxEvents: 1 },
    { maxEvents: 100 },
    { maxEvents: 1500 },
    { maxEvents: 5000 },
  ])("stays bounded over 200k appends with maxEvents $maxEvents", async ({ maxEvents }) => {
    const total = 200_000;
    const log = new EventLog("s1", { maxEvents, maxBytes: Number.MAX_SAFE_INTEGER });
    for (let seq = 1; seq <= total; seq++) {
      log.append("t", varied(seq));
      if (log.size > maxEvents) throw new Error(`size ${log.size} > ${maxEvents} after ${seq} appends`);
      if (seq % 997 === 0 || seq === total) {
        const retained = Math.min(seq, maxEvents);
        expect(log.size).toBe(retained);
        expect(log.firstSeq).toBe(seq - retained + 1);
        expect(log.lastSeq).toBe(seq);
        expect(log.bytes).toBe(weightOf(log.firstSeq, seq));
        const events = await log.read(log.firstSeq - 1, maxEvents);
        expect(events.length).toBe(retained);
        expect(Number(events[0]?.seq)).toBe(log.firstSeq);
        expect(Number(events.at(-1)?.seq)).toBe(seq);
        // Contiguous, in order, each with its own payload.
        for (let i = 0; i < events.length; i++) {
          const event = events[i]!;
          if (i > 0 && event.seq !== events[i - 1]!.seq + 1n) throw new Error(`gap at index ${i}`);
          const got = event.payload.case === "textDelta" ? event.payload.value.text.length : -1;
          if (got !== Number(event.seq) % 13) throw new Error(`wrong payload for seq ${event.seq}`);
        }
        // A read from inside the window starts at the right event too.
        const middle = log.firstSeq - 1 + Math.floor(retained / 2);
        expect(Number((await log.read(middle, 1))[0]?.seq)).toBe(Math.min(middle + 1, seq));
      }
    }
  });

  it("stays bounded over 200k appends by bytes alone", async () => {
    const total = 200_000;
    const maxBytes = 700 * weigh(text("x"));
    const log = new EventLog("s1", { maxEvents: Number.MAX_SAFE_INTEGER, maxBytes });
    let first = 1;
    let expected = 0;
    for (let seq = 1; seq <= total; seq++) {
      log.append("t", varied(seq));
      expected += variedWeight(seq);
      while (expected > maxBytes) expected -= variedWeight(first++);
      if (log.bytes !== expected || log.firstSeq !== first) {
        throw new Error(`after ${seq} appends: bytes ${log.bytes} (want ${expected}), firstSeq ${log.firstSeq} (want ${first})`);
      }
    }
    expect(log.bytes).toBeLessThanOrEqual(maxBytes);
    expect(log.size).toBeGreaterThan(500);
    expect((await log.read(first - 1, 1000)).map((event) => Number(event.seq))).toEqual(range(first, total));
  });
});

describe("EventLog.waitBeyond", () => {
  function settledFlag(promise: Promise<void>): { settled: boolean } {
    const flag = { settled: false };
    void promise.then(() => {
      flag.settled = true;
    });
    return flag;
  }

  it("resolves at once when an event beyond already exists", async () => {
    const log = new EventLog("s1");
    log.append("t", text("a"));
    log.append("t", text("b"));
    const flag = settledFlag(log.waitBeyond(1));
    await Promise.resolve();
    await Promise.resolve();
    expect(flag.settled).toBe(true);
    await log.waitBeyond(0);
  });

  it("stays pending until a later append and then resolves", async () => {
    const log = new EventLog("s1");
    log.append("t", text("a"));
    const flag = settledFlag(log.waitBeyond(1));
    await tick();
    expect(flag.settled).toBe(false);
    log.append("t", text("b"));
    await tick();
    expect(flag.settled).toBe(true);
  });

  it("wakes every waiter with one append", async () => {
    const log = new EventLog("s1");
    const waits = Array.from({ length: 20 }, () => log.waitBeyond(0));
    log.append("t", text("a"));
    await Promise.all(waits);
  });

  it("resolves when the signal aborts", async () => {
    const log = new EventLog("s1");
    const controller = new AbortController();
    const flag = settledFlag(log.waitBeyond(0, controller.signal));
    await tick();
    expect(flag.settled).toBe(false);
    controller.abort();
    await tick();
    expect(flag.settled).toBe(true);
    expect(log.lastSeq).toBe(0);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("resolves at once for an already aborted signal", async () => {
    const log = new EventLog("s1");
    const signal = AbortSignal.abort();
    const flag = settledFlag(log.waitBeyond(0, signal));
    await Promise.resolve();
    await Promise.resolve();
    expect(flag.settled).toBe(true);
  });

  it("leaves no abort listener behind after many waits with the same signal", async () => {
    const log = new EventLog("s1");
    const controller = new AbortController();
    const { signal } = controller;
    for (let i = 0; i < 2000; i++) {
      const wait = log.waitBeyond(log.lastSeq, signal);
      expect(getEventListeners(signal, "abort")).toHaveLength(1);
      log.append("t", text("x"));
      await wait;
      expect(getEventListeners(signal, "abort")).toHaveLength(0);
    }
    // Waits that resolve at once never register.
    for (let i = 0; i < 100; i++) await log.waitBeyond(0, signal);
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
    // Concurrent waits on one signal each clean up.
    const waits = Array.from({ length: 50 }, () => log.waitBeyond(log.lastSeq, signal));
    expect(getEventListeners(signal, "abort")).toHaveLength(50);
    log.append("t", text("x"));
    await Promise.all(waits);
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
    // And the ones ended by the abort itself.
    const aborted = Array.from({ length: 50 }, () => log.waitBeyond(log.lastSeq, signal));
    controller.abort();
    await Promise.all(aborted);
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("does not wake an aborted waiter again on a later append", async () => {
    const log = new EventLog("s1");
    const controller = new AbortController();
    let resolutions = 0;
    const wait = log.waitBeyond(0, controller.signal).then(() => {
      resolutions += 1;
    });
    controller.abort();
    await wait;
    log.append("t", text("a"));
    await tick();
    expect(resolutions).toBe(1);
  });
});

describe("EventLog.read on a closed log", () => {
  it("rejects with not_found rather than throwing", async () => {
    const log = new EventLog("s1");
    log.append("t", text("a"));
    log.close();
    const pending = log.read(0);
    const error = await rejectionOf(pending);
    expect(error).toBeInstanceOf(HotplexError);
    expect((error as HotplexError).code).toBe("not_found");
  });
});

describe("EventLog backed by a store", () => {
  const NO_LIMITS: RetentionPolicy = { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 };
  const TAIL = { maxEvents: 4, maxBytes: Number.MAX_SAFE_INTEGER };
  const KEY = "tenant/s1";
  const logger = pino({ level: "silent" });

  /** `count` events of session s1, numbered from 1 (made by a log without backing). */
  async function eventsOf(count: number): Promise<Event[]> {
    const source = new EventLog("s1", { maxEvents: count + 1, maxBytes: Number.MAX_SAFE_INTEGER });
    for (let i = 1; i <= count; i++) source.append("t", text(`e${i}`));
    return source.read(0, count);
  }

  /** A store already holding `count` events of s1, and a log opened over it the way the engine opens one. */
  async function reopened(count: number): Promise<{ store: MemoryStore; log: EventLog; retained: Retained }> {
    const store = new MemoryStore(NO_LIMITS);
    await store.commit(
      (await eventsOf(count)).map((event) => ({ key: KEY, event })),
      [],
    );
    const firstSeq = await store.firstSeq(KEY);
    expect(firstSeq).toBe(1);
    const retained = { firstSeq: firstSeq ?? count + 1, bytes: await store.sessionBytes(KEY) };
    const backing: LogBacking = {
      store,
      key: KEY,
      committer: new GroupCommitter(store, logger),
      record: () => undefined,
      retained,
    };
    return { store, log: new EventLog("s1", TAIL, count, backing), retained };
  }

  it("starts from what it was handed as retained, without reading the store", async () => {
    const store = new MemoryStore(NO_LIMITS);
    const spies = [vi.spyOn(store, "firstSeq"), vi.spyOn(store, "sessionBytes"), vi.spyOn(store, "readEvents")];
    const committer = new GroupCommitter(store, logger);
    const log = new EventLog("s1", TAIL, 600, { store, key: KEY, committer, record: () => undefined, retained: { firstSeq: 101, bytes: 1234 } });
    expect(log.firstSeq).toBe(101);
    expect(log.storedBytes).toBe(1234);
    expect(log.retained).toBe(500);
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
  });

  it("stores nothing appended after it was closed (the session is gone from this node)", async () => {
    const { store, log } = await reopened(3);
    const commit = vi.spyOn(store, "commit");
    log.close();
    log.append("t", text("late"));
    await log.backing!.committer.flush();
    expect(commit).not.toHaveBeenCalled();
    expect(log.pendingCount).toBe(0);
    expect(seqs(await store.readEvents(KEY, 0, 10))).toEqual([1, 2, 3]);
  });

  it("serves events older than the tail from the store", async () => {
    const { log, retained } = await reopened(600);
    expect(log.firstSeq).toBe(1);
    expect(log.storedBytes).toBe(retained.bytes);
    expect(retained.bytes).toBeGreaterThan(0);
    expect(seqs(await log.read(0, 10))).toEqual(range(1, 10));
    expect(seqs(await log.read(250, 10))).toEqual(range(251, 256));
    // The last, partial page is read directly.
    expect(seqs(await log.read(590, 100))).toEqual(range(591, 600));
  });

  it("reads an uncached store page once for concurrent readers", async () => {
    const { store, log } = await reopened(600);
    const readEvents = vi.spyOn(store, "readEvents");
    // Both readers start before the store answered either: they share the one page read.
    const [first, second, third] = await Promise.all([log.read(0, 10), log.read(0, 10), log.read(100, 20)]);
    expect(seqs(first)).toEqual(range(1, 10));
    expect(seqs(second)).toEqual(range(1, 10));
    expect(seqs(third)).toEqual(range(101, 120));
    expect(readEvents).toHaveBeenCalledTimes(1);
    expect(readEvents).toHaveBeenCalledWith(KEY, 0, 256);
    // Cached now: a later reader of the page does not ask the store either.
    expect(seqs(await log.read(200, 5))).toEqual(range(201, 205));
    expect(readEvents).toHaveBeenCalledTimes(1);
    // Another page is another store read, shared the same way.
    const [fourth, fifth] = await Promise.all([log.read(256, 3), log.read(256, 3)]);
    expect(seqs(fourth)).toEqual([257, 258, 259]);
    expect(seqs(fifth)).toEqual([257, 258, 259]);
    expect(readEvents).toHaveBeenCalledTimes(2);
    expect(readEvents).toHaveBeenLastCalledWith(KEY, 256, 256);
  });

  it("rejects a store read that retention overtook with OutOfRangeError instead of returning a gap", async () => {
    const { store, log } = await reopened(600);
    const real = store.readEvents.bind(store);
    // Retention ran while the store answered: what comes back starts later than asked.
    const readEvents = vi
      .spyOn(store, "readEvents")
      .mockImplementation(async (key, afterSeq, limit) => (await real(key, afterSeq, limit)).slice(5));
    const error = await rejectionOf(log.read(0, 10));
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect((error as OutOfRangeError).requestedAfterSeq).toBe(0n);
    expect((error as OutOfRangeError).lastSeq).toBe(600);
    // The short page was not cached: the next read asks the store again.
    const calls = readEvents.mock.calls.length;
    expect(calls).toBeGreaterThan(0);
    readEvents.mockRestore();
    const again = vi.spyOn(store, "readEvents");
    expect(seqs(await log.read(0, 10))).toEqual(range(1, 10));
    expect(again).toHaveBeenCalled();
  });

  it("rejects a store read that a real compaction overtook, and names the new first seq once told", async () => {
    const { store, log } = await reopened(600);
    const real = store.readEvents.bind(store);
    let moved: Map<string, Retained> | undefined;
    vi.spyOn(store, "readEvents").mockImplementation(async (key, afterSeq, limit) => {
      // The compaction lands between the log's range check and the store's answer.
      moved ??= await store.compact({ ...NO_LIMITS, maxEvents: 300 }, Date.now());
      return real(key, afterSeq, limit);
    });
    const error = await rejectionOf(log.read(10, 10));
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect((error as OutOfRangeError).requestedAfterSeq).toBe(10n);
    const retained = moved?.get(KEY);
    expect(retained?.firstSeq).toBe(301);
    log.retainedFrom(retained as Retained);
    expect(log.firstSeq).toBe(301);
    expect(log.storedBytes).toBe(await store.sessionBytes(KEY));
    const told = await rejectionOf(log.read(10, 10));
    expect(told).toBeInstanceOf(OutOfRangeError);
    expect((told as OutOfRangeError).firstSeq).toBe(301);
    expect(seqs(await log.read(300, 3))).toEqual([301, 302, 303]);
  });

  it("returns nothing for a limit of 0 behind the tail instead of rejecting", async () => {
    const { store, log } = await reopened(600);
    const committer = log.backing?.committer as GroupCommitter;
    for (let i = 1; i <= 6; i++) log.append("t", text(`n${i}`));
    await committer.flush();
    // A short in-memory tail: seqs 603..606; 0 lies behind it, in the store.
    expect(log.lastSeq).toBe(606);
    expect(log.size).toBe(4);
    expect(log.firstSeq).toBe(1);
    const readEvents = vi.spyOn(store, "readEvents");
    expect(await log.read(0, 0)).toEqual([]);
    expect(await log.read(100, 0)).toEqual([]);
    expect(readEvents).not.toHaveBeenCalled();
    // The log is still readable there with a real limit.
    expect(seqs(await log.read(0, 3))).toEqual([1, 2, 3]);
    await committer.close();
  });

  it("names the first seq the store returned after a compaction as the first retained seq", async () => {
    const { store, log } = await reopened(600);
    const real = store.readEvents.bind(store);
    // Retention ran while the store answered: each answer starts at afterSeq + 6.
    vi.spyOn(store, "readEvents").mockImplementation(async (key, afterSeq, limit) => (await real(key, afterSeq, limit)).slice(5));
    const error = await rejectionOf(log.read(10, 10));
    // Resuming from seq 16 (after_seq 15) is what the store can serve now.
    expectOutOfRange(error, { requestedAfterSeq: 10n, firstSeq: 16, lastSeq: 600 });
  });

  it("rejects with not_found when the log is closed while a store read is in flight", async () => {
    const { store, log } = await reopened(600);
    const real = store.readEvents.bind(store);
    const readEvents = vi.spyOn(store, "readEvents").mockImplementation(async (key, afterSeq, limit) => {
      // The session is deleted between the log's check and the store's (complete) answer.
      log.close();
      return real(key, afterSeq, limit);
    });
    const error = await rejectionOf(log.read(0, 10));
    expect(readEvents).toHaveBeenCalled();
    expect(error).toBeInstanceOf(HotplexError);
    expect(error).not.toBeInstanceOf(OutOfRangeError);
    expect((error as HotplexError).code).toBe("not_found");
  });

  /** A memory store whose commits take effect and resolve only when released, one at a time. */
  class GatedStore extends MemoryStore {
    readonly gates: (() => void)[] = [];

    override commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Promise<Map<string, Retained>> {
      // A store reads its arguments before it yields.
      const given = [...events];
      const records = [...sessions];
      return new Promise((resolve, reject) => {
        this.gates.push(() => super.commit(given, records).then(resolve, reject));
      });
    }

    release(): void {
      const gate = this.gates.shift();
      if (!gate) throw new Error("no commit is waiting");
      gate();
    }
  }

  it("applies events (onCommit) and publishes them only once the store's commit resolved", async () => {
    const store = new GatedStore(NO_LIMITS);
    const committer = new GroupCommitter(store, logger);
    const log = new EventLog("s1", TAIL, 0, { store, key: KEY, committer, record: () => undefined });
    const applied: number[][] = [];
    const published: number[][] = [];
    log.onCommit = (events) => {
      // Right before the events become visible, in the same step: not visible yet.
      expect(log.lastSeq).toBe(Number(events[0]?.seq) - 1);
      applied.push(seqs(events));
    };
    log.onPublish = (events) => published.push(seqs(events));
    let woken = false;
    void log.waitBeyond(0).then(() => (woken = true));

    for (let i = 1; i <= 3; i++) log.append("t", text(`e${i}`));
    const first = committer.flush();
    await tick();
    await tick();
    // The commit is with the store, not acknowledged: nothing applied or visible.
    expect(store.gates).toHaveLength(1);
    expect(applied).toEqual([]);
    expect(published).toEqual([]);
    expect(log.assignedSeq).toBe(3);
    expect(log.lastSeq).toBe(0);
    expect(await log.read(0)).toEqual([]);
    expect(woken).toBe(false);

    // More events while the first commit runs go with the next one, which waits for it.
    log.append("t", text("e4"));
    log.append("t", text("e5"));
    const second = committer.flush();
    expect(committer.flush()).toBe(second);
    await tick();
    expect(store.gates).toHaveLength(1);

    store.release();
    await first;
    expect(applied).toEqual([[1, 2, 3]]);
    expect(published).toEqual([[1, 2, 3]]);
    expect(log.lastSeq).toBe(3);
    expect(seqs(await log.read(0))).toEqual([1, 2, 3]);
    expect(woken).toBe(true);

    await tick();
    // The second commit is with the store now; its events are still not applied.
    expect(store.gates).toHaveLength(1);
    expect(applied).toEqual([[1, 2, 3]]);
    expect(log.lastSeq).toBe(3);
    store.release();
    await second;
    expect(applied).toEqual([[1, 2, 3], [4, 5]]);
    expect(published).toEqual([[1, 2, 3], [4, 5]]);
    expect(log.lastSeq).toBe(5);
    expect(seqs(await store.readEvents(KEY, 0, 10))).toEqual([1, 2, 3, 4, 5]);
    await committer.close();
  });

  it("applies nothing for a commit the store rejected, and each event once after the retry", async () => {
    const store = new MemoryStore(NO_LIMITS);
    const real = store.commit.bind(store);
    const commit = vi.spyOn(store, "commit").mockRejectedValueOnce(new Error("disk full"));
    const committer = new GroupCommitter(store, logger);
    const log = new EventLog("s1", TAIL, 0, { store, key: KEY, committer, record: () => undefined });
    const applied: number[][] = [];
    log.onCommit = (events) => applied.push(seqs(events));
    log.append("t", text("a"));
    log.append("t", text("b"));
    await committer.flush();
    expect(commit).toHaveBeenCalledTimes(1);
    expect(applied).toEqual([]);
    expect(log.lastSeq).toBe(0);
    commit.mockImplementation(real);
    await committer.flush();
    expect(applied).toEqual([[1, 2]]);
    expect(log.lastSeq).toBe(2);
    await committer.close();
  });
});
