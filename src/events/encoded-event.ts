import type { Event } from "./event.js";
import { encodeEventBytes } from "./event-codec.js";

// An event is encoded once: the store keeps the bytes, and responses that carry the
// event embed them as they are (see the server's pre-encoded responses), so a hundred
// subscribers cost one encoding, not a hundred.
//
// Events are immutable once logged, so the encoding lives on the event itself, under a
// symbol that is not enumerable: invisible to protobuf-es (which walks the schema's
// fields), to JSON and to equality checks. A WeakMap did the same at a higher cost per
// event (its ephemeron table is rehashed and traced by every GC).
const ENCODING = Symbol("hotplex.encoding");

type WithEncoding = Event & { [ENCODING]?: Uint8Array };

function remember(event: Event, bytes: Uint8Array): Uint8Array {
  Object.defineProperty(event, ENCODING, { value: bytes });
  return bytes;
}

/** The event's protobuf encoding, made on first use and kept with the event. */
export function encodeEvent(event: Event): Uint8Array {
  return (event as WithEncoding)[ENCODING] ?? remember(event, encodeEventBytes(event));
}

/**
 * Records `bytes`, the encoding `event` was decoded from (an event read back from the
 * store), as its encoding: a replay then sends the stored bytes instead of encoding
 * every event again, which costs more than decoding it. The bytes must not change
 * afterwards (the store hands out a fresh buffer per row).
 */
export function rememberEncoding(event: Event, bytes: Uint8Array): void {
  if (!(event as WithEncoding)[ENCODING]) remember(event, bytes);
}
