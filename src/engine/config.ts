import type { EventObserver, LogBounds } from "../events/event-log.js";
import type { CommitObserver } from "../events/group-committer.js";
import type { SandboxSettings } from "../process/sandbox.js";
import type { PrewarmSpec } from "./prewarm.js";
import { DEFAULT_PROVIDER_SETTINGS, type ProviderSettings } from "../providers/registry.js";
import { defaultPolicy, NO_TENANT_LIMITS, TenantDirectory } from "../security/tenant-policy.js";
import type { SessionLimits } from "../session/session.js";

/** Who answers agents' permission requests in sessions whose config does not say. */
export type ApprovalDefault = "agent" | "client";

/** Remote approvals: the default mode and how long a request waits for an answer. */
export interface ApprovalSettings {
  defaultMode: ApprovalDefault;
  /** A request with no answer after this long is denied (0 = no timeout). */
  timeoutMs: number;
}

/** The limits of every session but the approval timeout (which `approvals` holds). */
export type EngineLimits = Omit<SessionLimits, "approvalTimeoutMs">;
import type { Durability } from "../store/sqlite-store.js";
import type { RetentionPolicy } from "../store/store.js";

/** Where sessions and events are kept. */
export type StoreConfig = { kind: "memory" } | { kind: "sqlite"; dataDir: string; durability: Durability } | RedisStoreConfig;

/** A store on a Redis shared by every node (scale-out); see docs/scale-out.md. */
export interface RedisStoreConfig {
  kind: "redis";
  /** redis://[user:password@]host:port[/db], or rediss:// for TLS. */
  url: string;
  /** PEM CA certificates to verify a TLS Redis with (the system's when unset). */
  tlsCa?: Buffer;
  /** Put before every key: several deployments may share one Redis. */
  prefix: string;
  /** This node's id in the leases it holds: unique per node, stable across its restarts. */
  nodeId: string;
  /** How long a session's lease lives unless renewed. */
  leaseTtlMs: number;
  /** How long before its lease could expire a node must have stopped the session's agent. */
  leaseMarginMs: number;
}

/** A session as an observer of its events knows it. */
export interface ObservedSession {
  tenant: string;
  sessionId: string;
  provider: string;
}

/**
 * What watches the engine from outside (metrics, tracing): every session's published events
 * and every store commit. Unset, nothing is observed and nothing is paid for it.
 */
export interface EngineObserver {
  /** Called once as each session's log is created; what it returns sees that log's published events. */
  session?: (session: ObservedSession) => EventObserver | undefined;
  /** Sees every group commit. */
  commit?: CommitObserver;
}

/** Everything the engine needs; validated once by the daemon's config loader. */
export interface EngineConfig {
  /** The agent providers sessions may choose from, and their executables. */
  providers: ProviderSettings;
  /** UUID namespace for deterministic provider session ids. */
  namespace: string;
  /** Directory every session work dir must lie in; each tenant has its own directory in it. */
  workRoot: string;
  /** The daemon's private per-session files (never visible to clients): `<root>/<tenant>/<session id>/`. */
  stateRoot: string;
  /** Most agent processes running at once. */
  maxLiveSessions: number;
  /** Most sessions in the registry (0 = no limit). */
  maxStoredSessions: number;
  /** The largest prompt accepted, in bytes. */
  maxPromptBytes: number;
  limits: EngineLimits;
  /** Remote approvals of tool calls. */
  approvals: ApprovalSettings;
  /** Each tenant's session policy and limits (swapped by a config reload). */
  tenants: TenantDirectory;
  /** How much of each session's log is kept in memory for fast reads. */
  logBounds: LogBounds;
  store: StoreConfig;
  retention: RetentionPolicy;
  /** How often retention is enforced on the store. */
  compactIntervalMs: number;
  /** The environment agents get (already filtered through the allow-list); each session has its own HOME. */
  agentEnv: Record<string, string>;
  /** Copied into every new session HOME (agent settings and credentials from the operator). */
  agentHomeTemplate?: string;
  /** The OS sandbox and limits of every agent process. */
  sandbox: SandboxSettings;
  /** Metrics and tracing: sees every session's events and every store commit. */
  observer?: EngineObserver;
  /** Launch configs to keep agents started ahead of demand for (none: every first turn starts its agent). */
  prewarm?: readonly PrewarmSpec[];
}

/** Agents are sandboxed where bubblewrap works, with these limits each. */
export const DEFAULT_SANDBOX: SandboxSettings = {
  mode: "auto",
  bwrap: "bwrap",
  network: "on",
  memoryBytes: 4 * 1024 ** 3,
  processes: 1024,
  openFiles: 4096,
  readOnlyPaths: [],
  hiddenPaths: [],
};

/** The default namespace; deployments that share a provider home may set their own. */
export const DEFAULT_NAMESPACE = "6f1d3a1e-8b0c-5c7e-9a51-2f8e4b9d7c30";

/**
 * The in-memory tail of each log; older events are read from the store. Long enough that
 * a reader a few batches behind a flooding agent is served from memory: reading events
 * back from the store costs more than logging them. An idle session's tail is released
 * (EventLog.shrinkTail), so this bounds sessions that are streaming, not all sessions.
 */
export const DEFAULT_TAIL_BOUNDS: LogBounds = { maxEvents: 8192, maxBytes: 4 * 1024 * 1024 };

/** The largest prompt (and system prompt) a client may send: 1 MiB. */
export const MAX_PROMPT_BYTES = 1024 * 1024;

/**
 * The longest line of agent output accepted: far above any real tool result (agents cap
 * what a tool returns well below a megabyte), far below V8's ~512 MiB string limit.
 */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** The session limits hotplexd uses unless configured otherwise. */
export const DEFAULT_SESSION_LIMITS: EngineLimits = {
  queueLimit: 16,
  turnTimeoutMs: 10 * 60_000,
  idleTimeoutMs: 30 * 60_000,
  stopGraceMs: 5_000,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
};

/** Sessions ask the client only when their config says so; a request waits 10 minutes at most. */
export const DEFAULT_APPROVALS: ApprovalSettings = { defaultMode: "agent", timeoutMs: 10 * 60_000 };

/** What an engine cannot do without; everything else has a default in `engineConfig`. */
export type EngineEssentials = Pick<EngineConfig, "workRoot" | "stateRoot" | "store" | "agentEnv">;

/**
 * A complete engine config from the essentials, with the daemon's defaults for the rest
 * (for embedding, tests and benchmarks; hotplexd builds its own from its options).
 */
export function engineConfig(
  essentials: EngineEssentials,
  overrides: Partial<Omit<EngineConfig, "limits">> & { limits?: Partial<EngineLimits> } = {},
): EngineConfig {
  const { limits, ...rest } = overrides;
  const sessionLimits = { ...DEFAULT_SESSION_LIMITS, ...limits };
  return {
    namespace: DEFAULT_NAMESPACE,
    maxLiveSessions: 64,
    maxStoredSessions: 10_000,
    maxPromptBytes: MAX_PROMPT_BYTES,
    tenants: new TenantDirectory({ policy: defaultPolicy(sessionLimits.idleTimeoutMs), limits: NO_TENANT_LIMITS }),
    logBounds: DEFAULT_TAIL_BOUNDS,
    retention: { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024, maxAgeMs: 0, totalMaxBytes: 0 },
    compactIntervalMs: 60_000,
    sandbox: DEFAULT_SANDBOX,
    providers: DEFAULT_PROVIDER_SETTINGS,
    approvals: DEFAULT_APPROVALS,
    ...essentials,
    ...rest,
    limits: sessionLimits,
  };
}
