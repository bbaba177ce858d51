import type { IncomingHttpHeaders } from "node:http";
import type { Logger } from "pino";
import type { PeerIdentity } from "../security/credentials.js";
import type { NodeHandler, NodeRequest, NodeResponse } from "./adapter.js";

/** What a plain HTTP route sees of a request: never its body. */
export interface HttpRouteRequest {
  method: "GET" | "HEAD";
  /** The path, without the query string. */
  path: string;
  /** The query string without its "?" ("" when there is none). */
  query: string;
  headers: IncomingHttpHeaders;
  /** The verified TLS client certificate of the connection, when there is one. */
  peer?: PeerIdentity;
}

/** A route's whole answer; the dispatcher writes it (and leaves the body out for HEAD). */
export interface HttpReply {
  status: number;
  body: string | Uint8Array;
  /** text/plain; charset=utf-8 when unset. */
  contentType?: string;
  headers?: Record<string, string>;
}

/** A plain HTTP GET endpoint on the API's port: /healthz, /readyz, /metrics. */
export type HttpRoute = (req: HttpRouteRequest) => HttpReply | Promise<HttpReply>;

/** Path ("/readyz", exact) → its route. */
export type HttpRoutes = Readonly<Record<string, HttpRoute>>;

// Every route's path is short; a longer request path is refused before any lookup.
const MAX_PATH_CHARS = 1024;

export interface HttpRoutesOptions {
  logger: Logger;
  /** Requests for paths no route has; 404 when unset. */
  fallback?: NodeHandler;
  /** The connection's verified client certificate (the listener's), for routes that authenticate. */
  peerIdentity?: (req: NodeRequest) => PeerIdentity | undefined;
}

/**
 * The handler for requests that are no RPC: each path of `routes` answers GET and HEAD (any
 * other method gets 405 with Allow), any other path goes to the fallback (404 by default).
 * A request body is never read: one that is announced is dropped as it arrives, never
 * buffered, and an HTTP/1.1 connection is not reused after it. A route that throws is
 * logged and answered 500; it never takes the server down.
 */
export function createHttpRoutes(routes: HttpRoutes, options: HttpRoutesOptions): NodeHandler {
  // A Map, not the object: "/__proto__" and "/constructor" must not find anything.
  const table = new Map(Object.entries(routes));
  for (const path of table.keys()) {
    if (!path.startsWith("/") || path.length > MAX_PATH_CHARS) throw new Error(`HTTP route ${JSON.stringify(path)}: a path starts with "/" and is short`);
  }
  const { logger } = options;
  return (req, res) => {
    const url = req.url ?? "";
    if (url.length > MAX_PATH_CHARS) {
      reply(req, res, { status: 414, body: `the request path is longer than ${MAX_PATH_CHARS} characters\n` });
      return;
    }
    const queryAt = url.indexOf("?");
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    const route = table.get(path);
    if (!route) {
      if (options.fallback) options.fallback(req, res);
      else reply(req, res, { status: 404, body: "not found\n" });
      return;
    }
    const method = req.method;
    if (method !== "GET" && method !== "HEAD") {
      reply(req, res, { status: 405, body: `${path} answers GET and HEAD only\n`, headers: { allow: "GET, HEAD" } });
      return;
    }
    const query = queryAt < 0 ? "" : url.slice(queryAt + 1);
    Promise.resolve()
      .then(() => route({ method, path, query, headers: req.headers, peer: options.peerIdentity?.(req) }))
      .then(
        (answer) => reply(req, res, answer),
        (error: unknown) => {
          logger.error({ err: error, path }, "HTTP route failed");
          reply(req, res, { status: 500, body: "internal error\n" });
        },
      );
  };
}

function reply(req: NodeRequest, res: NodeResponse, answer: HttpReply): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  const body = typeof answer.body === "string" ? Buffer.from(answer.body, "utf8") : answer.body;
  const headers: Record<string, string> = {
    "content-type": answer.contentType ?? "text/plain; charset=utf-8",
    "content-length": String(body.byteLength),
    // A probe's answer is of this moment.
    "cache-control": "no-store",
    ...answer.headers,
  };
  if (hasBody(req)) {
    if (!("stream" in req)) headers.connection = "close";
    req.on("error", () => undefined);
    req.resume();
  }
  res.writeHead(answer.status, headers);
  if (req.method === "HEAD") res.end();
  else res.end(body);
}

function hasBody(req: NodeRequest): boolean {
  const length = req.headers["content-length"];
  if (length !== undefined) return length !== "0";
  // HTTP/1.1 announces a body by a length or chunked encoding; HTTP/2 by not ending the stream.
  return "stream" in req ? !req.readableEnded && !req.stream.endAfterHeaders : req.headers["transfer-encoding"] !== undefined;
}
