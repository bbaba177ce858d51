import { create, equals } from "@bufbuild/protobuf";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { HotplexError, OutOfRangeError } from "../errors.js";
import { MemoryStore } from "../store/memory-store.js";
import type { AuditRecord, Retained, RetentionPolicy, SessionRecord, Store, StoredEvent } from "../store/store.js";
import { type Event, EventSchema } from "./event.js";
import { EventLog } from "./event-log.js";
import { GroupCommitter } from "./group-committer.js";
import { range, seqs, text, tick } from "./test-support.js";

const NO_LIMITS: RetentionPolicy = { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 };
const BOUNDS = { maxEvents: 4, maxBytes: 1 << 20 };
const logger = pino({ level: "silent" });

interface CommitCall {
  events: StoredEvent[];
  records: SessionRecord[];
}

/**
 * A store that counts commits, keeps what each was given, can fail on demand and can hold
 * commits until released (a slow store).
 */
class RecordingStore implements Store {
  readonly kind = "memory";
  readonly location = "in memory";
  readonly inner: Store;
  attempts = 0;
  /** What every commit call was given, failed ones included, in call order. */
  readonly calls: CommitCall[] = [];
  /** The successful commits. */
  readonly commits: CommitCall[] = [];
  /** The next this many commits reject. */
  failNext = 0;
  /** While set, each commit waits for release() before it goes on (and fails or stores). */
  hold = false;
  /** Called synchronously as each commit call arrives. */
  onCall: ((call: CommitCall) => void) | undefined;
  #held: (() => void)[] = [];
  #entering: (() => void)[] = [];
  #waiting: (() => void)[] = [];

  constructor(inner: Store = new MemoryStore(NO_LIMITS)) {
    this.inner = inner;
  }

