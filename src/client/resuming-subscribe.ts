// A Subscribe that outlives its connection: when the stream breaks (a network cut, the
// daemon restarting, a proxy closing it), it subscribes again after the last seq it
// delivered, so the caller sees one unbroken, gap-free, duplicate-free stream of events.
import { type CallOptions, Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import type { SessionService, SubscribeHeader } from "../../gen/hotplex/v1/session_service_pb.js";

/** What a resuming subscription needs of a SessionService client. */
export type SubscribeClient = Pick<Client<typeof SessionService>, "subscribe">;

/** How a resuming subscription retries; every field has a default. */
export interface RetryPolicy {
  /** Retries in a row (with no event delivered in between) before the error is thrown. */
  maxAttempts: number;
  /** The delay before the first retry, in milliseconds. */
  initialDelayMs: number;
  /** No delay is longer than this. */
  maxDelayMs: number;
  /** Each further retry waits this many times longer. */
  multiplier: number;
  /**
   * A stream that stayed open this long counts as healthy: the failures before it are
   * forgiven even if no event came (an idle session's log may stay quiet for hours).
   */
  stableAfterMs: number;
  /** Which failures are worth retrying; the others end the subscription. */
  retryable: (error: ConnectError) => boolean;
  /** A number in [0, 1) (Math.random): the jitter of each delay. */
  random: () => number;
}

// Failures a new connection can cure: the daemon gone or restarting (UNAVAILABLE), the
// connection reset (ABORTED), a stream cut short mid-message (INTERNAL, UNKNOWN). The
// others (NOT_FOUND, OUT_OF_RANGE, FAILED_PRECONDITION for another incarnation, auth)
// would fail the same way again.
const RETRYABLE = new Set([Code.Unavailable, Code.Aborted, Code.Internal, Code.Unknown, Code.DeadlineExceeded]);

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 10,
  initialDelayMs: 200,
  maxDelayMs: 5_000,
  multiplier: 2,
  stableAfterMs: 5_000,
  retryable: (error: ConnectError) => RETRYABLE.has(error.code),
  random: Math.random,
});

/** Where a subscription starts and what it does on the way. */
export interface ResumingSubscribeOptions {
  sessionId: string;
  /** Deliver events with seq greater than this (default 0: the whole log). */
  afterSeq?: bigint;
  /**
   * The incarnation `afterSeq` belongs to; when set, a session deleted and created again
   * fails the subscription (FAILED_PRECONDITION) instead of serving another conversation.
   * Without it, the first header's incarnation is pinned for every reconnect.
   */
  incarnation?: string;
  /**
   * The epoch of the event at `afterSeq` as received (its Event.epoch; 0 for none): with it,
   * a daemon whose store lost that event in a failover fails the subscription
   * (FAILED_PRECONDITION) instead of serving other events under the numbers seen. Every
   * reconnect sends the epoch of the last event delivered.
   */
  afterEpoch?: bigint;
  /** Keep following live events (default true); without it the subscription ends at the log's end. */
  follow?: boolean;
  /** Ends the subscription: iteration then finishes without an error. */
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy>;
  /** Headers for every Subscribe call (e.g. authorization, when the transport adds none). */
  headers?: CallOptions["headers"];
  /** Called with each stream's header, the first connection's and every reconnect's. */
  onHeader?: (header: SubscribeHeader, info: { reconnect: boolean }) => void;
  /** Called before each wait for a retry. */
  onRetry?: (info: RetryInfo) => void;
}

/** Why and when the subscription retries. */
export interface RetryInfo {
  /** 1 for the first retry after a failure, counting up while no event arrives. */
  attempt: number;
  maxAttempts: number;
  delayMs: number;
  error: ConnectError;
  /** The seq the next Subscribe resumes after. */
  afterSeq: bigint;
}

/** The states of a subscription; see ResumingSubscription.state. */
export enum SubscriptionState {
  /** Not iterated yet. */
  Idle = "idle",
  /** A Subscribe call is being made, or its header awaited. */
  Connecting = "connecting",
  /** Events are flowing. */
  Streaming = "streaming",
  /** Waiting before the next attempt. */
  BackingOff = "backing_off",
  /** Finished: the log's end (no follow), the signal, or the caller stopped iterating. */
  Done = "done",
  /** Ended with an error. */
  Failed = "failed",
}

/**
 * The server sent an event out of order: a seq that is not the last delivered + 1. The
 * subscription ends rather than deliver a gap (events lost) or a duplicate.
 */
export class SequenceError extends Error {
  override readonly name = "SequenceError";
  constructor(
    readonly kind: "gap" | "duplicate",
    readonly expected: bigint,
    readonly received: bigint,
  ) {
    super(`${kind} in the event stream: expected seq ${expected}, received ${received}`);
  }
}

/**
 * Subscribes to a session's events and keeps the stream going across disconnects and
 * daemon restarts. Iterate it once:
 *
 * ```ts
 * const events = resumingSubscribe(client, { sessionId: "demo", afterSeq: 12n, signal });
 * for await (const event of events) console.log(event.seq);
 * // events.lastSeq is where to resume later.
 * ```
 */
