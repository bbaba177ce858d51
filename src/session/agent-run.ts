import { StartKind } from "../events/event.js";
import type { AgentConnection } from "../providers/connection.js";
import type { Turn } from "./turn.js";

/**
 * Where one run of a session's agent is in its life:
 *
 *   STARTING ──connected──▶ CONNECTED ──answered──▶ RUNNING
 *      │                       │                       │
 *      └───────────────────────┴─────stopping──────────┴──▶ STOPPING ──▶ ENDED
 *
 * STARTING: work dir, HOME and launch files are being prepared, the provider connects.
 * CONNECTED: the agent runs and has its first prompt, but has not said a word yet.
 * RUNNING: the agent answered (SessionStarted is logged); it takes turns.
 * STOPPING: the daemon ends it (stop, idle, fault, shutdown) and waits for its exit.
 * ENDED: its exit was handled; a new run starts for the next turn.
 */
export enum AgentRunState {
  STARTING = "starting",
  CONNECTED = "connected",
  RUNNING = "running",
  STOPPING = "stopping",
  ENDED = "ended",
}

/** A transition the run's state does not allow: a bug in the session, never the agent's doing. */
export class AgentRunStateError extends Error {
  override readonly name = "AgentRunStateError";
}

/** One run of a session's agent, from preparing its start to handling its exit. */
export class AgentRun {
  #state = AgentRunState.STARTING;
  #connection: AgentConnection | undefined;
  /** Resolves once the run's exit has been handled. */
  exitHandled: Promise<void> | undefined;
  /** What the agent said when it refused to start the conversation. */
  fatalStartupMessage: string | undefined;
  /** Why the daemon ended the run ("stopped", "idle", "crashed" after a fault, "shutdown"). */
  endReason: string | undefined;
  /**
   * A turn handed to this run while it was warm, until the agent says anything about it:
   * an agent that died while idle (killed, OOM) may not have been reaped yet when the
   * next turn arrives, and such a turn is given to a new run instead of failing.
   */
  warmTurn: { turn: Turn; answered: boolean } | undefined;

  constructor(
    /** How the conversation begins: new, or resumed from the agent's own storage. */
    readonly kind: StartKind,
    /** This run is the one retry after the agent refused to start the other way. */
    readonly retried: boolean,
    /** The turn this run was started for. */
    readonly firstTurn: Turn,
  ) {}

  get state(): AgentRunState {
    return this.#state;
  }

  get connection(): AgentConnection | undefined {
    return this.#connection;
  }

  /** The agent answered its first prompt: SessionStarted was logged for this run. */
  get answered(): boolean {
    return this.#answered;
  }

  /** True while the agent can take a prompt. */
  get takesPrompts(): boolean {
    return (this.#state === AgentRunState.CONNECTED || this.#state === AgentRunState.RUNNING) && this.#connection?.alive === true;
  }

  #answered = false;

  connected(connection: AgentConnection): void {
    this.#expect("connected", AgentRunState.STARTING);
    this.#connection = connection;
    this.#state = AgentRunState.CONNECTED;
  }

  /** The agent said something. Returns true the first time (the run is RUNNING then, unless stopping). */
  markAnswered(): boolean {
    // Called for every output the agent prints: after the first, nothing to check.
    if (this.#answered) return false;
    this.#expect("answered", AgentRunState.CONNECTED, AgentRunState.RUNNING, AgentRunState.STOPPING);
    this.#answered = true;
    if (this.#state === AgentRunState.CONNECTED) this.#state = AgentRunState.RUNNING;
    return true;
  }

  /** The daemon ends the run; the first reason given is kept. */
  stopping(reason: string): void {
    this.#expect("stopping", AgentRunState.STARTING, AgentRunState.CONNECTED, AgentRunState.RUNNING, AgentRunState.STOPPING);
    this.endReason ??= reason;
    this.#state = AgentRunState.STOPPING;
  }

  /** Its exit has been (or is being) handled; nothing more happens in this run. */
  ended(): void {
    this.#state = AgentRunState.ENDED;
  }

  #expect(transition: string, ...allowed: AgentRunState[]): void {
    if (!allowed.includes(this.#state)) {
      throw new AgentRunStateError(`agent run: "${transition}" in state ${this.#state} (allowed in ${allowed.join(", ")})`);
    }
  }
}

/** A run's start kind for a session that does or does not hold a conversation yet. */
export function startKindFor(hasConversation: boolean): StartKind {
  return hasConversation ? StartKind.RESUMED : StartKind.COLD;
}