  async commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Promise<Map<string, Retained> | undefined> {
    this.attempts += 1;
    // Copies before the first yield, as the Store contract allows the caller to expect.
    const call = { events: [...events], records: sessions.map((r) => ({ ...r })) };
    this.calls.push(call);
    this.onCall?.(call);
    for (const resolve of this.#entering.splice(0)) resolve();
    if (this.hold) await new Promise<void>((resolve) => this.#held.push(resolve));
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error("disk full");
    }
    const moved = await this.inner.commit(call.events, call.records);
    this.commits.push(call);
    for (const resolve of this.#waiting.splice(0)) resolve();
    return moved;
  }

  /** Resolves as the next commit call arrives (before the store answers it). */
  entered(): Promise<void> {
    return new Promise((resolve) => this.#entering.push(resolve));
  }

  /** Lets the oldest held commit go on. */
  release(): void {
    const resolve = this.#held.shift();
    if (!resolve) throw new Error("no commit is held");
    resolve();
  }

  /** Resolves once the next successful commit is stored (before the committer publishes it). */
  committed(): Promise<void> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Events read back through readEvents. */
  eventsRead = 0;

  async readEvents(key: string, afterSeq: number, limit: number): Promise<Event[]> {
    const events = await this.inner.readEvents(key, afterSeq, limit);
    this.eventsRead += events.length;
    return events;
  }

  firstSeq(key: string): Promise<number | undefined> {
    return this.inner.firstSeq(key);
  }

  sessionBytes(key: string): Promise<number> {
    return this.inner.sessionBytes(key);
  }

  appendAudit(entry: Omit<AuditRecord, "id">, keep: number): Promise<number> {
    return this.inner.appendAudit(entry, keep);
  }

  readAudit(afterId: number, limit: number): Promise<AuditRecord[]> {
    return this.inner.readAudit(afterId, limit);
  }

  loadSessions(): Promise<SessionRecord[]> {
    return this.inner.loadSessions();
  }

  loadSession(key: string): Promise<SessionRecord | undefined> {
    return this.inner.loadSession(key);
  }

  deleteSession(key: string): Promise<void> {
    return this.inner.deleteSession(key);
  }

  compact(policy: RetentionPolicy, nowMs: number): Promise<Map<string, Retained>> {
    return this.inner.compact(policy, nowMs);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Fixture {
  log: EventLog;
  key: string;
  /** Seqs given to onCommit, in order. */
  applied: number[];
  /** The seqs of the pending events each record() call was given, in order. */
  recordCalls: number[][];
}

/**
 * A store-backed log whose record follows the log as a session's does: as of the published
 * events (what onCommit applied) followed by the pending ones it is stored with.
 */
function backedLog(store: Store, committer: GroupCommitter, sessionId = "s1", lastSeq = 0, retained?: Retained): Fixture {
  const key = `tenant/${sessionId}`;
  const applied: number[] = [];
  const recordCalls: number[][] = [];
  const log: EventLog = new EventLog(sessionId, BOUNDS, lastSeq, {
    store,
    key,
    committer,
    retained,
    record: (pending) => {
      recordCalls.push(seqs(pending));
      return {
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
        // What onCommit applied, followed by the pending events, as Session.record folds them.
        stats: create(SessionStatsSchema, { turns: applied.length + pending.length }),
        pgid: 0,
        agentCommand: "",
        hasConversation: false,
        currentTurnId: "",
        lastSeq: pending.length > 0 ? Number(pending[pending.length - 1]?.seq) : log.lastSeq,
        extras: "",
      };
    },
  });
  log.onCommit = (events) => {
    for (const event of events) applied.push(Number(event.seq));
  };
  return { log, key, applied, recordCalls };
}

function appendMany(log: EventLog, count: number): Event[] {
  const out: Event[] = [];
  for (let i = 0; i < count; i++) out.push(log.append("turn", text(`${log.sessionId} ${i}`)));
  return out;
}

/** Reads the whole log from afterSeq, page by page, as a follower does. */
async function readAll(log: EventLog, afterSeq = 0, limit = 256): Promise<Event[]> {
  const out: Event[] = [];
  let cursor = afterSeq;
  for (;;) {
    const page = await log.read(cursor, limit);
    if (page.length === 0) return out;
    expect(Number(page[0]?.seq)).toBe(cursor + 1);
    out.push(...page);
    cursor = Number(page[page.length - 1]?.seq);
  }
}

/** What `promise` rejects with; fails if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected the promise to reject");
    },
    (error: unknown) => error,
  );
}

/** The seqs of a commit's events. */
function commitSeqs(call: CommitCall | undefined): number[] {
  return seqs(call?.events.map((e) => e.event) ?? []);
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
    expect(await log.read(0)).toEqual([]);
    await expect(log.read(1)).rejects.toThrow(OutOfRangeError);
    expect(await store.readEvents(key, 0, 100)).toEqual([]);

    await committer.flush();
    expect(log.lastSeq).toBe(2);
    expect(seqs(await log.read(0))).toEqual([1, 2]);
    expect(seqs(await store.readEvents(key, 0, 100))).toEqual([1, 2]);

    // Left to itself, the committer flushes on the next turn of the event loop.
    appendMany(log, 3);
    expect(log.lastSeq).toBe(2);
    await tick();
    expect(log.lastSeq).toBe(5);
    expect(seqs(await readAll(log))).toEqual([1, 2, 3, 4, 5]);
    expect(store.commits).toHaveLength(2);
    // Nothing pending: flushing again commits nothing.
    await committer.flush();
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
    void committer.flush();
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
    const stored = await readAll(a.log);
    expect(stored).toHaveLength(fromA.length + 2);
    fromA.forEach((event, i) => expect(stored[i] && equals(EventSchema, stored[i], event)).toBe(true));
    expect(seqs(await b.log.read(0))).toEqual(seqs(fromB));
  });

  // Changed with the asynchronous store: events used to be applied (onCommit) before the
  // store commit; now nothing is applied before the store acknowledged it, and onCommit
  // runs in the same synchronous step as publishing, right before the events become visible.
  it("applies events (onCommit) only once the store acknowledged them, right before publishing them", async () => {
    const store = new RecordingStore();
    store.hold = true;
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);
    const order: string[] = [];
    const seen: { seqs: number[]; lastSeq: number; stored: number }[] = [];
    let visibleInOnCommit: Promise<Event[]> | undefined;
    store.onCall = (call) => order.push(`commit ${commitSeqs(call).join(",")}`);
    log.onCommit = (events) => {
      order.push(`apply ${seqs(events).join(",")}`);
      seen.push({
        seqs: seqs(events),
        lastSeq: log.lastSeq,
        stored: store.commits.flatMap((c) => c.events).length,
      });
      // Read in the same step: the range and the tail are looked at before read yields.
      visibleInOnCommit = log.read(0);
    };
    log.onPublish = (events) => order.push(`publish ${seqs(events).join(",")}`);
    appendMany(log, 3);
    log.touch();
    const entered = store.entered();
    const flushed = committer.flush();
    await entered;
    // With the store, not acknowledged: nothing applied, nothing visible.
    await tick();
    expect(seen).toEqual([]);
    expect(log.lastSeq).toBe(0);
    expect(await log.read(0)).toEqual([]);

    store.release();
    await flushed;
    expect(seen).toEqual([{ seqs: [1, 2, 3], lastSeq: 0, stored: 3 }]);
    expect(await visibleInOnCommit).toEqual([]);
    expect(seqs(await store.readEvents(key, 0, 100))).toEqual([1, 2, 3]);
    expect(log.lastSeq).toBe(3);
    // The record is taken (as of the pending events) before the commit goes to the store.
    expect(order).toEqual(["commit 1,2,3", "apply 1,2,3", "publish 1,2,3"]);
    expect(store.calls[0]?.records.map((r) => r.lastSeq)).toEqual([3]);
  });

  // Changed with the asynchronous store: the record was taken after onCommit applied the
  // events (its lastSeq the log's assignedSeq); it is now taken before, as of the published
  // events followed by the pending ones. The stored values are the same.
  it("stores a record when touched or far behind, carrying the lastSeq of its commit and what its events make of the session", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log, recordCalls } = backedLog(store, committer);
    appendMany(log, 3);
    await committer.flush();
    appendMany(log, 4);
    log.touch();
    await committer.flush();
    log.touch();
    await committer.flush();
    expect(store.commits.map((c) => c.events.length)).toEqual([3, 4, 0]);
    // Events alone do not carry the record: a touch does, with everything up to its commit.
    expect(store.commits.map((c) => c.records.map((r) => [r.lastSeq, r.stats.turns]))).toEqual([[], [[7, 7]], [[7, 7]]]);
    // The record is given the events going with it (none for a touch alone).
    expect(recordCalls).toEqual([[4, 5, 6, 7], []]);
    expect(log.recordedSeq).toBe(7);

    // A long run of events without a touch still stores the record every 4096 events.
    for (let i = 0; i < 5; i += 1) {
      appendMany(log, 1000);
      await committer.flush();
    }
    expect(store.commits.slice(3).map((c) => c.records.map((r) => r.lastSeq))).toEqual([[], [], [], [], [5007]]);
    expect((await store.loadSessions()).map((r) => r.lastSeq)).toEqual([5007]);
  });

