import type { Redis } from "ioredis";
import type { Event } from "../../events/event.js";
import { decodeEvent } from "../../events/event-codec.js";
import { encodeEvent, rememberEncoding } from "../../events/encoded-event.js";
import {
  type AuditRecord,
  eventTimeMs,
  type LiveNode,
  type LogWatch,
  type NodeLoad,
  type WatchedEvent,
  type Retained,
  type RetentionPolicy,
  SessionHeldError,
  type SessionRecord,
  SessionsFencedError,
  type Store,
  type StoredEvent,
} from "../store.js";
import { type SessionKeys, sessionKeys } from "./keys.js";
import { type LeaseTimings, SessionLease } from "./lease.js";
import { decodeRecord, encodeRecord, type RecordJson, recordJson } from "./record-codec.js";
import { APPEND_AUDIT } from "./scripts.js";
import { commitFenced, entryOf, FencedError, lastGeneratedSeq, logBytes, SeqError, type StoredBytes, trimLog } from "./stream-log.js";
import { NodeRegistry } from "./node-registry.js";
import { StreamTailer } from "./stream-tailer.js";

export interface RedisStoreOptions {
  /** Put before every key ("hp:" by default): several deployments may share one Redis. */
  prefix?: string;
  /** This node's id, in the leases it holds. */
  node: string;
  lease: LeaseTimings;
  /** Where the data lives, for the operator (the Redis address, never its password). */
  location: string;
  /** close() also closes the connection (the store opened it). */
  ownsConnection?: boolean;
}

// Entries read per XRANGE when retention walks a log.
const SCAN_PAGE = 256;

// The tailer that serves watch(): the longest one blocking read waits (it is woken when the
// watched set changes), the most entries per stream per reply, the pause after a failed read.
const TAIL_BLOCK_MS = 5_000;
const TAIL_COUNT = 512;
const TAIL_RETRY_MS = 200;
// How long the live nodes' addresses are remembered between lookups.
const NODES_CACHE_MS = 1_000;

/**
 * The store for many nodes: each session's log a Redis stream with ids `<seq>-0`, its
 * registry entry, lease, epoch and byte count under one hash tag (Redis Cluster ready),
 * an index of the sessions, and the audit log.
 *
 * Every commit is fenced: this store holds a lease on each session it runs (taken by own()
 * before an agent starts, or by the first commit; renewed in the background; given up by
 * deleteSession and close), and a session another node holds is refused. A lease that was
 * not renewed by its deadline, or a fenced commit, makes the session lost (onLost): the
 * engine stops its agent before anyone else can take the lease. A commit of several
 * sessions is atomic per session (its events and registry entry: both or neither), not
 * across them; a retried commit stores nothing twice (the fenced script skips a batch
 * already there). Calls on one connection are answered in order.
 */
export class RedisStore implements Store {
  readonly kind = "redis";
  readonly location: string;
  readonly node: string;
  onLost: ((key: string, why: string) => void) | undefined;
  keep: ((key: string) => boolean) | undefined;
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #node: string;
  readonly #timings: LeaseTimings;
  readonly #leases = new Map<string, SessionLease>();
  /** Acquisitions on their way: one per session, shared by whoever asks meanwhile. */
  readonly #acquiring = new Map<string, Promise<SessionLease>>();
  /** Per held lease, the timer at its deadline (self-fencing). */
  readonly #deadlines = new Map<string, NodeJS.Timeout>();
  readonly #renewer: NodeJS.Timeout;
  readonly #index: string;
  /** Sessions some node holds or held without giving them up: where orphans are looked for. */
  readonly #held: string;
  readonly #audit: string;
  readonly #auditId: string;
  readonly #ownsConnection: boolean;
  /** Tails the watched logs on a connection of its own; made by the first watch. */
  #tailer: StreamTailer | undefined;
  #tailing: Redis | undefined;
  /** This node's heartbeat, once it advertises an address. */
  #heartbeat: NodeJS.Timeout | undefined;
  readonly #nodes: NodeRegistry;
  #liveNodes: { atMs: number; nodes: Promise<LiveNode[]> } | undefined;

