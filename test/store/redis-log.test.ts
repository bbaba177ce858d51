// The Redis building blocks of scale-out (issue #16): leases with epochs, the fenced
// append, reads that detect trimming and lost tails, against a real redis-server.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { type LeaseTimings, SessionLease } from "../../src/store/redis/lease.js";
import { AheadOfLogError, commitFenced, FencedError, lastGeneratedSeq, MAX_BATCH, OutOfRangeError, readLog, readMeta, SeqError, trimLog } from "../../src/store/redis/stream-log.js";
import { startRedis, type TestRedis } from "../fixtures/redis-server.js";

let server: TestRedis;
let redis: Redis;
let other: Redis;
let counter = 0;
const TIMINGS: LeaseTimings = { ttlMs: 10_000, marginMs: 3_000 };
const fresh = () => sessionKeys("hp:", `t1/s${++counter}`);
const bytes = (text: string) => Buffer.from(text, "utf8");

beforeAll(async () => {
  server = await startRedis();
  redis = server.client();
  other = server.client();
});
afterAll(async () => server?.stop());

describe("session keys", () => {
  it("put every key of a session under one hash tag, and refuse what would break it", () => {
    const keys = sessionKeys("hp:", "tenant-a/session.1:x");
    const tags = Object.values(keys).map((key) => /\{([^}]*)\}/.exec(key)?.[1]);
    expect(new Set(tags)).toEqual(new Set(["tenant-a/session.1:x"]));
    for (const bad of ["t/{s}", "t/s}", "{t}/s", "t", "t/", "/s", "t/s/x", "t/s\n", "t/" + "s".repeat(129), ""]) {
      expect(() => sessionKeys("hp:", bad), bad).toThrow(RangeError);
    }
  });
});

describe("a session's lease", () => {
  it("goes to exactly one of many nodes asking at once, with an epoch that only grows", async () => {
    const keys = fresh();
    const leases = await Promise.all(Array.from({ length: 40 }, (_, k) => SessionLease.acquire(k % 2 ? redis : other, keys, `n${k}`, TIMINGS)));
    const won = leases.filter((lease) => lease !== undefined);
    expect(won).toHaveLength(1);
    // At least Redis's clock in ms (see ACQUIRE).
    const [seconds] = await redis.time();
    expect(won[0]!.epoch).toBeGreaterThan((Number(seconds) - 60) * 1000);
    expect(await won[0]!.release()).toBe(true);
    const next = await SessionLease.acquire(redis, keys, "n2", TIMINGS);
    expect(next!.epoch).toBeGreaterThan(won[0]!.epoch);
    expect(next?.token).toMatch(new RegExp(`^${next!.epoch}:n2:[0-9a-f-]{36}$`));
  });

  it("never gives an epoch out twice, even after a failover rolled its counter back", async () => {
    const keys = fresh();
    const first = (await SessionLease.acquire(redis, keys, "a", TIMINGS))!;
    // Many acquisitions within one millisecond still rise by one.
    await redis.set(keys.epoch, String(first.epoch + 1_000_000));
    await first.release();
    const ahead = (await SessionLease.acquire(redis, keys, "a", TIMINGS))!;
    expect(ahead.epoch).toBe(first.epoch + 1_000_001);
    await ahead.release();
    // A promoted replica that had not seen the acquisitions: the counter is back at 1. (A
    // failover takes time: Redis's clock has moved past the first acquisition.)
    await redis.set(keys.epoch, "1");
    const redisMs = async () => {
      const [seconds, micros] = await redis.time();
      return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    };
    while ((await redisMs()) <= first.epoch) await new Promise((resolve) => setTimeout(resolve, 1));
    const after = (await SessionLease.acquire(redis, keys, "b", TIMINGS))!;
    expect(after.epoch).toBeGreaterThan(first.epoch);
  });

  it("cannot be renewed or released by a holder it was taken from", async () => {
    const keys = fresh();
    const first = (await SessionLease.acquire(redis, keys, "a", { ttlMs: 150, marginMs: 50 }))!;
    // Until it expires, nobody else gets it.
    expect(await SessionLease.acquire(other, keys, "b", TIMINGS)).toBeUndefined();
    let second: SessionLease | undefined;
    while (!(second = await SessionLease.acquire(other, keys, "b", TIMINGS))) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(second.epoch).toBeGreaterThan(first.epoch);
    expect(await first.renew()).toBe(false);
    expect(await first.release()).toBe(false);
    expect(await redis.get(keys.lease)).toBe(second.token);
    expect(await second.renew()).toBe(true);
  });

  it("tells its holder to stop before anyone else can take it over (self-fencing)", async () => {
    const keys = fresh();
    let now = 1_000;
    const lease = (await SessionLease.acquire(redis, keys, "a", { ttlMs: 300, marginMs: 100 }, () => now))!;
    // Deadline: from when the acquire was sent, the ttl less the margin.
    expect(lease.mustStopBy).toBe(1_200);
    expect(lease.valid).toBe(true);
    now = 1_150;
    expect(await lease.renew()).toBe(true);
    expect(lease.mustStopBy).toBe(1_350);
    now = 1_350;
    expect(lease.valid).toBe(false);
    // The real clock: another node gets it only after the holder's deadline passed.
    const real = (await SessionLease.acquire(redis, fresh(), "a", { ttlMs: 300, marginMs: 100 }))!;
    const realKeys = sessionKeys("hp:", `t1/s${counter}`);
    let takenAt = 0;
    while (!(await SessionLease.acquire(other, realKeys, "b", TIMINGS))) await new Promise((resolve) => setTimeout(resolve, 5));
    takenAt = performance.now();
    expect(takenAt).toBeGreaterThan(real.mustStopBy);
  });

  it("refuses node ids and timings that would break the token or the fencing", async () => {
    const keys = fresh();
    for (const node of ["", "a:b", "a b", "x".repeat(65), "n\n"]) await expect(SessionLease.acquire(redis, keys, node, TIMINGS), node).rejects.toThrow(RangeError);
    for (const timings of [{ ttlMs: 10, marginMs: 0 }, { ttlMs: 1000, marginMs: 1000 }, { ttlMs: 1000, marginMs: -1 }, { ttlMs: 1.5e9, marginMs: 0 }, { ttlMs: Number.NaN, marginMs: 0 }]) {
      await expect(SessionLease.acquire(redis, keys, "a", timings), JSON.stringify(timings)).rejects.toThrow(RangeError);
    }
    expect(await redis.exists(keys.lease, keys.epoch)).toBe(0);
  });
});

