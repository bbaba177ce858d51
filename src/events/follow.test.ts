import { getEventListeners } from "node:events";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { OutOfRangeError } from "../errors.js";
import { MemoryStore } from "../store/memory-store.js";
import type { Event } from "./event.js";
import { EventLog } from "./event-log.js";
import { readEventBatches, readEvents } from "./follow.js";
import { GroupCommitter } from "./group-committer.js";
import { range, text, tick } from "./test-support.js";

function appendMany(log: EventLog, count: number): void {
  for (let i = 0; i < count; i++) log.append("t", text(`e${log.lastSeq + 1}`));
}

async function collect(events: AsyncIterable<Event>): Promise<number[]> {
  const out: number[] = [];
  for await (const event of events) out.push(Number(event.seq));
  return out;
}

/** Follows the log from `after` until seq `last` arrives. */
async function followUntil(
  log: EventLog,
  after: number,
  last: number,
  options: { batch?: number; between?: () => Promise<void> } = {},
): Promise<number[]> {
  const out: number[] = [];
  if (after >= last) return out;
  for await (const event of readEvents(log, after, { follow: true, batch: options.batch })) {
    out.push(Number(event.seq));
    if (Number(event.seq) >= last) break;
    if (options.between) await options.between();
  }
  return out;
}

describe("readEventBatches and the event loop", () => {
  it("gives way to other work while it catches up on a long log, batch after batch", async () => {
    const log = new EventLog("s1");
    appendMany(log, 64 * 20);
    let otherWorkRanAt = -1;
    let batches = 0;
    setImmediate(() => (otherWorkRanAt = batches));
    for await (const _ of readEventBatches(log, 0, { follow: false, batch: 64 })) batches += 1;
    expect(batches).toBe(20);
    // Before the catch-up ended: a reader that never waited would have held the loop to the end.
    expect(otherWorkRanAt).toBeGreaterThan(0);
    expect(otherWorkRanAt).toBeLessThan(20);
  });
});

