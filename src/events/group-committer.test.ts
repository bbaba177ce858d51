import { create, equals } from "@bufbuild/protobuf";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { HotplexError, OutOfRangeError } from "../errors.js";
import { MemoryStore } from "../store/memory-store.js";
import type { AuditRecord, RetentionPolicy, SessionRecord, Store, StoredEvent } from "../store/store.js";
import { type Event, EventSchema } from "./event.js";
import { EventLog } from "./event-log.js";
import { GroupCommitter } from "./group-committer.js";
import { catchError, range, seqs, text, tick } from "./test-support.js";

const NO_LIMITS: RetentionPolicy = { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 };
const BOUNDS = { maxEvents: 4, maxBytes: 1 << 20 };
const logger = pino({ level: "silent" });

/** A store that counts commits, keeps what each was given, and can fail on demand. */
class RecordingStore implements Store {
  readonly kind = "memory";
  readonly location = "in memory";
  readonly inner: Store;
  attempts = 0;
  readonly commits: { events: StoredEvent[]; records: SessionRecord[] }[] = [];
  /** The next this many commits throw. */
  failNext = 0;
  #waiting: (() => void)[] = [];

  constructor(inner: Store = new MemoryStore(NO_LIMITS)) {
    this.inner = inner;
  }

  commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Map<string, number> | undefined {
    this.attempts += 1;
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error("disk full");
    }
    const moved = this.inner.commit(events, sessions);
    this.commits.push({ events: [...events], records: sessions.map((r) => ({ ...r })) });
    for (const resolve of this.#waiting.splice(0)) resolve();
    return moved;
  }

