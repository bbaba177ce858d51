import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import type { Event } from "../events/event.js";
import { encodeEvent } from "../events/encoded-event.js";

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
  const message = create(schema);
  message.$unknown = events.map((event) => ({ no: fieldNo, wireType: WireType.LengthDelimited, data: encodeEvent(event).field }));
  return message;
}
