import type { Event } from "./event.js";
import { encodeEventField, fieldOf } from "./event-codec.js";

/**
 * An event encoded once, as the value of a length-delimited protobuf field: the
 * length varint, then the Event's bytes. The store keeps the bytes; responses that
 * carry the event embed the whole field value as it is (see the server's
 * pre-encoded responses), so a hundred subscribers cost one encoding, not a hundred.
 */
export interface EncodedEvent {
  /** Length varint + the encoded Event. */
  field: Uint8Array;
  /** The encoded Event alone (a view into `field`). */
  bytes: Uint8Array;
}

// Events are immutable once logged, so the encoding lives on the event itself, under a
// symbol that is not enumerable: invisible to protobuf-es (which walks the schema's
// fields), to JSON and to equality checks. A WeakMap did the same at a higher cost per
// event (its ephemeron table is rehashed and traced by every GC).
const ENCODING = Symbol("hotplex.encoding");

type WithEncoding = Event & { [ENCODING]?: EncodedEvent };

function remember(event: Event, encoded: EncodedEvent): EncodedEvent {
  Object.defineProperty(event, ENCODING, { value: encoded });
  return encoded;
}

export function encodeEvent(event: Event): EncodedEvent {
  const cached = (event as WithEncoding)[ENCODING];
  if (cached) return cached;
  const field = encodeEventField(event);
  return remember(event, { field, bytes: field.subarray(field.length - payloadLength(field)) });
}

/**
 * Records `bytes`, the encoding `event` was decoded from (an event read back from the
 * store), as its encoding: a replay then sends the stored bytes instead of encoding
 * every event again, which costs more than decoding it. The bytes are copied.
 */
export function rememberEncoding(event: Event, bytes: Uint8Array): void {
  if ((event as WithEncoding)[ENCODING]) return;
  const field = fieldOf(bytes);
  remember(event, { field, bytes: field.subarray(field.length - bytes.length) });
}

// The length a field's varint prefix gives.
function payloadLength(field: Uint8Array): number {
  let length = 0;
  let scale = 1;
  for (let i = 0; i < field.length; i += 1) {
    const byte = field[i] as number;
    length += (byte & 0x7f) * scale;
    if (byte < 0x80) break;
    scale *= 0x80;
  }
  return length;
}
