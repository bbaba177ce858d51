import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  type Event,
  EventSchema,
  type EventPayload,
  TextDeltaSchema,
  ThinkingDeltaSchema,
  ToolUseSchema,
  TurnEndedSchema,
  TurnOutcome,
} from "./event.js";
import { decodeEvent, encodeEventBytes } from "./event-codec.js";

function event(init: { seq?: bigint; sessionId?: string; turnId?: string; timeMs?: number; epoch?: bigint; payload: EventPayload }): Event {
  return create(EventSchema, {
    seq: init.seq ?? 0n,
    epoch: init.epoch ?? 0n,
    sessionId: init.sessionId ?? "",
    turnId: init.turnId ?? "",
    time: init.timeMs === undefined ? undefined : timestampFromMs(init.timeMs),
    payload: init.payload,
  });
}

// A lone surrogate is not valid UTF-16: both paths write U+FFFD for it.
const texts = ["", "a", "hello, world", "é€😀 unicode ✓", "x".repeat(127), "y".repeat(128), "z".repeat(20_000), "\u0000nul", "lone \ud800 surrogate"];
const seqs = [0n, 1n, 127n, 128n, 300n, 16_384n, 2n ** 35n, BigInt(Number.MAX_SAFE_INTEGER)];
const times = [undefined, 0, 1, 999, 1_000, 1_763_800_000_123, 4_102_444_800_000];
// The ownership period of the node that stored the event (0 on a store of one node).
const epochs = [0n, 1n, 127n, 128n, 2n ** 40n];

// Every combination of the fields that change the encoding's shape.
function deltaEvents(): Event[] {
  const out: Event[] = [];
  for (const kind of ["textDelta", "thinkingDelta"] as const) {
    for (const text of texts) {
      for (const parent of ["", "toolu_01ABC"]) {
        const value = create(kind === "textDelta" ? TextDeltaSchema : ThinkingDeltaSchema, { text, parentToolUseId: parent });
        const payload = { case: kind, value } as EventPayload;
        for (const [i, seq] of seqs.entries()) {
          out.push(event({ seq, sessionId: i % 2 ? "" : "s-1", turnId: i % 3 ? "turn-ü" : "", timeMs: times[i % times.length], epoch: epochs[i % epochs.length], payload }));
        }
      }
    }
  }
  return out;
}

describe("event codec", () => {
  it("encodes delta events to exactly the bytes protobuf-es writes", () => {
    for (const e of deltaEvents()) {
      const expected = Buffer.from(toBinary(EventSchema, e));
      // Buffer.equals: toEqual walks a 20 kB buffer byte by byte, slowly.
      expect(encodeEventBytes(e).equals(expected), `event ${JSON.stringify(e, (_k, v) => (typeof v === "bigint" ? `${v}n` : v)).slice(0, 200)}`).toBe(true);
    }
  });

  it("decodes delta events to exactly the messages protobuf-es reads", () => {
    for (const e of deltaEvents()) {
      const bytes = toBinary(EventSchema, e);
      // What protobuf-es reads back: the event itself, but with U+FFFD for a lone surrogate.
      const expected = fromBinary(EventSchema, bytes);
      expect(decodeEvent(bytes)).toStrictEqual(expected);
      // From a Buffer too (as the store returns them), and from a view into a larger buffer.
      expect(decodeEvent(Buffer.from(bytes))).toStrictEqual(expected);
      const padded = new Uint8Array(bytes.length + 8);
      padded.set(bytes, 4);
      expect(decodeEvent(padded.subarray(4, 4 + bytes.length))).toStrictEqual(expected);
    }
  });

  it("leaves other events, negative times and unknown fields to protobuf-es, with the same result", () => {
    const others: Event[] = [
      event({ seq: 5n, sessionId: "s", turnId: "t", timeMs: 10, payload: { case: "toolUse", value: create(ToolUseSchema, { name: "Bash", inputJson: "{}" }) } }),
      event({
        seq: 6n,
        payload: { case: "turnEnded", value: create(TurnEndedSchema, { outcome: TurnOutcome.COMPLETED, result: "done", costUsd: 0.25 }) },
      }),
      event({ seq: 7n, timeMs: -1_500, payload: { case: "textDelta", value: create(TextDeltaSchema, { text: "before 1970" }) } }),
      create(EventSchema, { seq: 8n }),
    ];
    const unknown = event({ seq: 9n, payload: { case: "textDelta", value: create(TextDeltaSchema, { text: "x" }) } });
    unknown.$unknown = [{ no: 99, wireType: WireType.Varint, data: new Uint8Array([1]) }];
    others.push(unknown);
    for (const e of others) {
      const bytes = toBinary(EventSchema, e);
      expect(encodeEventBytes(e)).toEqual(Buffer.from(bytes));
      expect(decodeEvent(bytes)).toStrictEqual(fromBinary(EventSchema, bytes));
    }
  });

  it("decodes encodings it does not write itself (fields out of order, repeated) as protobuf-es does", () => {
    // turn_id before session_id, and the payload given twice: protobuf-es merges them.
    const writer = new BinaryWriter();
    writer.tag(1, WireType.Varint).uint64(3n);
    writer.tag(3, WireType.LengthDelimited).string("t");
    writer.tag(2, WireType.LengthDelimited).string("s");
    writer.tag(12, WireType.LengthDelimited).bytes(toBinary(TextDeltaSchema, create(TextDeltaSchema, { text: "a" })));
    writer.tag(12, WireType.LengthDelimited).bytes(toBinary(TextDeltaSchema, create(TextDeltaSchema, { parentToolUseId: "p" })));
    const bytes = writer.finish();
    expect(decodeEvent(bytes)).toStrictEqual(fromBinary(EventSchema, bytes));
  });

  it("refuses truncated input as protobuf-es does", () => {
    const bytes = toBinary(EventSchema, deltaEvents()[40] as Event);
    for (let cut = 1; cut < bytes.length; cut += 1) {
      const truncated = bytes.subarray(0, cut);
      let expected: unknown;
      try {
        expected = fromBinary(EventSchema, truncated);
      } catch (error) {
        expected = error;
      }
      if (expected instanceof Error) expect(() => decodeEvent(truncated)).toThrow();
      else expect(decodeEvent(truncated)).toStrictEqual(expected);
    }
  });
});
