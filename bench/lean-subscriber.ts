// A Subscribe client that checks every event without decoding it into a message.
//
// A protobuf-es client decodes each event by reflection (~13 µs here): a hundred such
// clients in the bench process need several cores to keep up with one daemon, so they,
// not the daemon, set the rate. This client goes through the same connect-es stack
// (transport, framing, the response message) but reads SubscribeResponse with a schema
// whose events field is `repeated bytes`, which the wire format allows: each event
// arrives as its encoded bytes, and the client reads its seq (field 1) and whether it
// is a TurnEnded (field 16) from them. It checks that seqs arrive in order without gaps,
// so what it counts was delivered whole. A client in Go or Rust pays about this much.
import { create, createFileRegistry, type DescMessage, type DescMethodServerStreaming } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { SessionService } from "../gen/hotplex/v1/session_service_pb.js";

const BYTES = FieldDescriptorProto_Type.BYTES;
const leanFile = create(FileDescriptorProtoSchema, {
  name: "hotplex_bench/lean.proto",
  package: "hotplex_bench",
  syntax: "proto3",
  messageType: [
    {
      name: "LeanSubscribeResponse",
      field: [
        { name: "header", number: 1, type: BYTES, label: FieldDescriptorProto_Label.OPTIONAL, jsonName: "header" },
        { name: "events", number: 2, type: BYTES, label: FieldDescriptorProto_Label.REPEATED, jsonName: "events" },
      ],
    },
  ],
});
const LeanSubscribeResponseSchema = createFileRegistry(leanFile, () => undefined).getMessage(
  "hotplex_bench.LeanSubscribeResponse",
) as DescMessage;

const subscribeMethod = SessionService.method.subscribe;
const leanSubscribe = { ...subscribeMethod, output: LeanSubscribeResponseSchema } as unknown as DescMethodServerStreaming;
const LeanService = { ...SessionService, methods: [leanSubscribe], method: { subscribe: leanSubscribe } } as unknown as typeof SessionService;

interface LeanResponse {
  header: Uint8Array;
  events: Uint8Array[];
}

export type LeanClient = ReturnType<typeof leanClientOf>;

function leanClientOf(transport: Parameters<typeof createClient>[1]) {
  const client = createClient(LeanService, transport);
  return {
    subscribe: (request: { sessionId: string; afterSeq: bigint; follow: boolean }, options: { signal: AbortSignal }) =>
      client.subscribe(request, options) as unknown as AsyncIterable<LeanResponse>,
  };
}

/** A lean Connect (HTTP/1.1) or gRPC (HTTP/2) client; no compression (loopback). */
export function leanClient(url: string, protocol: "connect" | "grpc") {
  const options = { baseUrl: url, acceptCompression: [] };
  return leanClientOf(protocol === "grpc" ? createGrpcTransport(options) : createConnectTransport({ ...options, httpVersion: "1.1" }));
}

/**
 * What the lean client reads of an encoded Event: its seq, its time (ms) and whether it
 * ends a turn.
 */
export function peekEvent(bytes: Uint8Array): { seq: number; timeMs: number; turnEnded: boolean } {
  let seq = 0;
  let timeMs = NaN;
  let at = 0;
  while (at < bytes.length) {
    const [tag, afterTag] = varint(bytes, at);
    const field = Math.floor(tag / 8);
    if (field === 16) return { seq, timeMs, turnEnded: true };
    if ((tag & 7) === 0) {
      const [value, next] = varint(bytes, afterTag);
      if (field === 1) seq = value;
      at = next;
    } else if ((tag & 7) === 2) {
      const [length, next] = varint(bytes, afterTag);
      if (field === 4) timeMs = timestampMsOf(bytes.subarray(next, next + length));
      at = next + length;
    } else {
      throw new Error(`unexpected wire type ${tag & 7} in an event`);
    }
  }
  return { seq, timeMs, turnEnded: false };
}

// google.protobuf.Timestamp: seconds = 1, nanos = 2 (both varints).
function timestampMsOf(bytes: Uint8Array): number {
  let seconds = 0;
  let nanos = 0;
  let at = 0;
  while (at < bytes.length) {
    const [tag, afterTag] = varint(bytes, at);
    const [value, next] = varint(bytes, afterTag);
    if (tag === 0x08) seconds = value;
    else if (tag === 0x10) nanos = value;
    at = next;
  }
  return seconds * 1000 + nanos / 1e6;
}

/** The varint at `at`: [value, offset after it]. */
export function varint(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[at++];
    if (byte === undefined) throw new Error("truncated event");
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
    scale *= 0x80;
  }
}
