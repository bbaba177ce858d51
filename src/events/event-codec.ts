import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Event, EventSchema } from "./event.js";

// The protobuf encoding of events, with a hand-written path for the events a streaming
// turn is made of (text and thinking deltas). protobuf-es encodes and decodes by
// reflection, at ~10 µs an event here; a flooding agent prints tens of thousands of
// deltas a second, each encoded once for the store and decoded again when a lagging
// reader replays it, so the common case is written out. Every other event (and any
// event carrying unknown fields) goes through protobuf-es. Both paths give the same
// bytes and the same messages: event-codec.test.ts checks one against the other.

// Field tags (field number << 3 | wire type) of hotplex.v1.Event and its delta payloads.
const TAG_SEQ = 0x08; // 1, varint
const TAG_SESSION_ID = 0x12; // 2, length-delimited
const TAG_TURN_ID = 0x1a; // 3
const TAG_TIME = 0x22; // 4
const TAG_EPOCH = 0x28; // 5, varint
const TAG_TEXT_DELTA = 0x62; // 12
const TAG_THINKING_DELTA = 0x6a; // 13
// Inside TextDelta / ThinkingDelta (text = 1, parent_tool_use_id = 2) and Timestamp
// (seconds = 1, nanos = 2).
const TAG_FIELD_1_STRING = 0x0a;
const TAG_FIELD_2_STRING = 0x12;
const TAG_FIELD_1_VARINT = 0x08;
const TAG_FIELD_2_VARINT = 0x10;

const DELTA_TYPE = { textDelta: "hotplex.v1.TextDelta", thinkingDelta: "hotplex.v1.ThinkingDelta" } as const;