export function resumingSubscribe(client: SubscribeClient, options: ResumingSubscribeOptions): ResumingSubscription {
  return new ResumingSubscription(client, options);
}

export class ResumingSubscription implements AsyncIterable<Event> {
  readonly #client: SubscribeClient;
  readonly #options: ResumingSubscribeOptions;
  readonly #policy: RetryPolicy;
  #lastSeq: bigint;
  #lastEpoch: bigint;
  #incarnation: string;
  #state = SubscriptionState.Idle;
  #started = false;

  constructor(client: SubscribeClient, options: ResumingSubscribeOptions) {
    this.#client = client;
    this.#options = options;
    this.#policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    if (this.#policy.maxAttempts < 1) throw new RangeError(`retry.maxAttempts must be at least 1, got ${this.#policy.maxAttempts}`);
    this.#lastSeq = options.afterSeq ?? 0n;
    if (this.#lastSeq < 0n) throw new RangeError(`afterSeq must not be negative, got ${this.#lastSeq}`);
    this.#incarnation = options.incarnation ?? "";
    this.#lastEpoch = options.afterEpoch ?? 0n;
  }

  /** The seq of the last event delivered (or the starting afterSeq): resume after it. */
  get lastSeq(): bigint {
    return this.#lastSeq;
  }

  /** The epoch of the last event delivered (or the starting afterEpoch): with lastSeq, where to resume. */
  get lastEpoch(): bigint {
    return this.#lastEpoch;
  }

  /** The session's incarnation, once a header named it. */
  get incarnation(): string {
    return this.#incarnation;
  }

  get state(): SubscriptionState {
    return this.#state;
  }

  [Symbol.asyncIterator](): AsyncIterator<Event> {
    if (this.#started) throw new Error("a ResumingSubscription can be iterated only once");
    this.#started = true;
    return this.#run();
  }

  async *#run(): AsyncGenerator<Event> {
    const { signal } = this.#options;
    const follow = this.#options.follow ?? true;
    let failures = 0;
    let reconnect = false;
    try {
      while (!signal?.aborted) {
        this.#state = SubscriptionState.Connecting;
        // Each call gets its own controller, so leaving the loop (break, return, throw)
        // cancels the request instead of leaving it open.
        const call = new AbortController();
        const onAbort = () => call.abort();
        signal?.addEventListener("abort", onAbort, { once: true });
        let openedAt = 0;
        try {
          const stream = this.#client.subscribe(
            { sessionId: this.#options.sessionId, afterSeq: this.#lastSeq, afterEpoch: this.#lastEpoch, follow, incarnation: this.#incarnation },
            { signal: call.signal, headers: this.#options.headers },
          );
          for await (const message of stream) {
            if (message.header) {
              openedAt = Date.now();
              if (!this.#incarnation) this.#incarnation = message.header.incarnation;
              this.#state = SubscriptionState.Streaming;
              this.#options.onHeader?.(message.header, { reconnect });
              continue;
            }
            for (const event of message.events) {
              this.#check(event.seq);
              this.#lastSeq = event.seq;
              this.#lastEpoch = event.epoch;
              failures = 0;
              yield event;
            }
          }
          if (!follow) return;
          // A following stream that ends cleanly was cut by something between us and the
          // daemon: treat it like any disconnect.
          throw new ConnectError("the stream ended while following", Code.Unavailable);
        } catch (reason) {
          if (signal?.aborted) return;
          if (reason instanceof SequenceError) throw reason;
          const error = ConnectError.from(reason);
          if (!this.#policy.retryable(error)) throw error;
          if (openedAt > 0 && Date.now() - openedAt >= this.#policy.stableAfterMs) failures = 0;
          failures += 1;
          if (failures > this.#policy.maxAttempts) throw error;
          const delayMs = this.#delay(failures);
          this.#options.onRetry?.({ attempt: failures, maxAttempts: this.#policy.maxAttempts, delayMs, error, afterSeq: this.#lastSeq });
          this.#state = SubscriptionState.BackingOff;
          await sleep(delayMs, signal);
          reconnect = true;
        } finally {
          signal?.removeEventListener("abort", onAbort);
          call.abort();
        }
      }
      this.#state = SubscriptionState.Done;
    } catch (error) {
      this.#state = SubscriptionState.Failed;
      throw error;
    } finally {
      if (this.#state !== SubscriptionState.Failed) this.#state = SubscriptionState.Done;
    }
  }

  // Every event must be exactly the one after the last delivered.
  #check(seq: bigint): void {
    const expected = this.#lastSeq + 1n;
    if (seq === expected) return;
    throw new SequenceError(seq < expected ? "duplicate" : "gap", expected, seq);
  }

  #delay(attempt: number): number {
    return retryDelay(this.#policy, attempt);
  }
}

/**
 * The wait before retry `attempt` (1 for the first): exponential backoff with "full jitter"
 * between half the step and the whole step, so that many clients cut by one daemon restart
 * do not come back in lockstep.
 */
export function retryDelay(policy: Pick<RetryPolicy, "initialDelayMs" | "maxDelayMs" | "multiplier" | "random">, attempt: number): number {
  const step = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** (attempt - 1));
  return Math.round(step / 2 + (step / 2) * policy.random());
}

/** Waits, or returns early when the signal fires. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