  constructor(redis: Redis, options: RedisStoreOptions) {
    this.#redis = redis;
    this.#prefix = options.prefix ?? "hp:";
    this.#node = options.node;
    this.node = options.node;
    this.#timings = options.lease;
    this.location = options.location;
    this.#ownsConnection = options.ownsConnection ?? false;
    this.#index = `${this.#prefix}sessions`;
    this.#held = `${this.#prefix}held`;
    // One hash tag for both: the audit script touches them together.
    this.#audit = `${this.#prefix}{audit}:log`;
    this.#auditId = `${this.#prefix}{audit}:id`;
    // Renewed three times per ttl: one late renew still leaves time before the deadline.
    this.#renewer = setInterval(() => void this.#renewAll(), Math.max(50, Math.floor(options.lease.ttlMs / 3)));
    this.#renewer.unref();
    this.#nodes = new NodeRegistry(redis, this.#prefix);
  }

  async holder(key: string): Promise<string | undefined> {
    if (this.holds(key)) return this.#node;
    // The lease is `<epoch>:<node>:<nonce>`.
    const token = await this.#redis.get(sessionKeys(this.#prefix, key).lease);
    return token ? token.split(":")[1] : undefined;
  }

  advertise(url: string, load: () => NodeLoad): void {
    clearInterval(this.#heartbeat);
    // Alive for three lease ttls; beaten once per ttl, so one late beat does not make it dead.
    const beat = () => void this.#nodes.heartbeat({ node: this.#node, address: url, ...load() }, Math.min(600_000, this.#timings.ttlMs * 3)).catch(() => {});
    beat();
    this.#heartbeat = setInterval(beat, this.#timings.ttlMs);
    this.#heartbeat.unref();
  }

  async addressOf(node: string): Promise<string | undefined> {
    return (await this.liveNodes()).find((info) => info.node === node)?.url;
  }

  liveNodes(): Promise<LiveNode[]> {
    const now = performance.now();
    if (!this.#liveNodes || now - this.#liveNodes.atMs > NODES_CACHE_MS) {
      const nodes = this.#nodes.live().then((live) => live.map(({ node, address, load, capacity }) => ({ node, url: address, load, capacity })));
      // A failed lookup is not remembered.
      nodes.catch(() => (this.#liveNodes = undefined));
      this.#liveNodes = { atMs: now, nodes };
    }
    return this.#liveNodes.nodes;
  }

  async commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Promise<undefined> {
    // Everything is read from the arguments before the first await (the caller's objects
    // change); events are immutable, and encoded once their epoch is known (below).
    const batches = new Map<string, { events: Event[]; firstSeq: number; record?: RecordJson }>();
    for (const { key, event } of events) {
      let batch = batches.get(key);
      if (!batch) {
        batch = { events: [], firstSeq: Number(event.seq) };
        batches.set(key, batch);
      }
      batch.events.push(event);
    }
    for (const record of sessions) {
      let batch = batches.get(record.key);
      if (!batch) {
        batch = { events: [], firstSeq: record.lastSeq + 1 };
        batches.set(record.key, batch);
      }
      batch.record = recordJson(record);
    }
    const keys = [...batches.keys()].map((key) => [key, sessionKeys(this.#prefix, key)] as const);
    // Indexed first (sent ahead of the commits on the one connection, so Redis runs it
    // first): an indexed session without a record is skipped by loadSessions, a record or
    // events missing from the index would be lost to loadSessions and retention.
    const indexed = this.#redis.sadd(this.#index, ...batches.keys());
    const fenced: string[] = [];
    const results = await Promise.allSettled(
      keys.map(async ([key, sessionKeys]) => {
        const batch = batches.get(key)!;
        try {
          const lease = await this.#leaseFor(key, sessionKeys);
          const meta = batch.record ? encodeRecord(batch.record, { node: this.#node, epoch: lease.epoch }) : undefined;
          await commitFenced(this.#redis, sessionKeys, lease, batch.firstSeq, batch.events.map((event) => stamped(event, lease.epoch)), meta);
        } catch (error) {
          // Another node runs it, or wrote it since this node's copy was loaded: nothing of
          // it may be stored from here, ever; its agent must stop.
          if (!(error instanceof FencedError || error instanceof SessionHeldError || error instanceof SeqError)) throw error;
          fenced.push(key);
          this.#lose(key, error.message);
        }
      }),
    );
    await indexed;
    const failed = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failed) throw failed.reason;
    if (fenced.length > 0) throw new SessionsFencedError(fenced, `another node runs ${fenced.length === 1 ? `session ${fenced[0]}` : `${fenced.length} sessions`}: not stored here`);
    // Retention runs in compact(), not per commit.
    return undefined;
  }

  async own(key: string): Promise<number> {
    const keys = sessionKeys(this.#prefix, key);
    await this.#leaseFor(key, keys);
    return lastGeneratedSeq(this.#redis, keys);
  }

  holds(key: string): boolean {
    return this.#leases.get(key)?.valid ?? false;
  }

  async readEvents(key: string, afterSeq: number, limit: number): Promise<Event[]> {
    const keys = sessionKeys(this.#prefix, key);
    if (!(limit >= 1)) return [];
    const count = Math.max(1, Math.min(Math.floor(limit), 10_000));
    const entries = await this.#redis.xrangeBuffer(keys.log, `(${afterSeq}-0`, "+", "COUNT", count);
    return entries.map((entry) => decodeStored(entryOf(entry)));
  }

  watch(key: string, afterSeq: number, watch: LogWatch): () => void {
    // One blocking XREAD serves every watch of this node, on a connection that does nothing else.
    if (!this.#tailer) {
      this.#tailing = this.#redis.duplicate();
      this.#tailing.on("error", () => {});
      this.#tailer = new StreamTailer(this.#tailing, this.#redis, { prefix: this.#prefix, blockMs: TAIL_BLOCK_MS, count: TAIL_COUNT, retryMs: TAIL_RETRY_MS });
    }
    const stop = this.#tailer.watch(sessionKeys(this.#prefix, key).log, afterSeq, {
      deliver: (entries) => {
        let events: WatchedEvent[];
        try {
          events = entries.map((entry) => ({ event: decodeStored(entry), epoch: entry.epoch }));
        } catch (error) {
          // A damaged entry ends this watch (with what it says), not the tailer's other watches.
          stop();
          watch.unreadable(new Error(`an event of session ${key} in the store cannot be read: ${(error as Error).message}`, { cause: error }));
          return;
        }
        watch.deliver(events);
      },
      failed: (error) => watch.trimmed(error.firstSeq),
    });
    return stop;
  }

  async firstSeq(key: string): Promise<number | undefined> {
    const [first] = await this.#redis.xrangeBuffer(sessionKeys(this.#prefix, key).log, "-", "+", "COUNT", 1);
    return first ? entryOf(first).seq : undefined;
  }

  async sessionBytes(key: string): Promise<number> {
    return logBytes(this.#redis, sessionKeys(this.#prefix, key));
  }

  async appendAudit(entry: Omit<AuditRecord, "id">, keep: number): Promise<number> {
    return Number(await this.#redis.eval(APPEND_AUDIT, 2, this.#audit, this.#auditId, JSON.stringify(entry), String(Math.max(1, keep))));
  }

  async readAudit(afterId: number, limit: number): Promise<AuditRecord[]> {
    const count = Math.max(1, Math.min(Math.floor(limit), 10_000));
    const entries = await this.#redis.xrange(this.#audit, `(${afterId}-0`, "+", "COUNT", count);
    return entries.map(([id, fields]) => auditRecordOf(Number(id.split("-")[0]), fields[fields.indexOf("j") + 1]));
  }

  async loadSessions(): Promise<SessionRecord[]> {
    const records: SessionRecord[] = [];
    const keys = await this.#indexed();
    // A page of entries at a time, its reads in flight together.
    for (let at = 0; at < keys.length; at += 500) {
      const page = await Promise.all(keys.slice(at, at + 500).map((key) => this.loadSession(key)));
      // Undefined: indexed, then never committed (a commit that failed after the index was written).
      for (const record of page) if (record) records.push(record);
    }
    return records;
  }

  async loadSession(key: string): Promise<SessionRecord | undefined> {
    const meta = await this.#redis.getBuffer(sessionKeys(this.#prefix, key).meta);
    if (!meta) return undefined;
    try {
      return decodeRecord(meta);
    } catch (error) {
      throw new Error(`the registry entry of ${JSON.stringify(key)} cannot be read: ${(error as Error).message}`, { cause: error });
    }
  }

  async deleteSession(key: string): Promise<void> {
    const keys = sessionKeys(this.#prefix, key);
    const lease = this.#leases.get(key);
    this.#drop(key);
    // The epoch stays: an id used again goes on with higher epochs, never repeats one.
    await Promise.all([this.#redis.del(keys.log, keys.meta, keys.bytes), this.#redis.srem(this.#index, key), lease ? this.#giveUp(key, lease) : this.#redis.srem(this.#held, key)]);
  }

  async compact(policy: RetentionPolicy, nowMs: number): Promise<Map<string, Retained>> {
    const cuts = new Map<string, number>();
    const heads: LogHead[] = [];
    for (const key of await this.#indexed()) {
      const keys = sessionKeys(this.#prefix, key);
      const head = await this.#trimPerSession(key, keys, policy, nowMs);
      if (head.cut > head.first) cuts.set(key, head.cut);
      heads.push(head);
    }
    if (policy.totalMaxBytes > 0) for (const [key, cut] of await this.#totalCuts(heads, policy.totalMaxBytes)) cuts.set(key, cut);
    const moved = new Map<string, Retained>();
    for (const [key, cut] of cuts) {
      const keys = sessionKeys(this.#prefix, key);
      if ((await trimLog(this.#redis, keys, cut)) === 0) continue;
      moved.set(key, { firstSeq: (await this.firstSeq(key)) ?? (await this.#recordedLastSeq(keys)) + 1, bytes: await logBytes(this.#redis, keys) });
    }
    return moved;
  }

  // The last seq the session's registry entry names (0 without one), as the other stores
  // answer where a log emptied by retention starts again.
  async #recordedLastSeq(keys: SessionKeys): Promise<number> {
    const meta = await this.#redis.getBuffer(keys.meta);
    if (!meta) return 0;
    try {
      return decodeRecord(meta).lastSeq;
    } catch {
      return lastGeneratedSeq(this.#redis, keys);
    }
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  async close(): Promise<void> {
    clearInterval(this.#renewer);
    if (this.#heartbeat) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
      // Gone at once from the others' view, rather than when its heartbeat expires.
      await this.#nodes.leave(this.#node).catch(() => {});
    }
    const tailer = this.#tailer;
    this.#tailer = undefined;
    await tailer?.close();
    this.#tailing?.disconnect();
    this.#tailing = undefined;
    const leases = [...this.#leases];
    for (const [key] of leases) this.#drop(key);
    // Given up, so another node can take the sessions at once instead of after the ttl.
    await Promise.allSettled(leases.map(([key, lease]) => this.#giveUp(key, lease)));
    if (this.#ownsConnection) await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  // The lease this store holds on a session, taken when it holds none (or lost it).
  async #leaseFor(key: string, keys: SessionKeys): Promise<SessionLease> {
    const held = this.#leases.get(key);
    if (held?.valid) return held;
    if (held) this.#lose(key, "its hold was not renewed in time");
    let acquiring = this.#acquiring.get(key);
    if (!acquiring) {
      // Should this node die holding it, the others find it here (orphans()). Sent ahead of
      // the acquisition on the one connection, so no lease is ever missing from the set.
      this.#redis.sadd(this.#held, key).catch(() => {});
      acquiring = this.#acquire(key, keys).then((lease) => {
        this.#leases.set(key, lease);
        this.#armDeadline(key, lease);
        return lease;
      });
      const settled = () => this.#acquiring.delete(key);
      acquiring.then(settled, settled);
      this.#acquiring.set(key, acquiring);
    }
    return acquiring;
  }

  // Takes the lease. Held by this node's own run from before a restart (its token names this
  // node, not one of this run's leases), it is waited for once: it expires within the ttl.
  async #acquire(key: string, keys: SessionKeys): Promise<SessionLease> {
    for (let attempt = 0; ; attempt += 1) {
      const lease = await SessionLease.acquire(this.#redis, keys, this.#node, this.#timings);
      if (lease) return lease;
      const [holder, left] = await Promise.all([this.#redis.get(keys.lease), this.#redis.pttl(keys.lease)]);
      const node = String(holder ?? "").split(":")[1];
      if (node !== this.#node) throw new SessionHeldError(`session ${key} is run by node ${JSON.stringify(node ?? "?")}`);
      if (attempt > 0) throw new Error(`this node's hold on session ${key} from before its restart has not expired yet (it does within the lease ttl)`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(Math.max(left, 0), this.#timings.ttlMs) + 10));
    }
  }

  // Self-fencing: a lease not renewed by its deadline makes the session lost, on this node's
  // own clock, before the lease can expire in Redis.
  #armDeadline(key: string, lease: SessionLease): void {
    clearTimeout(this.#deadlines.get(key));
    const timer = setTimeout(() => {
      if (this.#leases.get(key) === lease && !lease.valid) this.#lose(key, "its hold was not renewed in time");
    }, Math.max(0, lease.mustStopBy - performance.now()) + 1);
    timer.unref();
    this.#deadlines.set(key, timer);
  }

  async orphans(): Promise<string[]> {
    const held = await this.#members(this.#held);
    const orphans: string[] = [];
    // A page of lease checks in flight at once.
    for (let at = 0; at < held.length; at += 500) {
      const page = held.slice(at, at + 500).filter((key) => !this.#leases.has(key) && !this.#acquiring.has(key));
      const exists = await Promise.all(page.map((key) => this.#redis.exists(sessionKeys(this.#prefix, key).lease)));
      page.forEach((key, i) => {
        if (exists[i] === 0) orphans.push(key);
      });
    }
    return orphans;
  }

  // Gives a lease up: out of the held set first, so that nobody takes the session for an
  // orphan in between (the lease still stands until the release).
  async #giveUp(key: string, lease: SessionLease): Promise<void> {
    await this.#redis.srem(this.#held, key).catch(() => 0);
    await lease.release().catch(() => false);
  }

  #drop(key: string): void {
    this.#leases.delete(key);
    clearTimeout(this.#deadlines.get(key));
    this.#deadlines.delete(key);
  }

  #lose(key: string, why: string): void {
    this.#drop(key);
    try {
      this.onLost?.(key, why);
    } catch {
      // The engine's reaction must not break the store's bookkeeping.
    }
  }

  async #renewAll(): Promise<void> {
    await Promise.all(
      [...this.#leases].map(async ([key, lease]) => {
        // No longer needed (its agent ended, no turn waits): given up, so any node may run
        // the session next, at once rather than after the ttl.
        if (this.keep && !this.#acquiring.has(key) && !this.keep(key)) {
          this.#drop(key);
          await this.#giveUp(key, lease);
          return;
        }
        let renewed: boolean;
        try {
          renewed = await lease.renew();
        } catch {
          // Redis unreachable: the deadline decides.
          return;
        }
        if (this.#leases.get(key) !== lease) return;
        if (renewed) this.#armDeadline(key, lease);
        else this.#lose(key, "another node took it over");
      }),
    );
  }

  #indexed(): Promise<string[]> {
    return this.#members(this.#index);
  }

  // Every member of a set, read a page at a time (SSCAN: Redis is never blocked for long).
  async #members(set: string): Promise<string[]> {
    const members: string[] = [];
    let cursor = "0";
    do {
      const [next, page] = await this.#redis.sscan(set, cursor, "COUNT", 500);
      cursor = next;
      members.push(...page);
    } while (cursor !== "0");
    return members;
  }

  // Per session, the first seq kept after the per-session limits: the longest prefix of the
  // log that is too many events, too old or too many bytes (the newest event always stays
  // for the byte limit), found by walking it from its start.
  async #trimPerSession(key: string, keys: SessionKeys, policy: RetentionPolicy, nowMs: number): Promise<LogHead> {
    const last = await lastGeneratedSeq(this.#redis, keys);
    let remaining = await logBytes(this.#redis, keys);
    const first = (await this.firstSeq(key)) ?? last + 1;
    const head: LogHead = { key, keys, first, cut: first, last, bytes: remaining };
    const eventsCut = policy.maxEvents > 0 ? last - policy.maxEvents + 1 : 0;
    const cutoff = policy.maxAgeMs > 0 ? nowMs - policy.maxAgeMs : -Infinity;
    const overBytes = () => policy.maxBytes > 0 && remaining > policy.maxBytes;
    if (first > last || (eventsCut <= first && !overBytes() && policy.maxAgeMs <= 0)) return head;
    for (let after = first - 1; ; ) {
      const page = await this.#redis.xrangeBuffer(keys.log, `(${after}-0`, "+", "COUNT", SCAN_PAGE);
      for (const raw of page) {
        const { seq, bytes } = entryOf(raw);
        const old = seq < eventsCut || (cutoff > -Infinity && eventTimeMs(decodeEvent(bytes)) < cutoff) || (overBytes() && seq < last);
        if (!old) return { ...head, cut: seq, bytes: remaining };
        remaining -= bytes.length;
        head.cut = seq + 1;
      }
      if (page.length < SCAN_PAGE) return { ...head, bytes: remaining };
      after = entryOf(page[page.length - 1]!).seq;
    }
  }

  // Over all sessions, the oldest events go first until the total fits (ordered by time,
  // then seq, then key, as the SQLite store orders them): each session's first kept seq.
  async #totalCuts(heads: LogHead[], totalMaxBytes: number): Promise<Map<string, number>> {
    let total = heads.reduce((sum, head) => sum + head.bytes, 0);
    const cuts = new Map<string, number>();
    if (total <= totalMaxBytes) return cuts;
    const cursors = heads.filter((head) => head.cut <= head.last).map((head) => ({ head, page: [] as ScannedEntry[], at: 0, done: false }));
    const peek = async (cursor: (typeof cursors)[number]): Promise<ScannedEntry | undefined> => {
      if (cursor.at < cursor.page.length) return cursor.page[cursor.at];
      if (cursor.done) return undefined;
      const page = await this.#redis.xrangeBuffer(cursor.head.keys.log, `(${cursor.head.cut - 1}-0`, "+", "COUNT", SCAN_PAGE);
      cursor.page = page.map((raw) => {
        const { seq, bytes } = entryOf(raw);
        return { seq, size: bytes.length, timeMs: eventTimeMs(decodeEvent(bytes)) };
      });
      cursor.at = 0;
      cursor.done = page.length < SCAN_PAGE;
      return cursor.page[0];
    };
    while (total > totalMaxBytes) {
      let oldest: { cursor: (typeof cursors)[number]; entry: ScannedEntry } | undefined;
      for (const cursor of cursors) {
        const entry = await peek(cursor);
        if (!entry) continue;
        if (!oldest || before(entry, cursor.head.key, oldest.entry, oldest.cursor.head.key)) oldest = { cursor, entry };
      }
      if (!oldest) break;
      total -= oldest.entry.size;
      oldest.cursor.at += 1;
      oldest.cursor.head.cut = oldest.entry.seq + 1;
      cuts.set(oldest.cursor.head.key, oldest.cursor.head.cut);
    }
    return cuts;
  }
}

// An event's encoding with the epoch of the lease it is stored under: a client resumes with
// (seq, epoch), so a seq given again after a lossy failover is told from the one it saw. An
// event is stamped once (a retried commit stores the bytes of the first try).
function stamped(event: Event, epoch: number): Buffer {
  if (event.epoch === 0n) event.epoch = BigInt(epoch);
  const bytes = encodeEvent(event);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// One audit entry as stored (JSON); a damaged one is kept in the listing as "unreadable",
// saying so, rather than failing every read of the audit log.
function auditRecordOf(id: number, json: string | undefined): AuditRecord {
  const text = (value: unknown) => (typeof value === "string" ? value : "");
  try {
    const entry = JSON.parse(json ?? "") as Record<string, unknown>;
    if (typeof entry !== "object" || entry === null || typeof entry.kind !== "string") throw new Error("not an audit entry");
    return {
      id,
      timeMs: typeof entry.timeMs === "number" ? entry.timeMs : 0,
      kind: entry.kind,
      principal: text(entry.principal),
      tenant: text(entry.tenant),
      sessionId: text(entry.sessionId),
      method: text(entry.method),
      detail: text(entry.detail),
    };
  } catch (error) {
    return { id, timeMs: 0, kind: "unreadable", principal: "", tenant: "", sessionId: "", method: "", detail: `audit entry ${id} cannot be read: ${(error as Error).message}` };
  }
}

// A stored event, decoded; a replay sends its bytes as they are instead of encoding it again.
function decodeStored({ bytes }: StoredBytes): Event {
  const event = decodeEvent(bytes);
  rememberEncoding(event, bytes);
  return event;
}

interface LogHead {
  key: string;
  keys: SessionKeys;
  /** The first seq the log holds (last + 1 when none). */
  first: number;
  /** The first seq kept after the limits so far. */
  cut: number;
  last: number;
  /** Bytes of the events from `cut` on. */
  bytes: number;
}

interface ScannedEntry {
  seq: number;
  size: number;
  timeMs: number;
}

function before(a: ScannedEntry, aKey: string, b: ScannedEntry, bKey: string): boolean {
  if (a.timeMs !== b.timeMs) return a.timeMs < b.timeMs;
  if (a.seq !== b.seq) return a.seq < b.seq;
  return aKey < bKey;
}
