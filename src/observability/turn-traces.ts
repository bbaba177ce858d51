import type { Context } from "@opentelemetry/api";
import type { TraceIds } from "./trace-context.js";

/** The trace a turn belongs to: the ids of the Execute call that started it, and its span. */
export interface TurnTrace {
  ids: TraceIds;
  /** The Execute call's server span as a parent context (only when spans are exported). */
  parent?: Context;
}

/** A turn an Execute call expects (see TurnTraces.expect). */
export interface Expected {
  key: string;
  trace: TurnTrace;
  atMs: number;
  claimed: boolean;
}

/** Unclaimed expectations kept at most, over every session. */
const MAX_EXPECTED = 4096;
/** An expectation no turn claimed within this long is stale (its turn never started). */
const MAX_AGE_MS = 60 * 60_000;

/**
 * Hands a turn the trace of the Execute call that started it. The server layer expects a
 * turn when an Execute call is let in (tenant, session id, request id); the session's event
 * observer claims it when the turn's TurnQueued or TurnStarted (which carry the request id)
 * is published, in the order the calls came. Nothing below the server knows about traces.
 *
 * An Execute that failed releases its expectation; one whose client went away keeps it (its
 * turn runs on, and may start later). Retried calls of a running turn are never claimed and
 * age out. Bounded: the oldest expectations are dropped first.
 */
export class TurnTraces {
  readonly #byKey = new Map<string, Expected[]>();
  #count = 0;

  /** An Execute call for this session and request id was let in with this trace. */
  expect(tenant: string, sessionId: string, requestId: string, trace: TurnTrace, nowMs = Date.now()): Expected {
    const key = keyOf(tenant, sessionId, requestId);
    const expected: Expected = { key, trace, atMs: nowMs, claimed: false };
    while (this.#count >= MAX_EXPECTED) this.#dropOldest();
    const list = this.#byKey.get(key);
    if (list) list.push(expected);
    else this.#byKey.set(key, [expected]);
    this.#count += 1;
    return expected;
  }

  /** The call failed before its turn was claimed: no turn will claim it. */
  release(expected: Expected): void {
    if (expected.claimed) return;
    const list = this.#byKey.get(expected.key);
    const index = list?.indexOf(expected) ?? -1;
    if (!list || index < 0) return;
    list.splice(index, 1);
    this.#count -= 1;
    if (list.length === 0) this.#byKey.delete(expected.key);
  }

  /** The trace of the oldest call expecting this turn, if any (each is handed out once). */
  claim(tenant: string, sessionId: string, requestId: string, nowMs = Date.now()): TurnTrace | undefined {
    if (this.#count === 0) return undefined;
    const key = keyOf(tenant, sessionId, requestId);
    const list = this.#byKey.get(key);
    if (!list) return undefined;
    let found: Expected | undefined;
    while (!found && list.length > 0) {
      const next = list.shift() as Expected;
      this.#count -= 1;
      if (nowMs - next.atMs <= MAX_AGE_MS) found = next;
    }
    if (list.length === 0) this.#byKey.delete(key);
    if (!found) return undefined;
    found.claimed = true;
    return found.trace;
  }

  /** Expectations waiting (tests). */
  get size(): number {
    return this.#count;
  }

  #dropOldest(): void {
    const [key, list] = this.#byKey.entries().next().value as [string, Expected[]];
    list.shift();
    this.#count -= 1;
    if (list.length === 0) this.#byKey.delete(key);
  }
}

// NUL cannot occur in a tenant name, a session id or a request id that passed validation.
function keyOf(tenant: string, sessionId: string, requestId: string): string {
  return `${tenant}\u0000${sessionId}\u0000${requestId}`;
}
