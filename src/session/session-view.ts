import { clone, create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type SessionConfig,
  type SessionInfo,
  SessionInfoSchema,
  SessionStatsSchema,
  SessionStatus,
  type TurnInfo,
  TurnInfoSchema,
} from "../../gen/hotplex/v1/session_pb.js";
import type { Event } from "../events/event.js";
import type { SessionRecord } from "../store/store.js";
import { InteractionState } from "./interaction-state.js";
import { StatsAccumulator } from "./stats.js";

/**
 * A session's state as the fold of its events. The session applies each event right
 * after appending it, in the same synchronous step, so a reader that takes this view
 * and the log's lastSeq together sees exactly the state as of that seq.
 */
export class SessionView {
  #status: SessionStatus = SessionStatus.DEAD;
  pid = 0;
  providerSessionId: string;
  workDir: string;
  createdAt: Timestamp;
  lastActiveMs: number;
  currentTurn: TurnInfo | undefined;
  readonly stats = new StatsAccumulator();
  readonly interaction = new InteractionState();

  constructor(
    readonly sessionId: string,
    readonly provider: string,
    providerSessionId: string,
    workDir: string,
    nowMs = Date.now(),
  ) {
    this.providerSessionId = providerSessionId;
    this.workDir = workDir;
    this.createdAt = timestampFromMs(nowMs);
    this.lastActiveMs = nowMs;
  }

  /**
   * The session's lifecycle state as its StatusChanged events say (the session logs one
   * on every transition), so a snapshot's status is exactly the one as of its seq.
   */
  get status(): SessionStatus {
    return this.#status;
  }

  /** Takes the state a session had when the daemon last stored it. */
  restore(record: SessionRecord): void {
    this.#status = record.status;
    this.interaction.restore(record.extras);
    this.providerSessionId = record.providerSessionId;
    this.workDir = record.workDir;
    this.createdAt = timestampFromMs(record.createdAtMs);
    this.lastActiveMs = record.lastActiveMs;
    this.stats.restore(record.stats);
    // A process and a turn recorded before the restart are ended by recovery, through
    // events; until then (and in a copy of another node's session) the view shows what
    // was recorded: of the turn, its id.
    this.pid = record.pgid;
    this.currentTurn = record.currentTurnId ? create(TurnInfoSchema, { turnId: record.currentTurnId }) : undefined;
  }

  /** Takes one event; `nowMs` is when it happened (the event's own time when replayed). */
  apply(event: Event, nowMs = Date.now()): void {
    const { payload } = event;
    this.lastActiveMs = nowMs;
    switch (payload.case) {
      case "statusChanged":
        this.#status = payload.value.status;
        break;
      case "conversationReset":
        this.providerSessionId = payload.value.providerSessionId;
        break;
      case "sessionStarted":
        this.pid = payload.value.pid;
        this.providerSessionId = payload.value.providerSessionId;
        this.workDir = payload.value.workDir;
        break;
      case "turnStarted":
        this.currentTurn = create(TurnInfoSchema, {
          turnId: event.turnId,
          requestId: payload.value.requestId,
          prompt: payload.value.prompt,
          startedAt: event.time,
          startedSeq: event.seq,
        });
        break;
      case "turnEnded":
        if (this.currentTurn?.turnId === event.turnId) {
          this.currentTurn = undefined;
        }
        break;
      case "sessionEnded":
        this.pid = 0;
        this.currentTurn = undefined;
        break;
      default:
        break;
    }
    this.stats.apply(event);
    this.interaction.apply(event);
  }

  toInfo(config: SessionConfig, incarnation: string): SessionInfo {
    const { interaction } = this;
    return create(SessionInfoSchema, {
      sessionId: this.sessionId,
      status: this.status,
      provider: this.provider,
      providerSessionId: this.providerSessionId,
      workDir: this.workDir,
      createdAt: this.createdAt,
      lastActiveAt: timestampFromMs(this.lastActiveMs),
      currentTurn: this.currentTurn,
      queuedTurns: interaction.queued.size,
      queued: [...interaction.queued.values()],
      pendingRequests: [...interaction.pending.values()],
      title: interaction.title,
      forkedFrom: interaction.forkedFrom,
      pid: this.pid,
      config,
      incarnation,
      // A copy: the live accumulator keeps changing while the response is serialized.
      stats: clone(SessionStatsSchema, this.stats.stats),
    });
  }
}
