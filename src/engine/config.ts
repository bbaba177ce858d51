import type { LogBounds } from "../events/event-log.js";
import type { SessionLimits } from "../session/session.js";

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
  logBounds: LogBounds;
  /** The environment agents get (already filtered through the allow-list). */
  agentEnv: Record<string, string>;
}

/** The default namespace; deployments that share a provider home may set their own. */
export const DEFAULT_NAMESPACE = "6f1d3a1e-8b0c-5c7e-9a51-2f8e4b9d7c30";
