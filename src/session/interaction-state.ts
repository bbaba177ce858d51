import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { type PermissionRequested, PermissionDecision } from "../../gen/hotplex/v1/interaction_pb.js";
import {
  type ForkOrigin,
  ForkOriginSchema,
  type PendingRequest,
  PendingRequestSchema,
  type QueuedTurn,
  QueuedTurnSchema,
} from "../../gen/hotplex/v1/session_pb.js";
import type { Event } from "../events/event.js";

/** Request ids remembered per session for safe retries of Execute (only what a retry needs). */
export const REMEMBERED_REQUEST_IDS = 256;
/** Decided permission requests remembered, so a late second answer is told it lost. */
const REMEMBERED_DECISIONS = 1024;
/** Calls allowed "for the rest of the session" (each a tool and its exact input). */
export const MAX_SESSION_RULES = 1024;

/** Where a turn an Execute request id started can be read back from the log. */
export interface RequestedTurn {
  turnId: string;
  /** Its events all come after this seq. */
  fromSeq: number;
}

/** A fork's start, until its agent has started once: the conversation it copies. */
export interface PendingFork {
  providerSessionId: string;
  /** The provider's reference to the last turn copied ("" for the whole history). */
  at: string;
}

/** The key of an identical call: the same tool with the same input. */
export function callKey(toolName: string, inputJson: string): string {
  return `${toolName}\u0000${inputJson}`;
}

/**
 * What a session's events say beyond status and statistics: its title, the agent's
 * requests waiting for the client, the turns waiting in the queue, the request ids of
 * recent turns, the calls allowed for the session, and where a fork came from. It is a
 * fold of the log (so snapshots show it exactly as of their seq) and is stored with the
 * registry entry, so it survives a restart.
 */
export class InteractionState {
  title = "";
  readonly pending = new Map<string, PendingRequest>();
  readonly queued = new Map<string, QueuedTurn>();
  readonly #decided = new Set<string>();
  readonly #requests = new Map<string, RequestedTurn>();
  readonly #sessionRules = new Set<string>();
  /** The first seq of recent turns' events, by turn id. */
  readonly #firstSeqs = new Map<string, number>();
  forkedFrom: ForkOrigin | undefined;
  pendingFork: PendingFork | undefined;
  /**
   * The session's private dir (its HOME's parent) when it is not the default one for its
   * id: a session that took a pre-warmed agent keeps that agent's dirs for life.
   */
  stateDir = "";

