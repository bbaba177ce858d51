import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { type Event, EventSchema, TextDeltaSchema } from "../events/event.js";
import { encodeEvent } from "../events/encoded-event.js";
import { MemoryStore } from "./memory-store.js";
import { SCHEMA_VERSION } from "./migrations.js";
import { startRedis, type TestRedis } from "../../test/fixtures/redis-server.js";
import { RedisStore } from "./redis/redis-store.js";
import { SqliteStore, StoreOpenError } from "./sqlite-store.js";
import type { Retained, RetentionPolicy, SessionRecord, Store, StoredEvent } from "./store.js";

const NO_LIMITS: RetentionPolicy = { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 };
const K1 = "tenant/s1";
const K2 = "tenant/s2";

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), "hotplex-store-test-"));
}

function sessionIdOf(key: string): string {
  return key.slice(key.indexOf("/") + 1);
}

function event(key: string, seq: number, text = `text ${seq}`, timeMs = 1_700_000_000_000 + seq * 1000): Event {
  return create(EventSchema, {
    seq: BigInt(seq),
    sessionId: sessionIdOf(key),
    turnId: "turn-1",
    time: timestampFromMs(timeMs),
    payload: { case: "textDelta", value: create(TextDeltaSchema, { text }) },
  });
}

function events(key: string, from: number, to: number, timeMs?: (seq: number) => number): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (let seq = from; seq <= to; seq++) out.push({ key, event: event(key, seq, undefined, timeMs?.(seq)) });
  return out;
}

function record(key: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    key,
    tenant: "tenant",
    sessionId: sessionIdOf(key),
    incarnation: `inc-${key}`,
    provider: "claude-code",
    providerSessionId: `provider-${key}`,
    workDir: `/srv/work/${key}`,
    config: create(SessionConfigSchema, {
      workDir: `/srv/work/${key}`,
      model: "sonnet",
      permissionMode: "acceptEdits",
      allowedTools: ["Bash(git:*)", "Edit"],
      disallowedTools: ["WebFetch"],
      systemPrompt: "be brief",
      appendSystemPrompt: "and kind",
      idleTimeoutSeconds: 300,
    }),
    status: SessionStatus.READY,
    createdAtMs: 1_700_000_000_000,
    lastActiveMs: 1_700_000_100_000,
    stats: create(SessionStatsSchema, {
      turns: 3,
      failedTurns: 1,
      totalDurationMs: 12_345n,
      inputTokens: 1000n,
      outputTokens: 200n,
      costUsd: 0.25,
      toolCalls: 2,
      toolsUsed: { Bash: 2 },
      modifiedFiles: ["a"],
    }),
    pgid: 4242,
    agentCommand: "claude",
    hasConversation: true,
    currentTurnId: "turn-1",
    lastSeq: 0,
    extras: "",
    ...overrides,
  };
}

function seqs(list: readonly Event[]): number[] {
  return list.map((e) => Number(e.seq));
}

function expectSameEvents(actual: readonly Event[], expected: readonly Event[]): void {
  expect(seqs(actual)).toEqual(seqs(expected));
  actual.forEach((a, i) => {
    const b = expected[i];
    expect(b && equals(EventSchema, a, b), `event seq ${a.seq} round-trips`).toBe(true);
  });
}

/**
 * The store's records, each checked for its owner (a store many nodes share names this
 * node and its epoch; a store of one node names none) and then without it, so that the
 * same comparisons hold for every store.
 */
async function loadRecords(store: Store): Promise<SessionRecord[]> {
  return (await store.loadSessions()).map((loaded) => ownerChecked(store, loaded));
}

function ownerChecked(store: Store, { owner, ...rest }: SessionRecord): SessionRecord {
  if (store.node === undefined) expect(owner).toBeUndefined();
  else {
    expect(owner?.node).toBe(store.node);
    expect(owner?.epoch).toBeGreaterThanOrEqual(1);
  }
  return rest;
}

function byKey(records: readonly SessionRecord[]): Map<string, SessionRecord> {
  return new Map(records.map((r) => [r.key, r]));
}

/**
 * `moved` names exactly the sessions in `expected`, each with its expected first seq and,
 * as bytes, what the store reports holding of that session now.
 */
