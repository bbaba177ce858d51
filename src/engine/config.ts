import type { LogBounds } from "../events/event-log.js";
import type { SessionLimits } from "../session/session.js";
import type { Durability } from "../store/sqlite-store.js";
import type { RetentionPolicy } from "../store/store.js";

/** Where sessions and events are kept. */
export type StoreConfig = { kind: "memory" } | { kind: "sqlite"; dataDir: string; durability: Durability };

/** Everything the engine needs; validated once by the daemon's config loader. */
export interface EngineConfig {
  /** The Claude Code executable. */
  claudePath: string;
  /** UUID namespace for deterministic provider session ids. */
  namespace: string;
  /** Directory every session work dir must lie in. */
  workRoot: string;
  /** Most agent processes running at once. */
  maxLiveSessions: number;
  limits: SessionLimits;
  /** How much of each session's log is kept in memory for fast reads. */
  logBounds: LogBounds;
  store: StoreConfig;
  retention: RetentionPolicy;
  /** How often retention is enforced on the store. */
  compactIntervalMs: number;
  /** The environment agents get (already filtered through the allow-list). */
  agentEnv: Record<string, string>;
}

/** The default namespace; deployments that share a provider home may set their own. */
export const DEFAULT_NAMESPACE = "6f1d3a1e-8b0c-5c7e-9a51-2f8e4b9d7c30";

/**
 * The in-memory tail of each log; older events are read from the store. Long enough that
 * a reader a few batches behind a flooding agent is served from memory: reading events
 * back from the store costs more than logging them. An idle session's tail is released
 * (EventLog.shrinkTail), so this bounds sessions that are streaming, not all sessions.
 */
export const DEFAULT_TAIL_BOUNDS: LogBounds = { maxEvents: 8192, maxBytes: 4 * 1024 * 1024 };
