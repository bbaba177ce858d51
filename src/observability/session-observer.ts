import { type Span, SpanKind, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import type { ObservedSession } from "../engine/config.js";
import type { Event } from "../events/event.js";
import { enumLabel, type EventMetrics, type TurnStart } from "./event-metrics.js";
import type { TurnTrace, TurnTraces } from "./turn-traces.js";

/** What a session's observer feeds; each part is optional (metrics off, no exporter). */
export interface ObserverParts {
  metrics?: EventMetrics;
  /** Hands turns the trace of the Execute call that started them. */
  turns?: TurnTraces;
  /** Spans per turn, children of the Execute span (only with an exporter). */
  tracer?: Tracer;
  /** One line per ended turn, with its trace id (at debug). */
  logger?: Logger;
}

/** What the observer knows of one turn, from its events. */
interface TurnState {
  /** performance.now() when its first event was published: the turn was accepted. */
  acceptedAt: number;
  queued: boolean;
  /** The agent was started for this turn (a SessionStarted in it), at performance.now() = startedAgentAt. */
  cold: boolean;
  startedAgentAt: number;
  started: boolean;
  /** The agent said something (the time to first event is taken). */
  answered: boolean;
  /** TurnQueued or TurnStarted has been seen: the trace was claimed (or there was none). */
  claimed: boolean;
  trace?: TurnTrace;
  span?: Span;
}

// Turns a session has open at once: one running plus its queue (16 by default).
const MAX_TURNS = 256;
// Permission requests waiting at once in one session.
const MAX_WAITS = 256;

/**
 * One session's observer: reads every event its log publishes and turns them into metrics,
 * turn spans and turn log lines. This is the one place event-derived metrics come from.
 * Cheap per event (the common text delta is a counter and a string comparison); the work
 * happens at a turn's edges. Never throws: it runs inside the group commit.
 */
export function observeSession(session: ObservedSession, parts: ObserverParts): (events: readonly Event[], now?: number) => void {
  const { metrics, turns: traces, tracer, logger } = parts;
  const { provider } = session;
  const turns = new Map<string, TurnState>();
  const waits = new Map<string, number>();
  let turnLog: Logger | undefined;
  // The turn of the previous event: most events belong to the same turn as the one before.
  let lastTurnId = "";
  let last: TurnState | undefined;

  const turnOf = (turnId: string, now: number): TurnState | undefined => {
    if (turnId === "") return undefined;
    if (turnId === lastTurnId) return last;
    let turn = turns.get(turnId);
    if (!turn) {
      if (turns.size >= MAX_TURNS) forget(turns.keys().next().value as string);
      turn = { acceptedAt: now, queued: false, cold: false, startedAgentAt: 0, started: false, answered: false, claimed: false };
      turns.set(turnId, turn);
    }
    lastTurnId = turnId;
    last = turn;
    return turn;
  };
  const forget = (turnId: string) => {
    turns.get(turnId)?.span?.end();
    turns.delete(turnId);
    if (turnId === lastTurnId) {
      lastTurnId = "";
      last = undefined;
    }
  };
  const startOf = (turn: TurnState): TurnStart => (turn.queued ? "queued" : turn.cold ? "cold" : "hot");
  const answered = (turn: TurnState | undefined, now: number) => {
    if (!turn || turn.answered) return;
    turn.answered = true;
    metrics?.firstEvent(provider, startOf(turn), (now - turn.acceptedAt) / 1000);
    turn.span?.addEvent("first output", performance.timeOrigin + now);
  };
  // The turn's trace, from the Execute call that started it (its TurnQueued or TurnStarted).
  const claim = (turn: TurnState, turnId: string, requestId: string) => {
    if (turn.claimed) return;
    turn.claimed = true;
    turn.trace = traces?.claim(session.tenant, session.sessionId, requestId);
    if (!tracer) return;
    turn.span = tracer.startSpan(
      "hotplex.turn",
      {
        kind: SpanKind.INTERNAL,
        startTime: performance.timeOrigin + turn.acceptedAt,
        attributes: { "hotplex.tenant": session.tenant, "hotplex.session_id": session.sessionId, "hotplex.turn_id": turnId, "hotplex.provider": provider },
      },
      turn.trace?.parent,
    );
    // On a cold turn the agent started before TurnStarted, which began the span.
    if (turn.cold) turn.span.addEvent("agent started", performance.timeOrigin + turn.startedAgentAt);
  };
  const ended = (turn: TurnState, turnId: string, event: Event & { payload: { case: "turnEnded" } }, now: number) => {
    const { outcome, durationMs } = event.payload.value;
    const seconds = turn.started ? Number(durationMs) / 1000 : undefined;
    metrics?.turnEnded(provider, outcome, seconds);
    const outcomeName = enumLabel(TurnOutcome, outcome);
    if (turn.span) {
      turn.span.setAttributes({ "hotplex.turn.outcome": outcomeName, "hotplex.turn.start": startOf(turn) });
      if (outcome === TurnOutcome.FAILED || outcome === TurnOutcome.TIMED_OUT) turn.span.setStatus({ code: SpanStatusCode.ERROR, message: outcomeName });
      // When it was published: this observer may see it a little later.
      turn.span.end(performance.timeOrigin + now);
      turn.span = undefined;
    }
    // At debug: the Execute call's own RPC line already carries the session, its duration and
    // trace id at info, and a second line per turn costs a hot turn more than the metrics do.
    if (logger?.isLevelEnabled("debug")) {
      turnLog ??= logger.child({ session: session.sessionId, tenant: session.tenant });
      turnLog.debug(
        { turn: turnId, provider, outcome: outcomeName, start: startOf(turn), ms: seconds === undefined ? undefined : Number(durationMs), trace_id: turn.trace?.ids.traceId },
        "turn ended",
      );
    }
    forget(turnId);
  };

  // `now`: when the events were published (the caller may observe them a little later).
  return (events: readonly Event[], now = performance.now()) => {
    try {
      for (const event of events) {
        const { payload } = event;
        metrics?.appended(payload.case);
        const turn = turnOf(event.turnId, now);
        switch (payload.case) {
          case "textDelta":
          case "thinkingDelta":
          case "toolUse":
          case "toolResult":
          case "raw":
            answered(turn, now);
            break;
          case "permissionRequested":
            answered(turn, now);
            metrics?.permissionRequested(provider, payload.value.kind);
            if (waits.size >= MAX_WAITS) waits.delete(waits.keys().next().value as string);
            waits.set(payload.value.requestId, now);
            break;
          case "permissionResolved": {
            const askedAt = waits.get(payload.value.requestId);
            if (askedAt === undefined) break;
            waits.delete(payload.value.requestId);
            metrics?.permissionResolved(provider, payload.value.decidedBy, (now - askedAt) / 1000);
            break;
          }
          case "sessionStarted":
            if (turn) {
              turn.cold = true;
              turn.startedAgentAt = now;
              turn.span?.addEvent("agent started", performance.timeOrigin + now);
            }
            metrics?.agentStarted(provider, payload.value.kind);
            break;
          case "sessionEnded":
            metrics?.agentExited(provider, payload.value.reason);
            break;
          case "turnQueued":
            if (!turn) break;
            turn.queued = true;
            metrics?.turnQueued(provider);
            claim(turn, event.turnId, payload.value.requestId);
            break;
          case "turnStarted":
            if (!turn) break;
            turn.started = true;
            metrics?.turnStarted(provider, turn.cold);
            claim(turn, event.turnId, payload.value.requestId);
            break;
          case "turnEnded":
            if (!turn) break;
            // A turn that ended without a word from the agent: its end is its first event.
            if (turn.started) answered(turn, now);
            ended(turn, event.turnId, event as Event & { payload: { case: "turnEnded" } }, now);
            break;
          case "ruleMatched":
            metrics?.ruleMatched(payload.value.ruleId, payload.value.severity);
            break;
          case "error":
            metrics?.errorEvent(payload.value.code);
            break;
          default:
            break;
        }
      }
    } catch (error) {
      // Observing must never break a commit; a bug here shows in the log, once per batch.
      logger?.error({ err: error, session: session.sessionId }, "observing events failed");
    }
  };
}