  it("stores a record whose lastSeq is the last event of the same commit, not the last appended", async () => {
    const store = new RecordingStore();
    store.hold = true;
    const committer = new GroupCommitter(store, logger);
    const { log, key, recordCalls } = backedLog(store, committer);

    appendMany(log, 3);
    log.touch();
    const entered = store.entered();
    const first = committer.flush();
    await entered;
    // More events while the first commit is with the store: they are not part of it.
    appendMany(log, 2);
    expect(log.assignedSeq).toBe(5);
    expect(store.calls[0]?.records.map((r) => [r.lastSeq, r.stats.turns])).toEqual([[3, 3]]);
    expect(commitSeqs(store.calls[0])).toEqual([1, 2, 3]);
    store.hold = false;
    store.release();
    await first;
    expect(log.recordedSeq).toBe(3);
    // What the store holds is consistent: its record names no seq it does not have.
    expect((await store.loadSessions()).map((r) => r.lastSeq)).toEqual([3]);
    expect(seqs(await store.readEvents(key, 0, 100))).toEqual([1, 2, 3]);

    // A touch with events of the same tick: the record goes with them.
    await committer.flush();
    appendMany(log, 2);
    log.touch();
    await committer.flush();
    const last = store.commits[store.commits.length - 1];
    expect(commitSeqs(last)).toEqual([6, 7]);
    expect(last?.records.map((r) => [r.lastSeq, r.stats.turns])).toEqual([[7, 7]]);
    expect(recordCalls).toEqual([[1, 2, 3], [6, 7]]);
    // Every stored record's lastSeq is the last event of the commit it came with.
    for (const call of store.commits) {
      for (const record of call.records) expect(record.lastSeq).toBe(commitSeqs(call).at(-1));
    }
    expect(log.recordedSeq).toBe(7);
  });

