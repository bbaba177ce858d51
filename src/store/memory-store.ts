import { clone } from "@bufbuild/protobuf";
import { SessionConfigSchema, SessionStatsSchema } from "../../gen/hotplex/v1/session_pb.js";
import type { Event } from "../events/event.js";
import { encodeEvent } from "../events/encoded-event.js";
import { type AuditRecord, eventTimeMs, type Retained, type RetentionPolicy, type SessionRecord, type Store, type StoredEvent } from "./store.js";

interface SessionEvents {
  events: Event[];
  sizes: number[];
  head: number;
  bytes: number;
}

/**
 * Everything in memory: for tests and for deployments that need no durability
 * (`--store memory`). Per-session limits are applied on every commit, so memory stays
 * bounded between compactions.
 */
export class MemoryStore implements Store {
  readonly kind = "memory";
  readonly location = "in memory";
  readonly #events = new Map<string, SessionEvents>();
  readonly #sessions = new Map<string, SessionRecord>();
  #audit: AuditRecord[] = [];
  #auditId = 0;

  constructor(private readonly policy: RetentionPolicy) {}

  async commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Promise<Map<string, Retained>> {
    const moved = new Map<string, Retained>();
    for (const { key, event } of events) {
      // Encoded bytes, as the SQLite store counts them: retain-bytes means the same in both.
      const size = encodeEvent(event).byteLength;
      let log = this.#events.get(key);
      if (!log) {
        log = { events: [], sizes: [], head: 0, bytes: 0 };
        this.#events.set(key, log);
      }
      log.events.push(event);
      log.sizes.push(size);
      log.bytes += size;
      const head = log.head;
      this.#trim(log, this.policy.maxEvents, this.policy.maxBytes);
      if (log.head !== head) moved.set(key, { firstSeq: 0, bytes: 0 });
    }
    // As of the whole batch: a later event of a session may have added bytes after a trim.
    for (const [key, retained] of moved) {
      const log = this.#events.get(key)!;
      retained.firstSeq = Number(log.events[log.head]?.seq);
      retained.bytes = log.bytes;
    }
    for (const record of sessions) {
      // Copies: the caller keeps mutating its own objects.
      this.#sessions.set(record.key, {
        ...record,
        config: clone(SessionConfigSchema, record.config),
        stats: clone(SessionStatsSchema, record.stats),
      });
    }
    return moved;
  }

  async readEvents(key: string, afterSeq: number, limit: number): Promise<Event[]> {
    const log = this.#events.get(key);
    const first = this.#firstSeq(key);
    if (!log || first === undefined) return [];
    const start = log.head + Math.max(0, afterSeq - first + 1);
    return log.events.slice(start, Math.min(start + limit, log.events.length));
  }

  async firstSeq(key: string): Promise<number | undefined> {
    return this.#firstSeq(key);
  }

  #firstSeq(key: string): number | undefined {
    const log = this.#events.get(key);
    const event = log?.events[log.head];
    return event ? Number(event.seq) : undefined;
  }

  async sessionBytes(key: string): Promise<number> {
    return this.#events.get(key)?.bytes ?? 0;
  }

  async appendAudit(entry: Omit<AuditRecord, "id">, keep: number): Promise<number> {
    const record = { ...entry, id: ++this.#auditId };
    this.#audit.push(record);
    if (this.#audit.length > keep * 2) this.#audit = this.#audit.slice(-keep);
    return record.id;
  }

  async readAudit(afterId: number, limit: number): Promise<AuditRecord[]> {
    // Ids grow by one per entry, so the first wanted one sits at a known offset.
    const first = this.#audit[0]?.id ?? 1;
    return this.#audit.slice(Math.max(0, afterId + 1 - first), Math.max(0, afterId + 1 - first) + limit);
  }

  async loadSessions(): Promise<SessionRecord[]> {
    return [...this.#sessions.values()];
  }

  async loadSession(key: string): Promise<SessionRecord | undefined> {
    return this.#sessions.get(key);
  }

  async deleteSession(key: string): Promise<void> {
    this.#events.delete(key);
    this.#sessions.delete(key);
  }

  async compact(policy: RetentionPolicy, nowMs: number): Promise<Map<string, Retained>> {
    const moved = new Map<string, Retained>();
    for (const [key, log] of this.#events) {
      const before = log.head;
      this.#trim(log, policy.maxEvents, policy.maxBytes);
      if (policy.maxAgeMs > 0) {
        const cutoff = nowMs - policy.maxAgeMs;
        while (log.head < log.events.length && eventTimeMs(log.events[log.head]) < cutoff) this.#drop(log);
      }
      if (log.head !== before) moved.set(key, this.#retained(key, log));
    }
    if (policy.totalMaxBytes > 0) this.#trimTotal(policy.totalMaxBytes, moved);
    return moved;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  #retained(key: string, log: SessionEvents): Retained {
    return { firstSeq: this.#firstSeq(key) ?? this.#lastSeq(key) + 1, bytes: log.bytes };
  }

  #trimTotal(totalMaxBytes: number, moved: Map<string, Retained>): void {
    let total = 0;
    for (const log of this.#events.values()) total += log.bytes;
    while (total > totalMaxBytes) {
      // The oldest event over all sessions goes first.
      let oldest: [string, SessionEvents] | undefined;
      for (const entry of this.#events) {
        const head = entry[1].events[entry[1].head];
        const current = oldest?.[1].events[oldest[1].head];
        if (head && (!current || eventTimeMs(head) < eventTimeMs(current))) oldest = entry;
      }
      if (!oldest) break;
      total -= oldest[1].sizes[oldest[1].head] ?? 0;
      this.#drop(oldest[1]);
      moved.set(oldest[0], this.#retained(oldest[0], oldest[1]));
    }
  }

  #trim(log: SessionEvents, maxEvents: number, maxBytes: number): void {
    const size = () => log.events.length - log.head;
    while (size() > 0 && ((maxEvents > 0 && size() > maxEvents) || (maxBytes > 0 && log.bytes > maxBytes && size() > 1))) {
      this.#drop(log);
    }
  }

  #drop(log: SessionEvents): void {
    log.bytes -= log.sizes[log.head] ?? 0;
    log.head += 1;
    // Compact the arrays once the dropped prefix dominates.
    if (log.head > 1024 && log.head * 2 > log.events.length) {
      log.events = log.events.slice(log.head);
      log.sizes = log.sizes.slice(log.head);
      log.head = 0;
    }
  }

  #lastSeq(key: string): number {
    return this.#sessions.get(key)?.lastSeq ?? 0;
  }
}

