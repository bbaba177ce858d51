import type { IncomingHttpHeaders } from "node:http";
import type tls from "node:tls";
import { type CredentialTable, normalizeFingerprint, type PeerIdentity } from "../security/credentials.js";
import type { NodeHandler, NodeRequest } from "../server/adapter.js";
import type { HttpReply, HttpRoute } from "../server/http-routes.js";
import type { DaemonMetrics } from "./metrics.js";

/**
 * Who may read /metrics:
 * - `admin` (the default): a credential with the admin role, like the AdminService (the
 *   metrics name tenants, rules and providers); anyone when the daemon has no credentials
 *   at all (it then listens on loopback only and every caller is let in anyway).
 * - `anyone`: no credential asked: for a scraper on a private network that cannot send one.
 */
export type MetricsAccess = "admin" | "anyone";

export const METRICS_ACCESS: readonly MetricsAccess[] = ["admin", "anyone"];

export interface MetricsRouteOptions {
  metrics: DaemonMetrics;
  /** The credentials in force (a reload swaps them). */
  credentials: () => CredentialTable;
  access: MetricsAccess;
}

const CHALLENGE = { "www-authenticate": 'Bearer realm="hotplex"' };

/** The /metrics answer for a request's headers (and verified client certificate, if any). */
export async function metricsReply(options: MetricsRouteOptions, headers: IncomingHttpHeaders, peer?: PeerIdentity): Promise<HttpReply> {
  const table = options.credentials();
  if (options.access === "admin" && !table.allowsAnonymous) {
    const authorization = headers.authorization;
    const auth = table.authenticate(Array.isArray(authorization) ? authorization[0] : authorization, peer);
    if (!auth.principal) {
      return {
        status: 401,
        headers: CHALLENGE,
        body:
          auth.failure === "missing"
            ? "/metrics requires a credential: send Authorization: Bearer <token> of a credential with the admin role\n"
            : "the credential is not valid (send Authorization: Bearer <token> with a token from the server config)\n",
      };
    }
    if (!auth.principal.roles.includes("admin")) {
      return {
        status: 403,
        body: `credential "${auth.principal.name}" (roles: ${auth.principal.roles.join(", ")}) may not read /metrics: it needs the admin role\n`,
      };
    }
  }
  const { contentType, body } = await options.metrics.render();
  return { status: 200, contentType, body };
}

/** /metrics as a route of the server's plain HTTP routes (ServerOptions.extraRoutes). */
export function createMetricsRoute(options: MetricsRouteOptions): HttpRoute {
  return (req) => metricsReply(options, req.headers, req.peer);
}

/**
 * /metrics as a plain Node handler (for ServerOptions.fallback or a port of its own). Also
 * takes a credential by verified TLS client certificate. GET and HEAD only; a request
 * body is never read.
 */
export function createMetricsHandler(options: MetricsRouteOptions): NodeHandler {
  return (req, res) => {
    const done = (answer: HttpReply) => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(answer.status, { "content-type": answer.contentType ?? "text/plain; charset=utf-8", "cache-control": "no-store", ...answer.headers });
      if (req.method === "HEAD") res.end();
      else res.end(answer.body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      done({ status: 405, body: "/metrics answers GET and HEAD only\n", headers: { allow: "GET, HEAD" } });
      return;
    }
    metricsReply(options, req.headers, peerOf(req)).then(done, () => done({ status: 500, body: "internal error\n" }));
  };
}

// The verified client certificate of the request's TLS connection, if any.
function peerOf(req: NodeRequest): PeerIdentity | undefined {
  const socket = req.socket as unknown as tls.TLSSocket | undefined;
  if (!socket || !("encrypted" in socket) || !socket.authorized) return undefined;
  const fingerprint = socket.getPeerCertificate()?.fingerprint256;
  return fingerprint ? { certSha256: normalizeFingerprint(fingerprint) } : undefined;
}