  apply(event: Event): void {
    const { payload } = event;
    // A turn's first event (on a cold turn its start comes before TurnStarted).
    if (event.turnId && !this.#firstSeqs.has(event.turnId)) remember(this.#firstSeqs, event.turnId, 64, Number(event.seq));
    switch (payload.case) {
      case "permissionRequested":
        this.pending.set(
          payload.value.requestId,
          create(PendingRequestSchema, { request: payload.value, turnId: event.turnId, seq: event.seq, requestedAt: event.time }),
        );
        break;
      case "permissionResolved": {
        const { requestId, forSession, decision } = payload.value;
        const request = this.pending.get(requestId)?.request;
        this.pending.delete(requestId);
        remember(this.#decided, requestId, REMEMBERED_DECISIONS);
        if (request && forSession && decision === PermissionDecision.ALLOW && this.#sessionRules.size < MAX_SESSION_RULES) {
          this.#sessionRules.add(callKey(request.toolName, request.inputJson));
        }
        break;
      }
      case "turnQueued":
        this.queued.set(
          event.turnId,
          create(QueuedTurnSchema, { turnId: event.turnId, requestId: payload.value.requestId, prompt: payload.value.prompt, queuedAt: event.time }),
        );
        this.#remember(payload.value.requestId, event);
        break;
      case "turnStarted":
        this.queued.delete(event.turnId);
        this.#remember(payload.value.requestId, event);
        break;
      case "turnEnded":
        this.queued.delete(event.turnId);
        for (const [id, pending] of this.pending) if (pending.turnId === event.turnId) this.pending.delete(id);
        break;
      case "titleChanged":
        this.title = payload.value.title;
        break;
      case "sessionForked":
        this.forkedFrom = create(ForkOriginSchema, {
          sessionId: payload.value.parentSessionId,
          turnId: payload.value.parentTurnId,
          providerSessionId: payload.value.parentProviderSessionId,
        });
        break;
      case "sessionStarted":
        // The fork's agent has started on the copy: later starts resume its own conversation.
        this.pendingFork = undefined;
        break;
      default:
        break;
    }
  }

  /** The turn a request id started, if remembered. */
  turnForRequest(requestId: string): RequestedTurn | undefined {
    return requestId ? this.#requests.get(requestId) : undefined;
  }

  /** A request that was decided (and is no longer pending). */
  decided(requestId: string): boolean {
    return this.#decided.has(requestId);
  }

  /** An identical call was allowed for the rest of the session. */
  allowedForSession(toolName: string, inputJson: string): boolean {
    return this.#sessionRules.has(callKey(toolName, inputJson));
  }

  /** Requests pending in `turnId` (or every pending one). */
  pendingIn(turnId?: string): PermissionRequested[] {
    return [...this.pending.values()].filter((p) => turnId === undefined || p.turnId === turnId).flatMap((p) => (p.request ? [p.request] : []));
  }

  #remember(requestId: string, event: Event): void {
    if (!requestId || this.#requests.has(requestId)) return;
    this.#requests.set(requestId, { turnId: event.turnId, fromSeq: (this.#firstSeqs.get(event.turnId) ?? Number(event.seq)) - 1 });
    if (this.#requests.size > REMEMBERED_REQUEST_IDS) {
      const oldest = this.#requests.keys().next().value;
      if (oldest !== undefined) this.#requests.delete(oldest);
    }
  }

  /** The state as stored with the registry entry. */
  toJson(): string {
    const state: StoredInteraction = {
      title: this.title,
      pending: [...this.pending.values()].map((p) => toJson(PendingRequestSchema, p)),
      queued: [...this.queued.values()].map((q) => toJson(QueuedTurnSchema, q)),
      decided: [...this.#decided],
      requests: [...this.#requests].map(([requestId, turn]) => [requestId, turn.turnId, turn.fromSeq]),
      sessionRules: [...this.#sessionRules],
      forkedFrom: this.forkedFrom ? toJson(ForkOriginSchema, this.forkedFrom) : null,
      pendingFork: this.pendingFork ?? null,
      ...(this.stateDir ? { stateDir: this.stateDir } : {}),
    };
    return JSON.stringify(state);
  }

  /** Takes the stored state ("" for none: a session stored before it had any). */
  restore(json: string): void {
    if (!json) return;
    const state = JSON.parse(json) as Partial<StoredInteraction>;
    this.title = state.title ?? "";
    for (const p of state.pending ?? []) {
      const request = fromJson(PendingRequestSchema, p);
      if (request.request) this.pending.set(request.request.requestId, request);
    }
    for (const q of state.queued ?? []) {
      const turn = fromJson(QueuedTurnSchema, q);
      this.queued.set(turn.turnId, turn);
    }
    for (const id of state.decided ?? []) this.#decided.add(id);
    for (const [requestId, turnId, fromSeq] of state.requests ?? []) this.#requests.set(requestId, { turnId, fromSeq });
    for (const rule of state.sessionRules ?? []) this.#sessionRules.add(rule);
    this.forkedFrom = state.forkedFrom ? fromJson(ForkOriginSchema, state.forkedFrom) : undefined;
    this.pendingFork = state.pendingFork ?? undefined;
    this.stateDir = typeof state.stateDir === "string" ? state.stateDir : "";
  }
}

interface StoredInteraction {
  title: string;
  pending: JsonValue[];
  queued: JsonValue[];
  decided: string[];
  requests: [string, string, number][];
  sessionRules: string[];
  forkedFrom: JsonValue | null;
  pendingFork: PendingFork | null;
  stateDir?: string;
}

// Adds to a bounded set (or map), forgetting the oldest entry.
function remember(set: Set<string> | Map<string, number>, value: string, limit: number, seq = 0): void {
  if (set instanceof Map) set.set(value, seq);
  else set.add(value);
  if (set.size > limit) {
    const oldest = set.keys().next().value;
    if (oldest !== undefined) set.delete(oldest);
  }
}
