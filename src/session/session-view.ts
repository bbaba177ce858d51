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
   * The session's lifecycle state: from its events (started, turn started and ended,
   * ended), and, before the first event of a start, from the session starting an agent
   * or giving up on it. Every change goes through #set.
   */
  get status(): SessionStatus {
    return this.#status;
  }

  /** An agent is being started (counts against the live-session cap from now on). */
  starting(): void {
    this.#set(SessionStatus.STARTING);
  }

  /** A start was given up before the agent said anything (nothing runs). */
  notStarted(): void {
    if (this.#status === SessionStatus.STARTING) this.#set(SessionStatus.DEAD);
  }

  #set(status: SessionStatus): void {
    this.#status = status;
  }

  /** Takes the state a session had when the daemon last stored it. */
  restore(record: SessionRecord): void {
    this.#set(record.status);
    this.providerSessionId = record.providerSessionId;
    this.workDir = record.workDir;
    this.createdAt = timestampFromMs(record.createdAtMs);
    this.lastActiveMs = record.lastActiveMs;
    this.stats.restore(record.stats);
    // A process and a turn recorded before the restart are ended by recovery, through
    // events; until then the view shows what was recorded.
    this.pid = record.pgid;
  }

  /** Takes one event; `nowMs` is when it happened (the event's own time when replayed). */
  apply(event: Event, nowMs = Date.now()): void {
    const { payload } = event;
    this.lastActiveMs = nowMs;
    switch (payload.case) {
      case "sessionStarted":
        this.#set(SessionStatus.READY);
        this.pid = payload.value.pid;
        this.providerSessionId = payload.value.providerSessionId;
        this.workDir = payload.value.workDir;
        break;
      case "turnStarted":
        this.#set(SessionStatus.BUSY);
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
          if (this.#status === SessionStatus.BUSY) this.#set(SessionStatus.READY);
        }
        break;
      case "sessionEnded":
        this.#set(SessionStatus.DEAD);
        this.pid = 0;
        this.currentTurn = undefined;
        break;
      default:
        break;
    }
    this.stats.apply(event);
  }

  toInfo(config: SessionConfig, queuedTurns: number, incarnation: string): SessionInfo {
    return create(SessionInfoSchema, {
      sessionId: this.sessionId,
      status: this.status,
      provider: this.provider,
      providerSessionId: this.providerSessionId,
      workDir: this.workDir,
      createdAt: this.createdAt,
      lastActiveAt: timestampFromMs(this.lastActiveMs),
      currentTurn: this.currentTurn,
      queuedTurns,
      pid: this.pid,
      config,
      incarnation,
      // A copy: the live accumulator keeps changing while the response is serialized.
      stats: clone(SessionStatsSchema, this.stats.stats),
    });
  }
}