  /** Resolves after the next successful commit. */
  committed(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Events read back through readEvents. */
  eventsRead = 0;

  readEvents(key: string, afterSeq: number, limit: number): Event[] {
    const events = this.inner.readEvents(key, afterSeq, limit);
    this.eventsRead += events.length;
    return events;
  }

  firstSeq(key: string): number | undefined {
    return this.inner.firstSeq(key);
  }

  sessionBytes(key: string): number {
    return this.inner.sessionBytes(key);
  }

  appendAudit(entry: Omit<AuditRecord, "id">, keep: number): number {
    return this.inner.appendAudit(entry, keep);
  }

  readAudit(afterId: number, limit: number): AuditRecord[] {
    return this.inner.readAudit(afterId, limit);
  }

  loadSessions(): SessionRecord[] {
    return this.inner.loadSessions();
  }

  deleteSession(key: string): void {
    this.inner.deleteSession(key);
  }

  compact(policy: RetentionPolicy, nowMs: number): Map<string, number> {
    return this.inner.compact(policy, nowMs);
  }

  close(): void {
    this.inner.close();
  }
}

interface Fixture {
  log: EventLog;
  key: string;
  /** Seqs given to onCommit, in order. */
  applied: number[];
}

/** A store-backed log whose record follows the log (as a session's does). */
function backedLog(store: Store, committer: GroupCommitter, sessionId = "s1", lastSeq = 0): Fixture {
  const key = `tenant/${sessionId}`;
  const applied: number[] = [];
  const log: EventLog = new EventLog(sessionId, BOUNDS, lastSeq, {
    store,
    key,
    committer,
    record: () => ({
      key,
      tenant: "tenant",
      sessionId,
      incarnation: "inc",
      provider: "fake",
      providerSessionId: "",
      workDir: "/w",
      config: create(SessionConfigSchema, {}),
      status: SessionStatus.READY,
      createdAtMs: 1,
      lastActiveMs: 2,
      // Reflects what onCommit applied, as the session's view does.
      stats: create(SessionStatsSchema, { turns: applied.length }),
      pgid: 0,
      agentCommand: "",
      hasConversation: false,
      currentTurnId: "",
      lastSeq: log.assignedSeq,
      extras: "",
    }),
  });
  log.onCommit = (events) => {
    for (const event of events) applied.push(Number(event.seq));
  };
  return { log, key, applied };
}

function appendMany(log: EventLog, count: number): Event[] {
  const out: Event[] = [];
  for (let i = 0; i < count; i++) out.push(log.append("turn", text(`${log.sessionId} ${i}`)));
  return out;
}

/** Reads the whole log from afterSeq, page by page, as a follower does. */
function readAll(log: EventLog, afterSeq = 0, limit = 256): Event[] {
  const out: Event[] = [];
  let cursor = afterSeq;
  for (;;) {
    const page = log.read(cursor, limit);
    if (page.length === 0) return out;
    expect(Number(page[0]?.seq)).toBe(cursor + 1);
    out.push(...page);
    cursor = Number(page[page.length - 1]?.seq);
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("GroupCommitter with a store-backed EventLog", () => {
  it("publishes appended events only once they are committed", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);

    const appended = appendMany(log, 2);
    expect(seqs(appended)).toEqual([1, 2]);
    expect(log.assignedSeq).toBe(2);
    expect(log.lastSeq).toBe(0);
    expect(log.read(0)).toEqual([]);
    expect(() => log.read(1)).toThrow(OutOfRangeError);
    expect(store.readEvents(key, 0, 100)).toEqual([]);

    committer.flush();
    expect(log.lastSeq).toBe(2);
    expect(seqs(log.read(0))).toEqual([1, 2]);
    expect(seqs(store.readEvents(key, 0, 100))).toEqual([1, 2]);

    // Left to itself, the committer flushes on the next turn of the event loop.
    appendMany(log, 3);
    expect(log.lastSeq).toBe(2);
    await tick();
    expect(log.lastSeq).toBe(5);
    expect(seqs(readAll(log))).toEqual([1, 2, 3, 4, 5]);
    expect(store.commits).toHaveLength(2);
    // Nothing pending: flushing again commits nothing.
    committer.flush();
    expect(store.attempts).toBe(2);
  });

  it("wakes a waiting reader when the events are published, not before", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    let woken = false;
    const waiting = log.waitBeyond(0).then(() => {
      woken = true;
    });
    log.append("turn", text("a"));
    await Promise.resolve();
    expect(woken).toBe(false);
    committer.flush();
    await waiting;
    expect(woken).toBe(true);
  });

  it("commits the appends of one tick, across logs, in one store commit", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const a = backedLog(store, committer, "a");
    const b = backedLog(store, committer, "b");
    const fromA = appendMany(a.log, 5);
    const fromB = appendMany(b.log, 3);
    appendMany(a.log, 2);
    a.log.touch();
    b.log.touch();
    await tick();
    expect(store.attempts).toBe(1);
    const [only] = store.commits;
    expect(only?.events.map((e) => `${e.key}:${e.event.seq}`)).toEqual([
      ...range(1, 7).map((seq) => `tenant/a:${seq}`),
      ...range(1, 3).map((seq) => `tenant/b:${seq}`),
    ]);
    expect(only?.records.map((r) => [r.key, r.lastSeq])).toEqual([
      ["tenant/a", 7],
      ["tenant/b", 3],
    ]);
    expect(a.log.lastSeq).toBe(7);
    expect(b.log.lastSeq).toBe(3);
    const stored = readAll(a.log);
    expect(stored).toHaveLength(fromA.length + 2);
    fromA.forEach((event, i) => expect(stored[i] && equals(EventSchema, stored[i], event)).toBe(true));
    expect(seqs(b.log.read(0))).toEqual(seqs(fromB));
  });

