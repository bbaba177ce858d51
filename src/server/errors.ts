import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { OutOfRangeDetailSchema } from "../../gen/hotplex/v1/session_service_pb.js";
import { HotplexError, type HotplexErrorCode, OutOfRangeError } from "../errors.js";

const CODES: Record<HotplexErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  already_exists: Code.AlreadyExists,
  not_found: Code.NotFound,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  out_of_range: Code.OutOfRange,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/**
 * Maps anything an RPC threw to the ConnectError the client sees. Engine errors keep
 * their message (it says what to fix); OUT_OF_RANGE carries the retained range as a
 * typed detail. Anything unexpected becomes INTERNAL without leaking internals; the
 * original stays as `cause` for the log.
 */
export function connectErrorFromReason(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return correctedConnectError(reason);
  if (reason instanceof OutOfRangeError) {
    const detail = create(OutOfRangeDetailSchema, {
      sessionId: reason.sessionId,
      requestedAfterSeq: reason.requestedAfterSeq,
      firstSeq: BigInt(reason.firstSeq),
      lastSeq: BigInt(reason.lastSeq),
    });
    return new ConnectError(reason.message, Code.OutOfRange, undefined, [{ desc: OutOfRangeDetailSchema, value: detail }], reason);
  }
  if (reason instanceof HotplexError) {
    return new ConnectError(wellFormed(reason.message), CODES[reason.code], undefined, undefined, reason);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, reason);
}

// connect-es reports a request message it cannot parse as INTERNAL ("parse binary: ...");
// it is the client's fault. Streaming methods parse their request inside the interceptors,
// so the error passes here (unary bodies are checked before connect, see request-body.ts).
// The same for an envelope flagged compressed without an encoding to inflate it with, and
// one that does not inflate (a truncated gzip stream).
const CLIENT_FAULTS = ["parse binary:", "received compressed envelope, but", "decompression failed"];

function correctedConnectError(error: ConnectError): ConnectError {
  if (error.code === Code.Internal && CLIENT_FAULTS.some((start) => error.rawMessage.startsWith(start))) {
    return new ConnectError(wellFormed(`malformed request body: ${error.rawMessage}`), Code.InvalidArgument, undefined, undefined, error);
  }
  // A message quoting client text may hold a lone surrogate, which gRPC cannot put in its
  // grpc-message header (encoding it throws): such a call would end with no status at all.
  const message = wellFormed(error.rawMessage);
  if (message !== error.rawMessage) return new ConnectError(message, error.code, error.metadata, undefined, error);
  return error;
}

// Lone surrogates (half a UTF-16 pair) made well formed, as U+FFFD.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` without lone surrogates: safe to encode (UTF-8, URI components, HTTP headers). */
export function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\ufffd");
}