async function expectMoved(
  store: Store,
  moved: Map<string, Retained> | undefined,
  expected: readonly (readonly [string, number])[],
): Promise<void> {
  const want = new Map<string, Retained>();
  for (const [key, firstSeq] of expected) want.set(key, { firstSeq, bytes: await store.sessionBytes(key) });
  expect(moved).toEqual(want);
}

interface StoreKind {
  name: string;
  open: () => Store;
  /** The size the store accounts an event with for byte limits. */
  sizeOf: (event: Event) => number;
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// One redis-server for the file; each Redis store opened on it has a prefix of its own.
let redis: TestRedis | undefined;
let redisStores = 0;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => redis?.stop());

const kinds: StoreKind[] = [
  // Every store counts an event's encoded bytes: retain-bytes means the same in each.
  { name: "MemoryStore", open: () => new MemoryStore(NO_LIMITS), sizeOf: (e) => toBinary(EventSchema, e).length },
  {
    name: "SqliteStore",
    open: () => {
      const dir = tempDir();
      dirs.push(dir);
      return new SqliteStore(dir);
    },
    sizeOf: (e) => toBinary(EventSchema, e).length,
  },
  {
    name: "RedisStore",
    open: () =>
      new RedisStore(redis!.client(), {
        prefix: `contract${++redisStores}:`,
        node: "contract-node",
        lease: { ttlMs: 10_000, marginMs: 2_000 },
        location: redis!.url,
      }),
    sizeOf: (e) => toBinary(EventSchema, e).length,
  },
];

