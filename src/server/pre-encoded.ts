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
 * A response message whose `fieldNo` (an Event field) is the event's cached encoding.
 * protobuf-es writes unknown fields back as they are, so the message serializes to
 * exactly the bytes of a message with that field set, without encoding the event again.
 * Only for binary codecs: JSON drops unknown fields.
 */
export function withPreEncodedEvent<Desc extends DescMessage>(schema: Desc, fieldNo: number, event: Event): MessageShape<Desc> {
  const message = create(schema);
  message.$unknown = [{ no: fieldNo, wireType: WireType.LengthDelimited, data: encodeEvent(event).field }];
  return message;
}