  it("serializes commits: events appended while one is with the store go into exactly one next commit, started after the first resolved", async () => {
    const store = new RecordingStore();
    store.hold = true;
    const committer = new GroupCommitter(store, logger);
    const { log, applied } = backedLog(store, committer);
    const publishedAtCall: number[] = [];
    store.onCall = () => publishedAtCall.push(log.lastSeq);

    appendMany(log, 2);
    const entered = store.entered();
    const first = committer.flush();
    await entered;
    expect(store.attempts).toBe(1);

    // While the first commit is with the store: appends, the scheduled flush and explicit ones.
    appendMany(log, 3);
    await tick();
    const queued = committer.flush();
    expect(queued).not.toBe(first);
    // A flush while one is queued returns that one.
    expect(committer.flush()).toBe(queued);
    // Appended after the next commit was queued: it takes what is pending when it starts.
    appendMany(log, 1);
    log.commitNow();
    await tick();
    expect(store.attempts).toBe(1);
    expect(log.lastSeq).toBe(0);
    expect(applied).toEqual([]);

    const second = store.entered();
    store.release();
    await first;
    expect(log.lastSeq).toBe(2);
    expect(applied).toEqual([1, 2]);
    await second;
    expect(store.attempts).toBe(2);
    // The second commit started only once the first was stored and published.
    expect(publishedAtCall).toEqual([0, 2]);
    expect(log.lastSeq).toBe(2);

    store.release();
    await queued;
    expect(store.calls.map((c) => c.events.length)).toEqual([2, 4]);
    expect(store.commits.map(commitSeqs)).toEqual([
      [1, 2],
      [3, 4, 5, 6],
    ]);
    expect(log.lastSeq).toBe(6);
    expect(applied).toEqual(range(1, 6));
    expect(seqs(await readAll(log))).toEqual(range(1, 6));
    store.hold = false;
    await committer.flush();
    expect(store.attempts).toBe(2);
  });