  it("applies events (onCommit) before storing and publishing them", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);
    const seen: { seqs: number[]; lastSeq: number; visible: number; stored: number }[] = [];
    log.onCommit = (events) => {
      seen.push({
        seqs: seqs(events),
        lastSeq: log.lastSeq,
        visible: log.read(0).length,
        stored: store.readEvents(key, 0, 100).length,
      });
    };
    appendMany(log, 3);
    committer.flush();
    expect(seen).toEqual([{ seqs: [1, 2, 3], lastSeq: 0, visible: 0, stored: 0 }]);
    expect(log.lastSeq).toBe(3);
  });

  it("stores a record when touched or far behind, carrying the latest lastSeq and what onCommit applied", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 3);
    committer.flush();
    appendMany(log, 4);
    log.touch();
    committer.flush();
    log.touch();
    committer.flush();
    expect(store.commits.map((c) => c.events.length)).toEqual([3, 4, 0]);
    // Events alone do not carry the record: a touch does, with everything applied so far.
    expect(store.commits.map((c) => c.records.map((r) => [r.lastSeq, r.stats.turns]))).toEqual([[], [[7, 7]], [[7, 7]]]);
    expect(log.recordedSeq).toBe(7);

    // A long run of events without a touch still stores the record every 4096 events.
    for (let i = 0; i < 5; i += 1) {
      appendMany(log, 1000);
      committer.flush();
    }
    expect(store.commits.slice(3).map((c) => c.records.map((r) => r.lastSeq))).toEqual([[], [], [], [], [5007]]);
    expect(store.loadSessions().map((r) => r.lastSeq)).toEqual([5007]);
  });

  it("commits what is pending when closed, and nothing scheduled after that", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 2);
    committer.close();
    expect(store.commits.map((c) => c.events.length)).toEqual([2]);
    // A late touch (a session's idle checkpoint after shutdown) must not reach the closed store.
    log.touch();
    appendMany(log, 1);
    await tick();
    committer.flush();
    expect(store.attempts).toBe(1);
  });

  it("never stores the record of a closed (deleted) log", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 2);
    log.close();
    log.touch();
    committer.flush();
    expect(store.commits.flatMap((c) => c.records)).toEqual([]);
  });

  it("retries a failed commit, keeping events invisible until stored and applying them once", async () => {
    const clearImmediateSpy = vi.spyOn(globalThis, "clearImmediate");
    const Immediate = setImmediate(() => {}).constructor;
    const store = new RecordingStore();
    store.failNext = 1;
    const committer = new GroupCommitter(store, logger);
    const { log, key, applied } = backedLog(store, committer);

    appendMany(log, 3);
    log.touch();
    committer.flush();
    expect(store.attempts).toBe(1);
    expect(store.commits).toHaveLength(0);
    // Applied to the session before the failed commit, but not visible.
    expect(applied).toEqual([1, 2, 3]);
    expect(log.lastSeq).toBe(0);
    expect(log.read(0)).toEqual([]);
    expect(store.readEvents(key, 0, 100)).toEqual([]);

    // Appends during the retry wait join the retried commit, after the failed ones.
    const succeeded = store.committed();
    appendMany(log, 2);
    await tick();
    expect(store.attempts).toBe(1);
    expect(log.lastSeq).toBe(0);

    await succeeded;
    expect(store.attempts).toBe(2);
    expect(store.commits.map((c) => seqs(c.events.map((e) => e.event)))).toEqual([[1, 2, 3, 4, 5]]);
    expect(store.commits[0]?.records.map((r) => [r.lastSeq, r.stats.turns])).toEqual([[5, 5]]);
    expect(log.lastSeq).toBe(5);
    expect(seqs(readAll(log))).toEqual([1, 2, 3, 4, 5]);
    // Each event applied exactly once, in order.
    expect(applied).toEqual([1, 2, 3, 4, 5]);

    // The committer goes on as usual after the retry.
    appendMany(log, 1);
    await tick();
    expect(log.lastSeq).toBe(6);
    expect(applied).toEqual([1, 2, 3, 4, 5, 6]);
    // A retry timer must never reach clearImmediate: Node then corrupts its immediate
    // and timer bookkeeping (the loop may stop running immediates or never exit).
    for (const [handle] of clearImmediateSpy.mock.calls) {
      if (handle !== undefined) expect(handle).toBeInstanceOf(Immediate);
    }
  });

  it("reads events older than the in-memory tail from the store, continuously", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);
    const appended = appendMany(log, 10);
    committer.flush();
    expect(log.size).toBe(4);
    expect(log.firstSeq).toBe(1);
    expect(log.retained).toBe(10);

    const all = readAll(log);
    expect(seqs(all)).toEqual(range(1, 10));
    all.forEach((event, i) => {
      const expected = appended[i];
      expect(expected && equals(EventSchema, event, expected)).toBe(true);
    });
    // Small pages across the boundary between store and tail.
    expect(seqs(readAll(log, 0, 3))).toEqual(range(1, 10));
    expect(seqs(readAll(log, 4, 2))).toEqual(range(5, 10));
    // A page from the store stops where the tail begins; the rest comes from the tail.
    expect(seqs(log.read(3, 100))).toEqual([4, 5, 6]);
    expect(seqs(log.read(6, 100))).toEqual([7, 8, 9, 10]);
    expect(seqs(store.readEvents(key, 0, 100))).toEqual(range(1, 10));
  });

  it("shares the store reads of readers behind the tail: each page is read once, whatever their positions", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    const appended = appendMany(log, 2000);
    committer.flush();
    expect(log.size).toBe(4);

    // Ten readers from different positions and with different batch sizes, interleaved.
    const readers = Array.from({ length: 10 }, (_, i) => ({ cursor: i * 37, limit: [256, 100, 7][i % 3] as number, got: [] as Event[] }));
    for (let active = readers.length; active > 0; ) {
      active = 0;
      for (const reader of readers) {
        const page = log.read(reader.cursor, reader.limit);
        if (page.length === 0) continue;
        active += 1;
        expect(Number(page[0]?.seq)).toBe(reader.cursor + 1);
        reader.got.push(...page);
        reader.cursor = Number(page[page.length - 1]?.seq);
      }
    }
    for (const [i, reader] of readers.entries()) {
      expect(seqs(reader.got)).toEqual(range(i * 37 + 1, 2000));
      reader.got.forEach((event, j) => expect(equals(EventSchema, event, appended[i * 37 + j] as Event)).toBe(true));
    }
    // 2000 events read back about once (full pages once; the last, partial page and the
    // events before the tail directly), not ten times.
    expect(store.eventsRead).toBeLessThan(2000 + 10 * 256);
  });

  it("shrinks the in-memory tail of an idle log and still reads everything", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 10);
    committer.flush();
    expect(log.size).toBe(4);
    log.shrinkTail(2);
    expect(log.size).toBe(2);
    expect(log.retained).toBe(10);
    expect(seqs(readAll(log))).toEqual(range(1, 10));
    expect(seqs(log.read(8, 100))).toEqual([9, 10]);
  });

  it("continues a restored log from the store", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const first = backedLog(store, committer);
    appendMany(first.log, 6);
    committer.flush();

    // As after a restart: a new log over the same store, starting at the record's lastSeq.
    const restored = backedLog(store, new GroupCommitter(store, logger), "s1", 6);
    expect(restored.log.firstSeq).toBe(1);
    expect(seqs(readAll(restored.log))).toEqual(range(1, 6));
    restored.log.append("turn", text("more"));
    expect(restored.log.assignedSeq).toBe(7);
  });

  it("retainedFrom makes reads of dropped events fail with the new first seq", () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);
    appendMany(log, 10);
    committer.flush();

    const moved = store.compact({ ...NO_LIMITS, maxEvents: 5 }, Date.now());
    expect(moved).toEqual(new Map([[key, 6]]));
    log.retainedFrom(6);
    expect(log.firstSeq).toBe(6);
    expect(log.retained).toBe(5);
    const error = catchError(() => log.read(4));
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect((error as OutOfRangeError).firstSeq).toBe(6);
    expect((error as OutOfRangeError).requestedAfterSeq).toBe(4n);
    expect((error as OutOfRangeError).lastSeq).toBe(10);
    expect(() => log.read(0)).toThrow(OutOfRangeError);
    expect(seqs(readAll(log, 5))).toEqual(range(6, 10));

    // Past the start of the in-memory tail: the tail drops what is gone too.
    store.compact({ ...NO_LIMITS, maxEvents: 2 }, Date.now());
    log.retainedFrom(9);
    expect(log.size).toBe(2);
    expect((catchError(() => log.read(7)) as OutOfRangeError).firstSeq).toBe(9);
    expect(seqs(readAll(log, 8))).toEqual([9, 10]);
  });

  it("follows retention a store applies as it commits", () => {
    const store = new RecordingStore(new MemoryStore({ ...NO_LIMITS, maxEvents: 3 }));
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 10);
    committer.flush();
    expect(log.firstSeq).toBe(8);
    expect((catchError(() => log.read(0)) as OutOfRangeError).firstSeq).toBe(8);
    expect(seqs(readAll(log, 7))).toEqual([8, 9, 10]);
  });

  it("close wakes waiting readers and makes reads fail with not_found", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 2);
    committer.flush();
    const waiting = log.waitBeyond(2);
    log.close();
    await waiting;
    const error = catchError(() => log.read(0));
    expect(error).toBeInstanceOf(HotplexError);
    expect((error as HotplexError).code).toBe("not_found");
    // Waiting on a closed log returns at once.
    await log.waitBeyond(2);
  });
});
