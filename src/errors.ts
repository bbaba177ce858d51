/**
 * The failure kinds the engine reports. They mirror the Connect/gRPC codes a client
 * sees, but the engine and everything below it stay free of Connect: the server maps
 * them in one place (`connectErrorFromReason` in server/errors.ts).
 */
export type HotplexErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "permission_denied"
  | "resource_exhausted"
  | "out_of_range"
  | "unavailable"
  | "internal";

/** A failure the caller can act on; `message` says what to fix. */
export class HotplexError extends Error {
  override readonly name = "HotplexError";

  constructor(
    readonly code: HotplexErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The requested resume point is not retained (or lies beyond the log). The requested seq
 * is a bigint: a client may send any uint64, and it is echoed back exactly.
 */
export class OutOfRangeError extends HotplexError {
  constructor(
    readonly sessionId: string,
    readonly requestedAfterSeq: bigint,
    readonly firstSeq: number,
    readonly lastSeq: number,
  ) {
    super(
      "out_of_range",
      requestedAfterSeq > BigInt(lastSeq)
        ? `after_seq ${requestedAfterSeq} is beyond the last event (${lastSeq}) of session "${sessionId}"`
        : `events after seq ${requestedAfterSeq} of session "${sessionId}" are no longer retained; ` +
            `the first retained seq is ${firstSeq} (resume with after_seq = ${firstSeq - 1})`,
    );
  }
}