  it("commits what is pending when closed, and nothing scheduled after that", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 2);
    await committer.close();
    expect(store.commits.map((c) => c.events.length)).toEqual([2]);
    // A late touch (a session's idle checkpoint after shutdown) must not reach the closed store.
    log.touch();
    appendMany(log, 1);
    await tick();
    await committer.flush();
    expect(store.attempts).toBe(1);
  });

  it("close waits for the commit with the store, then commits what is pending", async () => {
    const store = new RecordingStore();
    store.hold = true;
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 2);
    const entered = store.entered();
    void committer.flush();
    await entered;
    appendMany(log, 3);
    let closed = false;
    const closing = committer.close().then(() => {
      closed = true;
    });
    const second = store.entered();
    store.release();
    await second;
    expect(closed).toBe(false);
    store.release();
    await closing;
    expect(store.commits.map(commitSeqs)).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
    expect(log.lastSeq).toBe(5);
  });

  it("never stores the record of a closed (deleted) log", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 2);
    log.close();
    log.touch();
    await committer.flush();
    expect(store.commits.flatMap((c) => c.records)).toEqual([]);
  });

  // Changed with the asynchronous store: events used to be applied (onCommit) before the
  // failed commit; now they are applied only once a commit holding them succeeded.
  it("retries a failed commit, keeping events invisible until stored and applying them once", async () => {
    const clearImmediateSpy = vi.spyOn(globalThis, "clearImmediate");
    const Immediate = setImmediate(() => {}).constructor;
    const store = new RecordingStore();
    store.failNext = 1;
    const committer = new GroupCommitter(store, logger);
    const { log, key, applied } = backedLog(store, committer);

    appendMany(log, 3);
    log.touch();
    // The flush resolves even though the store rejected the commit.
    await expect(committer.flush()).resolves.toBeUndefined();
    expect(store.attempts).toBe(1);
    expect(store.commits).toHaveLength(0);
    // Neither applied to the session nor visible.
    expect(applied).toEqual([]);
    expect(log.lastSeq).toBe(0);
    expect(await log.read(0)).toEqual([]);
    expect(await store.readEvents(key, 0, 100)).toEqual([]);

    // Appends during the retry wait join the retried commit, after the failed ones.
    const succeeded = store.committed();
    appendMany(log, 2);
    await tick();
    expect(store.attempts).toBe(1);
    expect(log.lastSeq).toBe(0);

    await succeeded;
    await log.waitBeyond(4);
    expect(store.attempts).toBe(2);
    expect(store.commits.map(commitSeqs)).toEqual([[1, 2, 3, 4, 5]]);
    expect(store.commits[0]?.records.map((r) => [r.lastSeq, r.stats.turns])).toEqual([[5, 5]]);
    expect(log.lastSeq).toBe(5);
    expect(seqs(await readAll(log))).toEqual([1, 2, 3, 4, 5]);
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

  it("retries a commit the store rejected while more events queued: each stored exactly once, in order, and applied once", async () => {
    const store = new RecordingStore();
    store.hold = true;
    store.failNext = 1;
    const committer = new GroupCommitter(store, logger);
    const { log, key, applied } = backedLog(store, committer);
    const published: number[] = [];
    log.onPublish = (events) => published.push(...seqs(events));
    // What was applied and visible as each commit call reached the store.
    const atCall: { applied: number[]; lastSeq: number }[] = [];
    store.onCall = () => atCall.push({ applied: [...applied], lastSeq: log.lastSeq });

    appendMany(log, 2);
    const entered = store.entered();
    const failing = committer.flush();
    await entered;
    // Appended while the failing commit is with the store; the next commit is queued.
    appendMany(log, 2);
    await tick();
    store.hold = false;
    store.release();
    await expect(failing).resolves.toBeUndefined();

    await log.waitBeyond(3);
    // The failed commit applied and published nothing: the retry found nothing of it applied.
    expect(atCall).toEqual([
      { applied: [], lastSeq: 0 },
      { applied: [], lastSeq: 0 },
    ]);
    // The failed events went again, ahead of the newer ones, in one commit.
    expect(store.calls.map(commitSeqs)).toEqual([
      [1, 2],
      [1, 2, 3, 4],
    ]);
    expect(store.commits.map(commitSeqs)).toEqual([[1, 2, 3, 4]]);
    expect(seqs(await store.inner.readEvents(key, 0, 100))).toEqual([1, 2, 3, 4]);
    expect(applied).toEqual([1, 2, 3, 4]);
    expect(published).toEqual([1, 2, 3, 4]);
    expect(seqs(await readAll(log))).toEqual([1, 2, 3, 4]);

    // Nothing left over: a later flush stores only what is new.
    appendMany(log, 1);
    await committer.flush();
    expect(store.commits.map(commitSeqs)).toEqual([[1, 2, 3, 4], [5]]);
    expect(applied).toEqual(range(1, 5));
    expect(seqs(await store.inner.readEvents(key, 0, 100))).toEqual(range(1, 5));
  });

  it("keeps a touch made while the commit carrying the record is with the store: the next commit carries a record too", async () => {
    const store = new RecordingStore();
    store.hold = true;
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);

    appendMany(log, 2);
    log.touch();
    const entered = store.entered();
    const first = committer.flush();
    await entered;
    expect(store.calls[0]?.records.map((r) => r.lastSeq)).toEqual([2]);
    // The session changed while its entry as of seq 2 is with the store.
    log.touch();
    store.hold = false;
    store.release();
    await first;
    expect(log.recordedSeq).toBe(2);
    expect(log.recordDue).toBe(true);

    await committer.flush();
    expect(store.commits).toHaveLength(2);
    expect(store.commits.map((c) => c.records.length)).toEqual([1, 1]);
    expect(store.commits[1]?.records.map((r) => r.lastSeq)).toEqual([2]);
    expect(log.recordDue).toBe(false);
  });

  it("arms no retry timer when a commit fails with another already queued: a later append is committed on the next turn", async () => {
    const store = new RecordingStore();
    store.hold = true;
    store.failNext = 1;
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);

    appendMany(log, 2);
    const entered = store.entered();
    const failing = committer.flush();
    await entered;
    appendMany(log, 1);
    const queued = committer.flush();
    store.hold = false;
    store.release();
    await failing;
    await queued;
    // The queued commit took the failed events back, ahead of the newer one.
    expect(store.calls.map(commitSeqs)).toEqual([[1, 2], [1, 2, 3]]);
    expect(log.lastSeq).toBe(3);

    // Left to itself, the committer flushes on the next turn, not after a stale retry pause
    // (200 ms, well beyond this wait).
    appendMany(log, 1);
    await vi.waitFor(() => expect(store.commits).toHaveLength(2), { timeout: 100, interval: 2 });
    expect(commitSeqs(store.commits[1])).toEqual([4]);
    await log.waitBeyond(3);
    expect(log.lastSeq).toBe(4);
  });

  it("publishes stored events and goes on committing when onCommit or the commit observer throws", async () => {
    const errors = pino({ level: "silent" });
    const logged = vi.spyOn(errors, "error");
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, errors);
    const { log, key } = backedLog(store, committer);
    const applied: number[] = [];
    let failures = 1;
    log.onCommit = (events) => {
      if (failures > 0) {
        failures -= 1;
        throw new Error("view failed");
      }
      applied.push(...seqs(events));
    };
    const published: number[] = [];
    log.onPublish = (events) => published.push(...seqs(events));

    appendMany(log, 2);
    await expect(committer.flush()).resolves.toBeUndefined();
    expect(seqs(await store.inner.readEvents(key, 0, 100))).toEqual([1, 2]);
    // Stored, so visible although the session's view failed on them.
    expect(log.lastSeq).toBe(2);
    expect(seqs(await log.read(0))).toEqual([1, 2]);
    expect(published).toEqual([1, 2]);
    expect(logged).toHaveBeenCalledTimes(1);

    // The chain is not stuck: the next append is committed on its own and published.
    appendMany(log, 1);
    await log.waitBeyond(2);
    expect(store.commits.map(commitSeqs)).toEqual([[1, 2], [3]]);
    expect(applied).toEqual([3]);
    expect(published).toEqual([1, 2, 3]);
    expect(seqs(await readAll(log))).toEqual([1, 2, 3]);

    // A commit observer that throws does not keep events from being published either.
    const observed = new RecordingStore();
    const observer = vi.fn(() => {
      throw new Error("metrics failed");
    });
    const watched = new GroupCommitter(observed, errors, observer);
    const other = backedLog(observed, watched, "s2");
    const otherPublished: number[] = [];
    other.log.onPublish = (events) => otherPublished.push(...seqs(events));
    appendMany(other.log, 2);
    await expect(watched.flush()).resolves.toBeUndefined();
    expect(other.log.lastSeq).toBe(2);
    expect(other.applied).toEqual([1, 2]);
    expect(otherPublished).toEqual([1, 2]);
    appendMany(other.log, 1);
    await other.log.waitBeyond(2);
    expect(observed.commits.map(commitSeqs)).toEqual([[1, 2], [3]]);
    expect(otherPublished).toEqual([1, 2, 3]);
    expect(observer).toHaveBeenCalledTimes(2);
  });

  it("close stores events appended while its final commit is with the store, and logs what it could not store", async () => {
    const errors = pino({ level: "silent" });
    const logged = vi.spyOn(errors, "error");
    const store = new RecordingStore();
    store.hold = true;
    const committer = new GroupCommitter(store, errors);
    const { log, key } = backedLog(store, committer);

    appendMany(log, 2);
    const entered = store.entered();
    const closing = committer.close();
    await entered;
    // Appended while close's commit is with the store.
    appendMany(log, 1);
    store.hold = false;
    store.release();
    await closing;
    expect(store.commits.map(commitSeqs)).toEqual([[1, 2], [3]]);
    expect(seqs(await store.inner.readEvents(key, 0, 100))).toEqual([1, 2, 3]);
    expect(log.lastSeq).toBe(3);
    expect(logged).not.toHaveBeenCalled();

    // A store that keeps failing: close gives up after one more commit and says how many it lost.
    const failing = new RecordingStore();
    failing.failNext = 2;
    const closed = new GroupCommitter(failing, errors);
    const lost = backedLog(failing, closed, "s2");
    appendMany(lost.log, 2);
    await closed.close();
    expect(failing.attempts).toBe(2);
    expect(logged).toHaveBeenLastCalledWith({ events: 2 }, expect.stringContaining("could not store"));
  });

  it("reads events older than the in-memory tail from the store, continuously", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);
    const appended = appendMany(log, 10);
    await committer.flush();
    expect(log.size).toBe(4);
    expect(log.firstSeq).toBe(1);
    expect(log.retained).toBe(10);

    const all = await readAll(log);
    expect(seqs(all)).toEqual(range(1, 10));
    all.forEach((event, i) => {
      const expected = appended[i];
      expect(expected && equals(EventSchema, event, expected)).toBe(true);
    });
    // Small pages across the boundary between store and tail.
    expect(seqs(await readAll(log, 0, 3))).toEqual(range(1, 10));
    expect(seqs(await readAll(log, 4, 2))).toEqual(range(5, 10));
    // A page from the store stops where the tail begins; the rest comes from the tail.
    expect(seqs(await log.read(3, 100))).toEqual([4, 5, 6]);
    expect(seqs(await log.read(6, 100))).toEqual([7, 8, 9, 10]);
    expect(seqs(await store.readEvents(key, 0, 100))).toEqual(range(1, 10));
  });

  it("shares the store reads of readers behind the tail: each page is read once, whatever their positions", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    const appended = appendMany(log, 2000);
    await committer.flush();
    expect(log.size).toBe(4);

    // Ten readers from different positions and with different batch sizes, interleaved.
    const readers = Array.from({ length: 10 }, (_, i) => ({ cursor: i * 37, limit: [256, 100, 7][i % 3] as number, got: [] as Event[] }));
    for (let active = readers.length; active > 0; ) {
      active = 0;
      for (const reader of readers) {
        const page = await log.read(reader.cursor, reader.limit);
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

  it("shrinks the in-memory tail of an idle log and still reads everything", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 10);
    await committer.flush();
    expect(log.size).toBe(4);
    log.shrinkTail(2);
    expect(log.size).toBe(2);
    expect(log.retained).toBe(10);
    expect(seqs(await readAll(log))).toEqual(range(1, 10));
    expect(seqs(await log.read(8, 100))).toEqual([9, 10]);
  });

  it("continues a restored log from the store", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const first = backedLog(store, committer);
    appendMany(first.log, 6);
    await committer.flush();

    // As after a restart: a new log over the same store, starting at the record's lastSeq,
    // handed what the store retains of it (the log no longer reads the store itself).
    const retained = { firstSeq: (await store.firstSeq(first.key)) ?? 7, bytes: await store.sessionBytes(first.key) };
    expect(retained.bytes).toBe(first.log.storedBytes);
    const restored = backedLog(store, new GroupCommitter(store, logger), "s1", 6, retained);
    expect(restored.log.firstSeq).toBe(1);
    expect(restored.log.storedBytes).toBe(retained.bytes);
    expect(seqs(await readAll(restored.log))).toEqual(range(1, 6));
    restored.log.append("turn", text("more"));
    expect(restored.log.assignedSeq).toBe(7);
  });

  it("retainedFrom makes reads of dropped events fail with the new first seq", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);
    appendMany(log, 10);
    await committer.flush();

    const moved = await store.compact({ ...NO_LIMITS, maxEvents: 5 }, Date.now());
    const bytes = await store.sessionBytes(key);
    expect(moved).toEqual(new Map([[key, { firstSeq: 6, bytes }]]));
    log.retainedFrom(moved.get(key) as Retained);
    expect(log.firstSeq).toBe(6);
    expect(log.retained).toBe(5);
    expect(log.storedBytes).toBe(bytes);
    const error = await rejection(log.read(4));
    expect(error).toBeInstanceOf(OutOfRangeError);
    expect((error as OutOfRangeError).firstSeq).toBe(6);
    expect((error as OutOfRangeError).requestedAfterSeq).toBe(4n);
    expect((error as OutOfRangeError).lastSeq).toBe(10);
    await expect(log.read(0)).rejects.toThrow(OutOfRangeError);
    expect(seqs(await readAll(log, 5))).toEqual(range(6, 10));

    // Past the start of the in-memory tail: the tail drops what is gone too.
    const movedAgain = await store.compact({ ...NO_LIMITS, maxEvents: 2 }, Date.now());
    expect(movedAgain.get(key)?.firstSeq).toBe(9);
    log.retainedFrom(movedAgain.get(key) as Retained);
    expect(log.size).toBe(2);
    expect(((await rejection(log.read(7))) as OutOfRangeError).firstSeq).toBe(9);
    expect(seqs(await readAll(log, 8))).toEqual([9, 10]);
  });

  it("follows retention a store applies as it commits", async () => {
    const store = new RecordingStore(new MemoryStore({ ...NO_LIMITS, maxEvents: 3 }));
    const committer = new GroupCommitter(store, logger);
    const { log, key } = backedLog(store, committer);
    appendMany(log, 10);
    await committer.flush();
    expect(log.firstSeq).toBe(8);
    expect(log.storedBytes).toBe(await store.sessionBytes(key));
    expect(((await rejection(log.read(0))) as OutOfRangeError).firstSeq).toBe(8);
    expect(seqs(await readAll(log, 7))).toEqual([8, 9, 10]);
  });

  it("close wakes waiting readers and makes reads fail with not_found", async () => {
    const store = new RecordingStore();
    const committer = new GroupCommitter(store, logger);
    const { log } = backedLog(store, committer);
    appendMany(log, 2);
    await committer.flush();
    const waiting = log.waitBeyond(2);
    log.close();
    await waiting;
    const error = await rejection(log.read(0));
    expect(error).toBeInstanceOf(HotplexError);
    expect((error as HotplexError).code).toBe("not_found");
    // Waiting on a closed log returns at once.
    await log.waitBeyond(2);
  });
});
