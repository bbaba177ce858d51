import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import type { Event } from "../events/event.js";
import { encodeEvent } from "../events/encoded-event.js";
import { varintSize, writeVarint } from "../events/event-codec.js";

/**
 * Whether a call uses a binary codec (Connect, gRPC or gRPC-Web with protobuf), judged by
 * its request content type. JSON calls must get ordinary messages.
 */
export function isBinaryCall(requestHeader: Headers): boolean {
  return !(requestHeader.get("content-type") ?? "").includes("json");
}

/**
 * A response message whose repeated Event field `fieldNo` holds the events' cached
 * encodings. protobuf-es writes unknown fields back as they are (and repeated fields
 * are just the field repeated on the wire), so the message serializes to exactly the
 * bytes of a message with those events set, without encoding any event again. Only for
 * binary codecs: JSON drops unknown fields.
 */
export function withPreEncodedEvents<Desc extends DescMessage>(
  schema: Desc,
  fieldNo: number,
  events: readonly Event[],
): MessageShape<Desc> {
  // A one-byte tag (written below) needs a field number under 16.
  if (fieldNo < 1 || fieldNo > 15) throw new RangeError(`field number ${fieldNo} is not in 1..15`);
  const message = create(schema);
  if (events.length === 0) return message;
  // One unknown "field" whose data runs on over all the events: protobuf-es writes the
  // tag, then the data as it is, so the data is the first event's length and bytes
  // followed by (tag, length, bytes) for every other event. One buffer per batch instead
  // of an entry per event that the writer would copy one by one.
  const tag = (fieldNo << 3) | WireType.LengthDelimited;
  const encoded = events.map(encodeEvent);
  let length = -1;
  for (const bytes of encoded) length += 1 + varintSize(bytes.length) + bytes.length;
  const data = Buffer.allocUnsafe(length);
  let at = 0;
  for (const [i, bytes] of encoded.entries()) {
    if (i > 0) data[at++] = tag;
    at = writeVarint(data, at, bytes.length);
    data.set(bytes, at);
    at += bytes.length;
  }
  message.$unknown = [{ no: fieldNo, wireType: WireType.LengthDelimited, data }];
  return message;
}
