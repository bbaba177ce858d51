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
   * The node that wrote this entry and its ownership period (epoch), in a store many nodes
   * share; undefined in a store of one node.
   */
  owner?: { node: string; epoch: number };
  /**
   * The rest of the session's folded state (title, pending requests, queued turns, recent
   * request ids, rules, fork origin) as the session's JSON; opaque to the store ("" for none).
   */
  extras: string;
}

/**
 * Another node runs the session (or ran it after this node's copy was loaded): this node
 * must not run it, and must not store anything of it.
 */
export class SessionHeldError extends Error {
  override readonly name = "SessionHeldError";
}

/** A commit refused for some sessions because another node runs them; the rest may be retried. */
export class SessionsFencedError extends Error {
  override readonly name = "SessionsFencedError";
  constructor(
    /** Store keys of the sessions refused. */
    readonly keys: readonly string[],
    message: string,
  ) {
    super(message);
  }
}

/** An event delivered by `Store.watch`, with the ownership period (epoch) that stored it. */
export interface WatchedEvent {
  event: Event;
  epoch: number;
}

/** What `Store.watch` calls as a session's log grows. */
export interface LogWatch {
  /** Each batch of new events, in seq order, never with a gap or a repeat. */
  deliver(events: WatchedEvent[]): void;
  /** Events the watch had not delivered were dropped by retention; the log starts at `firstSeq` now. The watch has ended. */
  trimmed(firstSeq: number): void;
  /** An event in the store cannot be read (damaged). The watch has ended. */
  unreadable(error: Error): void;
}

/** How loaded a node is, as the others see it. */
export interface NodeLoad {
  /** Agents it runs now. */
  load: number;
  /** Agents it may run. */
  capacity: number;
}

/** A live node as the others see it. */
export interface LiveNode extends NodeLoad {
  node: string;
  /** Where its API listens. */
  url: string;
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

/** What a store holds of one session's events: where they start and what they weigh. */
export interface Retained {
  /** The first retained seq (the session's lastSeq + 1 when none is left). */
  firstSeq: number;
  /** The encoded bytes of the retained events. */
  bytes: number;
}

/**
 * Where events and the session registry live. Every method is asynchronous (a store may
 * be across a network) and each `commit` is one atomic, durable (per the store's
 * durability setting) transaction: the event log publishes an event, and applies it to
 * the session's view, only once the commit that holds it has resolved. A store reads
 * its arguments before its promise settles the first time it yields: callers may change
 * their objects afterwards. Calls are answered in the order they were made.
 */
export interface Store {
  /** "memory", "sqlite" or "redis". */
  readonly kind: string;
  /** Where the data lives, for the operator ("in memory", a file path, a Redis address). */
  readonly location: string;
  /**
   * Stores events (of any sessions) and the records of their sessions, atomically.
   * A store that applies retention as it stores returns the sessions whose first
   * retained seq moved, as `compact` does.
   */
  commit(events: readonly StoredEvent[], sessions: readonly SessionRecord[]): Promise<Map<string, Retained> | undefined>;
  /** Up to `limit` events of a session with seq > afterSeq, in order. */
  readEvents(key: string, afterSeq: number, limit: number): Promise<Event[]>;
  /** The first retained seq of a session; undefined when it has no events stored. */
  firstSeq(key: string): Promise<number | undefined>;
  /** The encoded bytes of a session's stored events (0 when it has none). */
  sessionBytes(key: string): Promise<number>;
  /** Appends an audit entry (its id is assigned) and returns the id; at least the newest `keep` entries are kept. */
  appendAudit(entry: Omit<AuditRecord, "id">, keep: number): Promise<number>;
  /** Up to `limit` audit entries with an id greater than `afterId`, oldest first. */
  readAudit(afterId: number, limit: number): Promise<AuditRecord[]>;
  /** Every session record. */
  loadSessions(): Promise<SessionRecord[]>;
  /** One session's record; undefined when there is none. */
  loadSession(key: string): Promise<SessionRecord | undefined>;
  /** Removes a session's record and events. */
  deleteSession(key: string): Promise<void>;
  /**
   * Drops events beyond the retention limits. Returns the sessions whose first
   * retained seq moved, with what is retained of them now.
   */
  compact(policy: RetentionPolicy, nowMs: number): Promise<Map<string, Retained>>;
  /**
   * This node's id in a store many nodes share (each session run by one node at a time);
   * undefined for a store of one node, which runs every session it holds.
   */
  readonly node?: string;
  /**
   * Makes this node the one that runs the session, before an agent of it starts (a store
   * many nodes share). Resolves with the session's last stored seq, so the caller can tell
   * whether its copy is current; rejects with SessionHeldError when another node runs it.
   */
  own?(key: string): Promise<number>;
  /** Whether this node holds the session now (a store many nodes share). */
  holds?(key: string): boolean;
  /**
   * Set by the engine: whether this node still needs its hold on a session (its agent runs
   * or a turn waits). A hold no longer needed is given up, so that any node may run the
   * session next.
   */
  keep?: ((key: string) => boolean) | undefined;
  /**
   * Set by the engine: called when this node lost a session it ran (its hold was not
   * renewed in time, or a commit was fenced). The session's agent must stop at once, and
   * nothing more of it may be stored from this node.
   */
  onLost?: ((key: string, why: string) => void) | undefined;
  /**
   * Delivers a session's events after `afterSeq` as any node stores them (a store many
   * nodes share), until the returned function is called. `afterSeq` should be a seq the log
   * has reached (read up to it first): the watch cannot tell a position past the end from
   * one not reached yet.
   */
  watch?(key: string, afterSeq: number, watch: LogWatch): () => void;
  /**
   * The node that holds the session now (this node's id when it does); undefined when no
   * node does (a store many nodes share).
   */
  holder?(key: string): Promise<string | undefined>;
  /**
   * Makes this node known to the others as reachable at `url` (its API), with its load,
   * until close (a store many nodes share).
   */
  advertise?(url: string, load: () => NodeLoad): void;
  /** Where another live node's API listens; undefined when it is not alive or advertises none. */
  addressOf?(node: string): Promise<string | undefined>;
  /** The live nodes that advertise an address, with their load (looked up at most about once a second). */
  liveNodes?(): Promise<LiveNode[]>;
  /**
   * Sessions whose holder went away without giving them up (its hold expired: the node died
   * or stalled), so that a live node takes them and closes what was left open (a store many
   * nodes share). Store keys.
   */
  orphans?(): Promise<string[]>;
  /** Answers whether the store can be used now (the readiness probe); throws when it cannot. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** An event's time in ms since the epoch (every logged event has one; 0 guards a malformed one). */
export function eventTimeMs(event: Event | undefined): number {
  return event?.time ? timestampMs(event.time) : 0;
}
