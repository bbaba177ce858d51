import { HotplexError } from "../errors.js";
import { type RuleEngine, type RuleInput, RuleEngine as Rules } from "../security/rules/index.js";
import type { RuleVerdict } from "../session/rule-matched.js";
import { DEFAULT_RULES, type TenantDirectory, type TenantSettings } from "../security/tenant-policy.js";

/** The longest bypass an admin may grant: a day. */
export const MAX_BYPASS_SECONDS = 86_400;

/**
 * The tenants' rule engines (built once per tenant settings object, so a config reload
 * brings new ones) and the sessions whose rules an admin lifted, until when.
 */
export class TenantRules {
  readonly #engines = new WeakMap<TenantSettings, RuleEngine>();
  readonly #bypassUntil = new Map<string, number>();

  constructor(
    private readonly tenants: () => TenantDirectory,
    private readonly workRoot: string,
  ) {}

  /** Judges an input for a session (`key`: "<tenant>/<session id>"). */
  judge(tenant: string, key: string, input: RuleInput, nowMs = Date.now()): RuleVerdict {
    const { severity, matches } = this.#engineOf(tenant).verdict(input);
    return { severity, matches, bypassed: matches.length > 0 && this.bypassedUntil(key, nowMs) !== undefined };
  }

  /** The tenant has rules to judge tool calls by (a built-in set or a rule of its own). */
  active(tenant: string): boolean {
    const rules = this.tenants().settingsOf(tenant).rules ?? DEFAULT_RULES;
    return rules.sets.length > 0 || rules.custom.length > 0;
  }

  /** Lifts a session's rules for `seconds` (0 ends a bypass); returns when it ends. */
  setBypass(key: string, seconds: number, nowMs = Date.now()): number | undefined {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_BYPASS_SECONDS) {
      throw new HotplexError("invalid_argument", `seconds must be 0 to ${MAX_BYPASS_SECONDS} (a day)`);
    }
    if (seconds === 0) {
      this.#bypassUntil.delete(key);
      return undefined;
    }
    const until = nowMs + seconds * 1000;
    this.#bypassUntil.set(key, until);
    return until;
  }

  /** When the session's bypass ends, if one is in force. */
  bypassedUntil(key: string, nowMs = Date.now()): number | undefined {
    const until = this.#bypassUntil.get(key);
    if (until === undefined) return undefined;
    if (until <= nowMs) {
      this.#bypassUntil.delete(key);
      return undefined;
    }
    return until;
  }

  /** A session was deleted: its bypass goes with it. */
  forget(key: string): void {
    this.#bypassUntil.delete(key);
  }

  #engineOf(tenant: string): RuleEngine {
    const settings = this.tenants().settingsOf(tenant);
    let engine = this.#engines.get(settings);
    if (!engine) {
      engine = Rules.create({ ...(settings.rules ?? DEFAULT_RULES), workRoot: this.workRoot });
      this.#engines.set(settings, engine);
    }
    return engine;
  }
}
