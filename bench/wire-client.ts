// Execute and Subscribe spoken directly on a TCP socket (Connect protocol over HTTP/1.1)
// and node:http2 (gRPC), without a client library: about what a lean client (Go's,
// Rust's) costs per call.
//
// connect-es's Node client spends ~0.6 ms of CPU per streaming call here (its transport,
// interceptor chain, abort signals and async-iterable pipeline); in the latency benchmark
// it runs in the same process as the daemon, so that client cost would be counted as
// hotplex's. This client writes the request envelope, reads the response envelopes and
// checks the end of the stream (Connect end-stream message, gRPC trailers) itself. Each
// event is read as its bytes (seq and TurnEnded: see peekEvent), like the lean subscriber.
import http2 from "node:http2";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { ExecuteRequestSchema, SubscribeRequestSchema } from "../gen/hotplex/v1/session_service_pb.js";
import { peekEvent, varint } from "./lean-subscriber.js";

/** How one call went: first response message, TurnEnded (if any), end of stream. */
export interface WireTiming {
  firstMs: number;
  /** ms to the message that carried TurnEnded; NaN when none came. */
  turnEndMs: number;
  endMs: number;
  events: number;
}

type Method = "Execute" | "Subscribe";

/** A client of one daemon over one protocol: one keep-alive connection, calls one at a time. */
export interface WireClient {
  execute(request: { sessionId: string; prompt: string }): Promise<WireTiming>;
  subscribe(request: { sessionId: string; afterSeq: bigint; follow: boolean }): Promise<WireTiming>;
  close(): void;
}

// Field numbers holding events: ExecuteResponse.events = 1, SubscribeResponse.events = 2.
const EVENTS_TAG: Record<Method, number> = { Execute: 0x0a, Subscribe: 0x12 };

/** Reads length-prefixed messages (1 flag byte, 4-byte big-endian length) from chunks. */
class EnvelopeReader {
  #buffered: Buffer = Buffer.alloc(0);

