import { getEventListeners } from "node:events";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { OutOfRangeError } from "../errors.js";
import type { EventPayload } from "./event.js";
import { EventLog } from "./event-log.js";
import { catchError, range, seqs, text, tick } from "./test-support.js";

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

  it("continues from the lastSeq it was constructed with", () => {
    const log = new EventLog("s1", undefined, 41);
    expect(log.lastSeq).toBe(41);
    expect(log.firstSeq).toBe(42);
    expect(log.read(41)).toEqual([]);
    expect(Number(log.append("t", text("a")).seq)).toBe(42);
    expect(Number(log.append("t", text("b")).seq)).toBe(43);
    expect(log.firstSeq).toBe(42);
    expect(seqs(log.read(41))).toEqual([42, 43]);
    // What came before the restart is not retained.
    expectOutOfRange(
      catchError(() => log.read(0)),
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

  it("returns every event after 0", () => {
    expect(seqs(logOf(5).read(0))).toEqual([1, 2, 3, 4, 5]);
  });

  it("returns the rest after a given seq", () => {
    const log = logOf(5);
    expect(seqs(log.read(2))).toEqual([3, 4, 5]);
    expect(seqs(log.read(4))).toEqual([5]);
  });

  it("returns the same event objects that append returned", () => {
    const log = new EventLog("s1");
    const first = log.append("t", text("a"));
    expect(log.read(0)[0]).toBe(first);
  });

  it("returns at most limit events", () => {
    const log = logOf(10);
    expect(seqs(log.read(0, 3))).toEqual([1, 2, 3]);
    expect(seqs(log.read(7, 3))).toEqual([8, 9, 10]);
    expect(seqs(log.read(8, 3))).toEqual([9, 10]);
  });

  it("returns at most 256 events by default", () => {
    const log = logOf(300);
    expect(seqs(log.read(0))).toEqual(range(1, 256));
    expect(seqs(log.read(256))).toEqual(range(257, 300));
  });

  it("returns nothing after the last seq", () => {
    expect(logOf(5).read(5)).toEqual([]);
    expect(logOf(0).read(0)).toEqual([]);
  });

  it("throws OutOfRangeError for an after seq beyond the last event", () => {
    const log = logOf(5);
    const error = catchError(() => log.read(6));
    expectOutOfRange(error, { requestedAfterSeq: 6n, firstSeq: 1, lastSeq: 5 });
    expect((error as Error).message).toContain("beyond the last event (5)");
    expectOutOfRange(
      catchError(() => logOf(0).read(1)),
      { requestedAfterSeq: 1n, firstSeq: 1, lastSeq: 0 },
    );
  });

  it("throws OutOfRangeError naming the first retained seq for an after seq before the retained window", () => {
    const log = new EventLog("s1", { maxEvents: 4, maxBytes: Number.MAX_SAFE_INTEGER });
    for (let i = 1; i <= 10; i++) log.append("t", text(`e${i}`));
    expect(log.firstSeq).toBe(7);
    const error = catchError(() => log.read(5));
    expectOutOfRange(error, { requestedAfterSeq: 5n, firstSeq: 7, lastSeq: 10 });
    expect((error as Error).message).toContain("resume with after_seq = 6");
    expectOutOfRange(
      catchError(() => log.read(0)),
      { requestedAfterSeq: 0n, firstSeq: 7, lastSeq: 10 },
    );
    // Just before the window is still fine.
    expect(seqs(log.read(6))).toEqual([7, 8, 9, 10]);
  });
});

describe("EventLog bounds", () => {
  const size = weigh(text("x"));

  it("drops the oldest events beyond maxEvents", () => {
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
    expect(seqs(log.read(2))).toEqual([3, 4, 5]);
    expect(log.bytes).toBe(3 * size);
  });

  it("keeps a single event with maxEvents 1", () => {
    const log = new EventLog("s1", { maxEvents: 1, maxBytes: Number.MAX_SAFE_INTEGER });
    for (let i = 1; i <= 5; i++) {
      log.append("t", text("x"));
      expect(log.size).toBe(1);
      expect(log.firstSeq).toBe(i);
      expect(seqs(log.read(i - 1))).toEqual([i]);
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

  it("keeps bytes within maxBytes for events of varying size and counts exactly what it retains", () => {
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
    expect(seqs(log.read(log.firstSeq - 1, 1000))).toEqual(range(log.firstSeq, 500));
  });

  it("keeps a single newest event that alone is over maxBytes", () => {
    const log = new EventLog("s1", { maxEvents: 1000, maxBytes: 4 * size });
    log.append("t", text("x"));
    log.append("t", text("x"));
    const big = text("z".repeat(10 * size));
    log.append("t", big);
    expect(log.size).toBe(1);
    expect(log.firstSeq).toBe(3);
    expect(log.bytes).toBe(weigh(big));
    expect(log.bytes).toBeGreaterThan(4 * size);
    expect(seqs(log.read(2))).toEqual([3]);
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
  ])("stays bounded over 200k appends with maxEvents $maxEvents", ({ maxEvents }) => {
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
        const events = log.read(log.firstSeq - 1, maxEvents);
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
        expect(Number(log.read(middle, 1)[0]?.seq)).toBe(Math.min(middle + 1, seq));
      }
    }
  });

  it("stays bounded over 200k appends by bytes alone", () => {
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
    expect(log.read(first - 1, 1000).map((event) => Number(event.seq))).toEqual(range(first, total));
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
