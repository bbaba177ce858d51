/** One request the agent sent, waiting for the session's answer. */
export interface PendingAgentRequest {
  requestId: string;
  /** What it asks, e.g. a permission kind or a protocol method. */
  subtype: string;
  receivedAtMs: number;
}

/** Bounds the requests an agent may have open at once (a hostile agent could send millions). */
export const MAX_PENDING_AGENT_REQUESTS = 1024;

/**
 * The requests open between a session and its agent, both ways: the agent's requests to
 * hotplex (each must be answered exactly once: an agent may wait for ever otherwise), and
 * hotplex's interrupts to the agent (answered by the agent ending its turn).
 */
export class PendingRequests {
  readonly #fromAgent = new Map<string, PendingAgentRequest>();
  /** Interrupts sent to the agent whose turn has not ended yet. */
  interruptsSent = 0;

  /**
   * Records a request of the agent's. False when it cannot be taken: a second request
   * with an id still open, or too many open; the caller refuses it at once.
   */
  received(requestId: string, subtype: string, nowMs = Date.now()): boolean {
    if (this.#fromAgent.has(requestId) || this.#fromAgent.size >= MAX_PENDING_AGENT_REQUESTS) return false;
    this.#fromAgent.set(requestId, { requestId, subtype, receivedAtMs: nowMs });
    return true;
  }

  /** Takes a request out to answer it: undefined when it was answered already (answer once). */
  take(requestId: string): PendingAgentRequest | undefined {
    const request = this.#fromAgent.get(requestId);
    this.#fromAgent.delete(requestId);
    return request;
  }

  get fromAgent(): PendingAgentRequest[] {
    return [...this.#fromAgent.values()];
  }

  /** The agent's run ended: whatever it asked is moot, and no interrupt is pending. */
  clear(): PendingAgentRequest[] {
    const open = this.fromAgent;
    this.#fromAgent.clear();
    this.interruptsSent = 0;
    return open;
  }
}
