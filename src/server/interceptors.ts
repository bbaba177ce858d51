import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { connectErrorFromReason } from "./errors.js";
import { AfterTick } from "../observability/after-tick.js";
import { codeName } from "../observability/registry.js";
import { tapRequestMessage } from "../observability/request-message.js";
import { watchStream } from "../observability/stream-end.js";
import { parseTraceparent, traceKey } from "../observability/trace-context.js";
import { principalKey } from "./context.js";

/** Maps engine errors to Connect errors, for unary calls and inside response streams. */
export function createErrorInterceptor(): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: mapStreamErrors(res.message) };
    } catch (reason) {
      throw connectErrorFromReason(reason);
    }
  };
}

async function* mapStreamErrors<T>(stream: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* stream;
  } catch (reason) {
    throw connectErrorFromReason(reason);
  }
}

/** Hears every call's end: its service, method, final Connect code and duration. */
export type RpcObserver = (service: string, method: string, code: string, seconds: number) => void;

/**
 * One log line per RPC: method, caller (credential name and tenant, once authorized), the
 * session it names, outcome, duration, for streams the message count, and the trace id
 * (the caller's traceparent, or the server span's when tracing is on). Never a secret.
 * Written, and handed to `observe`, once the tick in which the call ended is over: the
 * response's end goes out first, and a busy tick's lines are written back to back.
 */
export function createLoggingInterceptor(logger: Logger, observe?: RpcObserver): Interceptor {
  const later = new AfterTick((error) => logger.error({ err: error }, "writing an RPC line failed"));
  return (next) => async (call) => {
    const started = performance.now();
    const rpc = `${call.service.name}.${call.method.name}`;
    // Unary and server-streaming requests have one message (a stream's is read before next() returns).
    const { req, message } = tapRequestMessage(call);
    const done = (code: string, messages?: number, err?: unknown) => {
      const ms = performance.now() - started;
      const failed = err !== undefined && code === "internal";
      const level = failed ? "error" : call.service.typeName === HEALTH_SERVICE ? "debug" : "info";
      if (!observe && !logger.isLevelEnabled(level)) return;
      later.run(() => {
        observe?.(call.service.typeName, call.method.name, code, ms / 1000);
        // Set by the authorization interceptor further in, on the same context values.
        const principal = req.contextValues.get(principalKey);
        // Set by the tracing interceptor when there is one; else the caller's own, if valid.
        const trace = req.contextValues.get(traceKey) ?? parseTraceparent(req.header.get("traceparent"));
        const line = {
          rpc,
          code,
          ms: Math.round(ms),
          messages,
          principal: principal?.name,
          tenant: principal?.tenant || undefined,
          session: sessionOf(message()),
          trace_id: trace?.traceId,
          span_id: trace?.spanId,
        };
        if (failed) logger.error({ ...line, err }, "rpc failed");
        else logger[level](line, "rpc");
      });
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        done("ok");
        return res;
      }
      return { ...res, message: watchStream(res.message, req.signal, done) };
    } catch (reason) {
      const error = ConnectError.from(reason);
      done(codeName(error.code), undefined, reason);
      throw reason;
    }
  };
}

// Probes call Health every few seconds, forever: their lines are at debug, not in the way.
const HEALTH_SERVICE = "grpc.health.v1.Health";

// The session a request names (most requests have a session_id), cut to the longest valid
// id plus a marker: the field is the client's, and one line must stay one short line.
function sessionOf(message: unknown): string | undefined {
  const sessionId = (message as { sessionId?: unknown } | undefined)?.sessionId;
  if (typeof sessionId !== "string" || sessionId === "") return undefined;
  return sessionId.length > MAX_LOGGED_SESSION_CHARS ? `${sessionId.slice(0, MAX_LOGGED_SESSION_CHARS)}…` : sessionId;
}

const MAX_LOGGED_SESSION_CHARS = 128;