/** The Event's protobuf encoding: what the store keeps and responses embed as they are. */
export function encodeEventBytes(event: Event): Buffer {
  const fast = fastEncode(event);
  if (fast) return fast;
  const bytes = toBinary(EventSchema, event);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes an encoded Event (without the length prefix). */
export function decodeEvent(bytes: Uint8Array): Event {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return fastDecode(buffer) ?? fromBinary(EventSchema, bytes);
}

// The encoded session_id and turn_id fields of the last delta encoded: every delta of a
// turn has the same two, so they are written once per turn and copied after that.
let idFields = { sessionId: "", turnId: "", bytes: Buffer.alloc(0) };

function idFieldsOf(sessionId: string, turnId: string): Buffer {
  if (idFields.sessionId !== sessionId || idFields.turnId !== turnId) {
    const sessionIdLength = Buffer.byteLength(sessionId);
    const turnIdLength = Buffer.byteLength(turnId);
    const bytes = Buffer.alloc(stringFieldSize(sessionIdLength) + stringFieldSize(turnIdLength));
    writeString(bytes, writeString(bytes, 0, TAG_SESSION_ID, sessionId, sessionIdLength), TAG_TURN_ID, turnId, turnIdLength);
    idFields = { sessionId, turnId, bytes };
  }
  return idFields.bytes;
}

// Short texts (most deltas) are written a character at a time when they are ASCII: two
// calls into the runtime per string (byteLength, write) cost more than the loop.
const SHORT_TEXT = 64;

/** The UTF-8 length of a short ASCII text, -1 for a long or non-ASCII one. */
function shortAsciiLength(text: string): number {
  if (text.length > SHORT_TEXT) return -1;
  for (let i = 0; i < text.length; i += 1) if (text.charCodeAt(i) >= 0x80) return -1;
  return text.length;
}

function fastEncode(event: Event): Buffer | undefined {
  const { payload, time } = event;
  if (payload.case !== "textDelta" && payload.case !== "thinkingDelta") return undefined;
  const delta = payload.value;
  if (event.$unknown || delta.$unknown || time?.$unknown) return undefined;
  const seq = Number(event.seq);
  const epoch = Number(event.epoch);
  const seconds = time ? Number(time.seconds) : 0;
  const nanos = time?.nanos ?? 0;
  // Negative numbers take ten-byte varints; leave them to protobuf-es.
  if (seconds < 0 || nanos < 0 || seq > Number.MAX_SAFE_INTEGER || epoch > Number.MAX_SAFE_INTEGER) return undefined;

  const ids = idFieldsOf(event.sessionId, event.turnId);
  const ascii = shortAsciiLength(delta.text);
  const textLength = ascii >= 0 ? ascii : Buffer.byteLength(delta.text);
  const parentLength = delta.parentToolUseId === "" ? 0 : Buffer.byteLength(delta.parentToolUseId);
  const timeLength = time ? (seconds !== 0 ? 1 + varintSize(seconds) : 0) + (nanos !== 0 ? 1 + varintSize(nanos) : 0) : 0;
  const deltaLength = stringFieldSize(textLength) + stringFieldSize(parentLength);
  const eventLength =
    (seq !== 0 ? 1 + varintSize(seq) : 0) +
    ids.length +
    (time ? 1 + varintSize(timeLength) + timeLength : 0) +
    (epoch !== 0 ? 1 + varintSize(epoch) : 0) +
    1 +
    varintSize(deltaLength) +
    deltaLength;

  const out = Buffer.allocUnsafe(eventLength);
  let at = 0;
  if (seq !== 0) {
    out[at++] = TAG_SEQ;
    at = writeVarint(out, at, seq);
  }
  out.set(ids, at);
  at += ids.length;
  if (time) {
    out[at++] = TAG_TIME;
    at = writeVarint(out, at, timeLength);
    if (seconds !== 0) {
      out[at++] = TAG_FIELD_1_VARINT;
      at = writeVarint(out, at, seconds);
    }
    if (nanos !== 0) {
      out[at++] = TAG_FIELD_2_VARINT;
      at = writeVarint(out, at, nanos);
    }
  }
  if (epoch !== 0) {
    out[at++] = TAG_EPOCH;
    at = writeVarint(out, at, epoch);
  }
  out[at++] = payload.case === "textDelta" ? TAG_TEXT_DELTA : TAG_THINKING_DELTA;
  at = writeVarint(out, at, deltaLength);
  if (ascii > 0) {
    out[at++] = TAG_FIELD_1_STRING;
    at = writeVarint(out, at, ascii);
    for (let i = 0; i < ascii; i += 1) out[at++] = delta.text.charCodeAt(i);
  } else {
    at = writeString(out, at, TAG_FIELD_1_STRING, delta.text, textLength);
  }
  writeString(out, at, TAG_FIELD_2_STRING, delta.parentToolUseId, parentLength);
  return out;
}

// Decodes what fastEncode writes (fields in order, each at most once, delta payloads);
// undefined for anything else, which protobuf-es then decodes.
function fastDecode(buf: Buffer): Event | undefined {
  const end = buf.length;
  let at = 0;
  let seq = 0;
  let epoch = 0;
  let sessionId = "";
  let turnId = "";
  let time: Event["time"];
  let lastTag = 0;
  while (at < end) {
    const tag = buf[at++] ?? 0;
    // Out of order or repeated fields: protobuf-es merges them; leave that to it.
    if (tag <= lastTag) return undefined;
    lastTag = tag;
    if (tag === TAG_SEQ) {
      const value = readVarint(buf, at);
      if (!value) return undefined;
      [seq, at] = value;
      continue;
    }
    if (tag === TAG_EPOCH) {
      const value = readVarint(buf, at);
      if (!value) return undefined;
      [epoch, at] = value;
      continue;
    }
    const length = readVarint(buf, at);
    if (!length) return undefined;
    const start = length[1];
    const stop = start + length[0];
    if (stop > end) return undefined;
    at = stop;
    switch (tag) {
      case TAG_SESSION_ID:
        sessionId = buf.toString("utf8", start, stop);
        break;
      case TAG_TURN_ID:
        turnId = buf.toString("utf8", start, stop);
        break;
      case TAG_TIME: {
        const decoded = decodeTimestamp(buf, start, stop);
        if (!decoded) return undefined;
        time = decoded;
        break;
      }
      case TAG_TEXT_DELTA:
      case TAG_THINKING_DELTA: {
        // The payload is the last field fastEncode writes.
        if (stop !== end) return undefined;
        const kind = tag === TAG_TEXT_DELTA ? "textDelta" : "thinkingDelta";
        const value = decodeDelta(buf, start, stop, DELTA_TYPE[kind]);
        if (!value) return undefined;
        const event = { $typeName: "hotplex.v1.Event", seq: BigInt(seq), sessionId, turnId, epoch: BigInt(epoch) } as Event;
        if (time) event.time = time;
        event.payload = { case: kind, value } as Event["payload"];
        return event;
      }
      default:
        return undefined;
    }
  }
  return undefined;
}

function decodeTimestamp(buf: Buffer, start: number, stop: number): Event["time"] {
  let seconds = 0;
  let nanos = 0;
  let at = start;
  let lastTag = 0;
  while (at < stop) {
    const tag = buf[at++] ?? 0;
    if (tag <= lastTag || (tag !== TAG_FIELD_1_VARINT && tag !== TAG_FIELD_2_VARINT)) return undefined;
    lastTag = tag;
    const value = readVarint(buf, at);
    // nanos is an int32; a negative one (a ten-byte varint) is not ours.
    if (!value || (tag === TAG_FIELD_2_VARINT && value[0] > 0x7fffffff)) return undefined;
    if (tag === TAG_FIELD_1_VARINT) seconds = value[0];
    else nanos = value[0];
    at = value[1];
  }
  if (at !== stop) return undefined;
  return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(seconds), nanos };
}

function decodeDelta(buf: Buffer, start: number, stop: number, typeName: string) {
  let text = "";
  let parentToolUseId = "";
  let at = start;
  let lastTag = 0;
  while (at < stop) {
    const tag = buf[at++] ?? 0;
    if (tag <= lastTag || (tag !== TAG_FIELD_1_STRING && tag !== TAG_FIELD_2_STRING)) return undefined;
    lastTag = tag;
    const length = readVarint(buf, at);
    if (!length || length[1] + length[0] > stop) return undefined;
    const value = buf.toString("utf8", length[1], length[1] + length[0]);
    if (tag === TAG_FIELD_1_STRING) text = value;
    else parentToolUseId = value;
    at = length[1] + length[0];
  }
  if (at !== stop) return undefined;
  return { $typeName: typeName, text, parentToolUseId };
}

function stringFieldSize(length: number): number {
  // proto3: an empty string is not written.
  return length === 0 ? 0 : 1 + varintSize(length) + length;
}

function writeString(out: Buffer, at: number, tag: number, value: string, length: number): number {
  if (length === 0) return at;
  out[at++] = tag;
  at = writeVarint(out, at, length);
  return at + out.write(value, at, length, "utf8");
}

export function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size += 1;
  }
  return size;
}

export function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

/** [value, next offset], or undefined past the end or beyond 2^53 - 1. */
function readVarint(buf: Buffer, at: number): [number, number] | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i += 1) {
    const byte = buf[at++];
    if (byte === undefined) return undefined;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return value <= Number.MAX_SAFE_INTEGER ? [value, at] : undefined;
    scale *= 0x80;
  }
  return undefined;
}
