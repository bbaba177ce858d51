import type { SessionConfig, SessionStats, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Event } from "../events/event.js";

/** One session's registry entry: everything needed to bring it back after a restart. */
export interface SessionRecord {
  /** `<tenant>/<session id>`. */
  key: string;
  tenant: string;
  sessionId: string;
  /** Changes when the session id is deleted and created again. */
  incarnation: string;
  provider: string;
  providerSessionId: string;
  workDir: string;
  config: SessionConfig;
  status: SessionStatus;
  createdAtMs: number;
  lastActiveMs: number;
  stats: SessionStats;
  /** Process group of the running agent; 0 when none runs. */
  pgid: number;
  /** The executable of the running agent, to recognize it after a crash of the daemon. */
  agentCommand: string;
  /** The provider holds this conversation: the next start resumes it. */
  hasConversation: boolean;
  /** The turn that was running when the record was written; empty when none. */
  currentTurnId: string;
  /** The last assigned sequence number; sequence numbers continue from it. */
  lastSeq: number;
  /**
   * The rest of the session's folded state (title, pending requests, queued turns, recent
   * request ids, rules, fork origin) as the session's JSON; opaque to the store ("" for none).
   */
  extras: string;
}

/** An event on its way to the store. */
export interface StoredEvent {
  /** The session's store key. */
  key: string;
  event: Event;
}

/** One entry of the audit log: an admin action or a refusal worth keeping. */
export interface AuditRecord {
  /** Grows by one per entry. */
  id: number;
  timeMs: number;
  kind: string;
  /** The credential's name. */
  principal: string;
  tenant: string;
  sessionId: string;
  method: string;
  detail: string;
}

/** Retention limits; 0 disables a limit. */
export interface RetentionPolicy {
  /** Most events kept per session. */
  maxEvents: number;
  /** Most bytes of events kept per session. */
  maxBytes: number;
  /** Events older than this are dropped. */
  maxAgeMs: number;
  /** Most bytes of events kept over all sessions; the oldest events go first. */
  totalMaxBytes: number;
}

/**
 * Where events and the session registry live. Every method is synchronous and each
 * `commit` is one atomic, durable (per the store's durability setting) transaction:
 * the event log relies on both to publish an event only after it is stored.
 */
export interface Store {
  /** "memory" or "sqlite". */
  readonly kind: string;
  /** Where the data lives, for the operator ("in memory" or a file path). */
  readonly location: string;
  /**
   * Stores events (of any sessions) and the records of their sessions, atomically.
   * A store that applies retention as it stores returns the sessions whose first
   * retained seq moved, as `compact` does.
   */
  commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Map<string, number> | undefined;
  /** Up to `limit` events of a session with seq > afterSeq, in order. */
  readEvents(key: string, afterSeq: number, limit: number): Event[];
  /** The first retained seq of a session; undefined when it has no events stored. */
  firstSeq(key: string): number | undefined;
  /** The encoded bytes of a session's stored events (0 when it has none). */
  sessionBytes(key: string): number;
  /** Appends an audit entry (its id is assigned) and returns the id; at least the newest `keep` entries are kept. */
  appendAudit(entry: Omit<AuditRecord, "id">, keep: number): number;
  /** Up to `limit` audit entries with an id greater than `afterId`, oldest first. */
  readAudit(afterId: number, limit: number): AuditRecord[];
  /** Every session record. */
  loadSessions(): SessionRecord[];
  /** Removes a session's record and events. */
  deleteSession(key: string): void;
  /**
   * Drops events beyond the retention limits. Returns the sessions whose first
   * retained seq moved, with the new first seq (lastSeq + 1 when none is left).
   */
  compact(policy: RetentionPolicy, nowMs: number): Map<string, number>;
  close(): void;
}

/** An event's time in ms since the epoch (every logged event has one; 0 guards a malformed one). */
export function eventTimeMs(event: Event | undefined): number {
  return event?.time ? timestampMs(event.time) : 0;
}
