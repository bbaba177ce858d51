// Typed helpers for what clients do with events again and again: collect a turn's text and
// its end, and wait until a session reaches a status. They take any stream of events: an
// Execute or Subscribe call's responses, a resuming subscription, or an embedded engine's.
import { type CallOptions, Code, type Client, ConnectError } from "@connectrpc/connect";
import type { Event, TurnEnded } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import type { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { DEFAULT_RETRY_POLICY, resumingSubscribe, retryDelay, type RetryPolicy, sleep } from "./resuming-subscribe.js";

/** Events one at a time, or a call's responses that carry them in batches (`events`). */
export type EventSource = AsyncIterable<Event> | AsyncIterable<{ events: Event[] }>;

/** Each event of `source`, in order, whichever form it comes in. */
export async function* eventsOf(source: EventSource): AsyncGenerator<Event> {
  for await (const item of source as AsyncIterable<Event | { events: Event[] }>) {
    if ("payload" in item) yield item;
    else yield* item.events;
  }
}

/** What one turn said and how it ended. */
export interface CollectedTurn {
  turnId: string;
  /** The agent's answer: its text deltas, joined (sub-agents' text left out). */
  text: string;
  /** The turn's end (undefined when the stream ended first, say the reader's signal fired). */
  ended: TurnEnded | undefined;
  /** Every event of the turn, in order. */
  events: Event[];
}

/**
 * Reads a turn to its TurnEnded: the first turn seen in `source` (an Execute stream
 * carries only its own) or `turnId`'s. Stops reading at the end, so it can take a
 * following subscription too.
 */
export async function collectTurn(source: EventSource, turnId?: string): Promise<CollectedTurn> {
  const turn: CollectedTurn = { turnId: turnId ?? "", text: "", ended: undefined, events: [] };
  for await (const event of eventsOf(source)) {
    if (!event.turnId) continue;
    if (!turn.turnId) turn.turnId = event.turnId;
    if (event.turnId !== turn.turnId) continue;
    turn.events.push(event);
    const { payload } = event;
    if (payload.case === "textDelta" && !payload.value.parentToolUseId) turn.text += payload.value.text;
    if (payload.case === "turnEnded") {
      turn.ended = payload.value;
      break;
    }
  }
  return turn;
}

/** What `waitForStatus` needs of a SessionService client. */
export type StatusClient = Pick<Client<typeof SessionService>, "getSnapshot" | "subscribe">;

export interface WaitForStatusOptions {
  /** Gives up with DEADLINE_EXCEEDED after this long (default: no limit). */
  timeoutMs?: number;
  signal?: AbortSignal;
  headers?: CallOptions["headers"];
  /** How the subscription underneath retries across disconnects and restarts. */
  retry?: Partial<RetryPolicy>;
}

/**
 * Resolves with the session's status once it is one of `wanted`: at once when it already
 * is, else at the StatusChanged that makes it so (read from the log with a resuming
 * subscription, so a daemon restart on the way is ridden out). Rejects with
 * DEADLINE_EXCEEDED after `timeoutMs`, CANCELED when `signal` aborts, and with the call's
 * error otherwise (NOT_FOUND for a session that does not exist).
 */
export async function waitForStatus(client: StatusClient, sessionId: string, wanted: SessionStatus | readonly SessionStatus[], options: WaitForStatusOptions = {}): Promise<SessionStatus> {
  const statuses = new Set(typeof wanted === "number" ? [wanted] : wanted);
  const stop = new AbortController();
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => stop.abort("timeout"), options.timeoutMs);
  const onAbort = () => stop.abort("signal");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const ended = () =>
    stop.signal.reason === "timeout"
      ? new ConnectError(`session "${sessionId}" did not reach ${names(statuses)} within ${options.timeoutMs} ms`, Code.DeadlineExceeded)
      : new ConnectError("waiting for the status was canceled", Code.Canceled);
  try {
    if (options.signal?.aborted) throw ended();
    const snapshot = await withRetries(() => client.getSnapshot({ sessionId }, { signal: stop.signal, headers: options.headers }), { ...DEFAULT_RETRY_POLICY, ...options.retry }, stop.signal);
    const status = snapshot.session?.status ?? SessionStatus.UNSPECIFIED;
    if (statuses.has(status)) return status;
    const events = resumingSubscribe(client, {
      sessionId,
      afterSeq: snapshot.lastSeq,
      incarnation: snapshot.session?.incarnation ?? "",
      signal: stop.signal,
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.retry ? { retry: options.retry } : {}),
    });
    for await (const event of events) {
      if (event.payload.case === "statusChanged" && statuses.has(event.payload.value.status)) return event.payload.value.status;
    }
    throw ended();
  } catch (error) {
    if (stop.signal.aborted) throw ended();
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    stop.abort();
  }
}

// A unary call retried as the subscription retries (a daemon restarting, a connection reset).
async function withRetries<T>(call: () => Promise<T>, policy: RetryPolicy, signal: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (reason) {
      const error = ConnectError.from(reason);
      if (signal.aborted || !policy.retryable(error) || attempt > policy.maxAttempts) throw error;
      await sleep(retryDelay(policy, attempt), signal);
    }
  }
}

function names(statuses: ReadonlySet<SessionStatus>): string {
  return [...statuses].map((status) => SessionStatus[status] ?? String(status)).join(" or ");
}
