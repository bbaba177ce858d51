import { HotplexError } from "../errors.js";
import { Turn } from "./turn.js";

/**
 * A session's turns: the one running and those waiting behind it in order. Exactly one
 * turn runs at a time. (Request ids of earlier turns are remembered by the session, from
 * its log: see InteractionState.)
 */
export class TurnQueue {
  /** The turn handed to the agent, until it ends. */
  current: Turn | undefined;
  readonly #waiting: Turn[] = [];

  constructor(
    private readonly sessionId: string,
    private readonly limit: number,
  ) {}

  /** A turn runs or waits. */
  get busy(): boolean {
    return this.current !== undefined || this.#waiting.length > 0;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * A new turn, queued: refused while busy unless `queue` is set (FAILED_PRECONDITION),
   * and past the queue limit (RESOURCE_EXHAUSTED).
   */
  accept(prompt: string, requestId: string, queue: boolean, fromSeq: number): Turn {
    const busy = this.busy;
    if (busy && !queue) {
      throw new HotplexError(
        "failed_precondition",
        `session "${this.sessionId}" is busy with turn ${this.current?.id ?? this.#waiting[0]?.id}; set queue to wait for it`,
      );
    }
    if (busy && this.#waiting.length >= this.limit) {
      throw new HotplexError("resource_exhausted", `session "${this.sessionId}" already has ${this.#waiting.length} queued turns (the limit)`);
    }
    const turn = new Turn(prompt, requestId, fromSeq);
    turn.wasQueued = busy;
    this.#waiting.push(turn);
    return turn;
  }

  /** The next waiting turn, now the current one (undefined when none waits). */
  startNext(): Turn | undefined {
    const turn = this.#waiting.shift();
    if (turn) this.current = turn;
    return turn;
  }

  /** Takes one waiting turn out of the queue (it is cancelled); undefined when it does not wait. */
  takeWaitingTurn(turnId: string): Turn | undefined {
    const index = this.#waiting.findIndex((turn) => turn.id === turnId);
    return index < 0 ? undefined : this.#waiting.splice(index, 1)[0];
  }

  /** Takes every waiting turn out of the queue (a stop ends them). */
  takeWaiting(): Turn[] {
    return this.#waiting.splice(0);
  }

  /** The current turn has ended. */
  finished(turn: Turn): void {
    if (this.current === turn) this.current = undefined;
  }

  /** The running or a waiting turn with this request id. */
  forRequest(requestId: string): Turn | undefined {
    if (!requestId) return undefined;
    if (this.current?.requestId === requestId) return this.current;
    return this.#waiting.find((turn) => turn.requestId === requestId);
  }
}
