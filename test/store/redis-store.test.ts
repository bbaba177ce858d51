// The Redis store (issue #16) beyond the store contract it shares with the memory and SQLite
// stores (src/store/store.test.ts): leases taken by commits, what another node may not
// write, registry entries that cannot be read, and opening a Redis that is not there.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { type Event, EventSchema, TextDeltaSchema } from "../../src/events/event.js";
import { openStore, redisLocation } from "../../src/store/open-store.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { RedisStore } from "../../src/store/redis/redis-store.js";
import { StoreOpenError } from "../../src/store/sqlite-store.js";
import { type SessionRecord, SessionsFencedError, type StoredEvent } from "../../src/store/store.js";
import { freePort } from "../fixtures/free-port.js";
import { startRedis, type TestRedis } from "../fixtures/redis-server.js";

let server: TestRedis;
let redis: Redis;
let counter = 0;
const LEASE = { ttlMs: 600, marginMs: 200 };

beforeAll(async () => {
  server = await startRedis();
  redis = server.client();
});
afterAll(async () => server?.stop());

// Each test in a namespace of its own.
function storeOn(prefix: string, node: string): RedisStore {
  return new RedisStore(redis, { prefix, node, lease: LEASE, location: server.url });
}
const freshPrefix = () => `t${++counter}:`;

function event(seq: number): Event {
  return create(EventSchema, {
    seq: BigInt(seq),
    sessionId: "s1",
    turnId: "turn-1",
    time: timestampFromMs(1_700_000_000_000 + seq),
    payload: { case: "textDelta", value: create(TextDeltaSchema, { text: `text ${seq}` }) },
  });
}
const eventsOf = (key: string, from: number, to: number): StoredEvent[] => Array.from({ length: to - from + 1 }, (_, i) => ({ key, event: event(from + i) }));

function record(key: string, lastSeq: number): SessionRecord {
  return {
    key,
    tenant: "tenant",
    sessionId: key.split("/")[1]!,
    incarnation: "inc",
    provider: "claude-code",
    providerSessionId: "p",
    workDir: "/srv/w",
    config: create(SessionConfigSchema, { model: "sonnet" }),
    status: SessionStatus.READY,
    createdAtMs: 1,
    lastActiveMs: 2,
    stats: create(SessionStatsSchema, { turns: 3 }),
    pgid: 0,
    agentCommand: "",
    hasConversation: true,
    currentTurnId: "",
    lastSeq,
    extras: "",
  };
}

