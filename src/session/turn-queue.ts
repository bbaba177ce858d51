import { HotplexError } from "../errors.js";
import { Turn } from "./turn.js";

// Request ids remembered per session for safe retries of Execute.
const REMEMBERED_REQUEST_IDS = 256;

/**
 * A session's turns: the one running, those waiting behind it in order, and the turns
 * recent request ids started (so a retried Execute finds its turn instead of running a
 * second one). Exactly one turn runs at a time.
 */
export class TurnQueue {
  /** The turn handed to the agent, until it ends. */
  current: Turn | undefined;
  readonly #waiting: Turn[] = [];
  readonly #byRequestId = new Map<string, Turn>();

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
    if (requestId) this.#remember(requestId, turn);
    this.#waiting.push(turn);
    return turn;
  }

  /** The next waiting turn, now the current one (undefined when none waits). */
  startNext(): Turn | undefined {
    const turn = this.#waiting.shift();
    if (turn) this.current = turn;
    return turn;
  }

  /** Takes every waiting turn out of the queue (a stop ends them). */
  takeWaiting(): Turn[] {
    return this.#waiting.splice(0);
  }

  /** The current turn has ended. */
  finished(turn: Turn): void {
    if (this.current === turn) this.current = undefined;
  }

  /** The turn an earlier Execute with this request id started, if remembered. */
  forRequest(requestId: string): Turn | undefined {
    return requestId ? this.#byRequestId.get(requestId) : undefined;
  }

  #remember(requestId: string, turn: Turn): void {
    this.#byRequestId.set(requestId, turn);
    if (this.#byRequestId.size > REMEMBERED_REQUEST_IDS) {
      const oldest = this.#byRequestId.keys().next().value;
      if (oldest !== undefined) this.#byRequestId.delete(oldest);
    }
  }
}
