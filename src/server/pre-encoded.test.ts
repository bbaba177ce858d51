import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ExecuteResponseSchema, SubscribeResponseSchema } from "../../gen/hotplex/v1/session_service_pb.js";
import { type Event, EventSchema, TextDeltaSchema, TurnEndedSchema, TurnOutcome } from "../events/event.js";
import { withPreEncodedEvents } from "./pre-encoded.js";

function events(n: number): Event[] {
  return Array.from({ length: n }, (_, i) =>
    create(EventSchema, {
      seq: BigInt(i + 1),
      sessionId: "s",
      turnId: "t",
      time: timestampFromMs(1_763_800_000_000 + i),
      payload:
        i % 5 === 4
          ? { case: "turnEnded", value: create(TurnEndedSchema, { outcome: TurnOutcome.COMPLETED, result: "r".repeat(i * 50) }) }
          : { case: "textDelta", value: create(TextDeltaSchema, { text: "x".repeat(i * 37) }) },
    }),
  );
}

describe("withPreEncodedEvents", () => {
  it.each([0, 1, 2, 17, 300])("serializes %i events to the bytes of the same message built normally", (n) => {
    const batch = events(n);
    const subscribe = toBinary(SubscribeResponseSchema, withPreEncodedEvents(SubscribeResponseSchema, 2, batch));
    expect(Buffer.from(subscribe).equals(Buffer.from(toBinary(SubscribeResponseSchema, create(SubscribeResponseSchema, { events: batch }))))).toBe(true);
    expect(fromBinary(SubscribeResponseSchema, subscribe).events).toEqual(batch);
    const execute = toBinary(ExecuteResponseSchema, withPreEncodedEvents(ExecuteResponseSchema, 1, batch));
    expect(fromBinary(ExecuteResponseSchema, execute).events).toEqual(batch);
  });

  it("refuses a field number whose tag takes more than one byte", () => {
    expect(() => withPreEncodedEvents(SubscribeResponseSchema, 16, events(1))).toThrow(RangeError);
  });
});
