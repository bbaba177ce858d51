import { HotplexError } from "../errors.js";
import type { Pool } from "../session/pool.js";
import type { Session } from "../session/session.js";
import type { TenantDirectory } from "../security/tenant-policy.js";

/** The daemon-wide limits admission checks beside each tenant's own. */
export interface DaemonLimits {
  /** Agent processes running or starting at once. */
  maxLiveSessions: number;
  /** Sessions in the registry. */
  maxStoredSessions: number;
}

const WINDOW_MS = 60_000;

function exhausted(limit: string, message: string): HotplexError {
  return new HotplexError("resource_exhausted", `${message} (limit ${limit})`);
}

/**
 * Decides, before anything is created or started, whether a turn may run: the daemon's
 * limits and the tenant's (stored sessions, live agents, queued turns, prompt size, turns
 * per minute, retained event bytes). A refusal is RESOURCE_EXHAUSTED naming the limit and
 * its value; a refused call leaves nothing behind.
 */
export class Admission {
  readonly #pool: Pool;
  readonly #limits: DaemonLimits;
  readonly #tenants: () => TenantDirectory;
  // Per tenant, when its turns of the last minute were admitted (oldest first).
  readonly #recentTurns = new Map<string, number[]>();

  /** Pre-warmed agents running or starting, of one tenant or of all. */
  readonly #warm: (tenant?: string) => number;

  constructor(pool: Pool, limits: DaemonLimits, tenants: () => TenantDirectory, warm: (tenant?: string) => number = () => 0) {
    this.#pool = pool;
    this.#limits = limits;
    this.#tenants = tenants;
    this.#warm = warm;
  }

  /**
   * Throws when a turn of `prompt` bytes may not start on `session` (undefined: the call
   * would create it). `willQueue` says it would wait behind another turn.
   */
  admitTurn(tenant: string, session: Session | undefined, promptBytes: number, willQueue: boolean, nowMs = Date.now()): void {
    const limits = this.#tenants().settingsOf(tenant).limits;
    if (limits.promptBytes > 0 && promptBytes > limits.promptBytes) {
      throw exhausted(`prompt_bytes = ${limits.promptBytes}`, `the prompt is ${promptBytes} bytes, more than this tenant may send`);
    }
    if (!session) {
      if (this.#limits.maxStoredSessions > 0 && this.#pool.size >= this.#limits.maxStoredSessions) {
        throw exhausted(
          `max-stored-sessions = ${this.#limits.maxStoredSessions}`,
          "the daemon holds its maximum number of sessions; delete some",
        );
      }
      if (limits.storedSessions > 0 && this.#pool.count(tenant) >= limits.storedSessions) {
        throw exhausted(`stored_sessions = ${limits.storedSessions}`, "this tenant has its maximum number of sessions; delete some");
      }
    }
    if (!session?.live) {
      const refused = this.whyNoProcess(tenant);
      if (refused) throw new HotplexError("resource_exhausted", refused);
    }
    if (willQueue && limits.queuedTurns > 0) {
      let queued = 0;
      for (const other of this.#pool.list(tenant)) queued += other.queuedTurns;
      if (queued >= limits.queuedTurns) {
        throw exhausted(`queued_turns = ${limits.queuedTurns}`, `this tenant already has ${queued} turns waiting`);
      }
    }
    if (limits.turnsPerMinute > 0 && this.#recent(tenant, nowMs).length >= limits.turnsPerMinute) {
      throw exhausted(`turns_per_minute = ${limits.turnsPerMinute}`, "this tenant started its maximum number of turns in the last minute; retry later");
    }
    if (limits.retainedEventBytes > 0) {
      let bytes = 0;
      for (const other of this.#pool.list(tenant)) bytes += other.log.storedBytes;
      if (bytes >= limits.retainedEventBytes) {
        throw exhausted(
          `retained_event_bytes = ${limits.retainedEventBytes}`,
          `this tenant's sessions keep ${bytes} bytes of events; delete sessions to make room`,
        );
      }
    }
  }

  /** Counts an admitted turn against its tenant's turns per minute. */
  turnAdmitted(tenant: string, nowMs = Date.now()): void {
    if (this.#tenants().settingsOf(tenant).limits.turnsPerMinute <= 0) return;
    const times = this.#recent(tenant, nowMs);
    times.push(nowMs);
    this.#recentTurns.set(tenant, times);
  }

  /**
   * Why no further agent process of `tenant` may start, or undefined when one may. A
   * session's start does not count pre-warmed agents (they make way for it: `withWarm`
   * false); starting another pre-warmed agent does.
   */
  whyNoProcess(tenant: string, withWarm = false): string | undefined {
    if (this.#pool.liveCount() + (withWarm ? this.#warm() : 0) >= this.#limits.maxLiveSessions) {
      return `the daemon runs its maximum number of live sessions; stop one or retry later (limit max-sessions = ${this.#limits.maxLiveSessions})`;
    }
    const { liveAgents } = this.#tenants().settingsOf(tenant).limits;
    if (liveAgents > 0 && this.#pool.liveCount(tenant) + (withWarm ? this.#warm(tenant) : 0) >= liveAgents) {
      return `this tenant runs its maximum number of live agents; stop a session or retry later (limit live_agents = ${liveAgents})`;
    }
    return undefined;
  }

  /**
   * Whether `tenant`'s live and pre-warmed agents together are past a limit (a session
   * just started counts among the live ones): then a pre-warmed agent must make way.
   * "node" or "tenant" names the limit.
   */
  overLimit(tenant: string): "node" | "tenant" | undefined {
    if (this.#pool.liveCount() + this.#warm() > this.#limits.maxLiveSessions) return "node";
    const { liveAgents } = this.#tenants().settingsOf(tenant).limits;
    if (liveAgents > 0 && this.#pool.liveCount(tenant) + this.#warm(tenant) > liveAgents) return "tenant";
    return undefined;
  }

  // The tenant's admission times within the window, older ones dropped.
  #recent(tenant: string, nowMs: number): number[] {
    const times = this.#recentTurns.get(tenant) ?? [];
    let drop = 0;
    while (drop < times.length && (times[drop] ?? 0) <= nowMs - WINDOW_MS) drop += 1;
    if (drop > 0) times.splice(0, drop);
    if (times.length === 0) this.#recentTurns.delete(tenant);
    return times;
  }
}
