import { Code, ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { type Context, createTraceState, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, trace, TraceFlags, type Tracer } from "@opentelemetry/api";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { principalKey } from "../server/context.js";
import { codeName } from "./registry.js";
import { tapRequestMessage } from "./request-message.js";
import { watchStream } from "./stream-end.js";
import { parseTraceparent, type TraceIds, traceKey } from "./trace-context.js";
import type { Expected, TurnTrace, TurnTraces } from "./turn-traces.js";

// Codes that are the server's failure, not the caller's (OpenTelemetry's RPC conventions
// mark a server span as an error only for these).
const SERVER_ERRORS = new Set([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

// Longer ids are refused by the engine anyway; such a call is no turn to expect.
const MAX_ID_CHARS = 128;

/**
 * W3C Trace Context on every RPC. With a tracer: a SERVER span per call, named
 * "hotplex.v1.SessionService/Execute", child of the caller's `traceparent` when it sent one,
 * with rpc.system "connect_rpc", rpc.service, rpc.method and, on failure,
 * rpc.connect_rpc.error_code; a stream's span ends when its response ends. Without one (no
 * exporter) nothing is created: the caller's trace ids are only read for the log lines.
 *
 * An Execute call also tells `turns` to expect the turn it starts, so that the turn's span
 * (a child of this one) and its log line carry the same trace.
 */
export function createTracingInterceptor(tracer: Tracer | undefined, turns: TurnTraces | undefined): Interceptor {
  return (next) => async (call) => {
    const header = call.header.get("traceparent");
    const isExecute = call.method === SessionService.method.execute;
    if (!tracer) {
      // Without spans, only an Execute with a caller's trace has anything to hand on: every
      // other call passes untouched (nothing tapped, no wrapper on its stream).
      const callerIds = isExecute && header ? parseTraceparent(header) : undefined;
      if (!callerIds || !turns) return next(call);
      const { req, message } = tapRequestMessage(call);
      req.contextValues.set(traceKey, callerIds);
      const res = await next(req);
      const expected = expectTurn(req, message(), turns, { ids: callerIds });
      if (!expected || !res.stream) return res;
      return { ...res, message: watchStream(res.message, req.signal, (code) => releaseOnFailure(turns, expected, code)) };
    }
    // Execute's request (session and request id), read once next() returned.
    const { req, message } = isExecute && turns ? tapRequestMessage(call) : { req: call, message: () => undefined };
    const parent = parentContext(header, req.header.get("tracestate"));
    const span = tracer.startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name },
      },
      parent,
    );
    const spanContext = span.spanContext();
    const ids: TraceIds = { traceId: spanContext.traceId, spanId: spanContext.spanId, sampled: (spanContext.traceFlags & TraceFlags.SAMPLED) !== 0 };
    req.contextValues.set(traceKey, ids);
    let res;
    try {
      res = await next(req);
    } catch (reason) {
      endSpan(span, ConnectError.from(reason).code);
      throw reason;
    }
    const expected = isExecute && turns ? expectTurn(req, message(), turns, { ids, parent: trace.setSpan(ROOT_CONTEXT, span) }) : undefined;
    if (!res.stream) {
      endSpan(span, undefined);
      return res;
    }
    return {
      ...res,
      message: watchStream(res.message, req.signal, (code, _messages, reason) => {
        releaseOnFailure(turns, expected, code);
        endSpan(span, reason === undefined ? (code === "canceled" ? Code.Canceled : undefined) : ConnectError.from(reason).code);
      }),
    };
  };
}

// The caller's span as the parent, from a valid traceparent (and its tracestate); else a new trace.
function parentContext(traceparent: string | null, tracestate: string | null): Context {
  const ids = parseTraceparent(traceparent);
  if (!ids) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: ids.traceId,
    spanId: ids.spanId,
    traceFlags: ids.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
    // A tracestate longer than the spec's 512 characters is dropped, not parsed.
    ...(tracestate && tracestate.length <= 512 ? { traceState: createTraceState(tracestate) } : {}),
  });
}

// A failed Execute started no turn (it was refused); one that ended or whose client went
// away did, or may still (a queued or starting turn runs on without its client).
function releaseOnFailure(turns: TurnTraces | undefined, expected: Expected | undefined, code: string): void {
  if (expected && code !== "ok" && code !== "canceled") turns?.release(expected);
}

function endSpan(span: Span, code: Code | undefined): void {
  if (code !== undefined) {
    span.setAttribute("rpc.connect_rpc.error_code", codeName(code));
    if (SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

// An Execute call was let in (the principal is set once next() returned): its turn, once
// it is accepted, belongs to this trace.
function expectTurn(req: UnaryRequest | StreamRequest, message: unknown, turns: TurnTraces, turnTrace: TurnTrace): Expected | undefined {
  const principal = req.contextValues.get(principalKey);
  if (!principal || !message) return undefined;
  const { sessionId, requestId } = message as { sessionId?: unknown; requestId?: unknown };
  if (typeof sessionId !== "string" || typeof requestId !== "string") return undefined;
  if (sessionId.length > MAX_ID_CHARS || requestId.length > MAX_ID_CHARS) return undefined;
  return turns.expect(principal.tenant, sessionId, requestId, turnTrace);
}
