// Execute and Subscribe spoken directly on node:http (Connect protocol) and node:http2
// (gRPC), without a client library: what a lean client (Go's, Rust's) costs per call.
//
// connect-es's Node client spends ~0.6 ms of CPU per streaming call here (its transport,
// interceptor chain, abort signals and async-iterable pipeline); in the latency benchmark
// it runs in the same process as the daemon, so that client cost would be counted as
// hotplex's. This client writes the request envelope, reads the response envelopes and
// checks the end of the stream (Connect end-stream message, gRPC trailers) itself. Each
// event is read as its bytes (seq and TurnEnded: see peekEvent), like the lean subscriber.
import http from "node:http";
import http2 from "node:http2";
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

function envelope(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
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

/** The Connect protocol over HTTP/1.1, binary (application/connect+proto), no compression. */
export function connectWireClient(baseUrl: string): WireClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const call = (method: Method, request: object) =>
    new Promise<WireTiming>((resolve, reject) => {
      const body = requestBody(method, request);
      const timing = new CallTiming();
      const req = http.request(`${baseUrl}/hotplex.v1.SessionService/${method}`, {
        method: "POST",
        agent,
        headers: { "content-type": "application/connect+proto", "connect-protocol-version": "1", "content-length": body.length },
      });
      req.on("error", reject);
      req.on("response", (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`${method}: HTTP ${res.statusCode}`));
          return;
        }
        const reader = new EnvelopeReader();
        let endStream: Buffer | undefined;
        res.on("data", (chunk: Buffer) => {
          for (const { flags, data } of reader.push(chunk)) {
            if (flags & 0x02) endStream = data;
            else timing.message(data, EVENTS_TAG[method]);
          }
        });
        res.on("error", reject);
        res.on("end", () => {
          const end = endStream ? (JSON.parse(endStream.toString("utf8")) as { error?: { code: string; message?: string } }) : undefined;
          if (!end || reader.pending > 0) reject(new Error(`${method}: the stream ended without its end-stream message`));
          else if (end.error) reject(new Error(`${method}: ${end.error.code}: ${end.error.message ?? ""}`));
          else resolve(timing.end());
        });
      });
      req.end(body);
    });
  return {
    execute: (request) => call("Execute", request),
    subscribe: (request) => call("Subscribe", request),
    close: () => agent.destroy(),
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
