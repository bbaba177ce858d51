import type http from "node:http";
import type http2 from "node:http2";
import { type ConnectRouter, type ContextValues, createConnectRouter, createContextValues, type Interceptor } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { AuthResult, CredentialTable, PeerIdentity } from "../security/credentials.js";
import { FORWARDED_HEADER, FORWARDED_SIGNATURE_HEADER, verifyForwarded } from "../security/forwarded.js";
import { isPublicMethod, methodKey, OPEN_METHOD_MAX_BYTES } from "./authorization.js";
import { authKey, bodyProblemKey, forwardedKey, forwardRefusalKey } from "./context.js";
import { bodyFramingOf, checkUnaryBody, replaceWithEmptyMessage } from "./request-body.js";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

export interface RequestHandlerOptions {
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  /** Largest request message, compressed or inflated (connect's readMaxBytes). */
  readMaxBytes: number;
  /** Largest deadline a client may ask for (connect-timeout-ms, grpc-timeout). */
  maxTimeoutMs: number;
  /** The credentials in force (a reload swaps them). */
  credentials: () => CredentialTable;
  /** The verified client certificate of the request's connection, if any. */
  peerIdentity?: (req: NodeRequest) => PeerIdentity | undefined;
  logger: Logger;
  /** Requests for paths that are no RPC; 404 when unset. */
  fallback?: NodeHandler;
  /** The secret the nodes of a deployment share: calls forwarded by another node are accepted with it. */
  nodeSecret?: Buffer;
}

/**
 * The Node request handler: connect's router behind a thin adapter of our own (the one in
 * connect-node does the same with less care). Before connect sees a request it
 *
 * - authenticates the call from its headers and connection alone, and when that fails
 *   hands connect an empty body instead of the client's, so no byte of an unauthenticated
 *   request body is read, inflated or parsed (a 1 MB gzip body once inflated to 2 GiB);
 *   the one exception is Health, which probes call without a credential: its bodies are
 *   read up to OPEN_METHOD_MAX_BYTES (a few KiB) only;
 * - reads and checks unary bodies, so a malformed message is INVALID_ARGUMENT;
 * - never throws: a request connect cannot even represent (no Host) gets a 400, and
 *   anything else unexpected is logged with a 500, where connect-node's adapter threw
 *   from the request event and took the process down.
 */
export function createRequestHandler(options: RequestHandlerOptions): NodeHandler {
  const router = createConnectRouter({
    // What connect-node's own adapter accepts: clients compress by default.
    acceptCompression: [compressionGzip, compressionBrotli],
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes,
    maxTimeoutMs: options.maxTimeoutMs,
  });
  options.routes(router);
  const handlers = new Map<string, UniversalHandler>(router.handlers.map((handler) => [handler.requestPath, handler]));
  const { logger } = options;
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0] ?? "";
    const handler = handlers.get(path);
    if (!handler) {
      if (options.fallback) options.fallback(req, res);
      else plainResponse(res, 404, "not found");
      return;
    }
    handle(handler, req, res, options).catch((error: unknown) => {
      // A client that went away mid-request is no daemon failure.
      if (req.destroyed || (error as Error).message === "aborted") logger.debug({ rpc: path }, "request aborted by the client");
      else logger.error({ err: error, rpc: path }, "request handling failed");
      if (!res.headersSent) plainResponse(res, 500, "internal error");
      else res.destroy();
    });
  };
}

async function handle(handler: UniversalHandler, req: NodeRequest, res: NodeResponse, options: RequestHandlerOptions): Promise<void> {
  const values = createContextValues();
  const auth = authenticate(req, handler, options, values);
  values.set(authKey, auth);
  giveAuthority(req);
  let uReq;
  try {
    uReq = { ...universalRequestFromNodeRequest(req, res, undefined, values), body: requestBody(req, res) };
  } catch (error) {
    plainResponse(res, 400, `bad request: ${(error as Error).message}`);
    return;
  }
  const framing = bodyFramingOf(uReq.header.get("content-type"));
  // Health is served without a credential (probes have none), its requests kept small.
  const open = isPublicMethod(handler.method);
  if (framing) {
    if (!auth.principal && !open) {
      uReq = replaceWithEmptyMessage(uReq, framing);
      discardBody(req, res);
    } else if (handler.method.methodKind === "unary") {
      const maxBytes = open ? Math.min(OPEN_METHOD_MAX_BYTES, options.readMaxBytes) : options.readMaxBytes;
      const checked = await checkUnaryBody(uReq, framing, handler.method.input, maxBytes);
      if (checked.ok) {
        uReq = checked.req;
      } else {
        values.set(bodyProblemKey, { code: checked.code, message: checked.message });
        uReq = replaceWithEmptyMessage(uReq, framing);
        discardBody(req, res);
      }
    }
  }
  const uRes = await handler(uReq);
  await universalResponseToNodeResponse(uRes, res);
}

// connect builds the request URL from the Host header (HTTP/1.1) or :authority (HTTP/2)
// and throws without one. Nothing here depends on the authority, so a missing or
// unparsable one is replaced rather than trusted or refused.
function giveAuthority(req: NodeRequest): void {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  const key = "stream" in req ? ":authority" : "host";
  const given = "stream" in req ? req.authority : headers.host;
  if (typeof given === "string" && given !== "" && URL.canParse(`http://${given}/`)) return;
  headers[key] = "localhost";
}

// A body connect will not read is dropped as it arrives (never buffered): over HTTP/2 an
// unread body would keep the connection's flow-control window and stall every other
// stream on it. An HTTP/1.1 connection is not kept for a request after it.
function discardBody(req: NodeRequest, res: NodeResponse): void {
  if (!("stream" in req)) res.setHeader("connection", "close");
  req.on("error", () => undefined);
  req.resume();
}

// The request body as connect reads it, except that when connect stops early (at the first
// bad envelope, past readMaxBytes) the rest is dropped as it arrives instead of the
// stream being destroyed: over HTTP/2 an unread body keeps the connection's flow-control
// window and the stream never closes, stalling every other call on the connection.
function requestBody(req: NodeRequest, res: NodeResponse): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for await (const chunk of req.iterator({ destroyOnReturn: false })) yield chunk as Uint8Array;
      } finally {
        if (!req.readableEnded) discardBody(req, res);
      }
    },
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function plainResponse(res: NodeResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  res.end(`${text}\n`);
}

// The call's credential: a bearer token or client certificate, or (a call another node
// forwarded, SessionService only) the caller that node authenticated, signed with the node secret.
function authenticate(req: NodeRequest, handler: UniversalHandler, options: RequestHandlerOptions, values: ContextValues): AuthResult {
  const identity = headerValue(req.headers[FORWARDED_HEADER]);
  if (identity === undefined) return options.credentials().authenticate(headerValue(req.headers.authorization), options.peerIdentity?.(req));
  const method = methodKey(handler.method);
  const verdict =
    handler.method.parent.typeName === SessionService.typeName
      ? verifyForwarded(options.nodeSecret, identity, headerValue(req.headers[FORWARDED_SIGNATURE_HEADER]), method)
      : { refused: `${handler.method.name} is never forwarded` };
  if ("refused" in verdict) {
    values.set(forwardRefusalKey, verdict.refused);
    return { failure: "wrong" };
  }
  values.set(forwardedKey, verdict);
  return { principal: verdict.principal };
}
