import { ConnectError } from "@connectrpc/connect";
import { codeName } from "./registry.js";

/** Called once when a response stream ends: its Connect code, the messages it sent, the error if any. */
export type StreamEnd = (code: string, messages: number, reason?: unknown) => void;

/**
 * Passes a response stream through, message by message (nothing buffered), and calls `done`
 * exactly once when it ends: "ok" after the last message, the error's code when it throws,
 * "canceled" when the client went away (the stream is closed early, without an error).
 */
export async function* watchStream<T>(stream: AsyncIterable<T>, signal: AbortSignal, done: StreamEnd): AsyncIterable<T> {
  let messages = 0;
  let ended = false;
  try {
    for await (const message of stream) {
      messages += 1;
      yield message;
    }
    ended = true;
    // A stream that ended because the client cancelled it is not a success.
    done(signal.aborted ? "canceled" : "ok", messages);
  } catch (reason) {
    ended = true;
    done(codeName(ConnectError.from(reason).code), messages, reason);
    throw reason;
  } finally {
    if (!ended) done("canceled", messages);
  }
}
