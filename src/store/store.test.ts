import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { type Event, EventSchema, TextDeltaSchema } from "../events/event.js";
import { encodeEvent } from "../events/encoded-event.js";
import { MemoryStore } from "./memory-store.js";
import { SCHEMA_VERSION } from "./migrations.js";
import { SqliteStore, StoreOpenError } from "./sqlite-store.js";
import type { RetentionPolicy, SessionRecord, Store, StoredEvent } from "./store.js";

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

function byKey(records: readonly SessionRecord[]): Map<string, SessionRecord> {
  return new Map(records.map((r) => [r.key, r]));
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

const kinds: StoreKind[] = [
  // Both stores count an event's encoded bytes: retain-bytes means the same in each.
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
];

describe.each(kinds)("Store contract: $name", ({ open, sizeOf }) => {
  let store: Store;
  beforeEach(() => {
    store = open();
  });
  afterEach(() => {
    store.close();
  });

  it("commits events of two sessions and their records in one call", () => {
    const batch = [...events(K1, 1, 3), ...events(K2, 1, 2)];
    store.commit(batch, [record(K1, { lastSeq: 3 }), record(K2, { lastSeq: 2 })]);
    expectSameEvents(
      store.readEvents(K1, 0, 100),
      batch.filter((e) => e.key === K1).map((e) => e.event),
    );
    expectSameEvents(
      store.readEvents(K2, 0, 100),
      batch.filter((e) => e.key === K2).map((e) => e.event),
    );
    expect(byKey(store.loadSessions())).toEqual(byKey([record(K1, { lastSeq: 3 }), record(K2, { lastSeq: 2 })]));
  });

  it("commits large batches of interleaved sessions whole (any batch size, rows in any order)", () => {
    // Sizes around the store's rows-per-statement (16): under, at, over, several times over.
    for (const [i, size] of [1, 15, 16, 17, 33, 100].entries()) {
      const a = events(`${K1}-${i}`, 1, size);
      const b = events(`${K2}-${i}`, 1, size);
      const batch = a.flatMap((e, j) => [e, b[j] as StoredEvent]);
      store.commit(batch, []);
      expectSameEvents(store.readEvents(`${K1}-${i}`, 0, 1000), a.map((e) => e.event));
      expectSameEvents(store.readEvents(`${K2}-${i}`, 0, 1000), b.map((e) => e.event));
    }
  });

  it("reads after a seq, up to a limit; an unknown key reads nothing", () => {
    const batch = events(K1, 1, 10);
    store.commit(batch, []);
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(seqs(store.readEvents(K1, 7, 100))).toEqual([8, 9, 10]);
    expect(seqs(store.readEvents(K1, 2, 3))).toEqual([3, 4, 5]);
    expect(store.readEvents(K1, 10, 100)).toEqual([]);
    expect(store.readEvents(K1, 0, 0)).toEqual([]);
    expect(store.readEvents("tenant/unknown", 0, 100)).toEqual([]);
    expectSameEvents(
      store.readEvents(K1, 4, 2),
      batch.slice(4, 6).map((e) => e.event),
    );
  });

  it("commits in several calls continue the same log", () => {
    store.commit(events(K1, 1, 2), []);
    store.commit(events(K1, 3, 4), []);
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([1, 2, 3, 4]);
    expect(seqs(store.readEvents(K1, 1, 2))).toEqual([2, 3]);
  });

  it("reports the first stored seq; undefined when there is none", () => {
    expect(store.firstSeq(K1)).toBeUndefined();
    store.commit(events(K1, 5, 7), [record(K1, { lastSeq: 7 })]);
    store.commit([], [record(K2)]);
    expect(store.firstSeq(K1)).toBe(5);
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([5, 6, 7]);
    expect(seqs(store.readEvents(K1, 5, 100))).toEqual([6, 7]);
    expect(store.firstSeq(K2)).toBeUndefined();
  });

  it("loads records equal to those committed; a commit replaces a record", () => {
    expect(store.loadSessions()).toEqual([]);
    const first = record(K1, { lastSeq: 2 });
    store.commit(events(K1, 1, 2), [first]);
    const [loaded] = store.loadSessions();
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
    store.commit([], [second]);
    expect(store.loadSessions()).toEqual([second]);
  });

  it("keeps its own copy of a record", () => {
    const mine = record(K1, { lastSeq: 1 });
    store.commit([], [mine]);
    mine.lastSeq = 99;
    mine.stats.turns = 99;
    mine.config.model = "changed";
    expect(store.loadSessions()).toEqual([record(K1, { lastSeq: 1 })]);
  });

  it("deletes one session's events and record only", () => {
    store.commit([...events(K1, 1, 3), ...events(K2, 1, 3)], [record(K1, { lastSeq: 3 }), record(K2, { lastSeq: 3 })]);
    store.deleteSession(K1);
    expect(store.readEvents(K1, 0, 100)).toEqual([]);
    expect(store.firstSeq(K1)).toBeUndefined();
    expect(store.loadSessions().map((r) => r.key)).toEqual([K2]);
    expect(seqs(store.readEvents(K2, 0, 100))).toEqual([1, 2, 3]);
    expect(store.firstSeq(K2)).toBe(1);
    // Deleting an unknown session is harmless.
    store.deleteSession("tenant/unknown");
    // The key can be used again from scratch.
    store.commit(events(K1, 1, 1), [record(K1, { lastSeq: 1, incarnation: "again" })]);
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([1]);
  });

  it("compacts nothing when no limit is set or none is exceeded", () => {
    store.commit([...events(K1, 1, 5), ...events(K2, 1, 5)], [record(K1, { lastSeq: 5 }), record(K2, { lastSeq: 5 })]);
    expect(store.compact(NO_LIMITS, Date.now())).toEqual(new Map());
    expect(store.compact({ ...NO_LIMITS, maxEvents: 5, maxBytes: 1 << 20, totalMaxBytes: 1 << 20 }, Date.now())).toEqual(
      new Map(),
    );
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(store.readEvents(K2, 0, 100))).toEqual([1, 2, 3, 4, 5]);
  });

  it("compacts to maxEvents per session", () => {
    const batch = [...events(K1, 1, 10), ...events(K2, 1, 3)];
    store.commit(batch, [record(K1, { lastSeq: 10 }), record(K2, { lastSeq: 3 })]);
    const moved = store.compact({ ...NO_LIMITS, maxEvents: 4 }, Date.now());
    expect(moved).toEqual(new Map([[K1, 7]]));
    expect(store.firstSeq(K1)).toBe(7);
    expectSameEvents(
      store.readEvents(K1, 0, 100),
      batch.slice(6, 10).map((e) => e.event),
    );
    expect(seqs(store.readEvents(K2, 0, 100))).toEqual([1, 2, 3]);
    // Compacting again moves nothing.
    expect(store.compact({ ...NO_LIMITS, maxEvents: 4 }, Date.now())).toEqual(new Map());
  });

  it("compacts to maxBytes per session, keeping at least the newest event", () => {
    const k1 = events(K1, 1, 10).map((e) => e.event);
    const k2 = [1, 2].map((seq) => event(K2, seq, "x"));
    store.commit(
      [...k1.map((e) => ({ key: K1, event: e })), ...k2.map((e) => ({ key: K2, event: e }))],
      [record(K1, { lastSeq: 10 }), record(K2, { lastSeq: 2 })],
    );
    const newestThree = k1.slice(7).reduce((sum, e) => sum + sizeOf(e), 0);
    const allOfK2 = k2.reduce((sum, e) => sum + sizeOf(e), 0);
    expect(allOfK2).toBeLessThan(newestThree - 1);

    // Exactly the newest three fit.
    expect(store.compact({ ...NO_LIMITS, maxBytes: newestThree }, Date.now())).toEqual(new Map([[K1, 8]]));
    expectSameEvents(store.readEvents(K1, 0, 100), k1.slice(7));
    expectSameEvents(store.readEvents(K2, 0, 100), k2);

    // One byte less leaves two.
    expect(store.compact({ ...NO_LIMITS, maxBytes: newestThree - 1 }, Date.now())).toEqual(new Map([[K1, 9]]));
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([9, 10]);

    // Even one byte keeps the newest event of each session.
    expect(store.compact({ ...NO_LIMITS, maxBytes: 1 }, Date.now())).toEqual(
      new Map([
        [K1, 10],
        [K2, 2],
      ]),
    );
    expectSameEvents(store.readEvents(K1, 0, 100), k1.slice(9));
    expectSameEvents(store.readEvents(K2, 0, 100), k2.slice(1));
    // A session down to its newest event, over the limit on its own, has not moved.
    expect(store.compact({ ...NO_LIMITS, maxBytes: 1 }, Date.now())).toEqual(new Map());
    expect(store.firstSeq(K1)).toBe(10);
  });

  it("compacts events older than maxAgeMs, by event time", () => {
    const now = 1_700_000_100_000;
    // K1: one event per second, seq 1 at now - 10 s ... seq 10 at now - 1 s.
    const k1 = events(K1, 1, 10, (seq) => now - (11 - seq) * 1000);
    const k2 = events(K2, 1, 2, (seq) => now - (3 - seq) * 1000);
    store.commit([...k1, ...k2], [record(K1, { lastSeq: 10 }), record(K2, { lastSeq: 2 })]);
    // Older than 4.5 s: seq 1..6 (10 s .. 5 s old).
    const moved = store.compact({ ...NO_LIMITS, maxAgeMs: 4500 }, now);
    expect(moved).toEqual(new Map([[K1, 7]]));
    expectSameEvents(
      store.readEvents(K1, 0, 100),
      k1.slice(6).map((e) => e.event),
    );
    expect(seqs(store.readEvents(K2, 0, 100))).toEqual([1, 2]);

    // Everything expired: the new first seq is the record's lastSeq + 1.
    expect(store.compact({ ...NO_LIMITS, maxAgeMs: 500 }, now + 60_000)).toEqual(
      new Map([
        [K1, 11],
        [K2, 3],
      ]),
    );
    expect(store.readEvents(K1, 0, 100)).toEqual([]);
    expect(store.firstSeq(K1)).toBeUndefined();
    expect(store.firstSeq(K2)).toBeUndefined();
    // Records stay.
    expect(store.loadSessions()).toHaveLength(2);
  });

  it("compacts by age only a session's oldest prefix, even when its clock stepped back", () => {
    const now = 1_700_000_100_000;
    // seq 1..2 are old, seq 3 is young, seq 4 was stamped by a clock set far back.
    const times = [now - 10_000, now - 9_000, now - 1_000, now - 60_000, now];
    store.commit(events(K1, 1, 5, (seq) => times[seq - 1] ?? now), [record(K1, { lastSeq: 5 })]);
    // The prefix before the first young event goes; seq 4 stays, or the log would have a hole.
    expect(store.compact({ ...NO_LIMITS, maxAgeMs: 5_000 }, now)).toEqual(new Map([[K1, 3]]));
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([3, 4, 5]);
  });

  it("compacts to totalMaxBytes, oldest events across sessions first", () => {
    const base = 1_700_000_000_000;
    // Interleaved in time: K1 at 1, 3, 5, 7 s; K2 at 2, 4, 6, 8 s.
    const k1 = events(K1, 1, 4, (seq) => base + (2 * seq - 1) * 1000);
    const k2 = events(K2, 1, 4, (seq) => base + 2 * seq * 1000);
    store.commit([...k1, ...k2], [record(K1, { lastSeq: 4 }), record(K2, { lastSeq: 4 })]);
    // Room for the five newest: K2 seq 2..4 and K1 seq 3..4.
    const keep = [...k1.slice(2), ...k2.slice(1)].reduce((sum, e) => sum + sizeOf(e.event), 0);
    const moved = store.compact({ ...NO_LIMITS, totalMaxBytes: keep }, base + 10_000);
    expect(moved).toEqual(
      new Map([
        [K1, 3],
        [K2, 2],
      ]),
    );
    expectSameEvents(
      store.readEvents(K1, 0, 100),
      k1.slice(2).map((e) => e.event),
    );
    expectSameEvents(
      store.readEvents(K2, 0, 100),
      k2.slice(1).map((e) => e.event),
    );

    // One byte: nothing fits, everything goes; the first seq moves past the last.
    expect(store.compact({ ...NO_LIMITS, totalMaxBytes: 1 }, base + 10_000)).toEqual(
      new Map([
        [K1, 5],
        [K2, 5],
      ]),
    );
    expect(store.readEvents(K1, 0, 100)).toEqual([]);
    expect(store.readEvents(K2, 0, 100)).toEqual([]);
  });

  it("compacts to totalMaxBytes without dropping more than needed when times tie", () => {
    const at = 1_700_000_000_000;
    // Many events share a millisecond (a streaming turn); all the same size.
    const k1 = events(K1, 1, 6, () => at);
    const k2 = events(K2, 1, 6, () => at);
    store.commit([...k1, ...k2], [record(K1, { lastSeq: 6 }), record(K2, { lastSeq: 6 })]);
    const size = sizeOf(event(K1, 1, undefined, at));
    for (const e of [...k1, ...k2]) expect(sizeOf(e.event)).toBe(size);
    store.compact({ ...NO_LIMITS, totalMaxBytes: size * 8 }, at);
    const left = [...store.readEvents(K1, 0, 100), ...store.readEvents(K2, 0, 100)];
    expect(left).toHaveLength(8);
    // Each session keeps a contiguous suffix of its log.
    for (const key of [K1, K2]) {
      const kept = seqs(store.readEvents(key, 0, 100));
      const first = store.firstSeq(key) ?? 7;
      expect(kept).toEqual([1, 2, 3, 4, 5, 6].filter((seq) => seq >= first));
    }
  });

  it("reports a session without a record as starting over at 1 when everything is dropped", () => {
    store.commit(events(K1, 1, 2, () => 1000), []);
    expect(store.compact({ ...NO_LIMITS, maxAgeMs: 1 }, 10_000)).toEqual(new Map([[K1, 1]]));
  });
});

