/** A JSON-RPC id: ours are numbers; an agent's may be either. */
export type JsonRpcId = number | string;

/** An error answer to one of our requests (or a request that could not be sent or answered). */
export class JsonRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** The error's `data`, as the agent sent it (untrusted: check before use). */
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** What a peer hands on: the agent's notifications and requests, and lines that are neither. */
export interface JsonRpcHandlers {
  onNotification(method: string, params: unknown): void;
  /** The agent asks us something: answer with respond() or respondError(), exactly once. */
  onRequest(id: JsonRpcId, method: string, params: unknown): void;
  /** A line that is not a JSON-RPC message we can take (kept as raw output by the caller). */
  onInvalid(line: string, reason: string): void;
}

export interface JsonRpcOptions {
  /** Write `"jsonrpc": "2.0"` in our messages (some agents omit it and accept either). */
  versionField: boolean;
}

interface Pending {
  method: string;
  resolve: (result: unknown) => void;
  reject: (error: JsonRpcError) => void;
}

/**
 * JSON-RPC 2.0 over lines, both ways: our requests with their answers matched by id, the
 * agent's requests and notifications handed on. Transport-free: it reads lines and writes
 * lines (stdio here, one JSON value per line). Every field the agent sends is checked
 * before use: a malformed message is reported, never thrown.
 */
export class JsonRpcPeer {
  readonly #write: (line: string) => boolean;
  readonly #handlers: JsonRpcHandlers;
  readonly #options: JsonRpcOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed: string | undefined;

  constructor(write: (line: string) => boolean, handlers: JsonRpcHandlers, options: JsonRpcOptions = { versionField: true }) {
    this.#write = write;
    this.#handlers = handlers;
    this.#options = options;
  }

  /** Sends a request; resolves with its result, rejects with a JsonRpcError. */
  request<T = unknown>(method: string, params: unknown): Promise<T> {
    if (this.#closed) return Promise.reject(new JsonRpcError(-32000, this.#closed));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { method, resolve: resolve as (result: unknown) => void, reject });
      if (!this.#send({ id, method, params })) {
        this.#pending.delete(id);
        reject(new JsonRpcError(-32000, `cannot send ${method}: the agent is gone`));
      }
    });
  }

  notify(method: string, params?: unknown): void {
    this.#send(params === undefined ? { method } : { method, params });
  }

  respond(id: JsonRpcId, result: unknown): void {
    this.#send({ id, result });
  }

  respondError(id: JsonRpcId, code: number, message: string): void {
    this.#send({ id, error: { code, message } });
  }

  /** Our requests still waiting for an answer. */
  get pendingRequests(): number {
    return this.#pending.size;
  }

  /** Fails every pending request and every later one (the agent is gone). */
  close(reason: string): void {
    this.#closed ??= reason;
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(new JsonRpcError(-32000, `${pending.method}: ${reason}`));
    }
  }

  /** Takes one line the agent printed. */
  handleLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.#handlers.onInvalid(line, "not_json");
      return;
    }
    if (!isObject(message)) {
      this.#handlers.onInvalid(line, "not_an_object");
      return;
    }
    const { id, method } = message;
    const hasId = typeof id === "number" || typeof id === "string";
    if (typeof method === "string") {
      if (hasId) this.#handlers.onRequest(id, method, message.params);
      else if (id === undefined || id === null) this.#handlers.onNotification(method, message.params);
      else this.#handlers.onInvalid(line, "bad_id");
      return;
    }
    if (typeof id !== "number" || !("result" in message || "error" in message)) {
      this.#handlers.onInvalid(line, "not_jsonrpc");
      return;
    }
    const pending = this.#pending.get(id);
    if (!pending) {
      this.#handlers.onInvalid(line, "unknown_response_id");
      return;
    }
    this.#pending.delete(id);
    if ("error" in message && message.error !== undefined && message.error !== null) {
      const error = isObject(message.error) ? message.error : {};
      const code = typeof error.code === "number" ? error.code : -32603;
      const text = typeof error.message === "string" ? error.message.slice(0, 4096) : "error without a message";
      pending.reject(new JsonRpcError(code, text, error.data));
    } else {
      pending.resolve(message.result);
    }
  }

  #send(message: Record<string, unknown>): boolean {
    const body = this.#options.versionField ? { jsonrpc: "2.0", ...message } : message;
    return this.#write(JSON.stringify(body));
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
