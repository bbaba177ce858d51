import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { Engine } from "../engine/engine.js";
import { createAuthInterceptor, createErrorInterceptor, createLoggingInterceptor } from "./interceptors.js";
import { DualProtocolListener } from "./listener.js";
import { routes } from "./routes.js";

export interface ServerOptions {
  engine: Engine;
  logger: Logger;
  host: string;
  port: number;
  /** Bearer token required on every call; undefined for none (loopback only). */
  token: string | undefined;
}

export interface RunningServer {
  host: string;
  port: number;
  url: string;
  /** Stops listening, ends every session and stream, closes connections. */
  close(): Promise<void>;
}

/**
 * Serves the Connect, gRPC and gRPC-Web protocols on one port, over HTTP/1.1 and
 * HTTP/2 cleartext.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const handler = connectNodeAdapter({
    routes: routes(options.engine),
    // Order matters: logging sees the final Connect code; auth runs before any handler.
    interceptors: [createLoggingInterceptor(options.logger), createErrorInterceptor(), createAuthInterceptor(options.token)],
  });
  const listener = new DualProtocolListener(handler);
  const { host, port } = await listener.listen(options.host, options.port);
  const urlHost = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    url: `http://${urlHost}:${port}`,
    close() {
      closing ??= (async () => {
        await options.engine.shutdown();
        await listener.close();
      })();
      return closing;
    },
  };
}
