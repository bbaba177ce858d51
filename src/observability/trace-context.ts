import { createContextKey } from "@connectrpc/connect";

/** The ids of a call's trace, for log lines: W3C Trace Context, lowercase hex. */
export interface TraceIds {
  /** 32 hex digits. */
  traceId: string;
  /** 16 hex digits: the caller's span (from traceparent), or the server span when tracing is on. */
  spanId: string;
  /** The caller asked for the trace to be recorded (the sampled flag). */
  sampled: boolean;
}

/**
 * The call's trace ids, set by the tracing interceptor (the server span's, or the caller's
 * traceparent when tracing is off) for the log line of the call.
 */
export const traceKey = createContextKey<TraceIds | undefined>(undefined, { description: "hotplex trace ids" });

// version "-" trace-id "-" parent-id "-" flags, lowercase hex only (W3C Trace Context §3.2).
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/**
 * Parses a `traceparent` header; undefined when it is absent or invalid, in which case the
 * spec says to start a new trace. A cheap check first (a length and a regex on at most 55
 * characters), since every call of a traced client carries one.
 */
export function parseTraceparent(header: string | null | undefined): TraceIds | undefined {
  if (!header || header.length < 55) return undefined;
  const match = TRACEPARENT.exec(header);
  if (!match) return undefined;
  const [, version, traceId = "", spanId = "", flags = "00"] = match;
  // Version ff is invalid; version 00 is exactly 55 characters; a later version may append
  // fields after a dash, which this reader ignores (§3.2.4).
  if (version === "ff") return undefined;
  if (version === "00" ? header.length !== 55 : header.length > 55 && header[55] !== "-") return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}
