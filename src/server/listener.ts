import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

// Every HTTP/2 cleartext connection starts with this preface ("prior knowledge"); no
// HTTP/1.1 request line can start with "PRI".
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * One TCP port serving HTTP/1.1 and HTTP/2 cleartext. Node's h2c server does not fall
 * back to HTTP/1.1 by itself, so each connection is routed by its first bytes.
 */
export class DualProtocolListener {
  readonly #tcp: net.Server;
  readonly #h1: http.Server;
  readonly #h2: http2.Http2Server;
  readonly #h2Sessions = new Set<http2.ServerHttp2Session>();
  readonly #sockets = new Set<net.Socket>();

  constructor(handler: Handler) {
    this.#h1 = http.createServer(handler);
    this.#h2 = http2.createServer({}, handler);
    this.#h2.on("session", (session) => {
      this.#h2Sessions.add(session);
      session.once("close", () => this.#h2Sessions.delete(session));
    });
    // No Nagle: a stream sends many small frames, and batching them behind the peer's
    // delayed ACK adds ~40 ms to each (http.Server sets this itself; a raw net.Server does not).
    this.#tcp = net.createServer({ noDelay: true }, (socket) => this.#route(socket));
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.#tcp.once("error", reject);
      this.#tcp.listen(port, host, () => {
        this.#tcp.off("error", reject);
        const address = this.#tcp.address() as net.AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** Stops accepting connections, then closes the open ones. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#tcp.close(() => resolve()));
    for (const session of this.#h2Sessions) session.close();
    this.#h1.closeIdleConnections();
    // Streams still open after the engine ended them are cut rather than waited for.
    const force = setTimeout(() => {
      this.#h1.closeAllConnections();
      for (const session of this.#h2Sessions) session.destroy();
      // An HTTP/2 session whose stream the client reset can keep its socket after
      // destroy(); end the sockets themselves.
      for (const socket of this.#sockets) socket.destroy();
    }, 2_000);
    await closed;
    clearTimeout(force);
  }

  #route(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const prefix = H2_PREFACE.subarray(0, Math.min(seen.length, H2_PREFACE.length));
      const isH2 = seen.subarray(0, prefix.length).equals(prefix);
      // Wait for more bytes only while the connection could still be either.
      if (isH2 && seen.length < H2_PREFACE.length) return;
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
    socket.on("error", () => socket.destroy());
  }
}
