import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { normalizeFingerprint, type PeerIdentity } from "../security/credentials.js";
import type { NodeHandler, NodeRequest } from "./adapter.js";

/** How long a connection may take for each phase, and how many there may be. */
export interface ConnectionLimits {
  /** From accept to the first bytes that tell HTTP/1.1 from HTTP/2 (and the TLS handshake). */
  handshakeTimeoutMs: number;
  /** An HTTP/1.1 request's headers must arrive within this. */
  headersTimeoutMs: number;
  /** A whole request (headers and body) must arrive within this; the response may take longer. */
  requestTimeoutMs: number;
  /** A connection with no request in flight is closed after this. */
  idleTimeoutMs: number;
  /** Open connections at once; more are closed as they arrive. */
  maxConnections: number;
  /** Concurrent streams on one HTTP/2 connection. */
  maxStreamsPerConnection: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxConnections: 1024,
  maxStreamsPerConnection: 100,
};

/** Certificate and key of a TLS listener; with `clientCa`, client certificates are verified against it. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
}

export interface ListenerOptions {
  limits: ConnectionLimits;
  tls?: TlsFiles;
  /** Streams still open this long after close() started are cut. */
  forceCloseMs?: number;
}

// Every HTTP/2 cleartext connection starts with this preface ("prior knowledge"); no
// HTTP/1.1 request line can start with "PRI".
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * One TCP port serving HTTP/1.1 and HTTP/2, in cleartext (each connection routed by its
 * first bytes: Node's h2c server does not fall back to HTTP/1.1 by itself) or over TLS
 * (routed by ALPN). Every phase of a connection has a deadline, so silent, half-open and
 * drip-fed connections are closed, and the number of connections is capped.
 */
export class DualProtocolListener {
  readonly #limits: ConnectionLimits;
  readonly #server: net.Server;
  readonly #h1: http.Server;
  readonly #h2: http2.Http2Server;
  readonly #h2Sessions = new Set<http2.ServerHttp2Session>();
  readonly #sockets = new Set<net.Socket>();
  readonly #peers = new WeakMap<object, PeerIdentity | undefined>();
  readonly #forceCloseMs: number;
  #closing = false;

  constructor(handler: NodeHandler, options: ListenerOptions) {
    const limits = (this.#limits = options.limits);
    this.#forceCloseMs = options.forceCloseMs ?? 2_000;
    const wrapped = this.#wrap(handler);
    this.#h1 = http.createServer(
      {
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        keepAliveTimeout: limits.idleTimeoutMs,
        // Node checks the two timeouts above only this often (30 s by default).
        connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
      },
      wrapped,
    );
    // Node starts checking headersTimeout and requestTimeout (and tracks the connections
    // closeIdleConnections() needs) when the server starts listening. Ours never listens:
    // it is handed connections, so the tracking is started by hand.
    this.#h1.emit("listening");
    this.#h2 = http2.createServer({ settings: { maxConcurrentStreams: limits.maxStreamsPerConnection } }, wrapped);
    this.#h2.on("session", (session) => this.#trackSession(session));
    // No Nagle: a stream sends many small frames, and batching them behind the peer's
    // delayed ACK adds ~40 ms to each (http.Server sets this itself; a raw net.Server does not).
    if (options.tls) {
      const server = tls.createServer({
        cert: options.tls.cert,
        key: options.tls.key,
        ALPNProtocols: ["h2", "http/1.1"],
        handshakeTimeout: limits.handshakeTimeoutMs,
        ...(options.tls.clientCa ? { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
      });
      server.on("secureConnection", (socket) => this.#routeTls(socket));
      server.on("tlsClientError", (_error, socket) => socket.destroy());
      this.#server = server;
    } else {
      this.#server = net.createServer({ noDelay: true }, (socket) => this.#routePlain(socket));
    }
    this.#server.maxConnections = limits.maxConnections;
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        const address = this.#server.address() as net.AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** Connections open now, for tests and ops. */
  get connections(): number {
    return this.#sockets.size;
  }

  /**
   * The verified client certificate of a request's connection, when the listener runs
   * TLS with a client CA and the client presented a certificate that CA signed.
   */
  peerIdentity(req: NodeRequest): PeerIdentity | undefined {
    const socket = req.socket as unknown as tls.TLSSocket;
    if (!socket || !("encrypted" in socket)) return undefined;
    if (this.#peers.has(socket)) return this.#peers.get(socket);
    let identity: PeerIdentity | undefined;
    if (socket.authorized) {
      const cert = socket.getPeerCertificate();
      if (cert?.fingerprint256) identity = { certSha256: normalizeFingerprint(cert.fingerprint256) };
    }
    this.#peers.set(socket, identity);
    return identity;
  }

  /**
   * Stops accepting connections and closes the open ones as their last response ends:
   * idle HTTP/1.1 connections at once and the others after their response, HTTP/2 ones
   * with a GOAWAY once their streams end. What is still open after forceCloseMs is cut.
   */
  async close(): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const session of this.#h2Sessions) session.close();
    this.#h1.closeIdleConnections();
    const force = setTimeout(() => {
      this.#h1.closeAllConnections();
      for (const session of this.#h2Sessions) session.destroy();
      // An HTTP/2 session whose stream the client reset can keep its socket after
      // destroy(); end the sockets themselves.
      for (const socket of this.#sockets) socket.destroy();
    }, this.#forceCloseMs);
    await closed;
    clearTimeout(force);
  }

  // Every request: a deadline for its body on HTTP/2 (HTTP/1.1 has Node's requestTimeout),
  // and no keep-alive once closing.
  #wrap(handler: NodeHandler): NodeHandler {
    return (req, res) => {
      if ("stream" in req) {
        const timer = setTimeout(() => req.stream.close(http2.constants.NGHTTP2_CANCEL), this.#limits.requestTimeoutMs);
        const clear = () => clearTimeout(timer);
        req.once("end", clear);
        req.once("close", clear);
      } else {
        if (this.#closing) res.setHeader("connection", "close");
        res.once("finish", () => {
          if (this.#closing) setImmediate(() => this.#h1.closeIdleConnections());
        });
      }
      handler(req, res);
    };
  }

  #routePlain(socket: net.Socket): void {
    this.#track(socket);
    const deadline = setTimeout(() => socket.destroy(), this.#limits.handshakeTimeoutMs);
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const prefix = H2_PREFACE.subarray(0, Math.min(seen.length, H2_PREFACE.length));
      const isH2 = seen.subarray(0, prefix.length).equals(prefix);
      // Wait for more bytes only while the connection could still be either.
      if (isH2 && seen.length < H2_PREFACE.length) return;
      clearTimeout(deadline);
      socket.off("data", onData);
      socket.pause();
      socket.unshift(seen);
      if (isH2) {
        // The HTTP/2 session reads the bytes already buffered on the socket itself.
        this.#h2.emit("connection", socket);
      } else {
        this.#h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.once("close", () => clearTimeout(deadline));
  }

  #routeTls(socket: tls.TLSSocket): void {
    this.#track(socket);
    socket.setNoDelay(true);
    if (socket.alpnProtocol === "h2") this.#h2.emit("connection", socket);
    else this.#h1.emit("connection", socket);
  }

  #track(socket: net.Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  }

  // An HTTP/2 connection with no open stream is closed after the idle timeout; that also
  // covers one that never completes a request (drip-fed headers never open a stream).
  #trackSession(session: http2.ServerHttp2Session): void {
    this.#h2Sessions.add(session);
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        // A GOAWAY first; a peer still in the middle of a header block (no stream open,
        // yet nghttp2 waits for it) is then cut.
        session.close();
        setTimeout(() => session.destroy(), Math.min(1_000, this.#limits.idleTimeoutMs)).unref();
      }, this.#limits.idleTimeoutMs);
    };
    arm();
    session.on("stream", (stream) => {
      open += 1;
      clearTimeout(idle);
      stream.once("close", () => {
        open -= 1;
        if (open === 0 && !session.closed) arm();
      });
    });
    session.once("close", () => {
      clearTimeout(idle);
      this.#h2Sessions.delete(session);
    });
    session.on("error", () => session.destroy());
  }
}