describe.each(kinds)("Store contract: $name", ({ open, sizeOf }) => {
  let store: Store;
  beforeEach(() => {
    store = open();
  });
  afterEach(async () => {
    await store.close();
  });

  it("commits events of two sessions and their records in one call", async () => {
    const batch = [...events(K1, 1, 3), ...events(K2, 1, 2)];
    await store.commit(batch, [record(K1, { lastSeq: 3 }), record(K2, { lastSeq: 2 })]);
    expectSameEvents(
      await store.readEvents(K1, 0, 100),
      batch.filter((e) => e.key === K1).map((e) => e.event),
    );
    expectSameEvents(
      await store.readEvents(K2, 0, 100),
      batch.filter((e) => e.key === K2).map((e) => e.event),
    );
    expect(byKey(await loadRecords(store))).toEqual(byKey([record(K1, { lastSeq: 3 }), record(K2, { lastSeq: 2 })]));
  });

  it("commits large batches of interleaved sessions whole (any batch size, rows in any order)", async () => {
    // Sizes around the store's rows-per-statement (16): under, at, over, several times over.
    for (const [i, size] of [1, 15, 16, 17, 33, 100].entries()) {
      const a = events(`${K1}-${i}`, 1, size);
      const b = events(`${K2}-${i}`, 1, size);
      const batch = a.flatMap((e, j) => [e, b[j] as StoredEvent]);
      await store.commit(batch, []);
      expectSameEvents(await store.readEvents(`${K1}-${i}`, 0, 1000), a.map((e) => e.event));
      expectSameEvents(await store.readEvents(`${K2}-${i}`, 0, 1000), b.map((e) => e.event));
    }
  });

  it("reads after a seq, up to a limit; an unknown key reads nothing", async () => {
    const batch = events(K1, 1, 10);
    await store.commit(batch, []);
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(seqs(await store.readEvents(K1, 7, 100))).toEqual([8, 9, 10]);
    expect(seqs(await store.readEvents(K1, 2, 3))).toEqual([3, 4, 5]);
    expect(await store.readEvents(K1, 10, 100)).toEqual([]);
    expect(await store.readEvents(K1, 0, 0)).toEqual([]);
    expect(await store.readEvents("tenant/unknown", 0, 100)).toEqual([]);
    expectSameEvents(
      await store.readEvents(K1, 4, 2),
      batch.slice(4, 6).map((e) => e.event),
    );
  });

  it("commits in several calls continue the same log", async () => {
    await store.commit(events(K1, 1, 2), []);
    await store.commit(events(K1, 3, 4), []);
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([1, 2, 3, 4]);
    expect(seqs(await store.readEvents(K1, 1, 2))).toEqual([2, 3]);
  });

  it("reports the first stored seq; undefined when there is none", async () => {
    expect(await store.firstSeq(K1)).toBeUndefined();
    // A log starts at 1 (a store shared by nodes refuses a gap at its start, as anywhere);
    // retention makes it start later.
    await store.commit(events(K1, 1, 7), [record(K1, { lastSeq: 7 })]);
    await store.compact({ ...NO_LIMITS, maxEvents: 3 }, Date.now());
    await store.commit([], [record(K2)]);
    expect(await store.firstSeq(K1)).toBe(5);
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([5, 6, 7]);
    expect(seqs(await store.readEvents(K1, 5, 100))).toEqual([6, 7]);
    expect(await store.firstSeq(K2)).toBeUndefined();
  });

  it("loads records equal to those committed; a commit replaces a record", async () => {
    expect(await loadRecords(store)).toEqual([]);
    const first = record(K1, { lastSeq: 2 });
    await store.commit(events(K1, 1, 2), [first]);
    const [loaded] = await loadRecords(store);
    expect(loaded).toEqual(first);
    expect(loaded && equals(SessionConfigSchema, loaded.config, first.config)).toBe(true);
    expect(loaded && equals(SessionStatsSchema, loaded.stats, first.stats)).toBe(true);

    const second = record(K1, {
      incarnation: "inc-2",
      providerSessionId: "provider-2",
      status: SessionStatus.DEAD,
      lastActiveMs: 1_700_000_200_000,
      pgid: 0,
      agentCommand: "",
      hasConversation: false,
      currentTurnId: "",
      lastSeq: 9,
      config: create(SessionConfigSchema, { model: "opus" }),
      stats: create(SessionStatsSchema, { turns: 4, toolsUsed: { Bash: 3, Edit: 1 }, modifiedFiles: ["a", "b"] }),
    });
    await store.commit([], [second]);
    expect(await loadRecords(store)).toEqual([second]);
  });

  it("keeps its own copy of a record", async () => {
    const mine = record(K1, { lastSeq: 1 });
    await store.commit([], [mine]);
    mine.lastSeq = 99;
    mine.stats.turns = 99;
    mine.config.model = "changed";
    expect(await loadRecords(store)).toEqual([record(K1, { lastSeq: 1 })]);
  });

  it("deletes one session's events and record only", async () => {
    await store.commit([...events(K1, 1, 3), ...events(K2, 1, 3)], [record(K1, { lastSeq: 3 }), record(K2, { lastSeq: 3 })]);
    await store.deleteSession(K1);
    expect(await store.readEvents(K1, 0, 100)).toEqual([]);
    expect(await store.firstSeq(K1)).toBeUndefined();
    expect((await loadRecords(store)).map((r) => r.key)).toEqual([K2]);
    expect(seqs(await store.readEvents(K2, 0, 100))).toEqual([1, 2, 3]);
    expect(await store.firstSeq(K2)).toBe(1);
    // Deleting an unknown session is harmless.
    await store.deleteSession("tenant/unknown");
    // The key can be used again from scratch.
    await store.commit(events(K1, 1, 1), [record(K1, { lastSeq: 1, incarnation: "again" })]);
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([1]);
  });

  it("compacts nothing when no limit is set or none is exceeded", async () => {
    await store.commit([...events(K1, 1, 5), ...events(K2, 1, 5)], [record(K1, { lastSeq: 5 }), record(K2, { lastSeq: 5 })]);
    expect(await store.compact(NO_LIMITS, Date.now())).toEqual(new Map());
    expect(await store.compact({ ...NO_LIMITS, maxEvents: 5, maxBytes: 1 << 20, totalMaxBytes: 1 << 20 }, Date.now())).toEqual(
      new Map(),
    );
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(await store.readEvents(K2, 0, 100))).toEqual([1, 2, 3, 4, 5]);
  });

  it("compacts to maxEvents per session", async () => {
    const batch = [...events(K1, 1, 10), ...events(K2, 1, 3)];
    await store.commit(batch, [record(K1, { lastSeq: 10 }), record(K2, { lastSeq: 3 })]);
    const moved = await store.compact({ ...NO_LIMITS, maxEvents: 4 }, Date.now());
    await expectMoved(store, moved, [[K1, 7]]);
    expect(await store.firstSeq(K1)).toBe(7);
    expectSameEvents(
      await store.readEvents(K1, 0, 100),
      batch.slice(6, 10).map((e) => e.event),
    );
    expect(seqs(await store.readEvents(K2, 0, 100))).toEqual([1, 2, 3]);
    // Compacting again moves nothing.
    expect(await store.compact({ ...NO_LIMITS, maxEvents: 4 }, Date.now())).toEqual(new Map());
  });

  it("compacts to maxBytes per session, keeping at least the newest event", async () => {
    const k1 = events(K1, 1, 10).map((e) => e.event);
    const k2 = [1, 2].map((seq) => event(K2, seq, "x"));
    await store.commit(
      [...k1.map((e) => ({ key: K1, event: e })), ...k2.map((e) => ({ key: K2, event: e }))],
      [record(K1, { lastSeq: 10 }), record(K2, { lastSeq: 2 })],
    );
    const newestThree = k1.slice(7).reduce((sum, e) => sum + sizeOf(e), 0);
    const allOfK2 = k2.reduce((sum, e) => sum + sizeOf(e), 0);
    expect(allOfK2).toBeLessThan(newestThree - 1);

    // Exactly the newest three fit.
    await expectMoved(store, await store.compact({ ...NO_LIMITS, maxBytes: newestThree }, Date.now()), [[K1, 8]]);
    expectSameEvents(await store.readEvents(K1, 0, 100), k1.slice(7));
    expectSameEvents(await store.readEvents(K2, 0, 100), k2);

    // One byte less leaves two.
    await expectMoved(store, await store.compact({ ...NO_LIMITS, maxBytes: newestThree - 1 }, Date.now()), [[K1, 9]]);
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([9, 10]);

    // Even one byte keeps the newest event of each session.
    await expectMoved(store, await store.compact({ ...NO_LIMITS, maxBytes: 1 }, Date.now()), [
      [K1, 10],
      [K2, 2],
    ]);
    expectSameEvents(await store.readEvents(K1, 0, 100), k1.slice(9));
    expectSameEvents(await store.readEvents(K2, 0, 100), k2.slice(1));
    // A session down to its newest event, over the limit on its own, has not moved.
    expect(await store.compact({ ...NO_LIMITS, maxBytes: 1 }, Date.now())).toEqual(new Map());
    expect(await store.firstSeq(K1)).toBe(10);
  });

  it("compacts events older than maxAgeMs, by event time", async () => {
    const now = 1_700_000_100_000;
    // K1: one event per second, seq 1 at now - 10 s ... seq 10 at now - 1 s.
    const k1 = events(K1, 1, 10, (seq) => now - (11 - seq) * 1000);
    const k2 = events(K2, 1, 2, (seq) => now - (3 - seq) * 1000);
    await store.commit([...k1, ...k2], [record(K1, { lastSeq: 10 }), record(K2, { lastSeq: 2 })]);
    // Older than 4.5 s: seq 1..6 (10 s .. 5 s old).
    const moved = await store.compact({ ...NO_LIMITS, maxAgeMs: 4500 }, now);
    await expectMoved(store, moved, [[K1, 7]]);
    expectSameEvents(
      await store.readEvents(K1, 0, 100),
      k1.slice(6).map((e) => e.event),
    );
    expect(seqs(await store.readEvents(K2, 0, 100))).toEqual([1, 2]);

    // Everything expired: the new first seq is the record's lastSeq + 1.
    await expectMoved(store, await store.compact({ ...NO_LIMITS, maxAgeMs: 500 }, now + 60_000), [
      [K1, 11],
      [K2, 3],
    ]);
    expect(await store.readEvents(K1, 0, 100)).toEqual([]);
    expect(await store.firstSeq(K1)).toBeUndefined();
    expect(await store.firstSeq(K2)).toBeUndefined();
    // Records stay.
    expect(await loadRecords(store)).toHaveLength(2);
  });

  it("compacts by age only a session's oldest prefix, even when its clock stepped back", async () => {
    const now = 1_700_000_100_000;
    // seq 1..2 are old, seq 3 is young, seq 4 was stamped by a clock set far back.
    const times = [now - 10_000, now - 9_000, now - 1_000, now - 60_000, now];
    await store.commit(events(K1, 1, 5, (seq) => times[seq - 1] ?? now), [record(K1, { lastSeq: 5 })]);
    // The prefix before the first young event goes; seq 4 stays, or the log would have a hole.
    await expectMoved(store, await store.compact({ ...NO_LIMITS, maxAgeMs: 5_000 }, now), [[K1, 3]]);
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([3, 4, 5]);
  });

  it("compacts to totalMaxBytes, oldest events across sessions first", async () => {
    const base = 1_700_000_000_000;
    // Interleaved in time: K1 at 1, 3, 5, 7 s; K2 at 2, 4, 6, 8 s.
    const k1 = events(K1, 1, 4, (seq) => base + (2 * seq - 1) * 1000);
    const k2 = events(K2, 1, 4, (seq) => base + 2 * seq * 1000);
    await store.commit([...k1, ...k2], [record(K1, { lastSeq: 4 }), record(K2, { lastSeq: 4 })]);
    // Room for the five newest: K2 seq 2..4 and K1 seq 3..4.
    const keep = [...k1.slice(2), ...k2.slice(1)].reduce((sum, e) => sum + sizeOf(e.event), 0);
    const moved = await store.compact({ ...NO_LIMITS, totalMaxBytes: keep }, base + 10_000);
    await expectMoved(store, moved, [
      [K1, 3],
      [K2, 2],
    ]);
    expectSameEvents(
      await store.readEvents(K1, 0, 100),
      k1.slice(2).map((e) => e.event),
    );
    expectSameEvents(
      await store.readEvents(K2, 0, 100),
      k2.slice(1).map((e) => e.event),
    );

    // One byte: nothing fits, everything goes; the first seq moves past the last.
    await expectMoved(store, await store.compact({ ...NO_LIMITS, totalMaxBytes: 1 }, base + 10_000), [
      [K1, 5],
      [K2, 5],
    ]);
    expect(await store.readEvents(K1, 0, 100)).toEqual([]);
    expect(await store.readEvents(K2, 0, 100)).toEqual([]);
  });

  it("compacts to totalMaxBytes without dropping more than needed when times tie", async () => {
    const at = 1_700_000_000_000;
    // Many events share a millisecond (a streaming turn); all the same size.
    const k1 = events(K1, 1, 6, () => at);
    const k2 = events(K2, 1, 6, () => at);
    await store.commit([...k1, ...k2], [record(K1, { lastSeq: 6 }), record(K2, { lastSeq: 6 })]);
    // As stored (a store many nodes share stamps each event with its writer's epoch).
    const size = sizeOf(k1[0]!.event);
    for (const e of [...k1, ...k2]) expect(sizeOf(e.event)).toBe(size);
    await store.compact({ ...NO_LIMITS, totalMaxBytes: size * 8 }, at);
    const left = [...await store.readEvents(K1, 0, 100), ...await store.readEvents(K2, 0, 100)];
    expect(left).toHaveLength(8);
    // Each session keeps a contiguous suffix of its log.
    for (const key of [K1, K2]) {
      const kept = seqs(await store.readEvents(key, 0, 100));
      const first = await store.firstSeq(key) ?? 7;
      expect(kept).toEqual([1, 2, 3, 4, 5, 6].filter((seq) => seq >= first));
    }
  });

  it("reports a session without a record as starting over at 1 when everything is dropped", async () => {
    await store.commit(events(K1, 1, 2, () => 1000), []);
    await expectMoved(store, await store.compact({ ...NO_LIMITS, maxAgeMs: 1 }, 10_000), [[K1, 1]]);
  });

  it("loads one record by key; undefined for a key without one and after a delete", async () => {
    expect(await store.loadSession(K1)).toBeUndefined();
    await store.commit(events(K1, 1, 2), [record(K1, { lastSeq: 2 }), record(K2, { lastSeq: 0 })]);
    expect(ownerChecked(store, (await store.loadSession(K1))!)).toEqual(record(K1, { lastSeq: 2 }));
    expect(await store.loadSession("tenant/unknown")).toBeUndefined();
    await store.deleteSession(K1);
    expect(await store.loadSession(K1)).toBeUndefined();
    expect((await store.loadSession(K2))?.key).toBe(K2);
  });

  it("answers ping on an open store", async () => {
    await expect(store.ping()).resolves.toBeUndefined();
    await store.commit(events(K1, 1, 2), [record(K1, { lastSeq: 2 })]);
    await expect(store.ping()).resolves.toBeUndefined();
  });
});

