import { HotplexError } from "../errors.js";
import type { Session } from "./session.js";

/** Identifies a session everywhere: sessions of different tenants never meet. */
export interface SessionKey {
  tenant: string;
  sessionId: string;
}

export function keyString({ tenant, sessionId }: SessionKey): string {
  // Neither part can contain "/": tenants and session ids are validated.
  return `${tenant}/${sessionId}`;
}

/**
 * All sessions of the daemon, keyed by (tenant, session id). Creating a session is
 * synchronous, so concurrent first calls for one id always get the same Session.
 */
export class Pool {
  readonly #sessions = new Map<string, Session>();
  #closing = false;

  get size(): number {
    return this.#sessions.size;
  }

  get(key: SessionKey): Session | undefined {
    return this.#sessions.get(keyString(key));
  }

  /** The session for `key`, made by `create` if it does not exist yet. */
  getOrCreate(key: SessionKey, create: () => Session): Session {
    if (this.#closing) throw new HotplexError("unavailable", "the daemon is shutting down");
    const id = keyString(key);
    let session = this.#sessions.get(id);
    if (!session) {
      session = create();
      this.#sessions.set(id, session);
    }
    return session;
  }

  /** Forgets a session (it was deleted). */
  remove(key: SessionKey): void {
    this.#sessions.delete(keyString(key));
  }

  /** Sessions whose agent process runs or is starting, of one tenant or of all. */
  liveCount(tenant?: string): number {
    let count = 0;
    for (const session of this.#sessions.values()) {
      if (session.live && (tenant === undefined || session.tenant === tenant)) count += 1;
    }
    return count;
  }

  /** Sessions of one tenant. */
  count(tenant: string): number {
    let count = 0;
    for (const session of this.#sessions.values()) if (session.tenant === tenant) count += 1;
    return count;
  }

  /** A tenant's sessions. */
  list(tenant: string): Session[] {
    return [...this.#sessions.values()].filter((session) => session.tenant === tenant);
  }

  /** Every session, for ops. */
  all(): Session[] {
    return [...this.#sessions.values()];
  }

  /** Ends every agent process group; new sessions are refused from now on. */
  async shutdown(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#sessions.values()].map((session) => session.close()));
  }
}
