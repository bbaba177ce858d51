import { mkdirSync } from "node:fs";
import path from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { SessionConfigSchema, SessionStatsSchema, type SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import type { Event } from "../events/event.js";
import { decodeEvent } from "../events/event-codec.js";
import { encodeEvent, rememberEncoding } from "../events/encoded-event.js";
import { migrate } from "./migrations.js";
import { type AuditRecord, eventTimeMs, type Retained, type RetentionPolicy, type SessionRecord, type Store, type StoredEvent } from "./store.js";

/**
 * How hard a commit tries to reach the disk.
 * - "normal": WAL with synchronous=NORMAL. A commit is written to the WAL before the
 *   event is published, so it survives the daemon being killed (even with SIGKILL);
 *   the OS flushes it to disk later, so a power loss can lose the last commits.
 * - "full": synchronous=FULL, an fsync per commit: survives power loss too. Commits are
 *   grouped (one per event-loop turn), so a streaming turn pays one fsync per batch of
 *   output lines, not per token.
 */
export type Durability = "normal" | "full";

/** A data directory that cannot be used; the message names the file. */
export class StoreOpenError extends Error {
  override readonly name = "StoreOpenError";
}

interface SessionRow {
  key: string;
  tenant: string;
  session_id: string;
  incarnation: string;
  provider: string;
  provider_session_id: string;
  work_dir: string;
  config: Buffer;
  status: number;
  created_ms: number;
  last_active_ms: number;
  stats: Buffer;
  pgid: number;
  agent_command: string;
  has_conversation: number;
  current_turn_id: string;
  last_seq: number;
  extras: string;
}

/**
 * SQLite in WAL mode: the embedded default store. Every call does its work synchronously
 * (better-sqlite3) and returns a settled promise: a commit is on disk (per the durability)
 * before the call returns, and calls are answered in order.
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly location: string;
  readonly #db: Database.Database;
  readonly #insertEvent: Database.Statement;
  readonly #insertEvents: Database.Statement;
  readonly #upsertSession: Database.Statement;
  readonly #readEvents: Database.Statement;
  readonly #firstSeq: Database.Statement;
  readonly #sessionBytes: Database.Statement;
  readonly #insertAudit: Database.Statement;
  readonly #trimAudit: Database.Statement;
  readonly #readAudit: Database.Statement;
  readonly #commit: (events: readonly StoredEvent[], sessions: readonly SessionRecord[]) => void;

  constructor(dataDir: string, durability: Durability = "normal") {
    this.location = path.join(dataDir, "hotplex.db");
    let db: Database.Database | undefined;
    try {
      mkdirSync(dataDir, { recursive: true });
      this.#db = db = new Database(this.location);
      this.#db.pragma("journal_mode = WAL");
      this.#db.pragma(`synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
      this.#db.pragma("foreign_keys = ON");
      this.#db.pragma("busy_timeout = 5000");
      // A damaged file must stop the daemon with a clear message, never be reset.
      const check = this.#db.pragma("quick_check", { simple: true });
      if (check !== "ok") throw new Error(`integrity check failed: ${String(check)}`);
      migrate(this.#db);
    } catch (error) {
      // Do not leave the refused file open.
      db?.close();
      throw new StoreOpenError(`cannot use the data file ${this.location}: ${(error as Error).message}`, { cause: error });
    }
    this.#insertEvent = this.#db.prepare(
      "INSERT INTO events (session_key, seq, time_ms, size, payload) VALUES (?, ?, ?, ?, ?)",
    );
    this.#insertEvents = this.#db.prepare(
      `INSERT INTO events (session_key, seq, time_ms, size, payload) VALUES ${Array(ROWS_PER_INSERT).fill("(?, ?, ?, ?, ?)").join(", ")}`,
    );
    this.#upsertSession = this.#db.prepare(`
      INSERT INTO sessions (key, tenant, session_id, incarnation, provider, provider_session_id, work_dir, config,
        status, created_ms, last_active_ms, stats, pgid, agent_command, has_conversation, current_turn_id, last_seq, extras)
      VALUES (@key, @tenant, @session_id, @incarnation, @provider, @provider_session_id, @work_dir, @config,
        @status, @created_ms, @last_active_ms, @stats, @pgid, @agent_command, @has_conversation, @current_turn_id, @last_seq, @extras)
      ON CONFLICT (key) DO UPDATE SET incarnation = excluded.incarnation, provider = excluded.provider,
        provider_session_id = excluded.provider_session_id, work_dir = excluded.work_dir, config = excluded.config,
        status = excluded.status, last_active_ms = excluded.last_active_ms, stats = excluded.stats, pgid = excluded.pgid,
        agent_command = excluded.agent_command, has_conversation = excluded.has_conversation,
        current_turn_id = excluded.current_turn_id, last_seq = excluded.last_seq, extras = excluded.extras`);
    this.#readEvents = this.#db.prepare(
      "SELECT payload FROM events WHERE session_key = ? AND seq > ? ORDER BY seq LIMIT ?",
    );
    this.#firstSeq = this.#db.prepare("SELECT MIN(seq) AS first FROM events WHERE session_key = ?");
    this.#sessionBytes = this.#db.prepare("SELECT COALESCE(SUM(size), 0) AS bytes FROM events WHERE session_key = ?").pluck();
    this.#insertAudit = this.#db.prepare(
      "INSERT INTO audit (time_ms, kind, principal, tenant, session_id, method, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.#trimAudit = this.#db.prepare("DELETE FROM audit WHERE id <= ?");
    this.#readAudit = this.#db.prepare(
      "SELECT id, time_ms, kind, principal, tenant, session_id, method, detail FROM audit WHERE id > ? ORDER BY id LIMIT ?",
    );
    this.#commit = this.#db.transaction((events: readonly StoredEvent[], sessions: readonly SessionRecord[]) => {
      // Several rows per statement: a statement's fixed cost (bind, step, reset, the call
      // into SQLite) is most of what one small row costs.
      let at = 0;
      for (; at + ROWS_PER_INSERT <= events.length; at += ROWS_PER_INSERT) {
        const values: unknown[] = [];
        for (let i = at; i < at + ROWS_PER_INSERT; i += 1) pushRow(values, events[i] as StoredEvent);
        this.#insertEvents.run(values);
      }
      for (; at < events.length; at += 1) this.#insertEvent.run(pushRow([], events[at] as StoredEvent));
      for (const record of sessions) this.#upsertSession.run(rowOf(record));
    });
  }

  async commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Promise<undefined> {
    // Retention is applied by compact(), not per commit.
    this.#commit(events, sessions);
    return undefined;
  }

  async readEvents(key: string, afterSeq: number, limit: number): Promise<Event[]> {
    const rows = this.#readEvents.all(key, afterSeq, limit) as { payload: Buffer }[];
    return rows.map((row) => {
      const event = decodeEvent(row.payload);
      // A replay sends these bytes as they are instead of encoding the event again.
      rememberEncoding(event, row.payload);
      return event;
    });
  }

  async firstSeq(key: string): Promise<number | undefined> {
    return this.#first(key);
  }

  #first(key: string): number | undefined {
    const row = this.#firstSeq.get(key) as { first: number | null };
    return row.first ?? undefined;
  }

  async sessionBytes(key: string): Promise<number> {
    return this.#sessionBytes.get(key) as number;
  }

  async appendAudit(entry: Omit<AuditRecord, "id">, keep: number): Promise<number> {
    const { lastInsertRowid } = this.#insertAudit.run(
      entry.timeMs,
      entry.kind,
      entry.principal,
      entry.tenant,
      entry.sessionId,
      entry.method,
      entry.detail,
    );
    const id = Number(lastInsertRowid);
    // Trimmed in steps, not on every entry: the newest `keep` always remain.
    if (id % 256 === 0) this.#trimAudit.run(id - keep);
    return id;
  }

  async readAudit(afterId: number, limit: number): Promise<AuditRecord[]> {
    const rows = this.#readAudit.all(afterId, limit) as {
      id: number;
      time_ms: number;
      kind: string;
      principal: string;
      tenant: string;
      session_id: string;
      method: string;
      detail: string;
    }[];
    return rows.map((row) => ({
      id: row.id,
      timeMs: row.time_ms,
      kind: row.kind,
      principal: row.principal,
      tenant: row.tenant,
      sessionId: row.session_id,
      method: row.method,
      detail: row.detail,
    }));
  }

  async loadSessions(): Promise<SessionRecord[]> {
    const rows = this.#db.prepare("SELECT * FROM sessions").all() as SessionRow[];
    return rows.map(recordOf);
  }

  async loadSession(key: string): Promise<SessionRecord | undefined> {
    const row = this.#db.prepare("SELECT * FROM sessions WHERE key = ?").get(key) as SessionRow | undefined;
    return row ? recordOf(row) : undefined;
  }

  async deleteSession(key: string): Promise<void> {
    this.#db.transaction(() => {
      this.#db.prepare("DELETE FROM events WHERE session_key = ?").run(key);
      this.#db.prepare("DELETE FROM sessions WHERE key = ?").run(key);
    })();
  }

  async compact(policy: RetentionPolicy, nowMs: number): Promise<Map<string, Retained>> {
    const touched = new Set<string>();
    const db = this.#db;
    db.transaction(() => {
      if (policy.maxAgeMs > 0) {
        // Per session, the events before its first one at or after the cutoff, as the
        // memory store does: a log's times grow with its seqs, and a wall clock that stepped
        // back must not cut a hole in the middle of one. Each lookup walks only the rows it
        // then deletes (the primary key is in seq order; there is no time index to keep up).
        const cutoff = nowMs - policy.maxAgeMs;
        const firstYoung = db.prepare("SELECT seq FROM events WHERE session_key = ? AND time_ms >= ? ORDER BY seq LIMIT 1");
        const deleteBefore = db.prepare("DELETE FROM events WHERE session_key = ? AND seq < ?");
        const deleteAll = db.prepare("DELETE FROM events WHERE session_key = ?");
        for (const key of this.#eventKeys()) {
          const young = firstYoung.get(key, cutoff) as { seq: number } | undefined;
          const { changes } = young ? deleteBefore.run(key, young.seq) : deleteAll.run(key);
          if (changes > 0) touched.add(key);
        }
      }
      if (policy.maxEvents > 0) {
        // Everything below each session's (maxEvents)-th newest seq.
        const rows = db
          .prepare(`DELETE FROM events WHERE (session_key, seq) IN (
              SELECT e.session_key, e.seq FROM events e JOIN (SELECT session_key, MAX(seq) AS last FROM events GROUP BY session_key) m
              ON e.session_key = m.session_key WHERE e.seq <= m.last - ?) RETURNING session_key`)
          .all(policy.maxEvents) as { session_key: string }[];
        for (const row of rows) touched.add(row.session_key);
      }
      if (policy.maxBytes > 0) {
        const over = db
          .prepare("SELECT session_key FROM events GROUP BY session_key HAVING SUM(size) > ?")
          .all(policy.maxBytes) as { session_key: string }[];
        for (const { session_key: key } of over) {
          // Keep the newest events whose sizes add up to at most maxBytes (at least one).
          const keepFrom = db
            .prepare(`SELECT seq FROM (SELECT seq, SUM(size) OVER (ORDER BY seq DESC) AS running
                FROM events WHERE session_key = ?) WHERE running <= ? ORDER BY seq LIMIT 1`)
            .get(key, policy.maxBytes) as { seq: number } | undefined;
          const cut = keepFrom?.seq ?? (db.prepare("SELECT MAX(seq) AS seq FROM events WHERE session_key = ?").get(key) as { seq: number }).seq;
          // A session down to one event, over the limit on its own, has not moved.
          if (db.prepare("DELETE FROM events WHERE session_key = ? AND seq < ?").run(key, cut).changes > 0) touched.add(key);
        }
      }
      if (policy.totalMaxBytes > 0) {
        const { total } = db.prepare("SELECT COALESCE(SUM(size), 0) AS total FROM events").get() as { total: number };
        if (total > policy.totalMaxBytes) {
          // The oldest events over all sessions go first, one by one: events sharing a
          // millisecond (a streaming turn) must not all go because one of them has to.
          const rows = db
            .prepare(`DELETE FROM events WHERE (session_key, seq) IN (
                SELECT session_key, seq FROM (SELECT session_key, seq, SUM(size) OVER (ORDER BY time_ms DESC, seq DESC, session_key DESC
                    ROWS UNBOUNDED PRECEDING) AS running FROM events)
                WHERE running > ?) RETURNING session_key`)
            .all(policy.totalMaxBytes) as { session_key: string }[];
          for (const row of rows) touched.add(row.session_key);
        }
      }
    })();
    const moved = new Map<string, Retained>();
    for (const key of touched) {
      const first = this.#first(key);
      const last = (db.prepare("SELECT last_seq FROM sessions WHERE key = ?").get(key) as { last_seq: number } | undefined)?.last_seq ?? 0;
      moved.set(key, { firstSeq: first ?? last + 1, bytes: this.#sessionBytes.get(key) as number });
    }
    return moved;
  }

  async ping(): Promise<void> {
    // The cheapest read there is: one indexed lookup of a key no session has.
    this.#first("");
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  // The session keys that have events, one primary-key seek each (no scan of the table).
  *#eventKeys(): Generator<string> {
    const next = this.#db.prepare("SELECT session_key FROM events WHERE session_key > ? ORDER BY session_key LIMIT 1").pluck();
    let key = next.get("") as string | undefined;
    while (key !== undefined) {
      yield key;
      key = next.get(key) as string | undefined;
    }
  }
}

const ROWS_PER_INSERT = 16;

// An event's row: key, seq, time, size and its encoding (made once: the same bytes go
// to the store and to every binary stream).
function pushRow(values: unknown[], { key, event }: StoredEvent): unknown[] {
  const payload = encodeEvent(event);
  values.push(key, event.seq, eventTimeMs(event), payload.length, payload);
  return values;
}

function rowOf(record: SessionRecord): SessionRow {
  return {
    key: record.key,
    tenant: record.tenant,
    session_id: record.sessionId,
    incarnation: record.incarnation,
    provider: record.provider,
    provider_session_id: record.providerSessionId,
    work_dir: record.workDir,
    config: Buffer.from(toBinary(SessionConfigSchema, record.config)),
    status: record.status,
    created_ms: record.createdAtMs,
    last_active_ms: record.lastActiveMs,
    stats: Buffer.from(toBinary(SessionStatsSchema, record.stats)),
    pgid: record.pgid,
    agent_command: record.agentCommand,
    has_conversation: record.hasConversation ? 1 : 0,
    current_turn_id: record.currentTurnId,
    last_seq: record.lastSeq,
    extras: record.extras,
  };
}

function recordOf(row: SessionRow): SessionRecord {
  return {
    key: row.key,
    tenant: row.tenant,
    sessionId: row.session_id,
    incarnation: row.incarnation,
    provider: row.provider,
    providerSessionId: row.provider_session_id,
    workDir: row.work_dir,
    config: fromBinary(SessionConfigSchema, row.config),
    status: row.status as SessionStatus,
    createdAtMs: row.created_ms,
    lastActiveMs: row.last_active_ms,
    stats: fromBinary(SessionStatsSchema, row.stats),
    pgid: row.pgid,
    agentCommand: row.agent_command,
    hasConversation: row.has_conversation === 1,
    currentTurnId: row.current_turn_id,
    lastSeq: row.last_seq,
    extras: row.extras,
  };
}
