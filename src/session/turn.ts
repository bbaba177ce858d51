import { randomUUID } from "node:crypto";

/** One prompt and its lifetime in a session: queued, running, ended. */
export class Turn {
  readonly id = randomUUID();
  /** The log's last seq when the turn was submitted: all its events come after it. */
  readonly fromSeq: number;
  readonly prompt: string;
  readonly requestId: string;
  /** Waited behind another turn before it started. */
  wasQueued = false;
  startedAtMs = 0;
  /** TurnStarted has been logged. */
  announced = false;
  /** Set when the daemon ends the turn: the outcome it reports wins over the agent's. */
  endedBy: "timeout" | "interrupt" | "stop" | "agent_fault" | undefined;
  /** How the turn ended (once it has). */
  outcome = 0;
  stopReason = "";
  /** With endedBy "agent_fault": what the agent did wrong (the turn ends FAILED with it). */
  fault = "";
  readonly done: Promise<void>;
  #resolve!: () => void;
  #ended = false;

  constructor(prompt: string, requestId: string, fromSeq: number) {
    this.prompt = prompt;
    this.requestId = requestId;
    this.fromSeq = fromSeq;
    this.done = new Promise((resolve) => (this.#resolve = resolve));
  }

  get ended(): boolean {
    return this.#ended;
  }

  markEnded(outcome = 0): void {
    this.outcome = outcome;
    this.#ended = true;
    this.#resolve();
  }
}
