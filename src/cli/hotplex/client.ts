// The generated Connect clients for the resolved address and token.
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService } from "../../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../../gen/hotplex/v1/session_service_pb.js";
import type { Settings } from "./settings.js";
import { hotplexVersion } from "../version.js";

export type SessionClient = Client<typeof SessionService>;
export type AdminClient = Client<typeof AdminService>;

export interface Clients {
  session: SessionClient;
  admin: AdminClient;
}

/** Clients speaking the Connect protocol over HTTP/1.1 (HTTP/2 over TLS) to the daemon. */
export function createClients(settings: Settings): Clients {
  const userAgent = `hotplex-cli/${hotplexVersion()}`;
  const headers: Interceptor = (next) => (req) => {
    req.header.set("user-agent", userAgent);
    if (settings.token) req.header.set("authorization", `Bearer ${settings.token}`);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: settings.addr,
    // HTTP/1.1 on cleartext keeps one connection per stream and nothing idle that holds
    // the process open; TLS negotiates HTTP/2.
    httpVersion: settings.addr.startsWith("https:") ? "2" : "1.1",
    interceptors: [headers],
  });
  return { session: createClient(SessionService, transport), admin: createClient(AdminService, transport) };
}