describe("MemoryStore", () => {
  it("applies its per-session limits as it commits and reports what moved", () => {
    const store = new MemoryStore({ ...NO_LIMITS, maxEvents: 3 });
    expect(store.commit(events(K1, 1, 3), [])).toEqual(new Map());
    expect(store.commit([...events(K1, 4, 5), ...events(K2, 1, 2)], [])).toEqual(new Map([[K1, 3]]));
    expect(seqs(store.readEvents(K1, 0, 100))).toEqual([3, 4, 5]);
    expect(seqs(store.readEvents(K2, 0, 100))).toEqual([1, 2]);
  });
});

describe("SqliteStore", () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps events and records across close and reopen", () => {
    const batch = [...events(K1, 1, 5), ...events(K2, 1, 2)];
    const store = new SqliteStore(dir, "full");
    store.commit(batch, [record(K1, { lastSeq: 5 }), record(K2, { lastSeq: 2 })]);
    store.close();

    const reopened = new SqliteStore(dir);
    try {
      expectSameEvents(
        reopened.readEvents(K1, 0, 100),
        batch.filter((e) => e.key === K1).map((e) => e.event),
      );
      expect(reopened.firstSeq(K2)).toBe(1);
      expect(byKey(reopened.loadSessions())).toEqual(byKey([record(K1, { lastSeq: 5 }), record(K2, { lastSeq: 2 })]));
      // Writes continue where they left off.
      reopened.commit(events(K1, 6, 6), [record(K1, { lastSeq: 6 })]);
      expect(seqs(reopened.readEvents(K1, 4, 100))).toEqual([5, 6]);
    } finally {
      reopened.close();
    }
  });

  it("reads events back with their stored bytes as their encoding (no re-encoding on replay)", () => {
    const store = new SqliteStore(dir);
    try {
      const written = events(K1, 1, 3);
      store.commit(written, []);
      const read = store.readEvents(K1, 0, 100);
      expectSameEvents(read, written.map((e) => e.event));
      for (const [i, event] of read.entries()) {
        expect(Buffer.from(encodeEvent(event))).toEqual(Buffer.from(toBinary(EventSchema, written[i]!.event)));
      }
    } finally {
      store.close();
    }
  });

  it("names its file as its location and creates the data directory", () => {
    const nested = path.join(dir, "a", "b");
    const store = new SqliteStore(nested);
    try {
      expect(store.kind).toBe("sqlite");
      expect(store.location).toBe(path.join(nested, "hotplex.db"));
    } finally {
      store.close();
    }
  });

  it("uses WAL journaling (seen from another connection)", () => {
    const store = new SqliteStore(dir);
    try {
      store.commit(events(K1, 1, 1), []);
      const other = new Database(path.join(dir, "hotplex.db"), { readonly: true });
      try {
        expect(other.pragma("journal_mode", { simple: true })).toBe("wal");
        expect(other.prepare("SELECT COUNT(*) AS n FROM events").get()).toEqual({ n: 1 });
      } finally {
        other.close();
      }
    } finally {
      store.close();
    }
  });

  it.each([
    ["full", 2],
    ["normal", 1],
  ] as const)("durability %s sets synchronous = %i on its connection", (durability, expected) => {
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
      store.close();
    }
  });

  it("refuses a file that is not a database, naming the file", () => {
    const file = path.join(dir, "hotplex.db");
    writeFileSync(file, "not a database at all".repeat(100));
    const error = openError(dir);
    expect(error).toBeInstanceOf(StoreOpenError);
    expect((error as Error).message).toContain(file);
  });

  it("refuses a directory where the file should be, naming the path", () => {
    const file = path.join(dir, "hotplex.db");
    mkdirSync(file);
    expect(() => new SqliteStore(dir)).toThrow(StoreOpenError);
    expect(() => new SqliteStore(dir)).toThrow(file);
  });

  it("refuses a database written by a newer schema version", () => {
    const file = path.join(dir, "hotplex.db");
    new SqliteStore(dir).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const error = openError(dir);
    expect(error).toBeInstanceOf(StoreOpenError);
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toContain("newer");
  });

  it.skipIf(!existsSync("/proc/self/fd"))("does not keep a refused file open", () => {
    const file = path.join(dir, "hotplex.db");
    const openHandles = () =>
      readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return readlinkSync(path.join("/proc/self/fd", fd)).startsWith(file);
        } catch {
          return false;
        }
      }).length;
    new SqliteStore(dir).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(openHandles()).toBe(0);
    expect(() => new SqliteStore(dir)).toThrow(StoreOpenError);
    expect(openHandles()).toBe(0);
  });

  it("migrates a version 1 database: drops the time index, adds the audit log, keeps every event and record", () => {
    const file = path.join(dir, "hotplex.db");
    const store = new SqliteStore(dir);
    store.commit(events(K1, 1, 3), [record(K1, { lastSeq: 3 })]);
    store.close();
    // Version 1 had an index on events.time_ms.
    const v1 = new Database(file);
    v1.exec("CREATE INDEX events_by_time ON events (time_ms)");
    v1.exec("DROP TABLE audit");
    v1.exec("ALTER TABLE sessions DROP COLUMN extras");
    v1.pragma("user_version = 1");
    v1.close();

    expectKeptOnReopen(dir);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
      expect(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'events_by_time'").all()).toEqual([]);
    } finally {
      db.close();
    }
  });

  it("migrates a fresh database once, to SCHEMA_VERSION, and keeps data on reopen", () => {
    const file = path.join(dir, "hotplex.db");
    const store = new SqliteStore(dir);
    store.commit(events(K1, 1, 3), [record(K1, { lastSeq: 3 })]);
    store.close();
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
    expectKeptOnReopen(dir);
    expect(version()).toBe(SCHEMA_VERSION);
  });
});

/** Reopens the store in `dir`: it still holds K1's events 1..3 and its record. */
function expectKeptOnReopen(dir: string): void {
  const reopened = new SqliteStore(dir);
  try {
    expect(seqs(reopened.readEvents(K1, 0, 100))).toEqual([1, 2, 3]);
    expect(reopened.loadSessions()).toEqual([record(K1, { lastSeq: 3 })]);
  } finally {
    reopened.close();
  }
}

/** The error opening a SqliteStore on `dir` throws (undefined if it opens). */
function openError(dir: string): unknown {
  try {
    new SqliteStore(dir).close();
    return undefined;
  } catch (error) {
    return error;
  }
}