describe("the fenced append", () => {
  it("stores events under seqs 1..N with their bytes and the writer's epoch, read back in pages", async () => {
    const keys = fresh();
    const lease = (await SessionLease.acquire(redis, keys, "a", TIMINGS))!;
    const events = Array.from({ length: MAX_BATCH + 90 }, (_, k) => Buffer.from([k & 0xff, 0, 0xff, 10, 13, (k >> 8) & 0xff]));
    expect(await commitFenced(redis, keys, lease, 1, events)).toBe(events.length);
    const read = [];
    for (let page = await readLog(redis, keys, 0, 100); page.length > 0; page = await readLog(redis, keys, read.length, 100)) read.push(...page);
    expect(read.map((e) => e.seq)).toEqual(events.map((_, k) => k + 1));
    expect(read.map((e) => e.bytes)).toEqual(events);
    expect(new Set(read.map((e) => e.epoch))).toEqual(new Set([lease.epoch]));
  });

  it("stores nothing twice when a batch is sent again after an unknown outcome", async () => {
    const keys = fresh();
    const lease = (await SessionLease.acquire(redis, keys, "a", TIMINGS))!;
    const batch = [bytes("one"), bytes("two")];
    expect(await commitFenced(redis, keys, lease, 1, batch)).toBe(2);
    expect(await commitFenced(redis, keys, lease, 1, batch)).toBe(0);
    expect(await commitFenced(redis, keys, lease, 3, [bytes("three")])).toBe(1);
    expect((await readLog(redis, keys, 0, 10)).map((e) => e.bytes.toString())).toEqual(["one", "two", "three"]);
  });

  it("refuses a gap or an overlap, and writes nothing of it", async () => {
    const keys = fresh();
    const lease = (await SessionLease.acquire(redis, keys, "a", TIMINGS))!;
    await expect(commitFenced(redis, keys, lease, 2, [bytes("x")])).rejects.toThrow(SeqError);
    await commitFenced(redis, keys, lease, 1, [bytes("a"), bytes("b")]);
    await expect(commitFenced(redis, keys, lease, 2, [bytes("b"), bytes("c")])).rejects.toThrow(/ends at 2/);
    await expect(commitFenced(redis, keys, lease, 5, [bytes("e")])).rejects.toThrow(SeqError);
    expect(await lastGeneratedSeq(redis, keys)).toBe(2);
    for (const seq of [0, -1, 1.5, Number.NaN]) await expect(commitFenced(redis, keys, lease, seq, [bytes("x")])).rejects.toThrow(RangeError);
  });

  it("is refused to a node whose lease was taken over, and to one past its own deadline", async () => {
    const keys = fresh();
    const old = (await SessionLease.acquire(redis, keys, "a", { ttlMs: 150, marginMs: 50 }))!;
    await commitFenced(redis, keys, old, 1, [bytes("by a")]);
    // Past its deadline the old owner refuses to write on its own, before Redis is asked.
    while (old.valid) await new Promise((resolve) => setTimeout(resolve, 10));
    await expect(commitFenced(redis, keys, old, 2, [bytes("late")])).rejects.toThrow(FencedError);
    let next: SessionLease | undefined;
    while (!(next = await SessionLease.acquire(other, keys, "b", TIMINGS))) await new Promise((resolve) => setTimeout(resolve, 10));
    await commitFenced(other, keys, next, 2, [bytes("by b")]);
    // A holder that ignores its deadline (a paused process with a stale view) is refused by Redis.
    const stale = Object.create(old, { valid: { value: true } }) as SessionLease;
    await expect(commitFenced(redis, keys, stale, 3, [bytes("zombie")])).rejects.toThrow(FencedError);
    const log = await readLog(redis, keys, 0, 10);
    expect(log.map((e) => [e.seq, e.bytes.toString(), e.epoch])).toEqual([
      [1, "by a", old.epoch],
      [2, "by b", next.epoch],
    ]);
  });

  it("keeps seqs dense and each epoch to one writer when two nodes race for a session", async () => {
    const keys = fresh();
    const timings = { ttlMs: 200, marginMs: 60 };
    const writers = ["a", "b"].map((node, k) => ({ node, redis: k === 0 ? redis : other }));
    const byEpoch = new Map<number, string>();
    let next = 1;
    const deadline = Date.now() + 1_500;
    await Promise.all(
      writers.map(async ({ node, redis: client }) => {
        while (Date.now() < deadline) {
          const lease = await SessionLease.acquire(client, keys, node, timings);
          if (!lease) {
            await new Promise((resolve) => setTimeout(resolve, 5));
            continue;
          }
          byEpoch.set(lease.epoch, node);
          // Write a few events, then stop renewing: the other node takes over.
          for (let k = 0; k < 5 && lease.valid; k += 1) {
            const seq = (await lastGeneratedSeq(client, keys)) + 1;
            try {
              await commitFenced(client, keys, lease, seq, [bytes(`${node}:${lease.epoch}:${seq}`)]);
              next = Math.max(next, seq + 1);
            } catch (error) {
              if (!(error instanceof FencedError || error instanceof SeqError)) throw error;
            }
          }
          while (lease.valid) await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }),
    );
    const log = await readLog(redis, keys, 0, 10_000);
    expect(log.length).toBeGreaterThan(5);
    expect(log.map((e) => e.seq)).toEqual(log.map((_, k) => k + 1));
    for (let k = 1; k < log.length; k += 1) expect(log[k]!.epoch).toBeGreaterThanOrEqual(log[k - 1]!.epoch);
    for (const event of log) expect(event.bytes.toString().split(":")[0]).toBe(byEpoch.get(event.epoch));
    expect(new Set(log.map((e) => e.epoch)).size).toBeGreaterThan(1);
  });
});

describe("the registry entry committed with the events", () => {
  it("is stored with its batch or not at all, and a retried older batch never overwrites a newer one", async () => {
    const keys = fresh();
    const lease = (await SessionLease.acquire(redis, keys, "a", TIMINGS))!;
    expect(await readMeta(redis, keys)).toBeUndefined();
    await commitFenced(redis, keys, lease, 1, [bytes("e1"), bytes("e2")], bytes("meta@2"));
    expect((await readMeta(redis, keys))?.toString()).toBe("meta@2");
    await commitFenced(redis, keys, lease, 3, [bytes("e3")], bytes("meta@3"));
    // The first batch again (its outcome was unknown): nothing is written, the entry stays.
    expect(await commitFenced(redis, keys, lease, 1, [bytes("e1"), bytes("e2")], bytes("meta@2"))).toBe(0);
    expect((await readMeta(redis, keys))?.toString()).toBe("meta@3");
    // A gap writes neither.
    await expect(commitFenced(redis, keys, lease, 9, [bytes("e9")], bytes("meta@9"))).rejects.toThrow(SeqError);
    expect((await readMeta(redis, keys))?.toString()).toBe("meta@3");
    // The entry alone (a checkpoint with no new events), under the lease.
    expect(await commitFenced(redis, keys, lease, 4, [], bytes("meta@3'"))).toBe(0);
    expect((await readMeta(redis, keys))?.toString()).toBe("meta@3'");
    await expect(commitFenced(redis, keys, lease, 4, [], Buffer.alloc(0))).rejects.toThrow(RangeError);
    // A batch past one script's limit: the entry goes with its last part.
    const many = Array.from({ length: MAX_BATCH * 2 + 3 }, (_, k) => bytes(`m${k}`));
    await commitFenced(redis, keys, lease, 4, many, bytes("meta@big"));
    expect(await lastGeneratedSeq(redis, keys)).toBe(3 + many.length);
    expect((await readMeta(redis, keys))?.toString()).toBe("meta@big");
  });

  it("is refused with its events to a node that lost the lease", async () => {
    const keys = fresh();
    const old = (await SessionLease.acquire(redis, keys, "a", { ttlMs: 150, marginMs: 50 }))!;
    await commitFenced(redis, keys, old, 1, [bytes("by a")], bytes("meta by a"));
    let next: SessionLease | undefined;
    while (!(next = await SessionLease.acquire(other, keys, "b", TIMINGS))) await new Promise((resolve) => setTimeout(resolve, 10));
    const stale = Object.create(old, { valid: { value: true } }) as SessionLease;
    await expect(commitFenced(redis, keys, stale, 2, [], bytes("meta by a, late"))).rejects.toThrow(FencedError);
    expect((await readMeta(redis, keys))?.toString()).toBe("meta by a");
  });
});

describe("reading the log", () => {
  it("reports trimmed events instead of skipping them, and a reader past the log's end", async () => {
    const keys = fresh();
    const lease = (await SessionLease.acquire(redis, keys, "a", TIMINGS))!;
    await commitFenced(redis, keys, lease, 1, Array.from({ length: 10 }, (_, k) => bytes(`e${k + 1}`)));
    await trimLog(redis, keys, 6);
    await expect(readLog(redis, keys, 0, 5)).rejects.toThrow(OutOfRangeError);
    await expect(readLog(redis, keys, 4, 5)).rejects.toMatchObject({ afterSeq: 4, firstSeq: 6 });
    expect((await readLog(redis, keys, 5, 100)).map((e) => e.seq)).toEqual([6, 7, 8, 9, 10]);
    // A limit that is no number reads one event, never an error from Redis.
    for (const limit of [Number.NaN, Infinity, -5, 0]) expect((await readLog(redis, keys, 5, limit)).map((e) => e.seq), String(limit)).toEqual([6]);
    expect(await readLog(redis, keys, 10, 100)).toEqual([]);
    // Trimmed to nothing: the ids stay, so a reader behind is told, one at the end is not.
    await trimLog(redis, keys, 11);
    await expect(readLog(redis, keys, 3, 100)).rejects.toMatchObject({ firstSeq: 11 });
    expect(await readLog(redis, keys, 10, 100)).toEqual([]);
    expect(await commitFenced(redis, keys, lease, 11, [bytes("e11")])).toBe(1);
    // A seq the log never had (a failover lost its tail): refused, never served.
    await expect(readLog(redis, keys, 12, 100)).rejects.toThrow(AheadOfLogError);
    await expect(readLog(redis, fresh(), 3, 100)).rejects.toMatchObject({ lastSeq: 0 });
    for (const seq of [-1, 0.5, Number.NaN]) await expect(readLog(redis, keys, seq, 10)).rejects.toThrow(RangeError);
  });
});