  /** The complete envelopes in `chunk` (and what was left over before it). */
  push(chunk: Buffer): { flags: number; data: Buffer }[] {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const out: { flags: number; data: Buffer }[] = [];
    let at = 0;
    while (this.#buffered.length - at >= 5) {
      const length = this.#buffered.readUInt32BE(at + 1);
      if (this.#buffered.length - at - 5 < length) break;
      out.push({ flags: this.#buffered[at] as number, data: this.#buffered.subarray(at + 5, at + 5 + length) });
      at += 5 + length;
    }
    this.#buffered = this.#buffered.subarray(at);
    return out;
  }

  get pending(): number {
    return this.#buffered.length;
  }
}

// Counts the events of one response message and tells whether one was a TurnEnded.
function readEvents(message: Buffer, eventsTag: number): { events: number; turnEnded: boolean } {
  let events = 0;
  let turnEnded = false;
  let at = 0;
  while (at < message.length) {
    const tag = message[at++] as number;
    let length: number;
    [length, at] = varint(message, at);
    if ((tag & 7) !== 2) throw new Error(`unexpected wire type in a response message (tag ${tag})`);
    if (tag === eventsTag) {
      events += 1;
      turnEnded ||= peekEvent(message.subarray(at, at + length)).turnEnded;
    }
    at += length;
  }
  return { events, turnEnded };
}

/** One length-prefixed message: a flag byte (0x02 = Connect's end of stream), a 4-byte length, the bytes. */
export function envelope(bytes: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = flags;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

function requestBody(method: Method, request: object): Buffer {
  return envelope(
    method === "Execute"
      ? toBinary(ExecuteRequestSchema, create(ExecuteRequestSchema, request))
      : toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, request)),
  );
}

/** Tracks one call's timing from its response messages. */
class CallTiming {
  readonly #t0 = performance.now();
  readonly timing: WireTiming = { firstMs: NaN, turnEndMs: NaN, endMs: NaN, events: 0 };

  message(data: Buffer, eventsTag: number): void {
    const now = performance.now() - this.#t0;
    if (Number.isNaN(this.timing.firstMs)) this.timing.firstMs = now;
    const { events, turnEnded } = readEvents(data, eventsTag);
    this.timing.events += events;
    if (turnEnded && Number.isNaN(this.timing.turnEndMs)) this.timing.turnEndMs = now;
  }

  end(): WireTiming {
    this.timing.endMs = performance.now() - this.#t0;
    return this.timing;
  }
}

/**
 * One HTTP/1.1 response read from a keep-alive socket: the status, then the body (chunked
 * or with a length) handed on as it arrives. Just what a Connect response needs.
 */
class Http1Response {
  #head: Buffer = Buffer.alloc(0);
  #status = 0;
  #chunked = false;
  /** Bytes of body (or of the current chunk) still to come; -1 while reading a chunk size. */
  #remaining = -1;
  #pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly onBody: (bytes: Buffer) => void,
    private readonly onEnd: (status: number) => void,
  ) {}

  /** Takes bytes from the socket. */
  push(chunk: Buffer): void {
    if (this.#status === 0) {
      this.#head = Buffer.concat([this.#head, chunk]);
      const end = this.#head.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = this.#head.toString("latin1", 0, end).toLowerCase();
      this.#status = Number(head.slice(9, 12));
      this.#chunked = head.includes("\r\ntransfer-encoding: chunked");
      const length = /\r\ncontent-length: (\d+)/.exec(head);
      this.#remaining = this.#chunked ? -1 : Number(length?.[1] ?? 0);
      chunk = this.#head.subarray(end + 4);
      if (!this.#chunked && this.#remaining === 0) return this.#finish();
    }
    if (this.#chunked) this.#pushChunked(chunk);
    else this.#pushBody(chunk);
  }

  #pushBody(chunk: Buffer): void {
    const take = chunk.subarray(0, this.#remaining);
    this.#remaining -= take.length;
    if (take.length > 0) this.onBody(take);
    if (this.#remaining === 0) this.#finish();
  }

  // States: #remaining -1 = at a chunk-size line, > 0 = inside a chunk's data, 0 = at the
  // CRLF that follows a chunk's data.
  #pushChunked(chunk: Buffer): void {
    let data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    for (;;) {
      if (this.#remaining === -1) {
        const eol = data.indexOf("\r\n");
        if (eol === -1) break;
        const size = Number.parseInt(data.toString("latin1", 0, eol), 16);
        if (size === 0) {
          // The last chunk: no trailers, then the final CRLF.
          if (data.length < eol + 4) break;
          return this.#finish();
        }
        this.#remaining = size;
        data = data.subarray(eol + 2);
      }
      if (this.#remaining > 0) {
        if (data.length === 0) break;
        const take = data.subarray(0, this.#remaining);
        this.onBody(take);
        this.#remaining -= take.length;
        data = data.subarray(take.length);
        if (this.#remaining > 0) break;
      }
      if (data.length < 2) break;
      data = data.subarray(2);
      this.#remaining = -1;
    }
    this.#pending = data;
  }

  #finish(): void {
    this.onEnd(this.#status);
  }
}

/**
 * The Connect protocol over HTTP/1.1, binary (application/connect+proto), no compression,
 * on one keep-alive TCP connection written and read directly: node:http's client costs
 * ~0.1 ms per call here, more than a compiled language's.
 */
export function connectWireClient(baseUrl: string): WireClient {
  const url = new URL(baseUrl);
  let socket: net.Socket | undefined;
  let current: Http1Response | undefined;
  let failCurrent: ((error: Error) => void) | undefined;
  const connected = () => {
    if (socket && !socket.destroyed) return socket;
    socket = net.connect(Number(url.port), url.hostname);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => current?.push(chunk));
    socket.on("error", (error) => failCurrent?.(error));
    socket.on("close", () => failCurrent?.(new Error("the connection closed")));
    return socket;
  };
  const call = (method: Method, request: object) =>
    new Promise<WireTiming>((resolve, reject) => {
      const body = requestBody(method, request);
      const timing = new CallTiming();
      const reader = new EnvelopeReader();
      let endStream: Buffer | undefined;
      failCurrent = reject;
      current = new Http1Response(
        (bytes) => {
          for (const { flags, data } of reader.push(bytes)) {
            if (flags & 0x02) endStream = data;
            else timing.message(data, EVENTS_TAG[method]);
          }
        },
        (status) => {
          current = undefined;
          failCurrent = undefined;
          const end = endStream ? (JSON.parse(endStream.toString("utf8")) as { error?: { code: string; message?: string } }) : undefined;
          if (status !== 200) reject(new Error(`${method}: HTTP ${status}`));
          else if (!end || reader.pending > 0) reject(new Error(`${method}: the stream ended without its end-stream message`));
          else if (end.error) reject(new Error(`${method}: ${end.error.code}: ${end.error.message ?? ""}`));
          else resolve(timing.end());
        },
      );
      const head =
        `POST /hotplex.v1.SessionService/${method} HTTP/1.1\r\nHost: ${url.host}\r\n` +
        `Content-Type: application/connect+proto\r\nConnect-Protocol-Version: 1\r\nContent-Length: ${body.length}\r\n\r\n`;
      connected().write(Buffer.concat([Buffer.from(head, "latin1"), body]));
    });
  return {
    execute: (request) => call("Execute", request),
    subscribe: (request) => call("Subscribe", request),
    close: () => socket?.destroy(),
  };
}

/** gRPC over HTTP/2 cleartext (prior knowledge), binary, no compression. */
export function grpcWireClient(baseUrl: string): WireClient {
  const session = http2.connect(baseUrl);
  session.on("error", () => {});
  const call = (method: Method, request: object) =>
    new Promise<WireTiming>((resolve, reject) => {
      const body = requestBody(method, request);
      const timing = new CallTiming();
      const stream = session.request({
        ":method": "POST",
        ":path": `/hotplex.v1.SessionService/${method}`,
        "content-type": "application/grpc+proto",
        te: "trailers",
      });
      const reader = new EnvelopeReader();
      let status: string | undefined;
      let message = "";
      stream.on("response", (headers) => {
        // A call that fails before any message answers with trailers only.
        if (headers["grpc-status"] !== undefined) {
          status = String(headers["grpc-status"]);
          message = String(headers["grpc-message"] ?? "");
        }
      });
      stream.on("trailers", (trailers) => {
        status = String(trailers["grpc-status"]);
        message = String(trailers["grpc-message"] ?? "");
      });
      stream.on("data", (chunk: Buffer) => {
        for (const { data } of reader.push(chunk)) timing.message(data, EVENTS_TAG[method]);
      });
      stream.on("error", reject);
      stream.on("end", () => {
        if (status !== "0") reject(new Error(`${method}: grpc-status ${status ?? "missing"}: ${decodeURIComponent(message)}`));
        else if (reader.pending > 0) reject(new Error(`${method}: the stream ended inside a message`));
        else resolve(timing.end());
      });
      stream.end(body);
    });
  return {
    execute: (request) => call("Execute", request),
    subscribe: (request) => call("Subscribe", request),
    close: () => session.close(),
  };
}
