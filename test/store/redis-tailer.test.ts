// One blocking connection tails many sessions' logs (issue #16): every event exactly once,
// in order, through a changing set of watches, trims and a redis-server killed with
// SIGKILL and restarted from its append-only file.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { SessionLease } from "../../src/store/redis/lease.js";
import { commitFenced, OutOfRangeError, type StoredBytes, trimLog } from "../../src/store/redis/stream-log.js";
import { StreamTailer, type TailWatch } from "../../src/store/redis/stream-tailer.js";
import { startRedis, type TestRedis } from "../fixtures/redis-server.js";
import { waitUntil } from "../harness.js";

let server: TestRedis;
let writer: Redis;
let counter = 0;
const TIMINGS = { ttlMs: 60_000, marginMs: 10_000 };
const OPTIONS = { prefix: "hp:", blockMs: 5_000, count: 500, retryMs: 50 };

beforeAll(async () => {
  server = await startRedis({ appendOnly: true });
  writer = server.client();
});
afterAll(async () => server?.stop());

/** A session with an owner, and what a watch of it received. */
async function session() {
  const keys = sessionKeys("hp:", `t/tail${++counter}`);
  const lease = (await SessionLease.acquire(writer, keys, "writer", TIMINGS))!;
  let next = 1;
  return {
    keys,
    async append(count: number) {
      const events = Array.from({ length: count }, (_, k) => Buffer.from(`${keys.log}#${next + k}`));
      await commitFenced(writer, keys, lease, next, events);
      next += count;
    },
    get lastSeq() {
      return next - 1;
    },
  };
}

function recorder(): TailWatch & { events: StoredBytes[]; errors: OutOfRangeError[] } {
  const events: StoredBytes[] = [];
  const errors: OutOfRangeError[] = [];
  return { events, errors, deliver: (batch) => events.push(...batch), failed: (error) => errors.push(error) };
}

const seqsOf = (events: StoredBytes[]) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);

describe("the stream tailer", () => {
  it("delivers every event of 100 sessions exactly once, in order, on one connection", async () => {
    const tailer = new StreamTailer(server.client(), server.client(), OPTIONS);
    try {
      const sessions = await Promise.all(Array.from({ length: 100 }, () => session()));
      const seen = sessions.map(() => recorder());
      sessions.forEach((s, k) => tailer.watch(s.keys.log, 0, seen[k]!));
      for (let round = 0; round < 5; round += 1) await Promise.all(sessions.map((s, k) => s.append(1 + ((k + round) % 7))));
      await waitUntil(() => sessions.every((s, k) => seen[k]!.events.length === s.lastSeq), 10_000, "every event delivered");
      sessions.forEach((s, k) => {
        expect(seqsOf(seen[k]!.events)).toEqual(range(1, s.lastSeq));
        expect(seen[k]!.events.map((e) => e.bytes.toString())).toEqual(range(1, s.lastSeq).map((seq) => `${s.keys.log}#${seq}`));
      });
    } finally {
      await tailer.close();
    }
  });

  it("takes a new watch at once, while a read is blocked, from the position it names", async () => {
    const tailer = new StreamTailer(server.client(), server.client(), { ...OPTIONS, blockMs: 60_000 });
    try {
      const idle = await session();
      tailer.watch(idle.keys.log, 0, recorder());
      // The tailer now blocks for up to a minute on the idle session alone.
      const busy = await session();
      await busy.append(10);
      const late = recorder();
      const started = Date.now();
      const stop = tailer.watch(busy.keys.log, 4, late);
      await waitUntil(() => late.events.length === 6, 5_000, "the new watch's events");
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(seqsOf(late.events)).toEqual(range(5, 10));
      // Stopped: nothing more arrives for it.
      stop();
      await busy.append(3);
      const other = recorder();
      tailer.watch(busy.keys.log, 10, other);
      await waitUntil(() => other.events.length === 3, 5_000, "a second watch");
      expect(late.events).toHaveLength(6);
    } finally {
      await tailer.close();
    }
  });

  it("ends a watch whose next events were trimmed, instead of skipping them", async () => {
    const tailer = new StreamTailer(server.client(), server.client(), OPTIONS);
    try {
      const s = await session();
      await s.append(10);
      await trimLog(writer, s.keys, 8);
      const behind = recorder();
      const ahead = recorder();
      tailer.watch(s.keys.log, 3, behind);
      tailer.watch(s.keys.log, 8, ahead);
      await waitUntil(() => behind.errors.length === 1 && ahead.events.length === 2, 5_000, "the trim reported");
      expect(behind.errors[0]).toMatchObject({ afterSeq: 3, firstSeq: 8 });
      expect(behind.events).toEqual([]);
      expect(seqsOf(ahead.events)).toEqual([9, 10]);
      await s.append(1);
      await waitUntil(() => ahead.events.length === 3, 5_000, "the next event");
      expect(behind.events).toEqual([]);
    } finally {
      await tailer.close();
    }
  });

  it("resumes where it was after redis-server is killed with SIGKILL and restarted: no gap, no repeat", async () => {
    const tailer = new StreamTailer(server.client(), server.client(), { ...OPTIONS, blockMs: 200 });
    try {
      const sessions = await Promise.all(Array.from({ length: 5 }, () => session()));
      const seen = sessions.map(() => recorder());
      sessions.forEach((s, k) => tailer.watch(s.keys.log, 0, seen[k]!));
      await Promise.all(sessions.map((s) => s.append(20)));
      await waitUntil(() => seen.every((r) => r.events.length === 20), 5_000, "the first events");
      await server.restart();
      // The writer's connection comes back too; its appends continue the logs.
      for (const deadline = Date.now() + 10_000; (await writer.ping().catch(() => "")) !== "PONG"; ) {
        if (Date.now() > deadline) throw new Error("redis did not come back");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await Promise.all(sessions.map((s) => s.append(15)));
      await waitUntil(() => seen.every((r) => r.events.length === 35), 10_000, "the events after the restart");
      for (const r of seen) expect(seqsOf(r.events)).toEqual(range(1, 35));
    } finally {
      await tailer.close();
    }
  });

  it("removes its doorbell when closed", async () => {
    const tailer = new StreamTailer(server.client(), server.client(), { ...OPTIONS, prefix: "doorbell-test:" });
    tailer.watch((await session()).keys.log, 0, recorder());
    for (let k = 0; k < 100 && (await writer.keys("doorbell-test:tailer:*")).length === 0; k += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await writer.keys("doorbell-test:tailer:*")).toHaveLength(1);
    await tailer.close();
    expect(await writer.keys("doorbell-test:tailer:*")).toEqual([]);
  });

  it("refuses a position that is not a seq", () => {
    const tailer = new StreamTailer(server.client(), server.client(), OPTIONS);
    for (const seq of [-1, 1.5, Number.NaN]) expect(() => tailer.watch("x", seq, recorder())).toThrow(RangeError);
    return tailer.close();
  });
});
