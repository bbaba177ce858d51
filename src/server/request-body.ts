import { promisify } from "node:util";
import zlib from "node:zlib";
import { type DescMessage, fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { createAsyncIterable, type UniversalServerRequest } from "@connectrpc/connect/protocol";
import { wellFormed } from "./errors.js";

/**
 * How a request's body is framed, read from its Content-Type the way connect-es reads it:
 * the Connect protocol's unary form (a bare message) or an enveloped stream (Connect
 * streaming, gRPC, gRPC-Web), in protobuf or JSON.
 */
export interface BodyFraming {
  protocol: "connect" | "grpc" | "grpc-web";
  /** A bare message (Connect unary) rather than length-prefixed envelopes. */
  bare: boolean;
  binary: boolean;
  /** gRPC-Web's base64 text form. */
  text: boolean;
}

const CONNECT = /^application\/(connect\+)?(?:(json)(?:; ?charset=utf-?8)?|(proto))$/i;
const GRPC = /^application\/grpc(?:\+(?:(json)(?:; ?charset=utf-?8)?|proto))?$/i;
const GRPC_WEB = /^application\/grpc-web(-text)?(?:\+(?:(json)(?:; ?charset=utf-?8)?|proto))?$/i;

/** The body framing of a request, or undefined for a content type no protocol serves. */
export function bodyFramingOf(contentType: string | null): BodyFraming | undefined {
  if (contentType === null) return undefined;
  let match = CONNECT.exec(contentType);
  if (match) return { protocol: "connect", bare: !match[1], binary: !match[2], text: false };
  match = GRPC.exec(contentType);
  if (match) return { protocol: "grpc", bare: false, binary: !match[1], text: false };
  match = GRPC_WEB.exec(contentType);
  if (match) return { protocol: "grpc-web", bare: false, binary: !match[2], text: !!match[1] };
  return undefined;
}

// The headers that say how a body is compressed, per protocol and form.
function encodingHeader(framing: BodyFraming): string {
  if (framing.protocol === "connect") return framing.bare ? "content-encoding" : "connect-content-encoding";
  return "grpc-encoding";
}

/**
 * Replaces a request's body with one empty message in its own framing, so that connect
 * never reads what the client sent: the call then reaches the interceptors, which refuse
 * it (no valid credential, or a body already found malformed) with the protocol's own
 * error response.
 */
export function replaceWithEmptyMessage(req: UniversalServerRequest, framing: BodyFraming): UniversalServerRequest {
  const message = framing.binary ? new Uint8Array(0) : new TextEncoder().encode("{}");
  let body = framing.bare ? message : envelope(message);
  if (framing.text) body = new TextEncoder().encode(Buffer.from(body).toString("base64"));
  const header = new Headers(req.header);
  header.delete(encodingHeader(framing));
  header.set("content-length", String(body.byteLength));
  return { ...req, header, body: createAsyncIterable([body]) };
}

function envelope(message: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(5 + message.byteLength);
  new DataView(bytes.buffer).setUint32(1, message.byteLength);
  bytes.set(message, 5);
  return bytes;
}

/** A body that is not acceptable, and the code to refuse it with. */
export interface BodyRefusal {
  ok: false;
  code: "invalid_argument" | "resource_exhausted";
  message: string;
}

/** The outcome of reading a unary call's body ahead of connect. */
export type CheckedBody = { ok: true; req: UniversalServerRequest } | BodyRefusal;

type Bytes = { ok: true; bytes: Uint8Array } | BodyRefusal;

const gunzip = promisify(zlib.gunzip);
const brotliDecompress = promisify(zlib.brotliDecompress);

/**
 * Reads a unary call's binary body (bounded by `readMaxBytes`, compressed and inflated),
 * unwraps it and parses it as `input`, before connect does.
 *
 * Why: connect-es reports a protobuf message it cannot parse as INTERNAL, and for unary
 * methods it parses before any interceptor runs. A malformed body is the client's fault,
 * so it must be INVALID_ARGUMENT. The body read here is handed on to connect unchanged.
 * JSON bodies need no check (connect reports their parse errors as INVALID_ARGUMENT), and
 * streaming methods parse inside the interceptors, where the error mapper corrects the code.
 */
export async function checkUnaryBody(
  req: UniversalServerRequest,
  framing: BodyFraming,
  input: DescMessage,
  readMaxBytes: number,
): Promise<CheckedBody> {
  const raw = await readBounded(req, readMaxBytes);
  if (!raw.ok) return raw;
  const passOn: UniversalServerRequest = { ...req, body: createAsyncIterable([raw.bytes]) };
  let message: Uint8Array;
  const encoding = req.header.get(encodingHeader(framing)) ?? "identity";
  if (framing.bare) {
    const inflated = await inflate(raw.bytes, encoding, readMaxBytes);
    if (!inflated.ok) return inflated;
    message = inflated.bytes;
  } else {
    const bytes = framing.text ? Buffer.from(new TextDecoder().decode(raw.bytes), "base64") : raw.bytes;
    if (bytes.byteLength < 5) return malformed("the body does not hold a complete message envelope");
    const flags = bytes[0] ?? 0;
    const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
    if (bytes.byteLength !== 5 + length) {
      return malformed(`the body holds ${bytes.byteLength - 5} bytes after the envelope header, which announces ${length}`);
    }
    // A request envelope is a message, compressed or not (connect calls other flags INTERNAL).
    if (flags > 1) return malformed(`the envelope's flags are ${flags}; a request message has 0, or 1 when compressed`);
    if (flags === 1 && encoding === "identity") return malformed("the envelope says compressed, but the request names no grpc-encoding");
    const payload = bytes.subarray(5);
    if (flags === 0) {
      message = payload;
    } else {
      const inflated = await inflate(payload, encoding, readMaxBytes);
      if (!inflated.ok) return inflated;
      message = inflated.bytes;
    }
  }
  if (!framing.binary) {
    // Parsed here too: connect's own parse error would quote the value in its message,
    // and a lone surrogate there makes it fail to write the gRPC status (a bare 500).
    try {
      fromJsonString(input, new TextDecoder().decode(message), { ignoreUnknownFields: true });
    } catch (error) {
      return malformed(`cannot parse the request as ${input.typeName}: ${(error as Error).message}`);
    }
    return { ok: true, req: passOn };
  }
  try {
    fromBinary(input, message);
  } catch (error) {
    return malformed(`cannot parse the request as ${input.typeName}: ${(error as Error).message}`);
  }
  return { ok: true, req: passOn };
}

function malformed(message: string): BodyRefusal {
  // Well-formed text: the message goes into headers (grpc-message) that must encode it.
  return { ok: false, code: "invalid_argument", message: wellFormed(`malformed request body: ${message}`) };
}

async function readBounded(req: UniversalServerRequest, readMaxBytes: number): Promise<Bytes> {
  const body = req.body;
  if (!(typeof body === "object" && body !== null && Symbol.asyncIterator in body)) {
    return { ok: false, code: "invalid_argument", message: "malformed request body: not a byte stream" };
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > readMaxBytes) {
      return { ok: false, code: "resource_exhausted", message: `the request body is larger than ${readMaxBytes} bytes` };
    }
    chunks.push(chunk);
  }
  return { ok: true, bytes: chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks) };
}

async function inflate(
  bytes: Uint8Array,
  encoding: string,
  readMaxBytes: number,
): Promise<Bytes> {
  if (encoding === "identity") return { ok: true, bytes };
  // Unknown encodings are connect's to refuse (UNIMPLEMENTED, listing what it accepts).
  if (encoding !== "gzip" && encoding !== "br") return { ok: true, bytes };
  if (bytes.byteLength === 0) return { ok: true, bytes };
  try {
    const options = { maxOutputLength: readMaxBytes };
    return { ok: true, bytes: encoding === "gzip" ? await gunzip(bytes, options) : await brotliDecompress(bytes, options) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
      return { ok: false, code: "resource_exhausted", message: `the request message is larger than ${readMaxBytes} bytes after decompression` };
    }
    return malformed(`cannot decompress it as ${encoding} (${(error as Error).message})`);
  }
}
