import type { StreamRequest, UnaryRequest } from "@connectrpc/connect";

/**
 * A call's request message for an interceptor: unary calls have it at once; a
 * server-streaming call (Execute, Subscribe) has exactly one, which connect reads from the
 * request stream before the handler starts, so it is known once `next()` has returned.
 * Client and bidi streams have no single message (undefined).
 */
export function tapRequestMessage<R extends UnaryRequest | StreamRequest>(req: R): { req: R; message: () => unknown } {
  if (!req.stream) return { req, message: () => req.message };
  if (req.method.methodKind !== "server_streaming") return { req, message: () => undefined };
  let first: unknown;
  const input = req.message;
  const tapped = {
    ...req,
    message: (async function* () {
      for await (const message of input) {
        first ??= message;
        yield message;
      }
    })(),
  };
  return { req: tapped, message: () => first };
}
