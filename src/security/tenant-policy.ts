import { type CustomRuleSpec, DEFAULT_SETS } from "./rules/index.js";

/**
 * What a tenant's sessions may ask for: the ceiling a session config may narrow but never
 * widen (checked by security/session-policy.ts). Set per tenant in the server config.
 */
export interface SessionPolicy {
  /** Permission modes a session may ask for; asking for none (the agent's default) is always allowed. */
  permissionModes: readonly string[];
  /**
   * Tool rules a session may pre-allow: a rule passes when it equals an entry, or names a
   * tool an entry lists bare ("Bash" covers "Bash(git log:*)"); "*" allows any.
   */
  allowedTools: readonly string[];
  /** Tool rules every session of the tenant has disallowed, whatever its config says. */
  disallowedTools: readonly string[];
  /** Models a session may ask for: exact names or prefixes ending in "*"; "*" allows any. */
  models: readonly string[];
  /** A session may replace the agent's system prompt. */
  allowSystemPrompt: boolean;
  /** A session may append to the agent's system prompt. */
  allowAppendSystemPrompt: boolean;
  /** The longest idle timeout a session may ask for (0 = no ceiling). */
  maxIdleTimeoutMs: number;
  /** Sessions of the tenant may use the same or nested work dirs. */
  shareWorkDirs: boolean;
}

/** How much of the daemon one tenant may use; 0 means no limit. */
export interface TenantLimits {
  /** Sessions in the registry. */
  storedSessions: number;
  /** Agent processes running or starting. */
  liveAgents: number;
  /** Turns waiting in queues, over all the tenant's sessions. */
  queuedTurns: number;
  /** The largest prompt, in bytes (at most the daemon's own limit). */
  promptBytes: number;
  /** Turns started or queued in any 60 seconds. */
  turnsPerMinute: number;
  /** Bytes of events the store keeps for the tenant; past it, new turns are refused until retention or deletions free room. */
  retainedEventBytes: number;
}

/** The tenant's rules: built-in sets, the operator's own rules, paths file tools may write. */
export interface RuleSettings {
  sets: readonly string[];
  custom: readonly CustomRuleSpec[];
  allowPaths: readonly string[];
}

export interface TenantSettings {
  policy: SessionPolicy;
  limits: TenantLimits;
  /** Default: DEFAULT_RULES. */
  rules?: RuleSettings;
}

/** The rules of a tenant the config says nothing about: the default built-in sets. */
export const DEFAULT_RULES: RuleSettings = { sets: DEFAULT_SETS, custom: [], allowPaths: [] };

/**
 * Permission bypass is never in the default ceiling (claude-code's bypassPermissions and
 * auto, Gemini's yolo): a tenant gets it only when the server config lists it. Gemini's
 * autoEdit is its acceptEdits.
 */
export const DEFAULT_PERMISSION_MODES: readonly string[] = ["default", "acceptEdits", "plan", "dontAsk", "autoEdit"];

export function defaultPolicy(maxIdleTimeoutMs: number): SessionPolicy {
  return {
    permissionModes: DEFAULT_PERMISSION_MODES,
    allowedTools: ["*"],
    disallowedTools: [],
    models: ["*"],
    allowSystemPrompt: true,
    allowAppendSystemPrompt: true,
    maxIdleTimeoutMs,
    shareWorkDirs: false,
  };
}

export const NO_TENANT_LIMITS: TenantLimits = {
  storedSessions: 0,
  liveAgents: 0,
  queuedTurns: 0,
  promptBytes: 0,
  turnsPerMinute: 0,
  retainedEventBytes: 0,
};

/** The settings of every tenant: those the config names, and the defaults for any other. */
export class TenantDirectory {
  readonly #defaults: TenantSettings;
  readonly #tenants: ReadonlyMap<string, TenantSettings>;

  constructor(defaults: TenantSettings, tenants: ReadonlyMap<string, TenantSettings> = new Map()) {
    this.#defaults = defaults;
    this.#tenants = tenants;
  }

  settingsOf(tenant: string): TenantSettings {
    return this.#tenants.get(tenant) ?? this.#defaults;
  }

  /** The tenants the config names. */
  get names(): string[] {
    return [...this.#tenants.keys()].sort();
  }
}
