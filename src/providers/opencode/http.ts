import http from "node:http";

/** A reply of the server, its body bounded. */
export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface RequestOptions {
  query?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
  /** The longest body read; a longer one fails the request. */
  maxBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BYTES = 1024 * 1024;

/**
 * HTTP to one server incarnation on loopback, with its basic auth. Each incarnation has
 * its own socket pool: a restarted server may come back on the same port, and a pooled
 * keep-alive socket of the dead one would fail the first request with ECONNRESET.
 */
export class ServerClient {
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    readonly port: number,
    readonly authorization: string,
  ) {}

  request(method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
    const { query, body, timeoutMs = DEFAULT_TIMEOUT_MS, maxBytes = DEFAULT_MAX_BYTES } = options;
    const search = query ? `?${new URLSearchParams(query).toString()}` : "";
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port: this.port,
          method,
          path: path + search,
          agent: this.#agent,
          timeout: timeoutMs,
          headers: {
            authorization: this.authorization,
            accept: "application/json",
            ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes > maxBytes) {
              req.destroy(new Error(`the server's reply to ${method} ${path} is over ${maxBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`the server did not answer ${method} ${path} within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /**
   * Opens an event stream: resolves once the server answered 200 (with the response's
   * chunks going to `onChunk`), rejects otherwise. `ended` settles when it closes.
   */
  stream(path: string, onChunk: (chunk: Buffer) => void): Promise<{ close(): void; ended: Promise<void> }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: this.port, method: "GET", path, headers: { authorization: this.authorization, accept: "text/event-stream" } },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`the server answered ${path} with HTTP ${res.statusCode}`));
            return;
          }
          const ended = new Promise<void>((done) => {
            res.on("data", onChunk);
            res.on("end", done);
            res.on("close", done);
            res.on("error", () => done());
          });
          resolve({ close: () => req.destroy(), ended });
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  /** Closes every pooled socket (the incarnation is gone). */
  destroy(): void {
    this.#agent.destroy();
  }
}

/** A JSON body, or undefined when it is not JSON. */
export function jsonOf(reply: Reply): unknown {
  try {
    return reply.body ? (JSON.parse(reply.body) as unknown) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Server-sent events, parsed with bounds: a line (and an event's data) longer than
 * `maxBytes` is dropped with the rest of its event and reported with the start of it
 * (so the caller may tell whose it was). Only `data:` fields are used; comments and
 * other fields are skipped.
 */
export class SseParser {
  #parts: Buffer[] = [];
  #bytes = 0;
  #discarding = false;
  #head = "";
  #data: string[] = [];
  #dataBytes = 0;
  #dropEvent = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onEvent: (data: string) => void,
    private readonly onOverlong: (bytes: number, head: string) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      if (newline === -1) {
        this.#append(chunk.subarray(start));
        return;
      }
      this.#append(chunk.subarray(start, newline));
      this.#endLine();
      start = newline + 1;
    }
  }

  #append(piece: Buffer): void {
    if (piece.length === 0) return;
    this.#bytes += piece.length;
    if (this.#discarding) return;
    if (this.#bytes > this.maxBytes) {
      this.#discarding = true;
      this.#head = Buffer.concat([...this.#parts, piece]).subarray(0, 4096).toString("utf8");
      this.#parts = [];
      return;
    }
    this.#parts.push(piece);
  }

  #endLine(): void {
    if (this.#discarding) {
      this.onOverlong(this.#bytes, this.#head);
      this.#discarding = false;
      this.#head = "";
      this.#bytes = 0;
      this.#dropEvent = true;
      this.#data = [];
      this.#dataBytes = 0;
      return;
    }
    let line = Buffer.concat(this.#parts).toString("utf8");
    this.#parts = [];
    this.#bytes = 0;
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line === "") {
      const data = this.#data.join("\n");
      const drop = this.#dropEvent;
      this.#data = [];
      this.#dataBytes = 0;
      this.#dropEvent = false;
      if (!drop && data) this.onEvent(data);
      return;
    }
    if (this.#dropEvent || line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== "data") return;
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    this.#dataBytes += Buffer.byteLength(value) + 1;
    if (this.#dataBytes > this.maxBytes) {
      this.onOverlong(this.#dataBytes, this.#data.join("\n").slice(0, 4096));
      this.#dropEvent = true;
      this.#data = [];
      return;
    }
    this.#data.push(value);
  }
}
