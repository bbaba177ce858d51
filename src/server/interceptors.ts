import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { connectErrorFromReason } from "./errors.js";
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

/**
 * One log line per RPC: method, caller (credential name and tenant, once authorized),
 * outcome, duration, and for streams the message count. Never a secret.
 */
export function createLoggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const rpc = `${req.service.name}.${req.method.name}`;
    const done = (code: string, messages?: number, err?: unknown) => {
      // Set by the authorization interceptor further in, on the same context values.
      const principal = req.contextValues.get(principalKey);
      const line = {
        rpc,
        code,
        ms: Math.round(performance.now() - started),
        messages,
        principal: principal?.name,
        tenant: principal?.tenant || undefined,
      };
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
