import { timingSafeEqual } from "node:crypto";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { connectErrorFromReason } from "./errors.js";

/** The caller's tenant. Every caller is "default" until multi-tenant credentials exist. */
export const tenantKey = createContextKey<string>("default", { description: "hotplex tenant" });

/**
 * Requires `Authorization: Bearer <token>` on every call when a token is configured.
 */
export function createAuthInterceptor(token: string | undefined): Interceptor {
  const expected = token ? Buffer.from(`Bearer ${token}`) : undefined;
  return (next) => async (req) => {
    if (expected) {
      const given = Buffer.from(req.header.get("authorization") ?? "");
      // Constant-time comparison: the token must not leak through response timing.
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new ConnectError("missing or wrong bearer token (send Authorization: Bearer <token>)", Code.Unauthenticated);
      }
    }
    req.contextValues.set(tenantKey, "default");
    return next(req);
  };
}

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

/** One log line per RPC: method, outcome, duration, and for streams the message count. */
export function createLoggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const rpc = `${req.service.name}.${req.method.name}`;
    const done = (code: string, messages?: number, err?: unknown) => {
      const line = { rpc, code, ms: Math.round(performance.now() - started), messages };
      if (err && code === "internal") logger.error({ ...line, err }, "rpc failed");
      else logger.info(line, "rpc");
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        done("ok");
        return res;
      }
      return { ...res, message: countStream(res.message, req.signal, done) };
    } catch (reason) {
      const error = ConnectError.from(reason);
      done(codeName(error.code), undefined, reason);
      throw reason;
    }
  };
}

async function* countStream<T>(
  stream: AsyncIterable<T>,
  signal: AbortSignal,
  done: (code: string, messages: number, err?: unknown) => void,
): AsyncIterable<T> {
  let messages = 0;
  let logged = false;
  try {
    for await (const message of stream) {
      messages += 1;
      yield message;
    }
    logged = true;
    // A stream that ended because the client cancelled it is not a success.
    done(signal.aborted ? "canceled" : "ok", messages);
  } catch (reason) {
    logged = true;
    done(codeName(ConnectError.from(reason).code), messages, reason);
    throw reason;
  } finally {
    // The client went away: the stream was closed early, without an error.
    if (!logged) done("canceled", messages);
  }
}

// The code as the Connect protocol spells it on the wire: "not_found", "invalid_argument".
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}
