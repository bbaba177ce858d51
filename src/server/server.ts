import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Engine } from "../engine/engine.js";
import type { CredentialTable } from "../security/credentials.js";
import { createRequestHandler, type NodeHandler } from "./adapter.js";
import { createAuthorizationInterceptor } from "./authorization.js";
import { createForwardingInterceptor } from "./forwarding.js";
import { createHttpRoutes, type HttpRoutes } from "./http-routes.js";
import { createErrorInterceptor, createLoggingInterceptor, type RpcObserver } from "./interceptors.js";
import { type ConnectionLimits, DEFAULT_CONNECTION_LIMITS, DualProtocolListener, type TlsFiles } from "./listener.js";
import { probeRoutes } from "./routes/health-service.js";
import { routes } from "./routes/index.js";

/** The request-level limits: sizes and deadlines a client's request must keep. */
export interface RequestLimits {
  /** The largest request message, compressed or inflated. */
  maxRequestBytes: number;
  /** The longest deadline a client may ask for. */
  maxTimeoutMs: number;
}

/** A request message holds a prompt and a config of at most a few MiB; 4 MiB is plenty. */
export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxRequestBytes: 4 * 1024 * 1024, maxTimeoutMs: 24 * 60 * 60 * 1000 };

export interface ServerOptions {
  engine: Engine;
  logger: Logger;
  /** The credentials in force; called per request, so a reload takes effect at once. */
  credentials: () => CredentialTable;
  requestLimits?: RequestLimits;
  connectionLimits?: ConnectionLimits;
  tls?: TlsFiles;
  /** hotplex's version, for GetServerInfo. */
  version: string;
  /** Requests for paths that are no RPC and no HTTP route (404 by default). */
  fallback?: NodeHandler;
  /**
   * More plain HTTP GET endpoints beside /healthz and /readyz (e.g. /metrics), on the same
   * port and without a credential; a path of its own each.
   */
  extraRoutes?: HttpRoutes;
  /** Streams still open this long after close() started are cut. */
  forceCloseMs?: number;
  /**
   * Observability (src/observability): `rpc` hears each call's end from the logging
   * interceptor (one stream wrapper for both), `tracing` is placed in the chain.
   */
  observe?: { rpc?: RpcObserver; tracing?: Interceptor };
  /**
   * The secret the nodes of a deployment share (a store many nodes share): commands on a
   * session another node runs are forwarded to it, and calls it forwards are accepted.
   */
  nodeSecret?: Buffer;
}

export interface HotplexServer {
  /** Starts listening; resolves with the address and a base URL for clients. */
  listen(host: string, port: number): Promise<{ host: string; port: number; url: string }>;
  /** Open connections now. */
  readonly connections: number;
  /**
   * Stops listening and closes the connections as their responses end. The engine is the
   * caller's: shut it down first, so that its streams end with their last events.
   */
  close(): Promise<void>;
}

/**
 * Builds the server, not yet listening: the Connect, gRPC and gRPC-Web protocols on one
 * port, over HTTP/1.1 and HTTP/2 (cleartext, or TLS with ALPN).
 */
export function createServer(options: ServerOptions): HotplexServer {
  const { engine, logger } = options;
  const requestLimits = options.requestLimits ?? DEFAULT_REQUEST_LIMITS;
  const connectionLimits = options.connectionLimits ?? DEFAULT_CONNECTION_LIMITS;
  let listener: DualProtocolListener | undefined;
  const probes = probeRoutes(engine);
  for (const path of Object.keys(options.extraRoutes ?? {})) {
    if (Object.hasOwn(probes, path)) throw new Error(`extraRoutes: ${path} is served by hotplex itself`);
  }
  const handler = createRequestHandler({
    routes: routes(engine, {
      version: options.version,
      maxRequestBytes: requestLimits.maxRequestBytes,
      maxConnections: connectionLimits.maxConnections,
    }),
    // Order matters: logging (which also feeds the RPC metrics) sees the final Connect code; tracing (inside them, so
    // the log line gets its trace id) too, and its span covers every later step; the error
    // mapper corrects codes of everything inside it; authorization runs before any handler.
    interceptors: [
      createLoggingInterceptor(logger, options.observe?.rpc),
      ...(options.observe?.tracing ? [options.observe.tracing] : []),
      createErrorInterceptor(),
      createAuthorizationInterceptor((denial) =>
        engine.recordAudit({
          kind: "permission_denied",
          principal: denial.principal.name,
          tenant: denial.principal.tenant,
          method: denial.method,
          detail: `roles ${denial.principal.roles.join(", ")} lack ${denial.permission ?? "a permission for this method"}`,
        }),
      ),
      // Once the caller is known: a command on another node's session goes there.
      ...(options.nodeSecret ? [createForwardingInterceptor({ engine, secret: options.nodeSecret })] : []),
    ],
    readMaxBytes: requestLimits.maxRequestBytes,
    maxTimeoutMs: requestLimits.maxTimeoutMs,
    credentials: options.credentials,
    ...(options.nodeSecret ? { nodeSecret: options.nodeSecret } : {}),
    peerIdentity: (req) => listener?.peerIdentity(req),
    logger,
    fallback: createHttpRoutes({ ...probes, ...options.extraRoutes }, { logger, fallback: options.fallback, peerIdentity: (req) => listener?.peerIdentity(req) }),
  });
  listener = new DualProtocolListener(handler, { limits: connectionLimits, tls: options.tls, forceCloseMs: options.forceCloseMs });
  const scheme = options.tls ? "https" : "http";
  return {
    async listen(host, port) {
      const address = await (listener as DualProtocolListener).listen(host, port);
      const urlHost = address.host.includes(":") ? `[${address.host}]` : address.host;
      return { ...address, url: `${scheme}://${urlHost}:${address.port}` };
    },
    get connections() {
      return (listener as DualProtocolListener).connections;
    },
    close: () => (listener as DualProtocolListener).close(),
  };
}