describe("readEvents without follow", () => {
  it("replays every event after the given seq and then ends", async () => {
    const log = new EventLog("s1");
    appendMany(log, 5);
    expect(await collect(readEvents(log, 0, { follow: false }))).toEqual([1, 2, 3, 4, 5]);
    expect(await collect(readEvents(log, 2, { follow: false }))).toEqual([3, 4, 5]);
  });

  it("replays across batches without gaps or duplicates", async () => {
    const log = new EventLog("s1");
    appendMany(log, 10);
    expect(await collect(readEvents(log, 1, { follow: false, batch: 3 }))).toEqual(range(2, 10));
    expect(await collect(readEvents(log, 0, { follow: false, batch: 1 }))).toEqual(range(1, 10));
  });

  it("ends at once when the reader is already at the last event or the log is empty", async () => {
    const log = new EventLog("s1");
    expect(await collect(readEvents(log, 0, { follow: false }))).toEqual([]);
    appendMany(log, 3);
    expect(await collect(readEvents(log, 3, { follow: false }))).toEqual([]);
  });

  it("throws OutOfRangeError for an after seq beyond the last event", async () => {
    const log = new EventLog("s1");
    appendMany(log, 3);
    await expect(collect(readEvents(log, 4, { follow: false }))).rejects.toBeInstanceOf(OutOfRangeError);
  });

  it("throws OutOfRangeError for an after seq no longer retained", async () => {
    const log = new EventLog("s1", { maxEvents: 3, maxBytes: Number.MAX_SAFE_INTEGER });
    appendMany(log, 10);
    const error: unknown = await collect(readEvents(log, 2, { follow: false })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect((error as OutOfRangeError).firstSeq).toBe(8);
    expect((error as OutOfRangeError).requestedAfterSeq).toBe(2n);
    expect(await collect(readEvents(log, 7, { follow: false }))).toEqual([8, 9, 10]);
  });
});

describe("readEvents with follow", () => {
  it("hands over from replay to live events without a gap or a duplicate", async () => {
    const log = new EventLog("s1");
    appendMany(log, 5);
    const reader = followUntil(log, 2, 12, { batch: 2 });
    await tick();
    appendMany(log, 3);
    await tick();
    appendMany(log, 4);
    expect(await reader).toEqual(range(3, 12));
  });

  it("waits on an empty log and gets the first event", async () => {
    const log = new EventLog("s1");
    const reader = followUntil(log, 0, 2);
    await tick();
    log.append("t", text("a"));
    log.append("t", text("b"));
    expect(await reader).toEqual([1, 2]);
  });

  it("delivers every event exactly once to readers starting at different points under concurrent appends", async () => {
    const total = 10_000;
    const log = new EventLog("s1");
    const readers: { after: number; result: Promise<number[]> }[] = [];
    const start = (after: number, options: Parameters<typeof followUntil>[3] = {}) => {
      readers.push({ after, result: followUntil(log, after, total, options) });
    };

    // One reader is waiting before anything is logged.
    start(0, { batch: 64 });
    let burst = 0;
    while (log.lastSeq < total) {
      burst += 1;
      // Bursts of 1..97 events, in a fixed but irregular pattern.
      appendMany(log, Math.min(1 + ((burst * 7919) % 97), total - log.lastSeq));
      // A reader that starts in the replayed past while the log keeps growing.
      if (readers.length === 1 && log.lastSeq >= 3000) start(1500, { batch: 7 });
      // A reader that starts exactly at the live edge, mid-stream.
      if (readers.length === 2 && log.lastSeq >= 7000) {
        start(log.lastSeq, { batch: 256, between: () => Promise.resolve() });
      }
      // Interleave: sometimes only microtasks run, sometimes a full macrotask turn.
      if (burst % 3 === 0) await tick();
      else await Promise.resolve();
    }

    expect(readers).toHaveLength(3);
    for (const { after, result } of readers) {
      const got = await result;
      expect(got.length).toBe(total - after);
      expect(got).toEqual(range(after + 1, total));
    }
  });

  it("gives a slow reader everything while the appender never waits for it", async () => {
    const total = 2000;
    const log = new EventLog("s1");
    let received = 0;
    const reader = (async () => {
      const out: number[] = [];
      for await (const event of readEvents(log, 0, { follow: true, batch: 16 })) {
        out.push(Number(event.seq));
        received += 1;
        if (Number(event.seq) === total) break;
        await tick(); // a slow consumer: one macrotask turn per event
      }
      return out;
    })();

    const appender = (async () => {
      while (log.lastSeq < total) {
        const started = log.lastSeq;
        appendMany(log, 100);
        // Appends are synchronous: a whole burst lands regardless of the reader.
        expect(log.lastSeq).toBe(started + 100);
        await tick();
      }
    })();

    await appender;
    // The appender finished long before the slow reader caught up.
    expect(received).toBeLessThan(total / 2);
    expect(await reader).toEqual(range(1, total));
  });

  it("throws OutOfRangeError when a bounded log drops events the reader has not reached", async () => {
    const log = new EventLog("s1", { maxEvents: 5, maxBytes: Number.MAX_SAFE_INTEGER });
    appendMany(log, 3);
    const got: number[] = [];
    const iterator = readEvents(log, 0, { follow: true, batch: 2 });
    let error: unknown;
    try {
      for await (const event of iterator) {
        got.push(Number(event.seq));
        // While the reader is busy with seq 2, the agent writes 20 more events.
        if (event.seq === 2n) appendMany(log, 20);
      }
    } catch (e) {
      error = e;
    }
    expect(got).toEqual([1, 2]);
    expect(error).toBeInstanceOf(OutOfRangeError);
    const outOfRange = error as OutOfRangeError;
    expect(outOfRange.requestedAfterSeq).toBe(2n);
    expect(outOfRange.firstSeq).toBe(19);
    expect(outOfRange.lastSeq).toBe(23);
  });

  it("throws OutOfRangeError when a waiting reader is woken by an append that overran the bound", async () => {
    const log = new EventLog("s1", { maxEvents: 5, maxBytes: Number.MAX_SAFE_INTEGER });
    appendMany(log, 3);
    const got: number[] = [];
    const reader = (async () => {
      for await (const event of readEvents(log, 0, { follow: true })) got.push(Number(event.seq));
    })();
    await tick();
    expect(got).toEqual([1, 2, 3]);
    // Ten events arrive before the reader gets to run again; only the last five are kept.
    appendMany(log, 10);
    const error: unknown = await reader.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect((error as OutOfRangeError).requestedAfterSeq).toBe(3n);
    expect((error as OutOfRangeError).firstSeq).toBe(9);
    expect(got).toEqual([1, 2, 3]);
  });

  it("ends a waiting reader cleanly when the signal aborts", async () => {
    const log = new EventLog("s1");
    appendMany(log, 3);
    const controller = new AbortController();
    const got: number[] = [];
    const reader = (async () => {
      for await (const event of readEvents(log, 0, { follow: true, signal: controller.signal })) {
        got.push(Number(event.seq));
      }
    })();
    await tick();
    appendMany(log, 2);
    await tick();
    expect(got).toEqual([1, 2, 3, 4, 5]);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    controller.abort();
    await expect(reader).resolves.toBeUndefined();
    expect(got).toEqual([1, 2, 3, 4, 5]);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("stops yielding as soon as the signal aborts, even in the middle of a batch", async () => {
    const log = new EventLog("s1");
    appendMany(log, 10);
    const controller = new AbortController();
    const got: number[] = [];
    for await (const event of readEvents(log, 0, { follow: true, signal: controller.signal })) {
      got.push(Number(event.seq));
      if (event.seq === 3n) controller.abort();
    }
    expect(got).toEqual([1, 2, 3]);
  });

  it("yields nothing for an already aborted signal", async () => {
    const log = new EventLog("s1");
    appendMany(log, 3);
    expect(await collect(readEvents(log, 0, { follow: true, signal: AbortSignal.abort() }))).toEqual([]);
  });

  it("leaves no abort listener behind after following many appends with one signal", async () => {
    const log = new EventLog("s1");
    const controller = new AbortController();
    let count = 0;
    const reader = (async () => {
      for await (const _event of readEvents(log, 0, { follow: true, signal: controller.signal })) count += 1;
    })();
    for (let i = 0; i < 1000; i++) {
      log.append("t", text("x"));
      await tick();
      expect(getEventListeners(controller.signal, "abort").length).toBeLessThanOrEqual(1);
    }
    expect(count).toBe(1000);
    controller.abort();
    await reader;
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});

describe("readEvents on a store-backed log", () => {
  const key = "tenant/s1";

  async function backedLog(): Promise<{ log: EventLog; committer: GroupCommitter }> {
    const store = new MemoryStore({ maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 });
    const committer = new GroupCommitter(store, pino({ level: "silent" }));
    // A small tail: most of the replay comes back from the store.
    const log = new EventLog("s1", { maxEvents: 8, maxBytes: Number.MAX_SAFE_INTEGER }, 0, {
      store,
      key,
      committer,
      record: () => undefined,
      retained: { firstSeq: (await store.firstSeq(key)) ?? 1, bytes: await store.sessionBytes(key) },
    });
    return { log, committer };
  }

  it("sees only committed events, and replays from the store into live events without a gap or a duplicate", async () => {
    const { log, committer } = await backedLog();
    appendPending(log, 700);
    // Appended, not stored yet: a reader sees nothing.
    expect(log.assignedSeq).toBe(700);
    expect(await collect(readEvents(log, 0, { follow: false }))).toEqual([]);
    await committer.flush();
    expect(log.lastSeq).toBe(700);
    expect(log.size).toBe(8);

    const reader = followUntil(log, 100, 1000, { batch: 50 });
    for (let burst = 0; burst < 6; burst++) {
      appendPending(log, 50);
      await tick();
    }
    await committer.flush();
    expect(await reader).toEqual(range(101, 1000));
    await committer.close();
  });
});

/** Appends to a store-backed log: the events are published by the group commit. */
function appendPending(log: EventLog, count: number): void {
  for (let i = 0; i < count; i++) log.append("t", text(`e${log.assignedSeq + 1}`));
}

