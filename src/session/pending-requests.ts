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

/** An agent_request put to the client, until it is decided. */
export interface OpenPermission {
  /** The daemon's id (PermissionRequested.request_id). */
  id: string;
  /** The agent's own id, to answer it. */
  agentRequestId: string;
  kind: "permission" | "question";
  toolName: string;
  inputJson: string;
  inputEditable: boolean;
  /** The question ids as logged, to the agent's own (a logged id may be clipped). */
  questionIds: Map<string, string>;
  /** The turn it belongs to (its id). */
  turnId: string;
  /** Denies it when no answer came in time. */
  timer: NodeJS.Timeout | undefined;
}

/**
 * The agent's permission requests and questions waiting for a client, by the daemon's id
 * and by the agent's. Bounded like every other request an agent can open.
 */
export class OpenPermissions {
  readonly #byId = new Map<string, OpenPermission>();
  readonly #byAgentId = new Map<string, OpenPermission>();

  get size(): number {
    return this.#byId.size;
  }

  /** False when it cannot be taken: its agent id is open already, or too many are. */
  add(open: OpenPermission): boolean {
    if (this.#byAgentId.has(open.agentRequestId) || this.#byId.size >= MAX_PENDING_AGENT_REQUESTS) return false;
    this.#byId.set(open.id, open);
    this.#byAgentId.set(open.agentRequestId, open);
    return true;
  }

  get(id: string): OpenPermission | undefined {
    return this.#byId.get(id);
  }

  /** Takes one out to decide it (undefined when it was decided already: decide once). */
  take(id: string): OpenPermission | undefined {
    const open = this.#byId.get(id);
    if (!open) return undefined;
    this.#byId.delete(id);
    this.#byAgentId.delete(open.agentRequestId);
    clearTimeout(open.timer);
    return open;
  }

  takeByAgentId(agentRequestId: string): OpenPermission | undefined {
    const open = this.#byAgentId.get(agentRequestId);
    return open ? this.take(open.id) : undefined;
  }

  all(): OpenPermission[] {
    return [...this.#byId.values()];
  }
}
