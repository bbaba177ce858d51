/**
 * Ownership of one session: a lease in Redis with an epoch. Acquisition is atomic (nobody
 * holds it → the next epoch and the lease, in one script); renewing and releasing compare
 * the token first, so a node that lost the lease can never extend or drop its successor's.
 *
 * The lease alone does not stop a paused node from acting on what it thinks it owns:
 * every append checks the token (stream-log.ts), and the holder fences itself: it must
 * have stopped its agent by `mustStopBy`, measured on its own monotonic clock from when it
 * *sent* its last successful renew. Redis starts the TTL when it receives the command, so
 * the lease cannot expire (and nobody else can take over) before that moment.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { SessionKeys } from "./keys.js";
import { ACQUIRE, RELEASE, RENEW } from "./scripts.js";

export interface LeaseTimings {
  /** How long a lease lives unless renewed. */
  ttlMs: number;
  /**
   * How long before the lease could expire the holder must have stopped its agent: the
   * time a SIGKILL and its reaping take, plus any difference between the two clocks' rates.
   */
  marginMs: number;
}

/** A node id as it goes into a token: no colon (the token's separator), bounded. */
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;

type Clock = () => number;

export class SessionLease {
  readonly epoch: number;
  readonly token: string;
  #mustStopBy: number;
  #released = false;

  private constructor(
    private readonly redis: Redis,
    private readonly keys: SessionKeys,
    token: string,
    sentAt: number,
    private readonly timings: LeaseTimings,
    private readonly clock: Clock,
  ) {
    this.token = token;
    this.epoch = Number(token.slice(0, token.indexOf(":")));
    this.#mustStopBy = sentAt + timings.ttlMs - timings.marginMs;
  }

  /** Takes the session when nobody holds it; undefined when someone does. */
  static async acquire(redis: Redis, keys: SessionKeys, node: string, timings: LeaseTimings, clock: Clock = () => performance.now()): Promise<SessionLease | undefined> {
    if (!NODE_ID.test(node)) throw new RangeError(`node id ${JSON.stringify(node.slice(0, 100))} is invalid: use 1 to 64 characters of [A-Za-z0-9._-]`);
    checkTimings(timings);
    const sentAt = clock();
    const token = (await redis.eval(ACQUIRE, 2, keys.lease, keys.epoch, node, randomUUID(), String(timings.ttlMs))) as string | null;
    return token === null ? undefined : new SessionLease(redis, keys, token, sentAt, timings, clock);
  }

  /** The monotonic time by which the holder's agent must be stopped unless a renew succeeds first. */
  get mustStopBy(): number {
    return this.#mustStopBy;
  }

  /** Whether the holder may still act: it renewed in time and did not release. */
  get valid(): boolean {
    return !this.#released && this.clock() < this.#mustStopBy;
  }

  /** Extends the lease; false when it is no longer this holder's (expired, taken over). */
  async renew(): Promise<boolean> {
    if (this.#released) return false;
    const sentAt = this.clock();
    const renewed = (await this.redis.eval(RENEW, 1, this.keys.lease, this.token, String(this.timings.ttlMs))) === 1;
    if (renewed) this.#mustStopBy = Math.max(this.#mustStopBy, sentAt + this.timings.ttlMs - this.timings.marginMs);
    return renewed;
  }

  /** Gives the session up (an idle session has no owner); false when it was not held any more. */
  async release(): Promise<boolean> {
    this.#released = true;
    return (await this.redis.eval(RELEASE, 1, this.keys.lease, this.token)) === 1;
  }
}

function checkTimings({ ttlMs, marginMs }: LeaseTimings): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 100 || ttlMs > 600_000) throw new RangeError(`lease ttl ${ttlMs} ms is out of range: use 100 ms to 10 min`);
  if (!Number.isInteger(marginMs) || marginMs < 0 || marginMs >= ttlMs) throw new RangeError(`lease margin ${marginMs} ms must be at least 0 and below the ttl (${ttlMs} ms)`);
}
