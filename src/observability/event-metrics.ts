import { Counter, type Registry } from "prom-client";
import { RuleSeverity, StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import { DeferredCounter, DeferredHistogram } from "./deferred.js";
import { BoundedLabel, DURATION_BUCKETS, PREFIX } from "./registry.js";

/** How a turn began: on an agent started for it, on a warm agent, or behind another turn. */
export type TurnStart = "cold" | "hot" | "queued";

/**
 * The metrics derived from the sessions' events (see session-observer.ts, which reads the
 * events and calls these). Every label is bounded: providers and rule ids come from the
 * config, the rest are enums; no session id, prompt or other client text is ever a label.
 * Counted through the deferred metrics (deferred.ts): these calls run inside the group
 * commit, on every turn's path, and prom-client's own per-call label hashing costs more.
 */
export class EventMetrics {
  // Appended events by payload case, counted in plain numbers (the one per-event cost) and
  // handed to prom-client when scraped.
  readonly #appended = new Map<string | undefined, number>();
  readonly #agentStarts: DeferredCounter<"provider" | "kind">;
  readonly #agentExits: DeferredCounter<"provider" | "reason">;
  readonly #turnsStarted: DeferredCounter<"provider" | "start">;
  readonly #turnsQueued: DeferredCounter<"provider">;
  readonly #turnsEnded: DeferredCounter<"provider" | "outcome">;
  readonly #turnSeconds: DeferredHistogram<"provider" | "outcome">;
  readonly #firstEventSeconds: DeferredHistogram<"provider" | "start">;
  readonly #permissionRequests: DeferredCounter<"provider" | "kind">;
  readonly #permissionWait: DeferredHistogram<"provider" | "decided_by">;
  readonly #ruleMatches: DeferredCounter<"rule_id" | "severity">;
  readonly #errors: DeferredCounter<"code">;
  // Rule ids come from the tenants' config, exit reasons and error codes from the daemon:
  // bounded anyway, so that nothing can ever grow a label without limit.
  readonly #ruleIds = new BoundedLabel(256);
  readonly #reasons = new BoundedLabel(32);
  readonly #errorCodes = new BoundedLabel(64);

  constructor(registry: Registry) {
    const registers = [registry];
    const appended = this.#appended;
    new Counter({
      name: `${PREFIX}events_appended_total`,
      help: "Events appended to sessions' logs (stored and published), by payload type",
      labelNames: ["type"],
      registers,
      collect() {
        this.reset();
        for (const [kind, count] of appended) this.inc({ type: typeLabel(kind) }, count);
      },
    });
    this.#agentStarts = new DeferredCounter({
      name: `${PREFIX}agent_starts_total`,
      help: "Agent processes started, by provider and kind (cold: a new conversation; resumed: a restart on an earlier one)",
      labelNames: ["provider", "kind"],
      registers,
    });
    this.#agentExits = new DeferredCounter({
      name: `${PREFIX}agent_exits_total`,
      help: "Agent processes that ended, by provider and reason (exited, crashed, stopped, idle, ...)",
      labelNames: ["provider", "reason"],
      registers,
    });
    this.#turnsStarted = new DeferredCounter({
      name: `${PREFIX}turns_started_total`,
      help: "Turns whose prompt reached the agent, by provider and start (cold: the agent was started for it; hot: a warm agent)",
      labelNames: ["provider", "start"],
      registers,
    });
    this.#turnsQueued = new DeferredCounter({
      name: `${PREFIX}turns_queued_total`,
      help: "Turns accepted behind a running one",
      labelNames: ["provider"],
      registers,
    });
    this.#turnsEnded = new DeferredCounter({
      name: `${PREFIX}turns_ended_total`,
      help: "Turns ended, by provider and outcome",
      labelNames: ["provider", "outcome"],
      registers,
    });
    this.#turnSeconds = new DeferredHistogram({
      name: `${PREFIX}turn_duration_seconds`,
      help: "Turn durations from TurnStarted to TurnEnded (TurnEnded.duration_ms), by provider and outcome",
      labelNames: ["provider", "outcome"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#firstEventSeconds = new DeferredHistogram({
      name: `${PREFIX}turn_first_event_seconds`,
      help: "Time from a turn's acceptance (its first event) to the agent's first output, by provider and start (cold, hot, queued)",
      labelNames: ["provider", "start"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#permissionRequests = new DeferredCounter({
      name: `${PREFIX}permission_requests_total`,
      help: "Permission requests and questions put to clients, by provider and kind",
      labelNames: ["provider", "kind"],
      registers,
    });
    this.#permissionWait = new DeferredHistogram({
      name: `${PREFIX}permission_wait_seconds`,
      help: "Time from PermissionRequested to PermissionResolved, by provider and who decided",
      labelNames: ["provider", "decided_by"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#ruleMatches = new DeferredCounter({
      name: `${PREFIX}rule_matches_total`,
      help: "Tenant rule matches on prompts and tool calls, by rule id and severity",
      labelNames: ["rule_id", "severity"],
      registers,
    });
    this.#errors = new DeferredCounter({
      name: `${PREFIX}error_events_total`,
      help: "Error events logged in sessions, by code",
      labelNames: ["code"],
      registers,
    });
  }

  /** One appended event of payload case `kind`. */
  appended(kind: string | undefined): void {
    this.#appended.set(kind, (this.#appended.get(kind) ?? 0) + 1);
  }

  agentStarted(provider: string, kind: StartKind): void {
    const kindLabel = kind === StartKind.RESUMED ? "resumed" : "cold";
    this.#agentStarts.inc(key(provider, kindLabel), () => ({ provider, kind: kindLabel }));
  }

  agentExited(provider: string, reason: string): void {
    const reasonLabel = this.#reasons.value(reason);
    this.#agentExits.inc(key(provider, reasonLabel), () => ({ provider, reason: reasonLabel }));
  }

  turnQueued(provider: string): void {
    this.#turnsQueued.inc(provider, () => ({ provider }));
  }

  turnStarted(provider: string, cold: boolean): void {
    const start = cold ? "cold" : "hot";
    this.#turnsStarted.inc(key(provider, start), () => ({ provider, start }));
  }

  firstEvent(provider: string, start: TurnStart, seconds: number): void {
    this.#firstEventSeconds.observe(key(provider, start), () => ({ provider, start }), seconds);
  }

  /** A turn ended; `seconds` is its duration when it started at all. */
  turnEnded(provider: string, outcome: TurnOutcome, seconds: number | undefined): void {
    const outcomeLabel = enumLabel(TurnOutcome, outcome);
    const labelKey = key(provider, outcomeLabel);
    const make = () => ({ provider, outcome: outcomeLabel });
    this.#turnsEnded.inc(labelKey, make);
    if (seconds !== undefined) this.#turnSeconds.observe(labelKey, make, seconds);
  }

  permissionRequested(provider: string, kind: RequestKind): void {
    const kindLabel = enumLabel(RequestKind, kind);
    this.#permissionRequests.inc(key(provider, kindLabel), () => ({ provider, kind: kindLabel }));
  }

  permissionResolved(provider: string, decider: Decider, seconds: number): void {
    const decidedBy = enumLabel(Decider, decider);
    this.#permissionWait.observe(key(provider, decidedBy), () => ({ provider, decided_by: decidedBy }), seconds);
  }

  ruleMatched(ruleId: string, severity: RuleSeverity): void {
    const ruleLabel = this.#ruleIds.value(ruleId);
    const severityLabel = enumLabel(RuleSeverity, severity);
    this.#ruleMatches.inc(key(ruleLabel, severityLabel), () => ({ rule_id: ruleLabel, severity: severityLabel }));
  }

  errorEvent(code: string): void {
    const codeLabel = this.#errorCodes.value(code);
    this.#errors.inc(codeLabel, () => ({ code: codeLabel }));
  }
}

// A label set's key: its values in the metric's label order.
function key(first: string, second: string): string {
  return `${first}\u0000${second}`;
}

/** An enum value as a label: TurnOutcome.TIMED_OUT → "timed_out"; a value the enum lacks → "unknown". */
export function enumLabel(enumObject: Record<number, string>, value: number): string {
  return enumObject[value]?.toLowerCase() ?? "unknown";
}

// "textDelta" → "text_delta", as the API's field names; an unset case (a newer daemon's
// payload) → "unknown".
const typeLabels = new Map<string | undefined, string>();
function typeLabel(kind: string | undefined): string {
  let label = typeLabels.get(kind);
  if (label === undefined) {
    label = kind ? kind.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`) : "unknown";
    typeLabels.set(kind, label);
  }
  return label;
}
