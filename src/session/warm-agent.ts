import type { SessionPaths } from "../process/sandbox.js";
import type { AgentConnection, ConnectionHandlers } from "../providers/connection.js";
import type { LaunchConfig, ParsedOutput } from "../providers/provider.js";
import type { AgentLog } from "./agent-log.js";

/**
 * Where a pre-warmed agent is in its life:
 *
 *   STARTING ──connected──▶ READY ──adopted──▶ ADOPTED
 *      │                      │
 *      └──────────────────────┴──ended / discarded──▶ GONE
 *
 * STARTING: its directories exist and the provider connects. READY: the agent runs and
 * waits for its first prompt; nothing of any session has reached it. ADOPTED: one session
 * took it and owns it for the rest of its life. GONE: it died, was evicted or the pool
 * closed before any session took it; its directories are removed.
 */
export enum WarmAgentState {
  STARTING = "starting",
  READY = "ready",
  ADOPTED = "adopted",
  GONE = "gone",
}

// What an agent may say before its first prompt and still be taken: agents that print an
// init line or two are fine; one that says more while idle is not kept (and what it said
// is dropped at once: each item may be a line of up to the line limit).
const MAX_BUFFERED_OUTPUTS = 16;

/**
 * An agent process started ahead of demand, for one launch config, in a work dir, HOME and
 * state dir of its own that no session has used. What it says before a session takes it is
 * kept and handed over with it, so the session sees exactly what a cold start would show.
 */
export class WarmAgent {
  #state = WarmAgentState.STARTING;
  #connection: AgentConnection | undefined;
  #target: ConnectionHandlers | undefined;
  readonly #buffered: ParsedOutput[] = [];
  /** Why it can no longer be taken (a fault, too much output), once it cannot. */
  #unusable: string | undefined;
  readonly startedAtMs = Date.now();

  /** The handlers the provider reports to: kept until adoption, then the session's. */
  readonly handlers: ConnectionHandlers = {
    onOutput: (item) => {
      if (this.#target) return this.#target.onOutput(item);
      if (this.#unusable) return;
      if (this.#buffered.length >= MAX_BUFFERED_OUTPUTS) return this.#becomeUnusable(`it printed more than ${MAX_BUFFERED_OUTPUTS} outputs before its first prompt`);
      this.#buffered.push(item);
      if (item.type === "fatal_startup") this.#becomeUnusable(`it refused to start: ${item.message}`);
    },
    onFault: (code, message) => {
      if (this.#target) return this.#target.onFault(code, message);
      this.#becomeUnusable(`agent fault ${code}: ${message}`);
    },
  };

  /** Called once, when it can no longer be taken for what it said (the pool ends it). */
  onUnusable: ((why: string) => void) | undefined;

  #becomeUnusable(why: string): void {
    if (this.#unusable !== undefined) return;
    this.#unusable = why;
    this.#buffered.length = 0;
    this.onUnusable?.(why);
  }

  constructor(
    /** Names its directories and its conversation; never a session's id. */
    readonly id: string,
    readonly tenant: string,
    readonly provider: string,
    /** The conversation id it was started with (a new conversation). */
    readonly providerSessionId: string,
    readonly launch: LaunchConfig,
    readonly paths: SessionPaths,
    /** Its stderr and lifecycle until a session takes it; then merged into the session's log. */
    readonly agentLog: AgentLog,
  ) {}

  get state(): WarmAgentState {
    return this.#state;
  }

  get connection(): AgentConnection | undefined {
    return this.#connection;
  }

  get pid(): number {
    return this.#connection?.pid ?? 0;
  }

  /** True while a session may take it: it runs, said nothing wrong, and nobody has it. */
  get takeable(): boolean {
    return this.#state === WarmAgentState.READY && this.#unusable === undefined && this.#connection?.alive === true;
  }

  get unusable(): string | undefined {
    return this.#unusable;
  }

  connected(connection: AgentConnection): void {
    if (this.#state !== WarmAgentState.STARTING) throw new Error(`warm agent ${this.id}: connected in state ${this.#state}`);
    this.#connection = connection;
    this.#state = WarmAgentState.READY;
  }

  /**
   * A session takes it: from now on the session's handlers get what the agent says,
   * starting with anything it said while it waited.
   */
  adopt(handlers: ConnectionHandlers): AgentConnection {
    const connection = this.#connection;
    if (!this.takeable || !connection) throw new Error(`warm agent ${this.id}: adopted in state ${this.#state}`);
    this.#state = WarmAgentState.ADOPTED;
    this.#target = handlers;
    for (const item of this.#buffered.splice(0)) handlers.onOutput(item);
    return connection;
  }

  /** It will never be taken (died, evicted, pool closed). */
  gone(): void {
    if (this.#state !== WarmAgentState.ADOPTED) this.#state = WarmAgentState.GONE;
  }
}