describe("the Redis store", () => {
  it("holds a lease on every session it writes: another node's commit is fenced until the holder gives it up, then continues the log", async () => {
    const prefix = freshPrefix();
    const a = storeOn(prefix, "node-a");
    const b = storeOn(prefix, "node-b");
    const key = "tenant/s1";
    await a.commit(eventsOf(key, 1, 3), [record(key, 3)]);
    await expect(b.commit(eventsOf(key, 4, 4), [])).rejects.toMatchObject({ name: "SessionsFencedError", keys: [key] });
    // Renewed in the background: still a's after several ttls.
    await new Promise((resolve) => setTimeout(resolve, LEASE.ttlMs * 3));
    await expect(b.commit(eventsOf(key, 4, 4), [])).rejects.toThrow(SessionsFencedError);
    expect((await b.readEvents(key, 0, 10)).map((e) => Number(e.seq))).toEqual([1, 2, 3]);
    await a.close();
    await b.commit(eventsOf(key, 4, 5), [record(key, 5)]);
    expect((await b.readEvents(key, 0, 10)).map((e) => Number(e.seq))).toEqual([1, 2, 3, 4, 5]);
    // Each event says which ownership period wrote it.
    const entries = await redis.xrange(sessionKeys(prefix, key).log, "-", "+");
    const epochs = entries.map(([, fields]) => Number(fields[fields.indexOf("ep") + 1]));
    expect(epochs.slice(0, 3).every((epoch) => epoch === epochs[0])).toBe(true);
    expect(epochs.slice(3).every((epoch) => epoch === epochs[3])).toBe(true);
    expect(epochs[3]).toBeGreaterThan(epochs[0]!);
    // The events carry it too: a client resumes with (seq, epoch).
    expect((await b.readEvents(key, 0, 10)).map((e) => Number(e.epoch))).toEqual(epochs);
    await b.close();
  });

  it("stores a retried commit once, and refuses one that would leave a gap: the writer is stale, the session lost", async () => {
    const prefix = freshPrefix();
    const store = storeOn(prefix, "node-a");
    const key = "tenant/s2";
    await store.commit(eventsOf(key, 1, 2), [record(key, 2)]);
    // The same batch again (a retry after an unknown outcome): nothing twice.
    await store.commit(eventsOf(key, 1, 2), [record(key, 2)]);
    expect((await store.readEvents(key, 0, 10)).map((e) => Number(e.seq))).toEqual([1, 2]);
    const lost: string[] = [];
    store.onLost = (lostKey, why) => lost.push(`${lostKey}: ${why}`);
    await expect(store.commit(eventsOf(key, 4, 4), [])).rejects.toMatchObject({ name: "SessionsFencedError", keys: [key] });
    expect(lost).toEqual([`${key}: the log ends at 2, not 3`]);
    expect((await store.readEvents(key, 0, 10)).map((e) => Number(e.seq))).toEqual([1, 2]);
    // Its hold is not renewed any more; a later commit waits for it to expire (as after a
    // restart of this node) and continues the log in a new epoch.
    await store.commit(eventsOf(key, 3, 3), []);
    const entries = await redis.xrange(sessionKeys(prefix, key).log, "-", "+");
    const epochs = entries.map(([, fields]) => Number(fields[fields.indexOf("ep") + 1]));
    expect(entries.map(([id]) => id)).toEqual(["1-0", "2-0", "3-0"]);
    expect(epochs[1]).toBe(epochs[0]);
    expect(epochs[2]).toBeGreaterThan(epochs[1]!);
    await store.close();
  });

  it("refuses store keys that could break the session's hash tag", async () => {
    const store = storeOn(freshPrefix(), "node-a");
    for (const bad of ["t/{s}", "t}/s", "t/s/x", "t"]) {
      await expect(store.commit([{ key: bad, event: event(1) }], []), bad).rejects.toThrow(RangeError);
      await expect(store.readEvents(bad, 0, 1), bad).rejects.toThrow(RangeError);
    }
    await store.close();
  });

  it("skips an indexed session that never got its entry, and names a damaged entry", async () => {
    const prefix = freshPrefix();
    const store = storeOn(prefix, "node-a");
    await store.commit([], [record("tenant/ok", 0)]);
    await redis.sadd(`${prefix}sessions`, "tenant/never-committed");
    expect((await store.loadSessions()).map((r) => r.key)).toEqual(["tenant/ok"]);
    await redis.set(sessionKeys(prefix, "tenant/damaged").meta, "{not json");
    await redis.sadd(`${prefix}sessions`, "tenant/damaged");
    await expect(store.loadSessions()).rejects.toThrow(/"tenant\/damaged"/);
    await redis.set(sessionKeys(prefix, "tenant/damaged").meta, JSON.stringify({ v: 1, key: 7 }));
    await expect(store.loadSessions()).rejects.toThrow(/field key is not a string/);
    await store.close();
  });

  it("lists a damaged audit entry as unreadable, saying so, and the others as they are", async () => {
    const prefix = freshPrefix();
    const store = storeOn(prefix, "node-a");
    const entry = { timeMs: 1_000, kind: "admin_action", principal: "ops", tenant: "t", sessionId: "s", method: "m", detail: "d" };
    await store.appendAudit(entry, 100);
    // Written by something else, or damaged: no JSON, and JSON that is no entry.
    await redis.incr(`${prefix}{audit}:id`);
    await redis.xadd(`${prefix}{audit}:log`, "2-0", "j", "{not json");
    await redis.incr(`${prefix}{audit}:id`);
    await redis.xadd(`${prefix}{audit}:log`, "3-0", "j", "[1, 2]");
    await store.appendAudit({ ...entry, detail: "after" }, 100);
    const listed = await store.readAudit(0, 10);
    expect(listed.map((r) => [r.id, r.kind])).toEqual([
      [1, "admin_action"],
      [2, "unreadable"],
      [3, "unreadable"],
      [4, "admin_action"],
    ]);
    expect(listed[1]?.detail).toMatch(/^audit entry 2 cannot be read: /);
    expect(listed[0]).toEqual({ ...entry, id: 1 });
    expect(listed[3]?.detail).toBe("after");
    await store.close();
  });

  it("keeps a session's epoch when it is deleted: the id used again goes on with higher epochs", async () => {
    const prefix = freshPrefix();
    const store = storeOn(prefix, "node-a");
    const key = "tenant/again";
    await store.commit(eventsOf(key, 1, 1), [record(key, 1)]);
    const epochOf = async () => {
      const [[, fields]] = (await redis.xrange(sessionKeys(prefix, key).log, "-", "+")) as [[string, string[]]];
      return Number(fields[fields.indexOf("ep") + 1]);
    };
    const before = await epochOf();
    await store.deleteSession(key);
    expect(await store.loadSessions()).toEqual([]);
    expect(await store.sessionBytes(key)).toBe(0);
    await redis.set(sessionKeys(prefix, key).epoch, String(before + 1_000_000));
    await store.commit(eventsOf(key, 1, 1), [record(key, 1)]);
    expect(await epochOf()).toBe(before + 1_000_001);
    await store.close();
  });

  it("fails to open with the address and no password when nothing answers", async () => {
    const port = await freePort();
    const error = await openStore(
      { kind: "redis", url: `redis://user:s3cret@127.0.0.1:${port}/2`, prefix: "hp:", nodeId: "n1", leaseTtlMs: 10_000, leaseMarginMs: 2_000 },
      { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreOpenError);
    expect((error as Error).message).toContain(`redis://127.0.0.1:${port}/2`);
    expect((error as Error).message).not.toContain("s3cret");
    expect(redisLocation("rediss://:pw@redis.example:6380")).toBe("rediss://redis.example:6380");
    expect(redisLocation("not a url")).not.toContain("not a url");
  });

  it("opens from its config, answers ping, and closes its own connection", async () => {
    const store = await openStore(
      { kind: "redis", url: server.url, prefix: freshPrefix(), nodeId: "n1", leaseTtlMs: 10_000, leaseMarginMs: 2_000 },
      { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 },
    );
    expect(store.kind).toBe("redis");
    expect(store.location).toBe(server.url);
    await store.ping();
    await store.close();
    await expect(store.ping()).rejects.toThrow();
  });
});