describe("MemoryStore", async () => {
  it("applies its per-session limits as it commits and reports what moved", async () => {
    const store = new MemoryStore({ ...NO_LIMITS, maxEvents: 3 });
    expect(await store.commit(events(K1, 1, 3), [])).toEqual(new Map());
    await expectMoved(store, await store.commit([...events(K1, 4, 5), ...events(K2, 1, 2)], []), [[K1, 3]]);
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([3, 4, 5]);
    expect(seqs(await store.readEvents(K2, 0, 100))).toEqual([1, 2]);
  });

  it("reports the bytes a session holds after the whole batch, when an event after a trim added some", async () => {
    const big = (seq: number) => ({ key: K1, event: event(K1, seq, "x".repeat(100)) });
    const small = { key: K1, event: event(K1, 3, "y") };
    const size = (e: Event) => toBinary(EventSchema, e).length;
    // Room for one big event and the small one: the second big event trims the first, and
    // the small third one adds bytes after that trim.
    const store = new MemoryStore({ ...NO_LIMITS, maxBytes: size(big(2).event) + size(small.event) });
    const moved = await store.commit([big(1), big(2), small], []);
    expect(moved.get(K1)).toEqual({ firstSeq: 2, bytes: await store.sessionBytes(K1) });
    expect(seqs(await store.readEvents(K1, 0, 100))).toEqual([2, 3]);
  });
});

