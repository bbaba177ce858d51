import { mkdirSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import type { Logger } from "pino";

/** One allowed destination: a host name or address and a port ("*" for any port). */
export interface EgressRule {
  host: string;
  port: number | "*";
}

/** "api.anthropic.com:443", "127.0.0.1:*", "registry.npmjs.org" (port 443). */
export function parseEgressRule(text: string): EgressRule {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}|\*))?$/.exec(text.trim());
  if (!match?.[1]) throw new Error(`"${text}" is no host[:port] (e.g. api.anthropic.com:443)`);
  const port = match[2] === undefined ? 443 : match[2] === "*" ? "*" : Number(match[2]);
  if (port !== "*" && (port < 1 || port > 65535)) throw new Error(`"${text}" has no valid port`);
  return { host: match[1].replace(/^\[|\]$/g, "").toLowerCase(), port };
}

/**
 * The agents' only way out when their network is "allow": an HTTP proxy on a Unix socket
 * (bound into each sandbox, which has no network of its own) that opens connections to the
 * allowed destinations only. It takes CONNECT (HTTPS and any TCP) and absolute-URI HTTP
 * requests; everything else, and every destination not allowed, gets 403.
 */
export class EgressProxy {
  readonly socketPath: string;
  readonly #server: http.Server;
  #rules: readonly EgressRule[];

  private constructor(socketPath: string, rules: readonly EgressRule[], logger: Logger) {
    this.socketPath = socketPath;
    this.#rules = rules;
    this.#server = http.createServer((req, res) => this.#forward(req, res, logger));
    this.#server.on("connect", (req, socket: net.Socket, head) => this.#tunnel(req, socket, head, logger));
    this.#server.on("clientError", (_error, socket) => socket.destroy());
  }

  static async start(socketPath: string, rules: readonly EgressRule[], logger: Logger): Promise<EgressProxy> {
    mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o711 });
    rmSync(socketPath, { force: true });
    const proxy = new EgressProxy(socketPath, rules, logger);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once("error", reject);
      proxy.#server.listen(socketPath, () => resolve());
    });
    return proxy;
  }

  allows(host: string, port: number): boolean {
    const wanted = host.replace(/^\[|\]$/g, "").toLowerCase();
    return this.#rules.some((rule) => rule.host === wanted && (rule.port === "*" || rule.port === port));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }

  #tunnel(req: http.IncomingMessage, client: net.Socket, head: Buffer, logger: Logger): void {
    client.on("error", () => client.destroy());
    const target = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? "");
    const host = target?.[1] ?? "";
    const port = Number(target?.[2] ?? 0);
    if (!target || !this.allows(host, port)) {
      logger.warn({ destination: (req.url ?? "").slice(0, 300) }, "agent egress refused");
      client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const upstream = net.connect(port, host.replace(/^\[|\]$/g, ""), () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => {
      if (client.writable) client.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
      client.destroy();
    });
    client.on("close", () => upstream.destroy());
  }

  #forward(req: http.IncomingMessage, res: http.ServerResponse, logger: Logger): void {
    let url: URL;
    try {
      url = new URL(req.url ?? "");
    } catch {
      res.writeHead(400).end();
      return;
    }
    const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
    if (url.protocol !== "http:" || !this.allows(url.hostname, port)) {
      logger.warn({ destination: `${url.hostname.slice(0, 300)}:${port}` }, "agent egress refused");
      res.writeHead(403).end();
      return;
    }
    const upstream = http.request(
      { host: url.hostname.replace(/^\[|\]$/g, ""), port, method: req.method, path: `${url.pathname}${url.search}`, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    req.pipe(upstream);
  }
}