describe("SqliteStore", async () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps events and records across close and reopen", async () => {
    const batch = [...events(K1, 1, 5), ...events(K2, 1, 2)];
    const store = new SqliteStore(dir, "full");
    await store.commit(batch, [record(K1, { lastSeq: 5 }), record(K2, { lastSeq: 2 })]);
    await store.close();

    const reopened = new SqliteStore(dir);
    try {
      expectSameEvents(
        await reopened.readEvents(K1, 0, 100),
        batch.filter((e) => e.key === K1).map((e) => e.event),
      );
      expect(await reopened.firstSeq(K2)).toBe(1);
      expect(byKey(await reopened.loadSessions())).toEqual(byKey([record(K1, { lastSeq: 5 }), record(K2, { lastSeq: 2 })]));
      // Writes continue where they left off.
      await reopened.commit(events(K1, 6, 6), [record(K1, { lastSeq: 6 })]);
      expect(seqs(await reopened.readEvents(K1, 4, 100))).toEqual([5, 6]);
    } finally {
      await reopened.close();
    }
  });

  it("reads events back with their stored bytes as their encoding (no re-encoding on replay)", async () => {
    const store = new SqliteStore(dir);
    try {
      const written = events(K1, 1, 3);
      await store.commit(written, []);
      const read = await store.readEvents(K1, 0, 100);
      expectSameEvents(read, written.map((e) => e.event));
      for (const [i, event] of read.entries()) {
        expect(Buffer.from(encodeEvent(event))).toEqual(Buffer.from(toBinary(EventSchema, written[i]!.event)));
      }
    } finally {
      await store.close();
    }
  });

  it("names its file as its location and creates the data directory", async () => {
    const nested = path.join(dir, "a", "b");
    const store = new SqliteStore(nested);
    try {
      expect(store.kind).toBe("sqlite");
      expect(store.location).toBe(path.join(nested, "hotplex.db"));
    } finally {
      await store.close();
    }
  });

  it("uses WAL journaling (seen from another connection)", async () => {
    const store = new SqliteStore(dir);
    try {
      await store.commit(events(K1, 1, 1), []);
      const other = new Database(path.join(dir, "hotplex.db"), { readonly: true });
      try {
        expect(other.pragma("journal_mode", { simple: true })).toBe("wal");
        expect(other.prepare("SELECT COUNT(*) AS n FROM events").get()).toEqual({ n: 1 });
      } finally {
        other.close();
      }
    } finally {
      await store.close();
    }
  });

  it.each([
    ["full", 2],
    ["normal", 1],
  ] as const)("durability %s sets synchronous = %i on its connection", async (durability, expected) => {
    // synchronous is per connection: read it on the store's own connection, caught
    // through the pragma calls the store makes.
    const pragma = vi.spyOn(Database.prototype, "pragma");
    const store = new SqliteStore(dir, durability);
    try {
      const connection = pragma.mock.contexts[0] as Database.Database;
      pragma.mockRestore();
      expect(connection.pragma("synchronous", { simple: true })).toBe(expected);
      expect(connection.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      await store.close();
    }
  });

  it("refuses a file that is not a database, naming the file", async () => {
    const file = path.join(dir, "hotplex.db");
    writeFileSync(file, "not a database at all".repeat(100));
    const error = await openError(dir);
    expect(error).toBeInstanceOf(StoreOpenError);
    expect((error as Error).message).toContain(file);
  });

  it("refuses a directory where the file should be, naming the path", async () => {
    const file = path.join(dir, "hotplex.db");
    mkdirSync(file);
    expect(() => new SqliteStore(dir)).toThrow(StoreOpenError);
    expect(() => new SqliteStore(dir)).toThrow(file);
  });

  it("refuses a database written by a newer schema version", async () => {
    const file = path.join(dir, "hotplex.db");
    await new SqliteStore(dir).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const error = await openError(dir);
    expect(error).toBeInstanceOf(StoreOpenError);
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toContain("newer");
  });

  it.skipIf(!existsSync("/proc/self/fd"))("does not keep a refused file open", async () => {
    const file = path.join(dir, "hotplex.db");
    const openHandles = () =>
      readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return readlinkSync(path.join("/proc/self/fd", fd)).startsWith(file);
        } catch {
          return false;
        }
      }).length;
    await new SqliteStore(dir).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(openHandles()).toBe(0);
    expect(() => new SqliteStore(dir)).toThrow(StoreOpenError);
    expect(openHandles()).toBe(0);
  });

  it("migrates a version 1 database: drops the time index, adds the audit log, keeps every event and record", async () => {
    const file = path.join(dir, "hotplex.db");
    const store = new SqliteStore(dir);
    await store.commit(events(K1, 1, 3), [record(K1, { lastSeq: 3 })]);
    await store.close();
    // Version 1 had an index on events.time_ms.
    const v1 = new Database(file);
    v1.exec("CREATE INDEX events_by_time ON events (time_ms)");
    v1.exec("DROP TABLE audit");
    v1.exec("ALTER TABLE sessions DROP COLUMN extras");
    v1.pragma("user_version = 1");
    v1.close();

    await expectKeptOnReopen(dir);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
      expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'events_by_time'").all()).toEqual([]);
    } finally {
      db.close();
    }
  });

  it("migrates a fresh database once, to SCHEMA_VERSION, and keeps data on reopen", async () => {
    const file = path.join(dir, "hotplex.db");
    const store = new SqliteStore(dir);
    await store.commit(events(K1, 1, 3), [record(K1, { lastSeq: 3 })]);
    await store.close();
    const version = () => {
      const db = new Database(file, { readonly: true });
      try {
        return db.pragma("user_version", { simple: true });
      } finally {
        db.close();
      }
    };
    expect(version()).toBe(SCHEMA_VERSION);

    // Reopening does not run the migrations again (they would fail on existing tables).
    await expectKeptOnReopen(dir);
    expect(version()).toBe(SCHEMA_VERSION);
  });
});

/** Reopens the store in `dir`: it still holds K1's events 1..3 and its record. */
async function expectKeptOnReopen(dir: string): Promise<void> {
  const reopened = new SqliteStore(dir);
  try {
    expect(seqs(await reopened.readEvents(K1, 0, 100))).toEqual([1, 2, 3]);
    expect(await reopened.loadSessions()).toEqual([record(K1, { lastSeq: 3 })]);
  } finally {
    await reopened.close();
  }
}

/** The error opening a SqliteStore on `dir` throws (undefined if it opens). */
async function openError(dir: string): Promise<unknown> {
  try {
    await new SqliteStore(dir).close();
    return undefined;
  } catch (error) {
    return error;
  }
}
