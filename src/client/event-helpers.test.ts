import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { type Event, EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { collectTurn, eventsOf } from "./event-helpers.js";

const text = (seq: number, turnId: string, value: string, parentToolUseId = ""): Event =>
  create(EventSchema, { seq: BigInt(seq), turnId, payload: { case: "textDelta", value: { text: value, parentToolUseId } } });
const end = (seq: number, turnId: string): Event =>
  create(EventSchema, { seq: BigInt(seq), turnId, payload: { case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } } });
async function* from<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

describe("collectTurn", () => {
  it("joins the main agent's text of the first turn seen, up to its end, from events or batches", async () => {
    const events = [text(1, "t1", "Hel"), text(2, "t1", "sub-agent", "toolu_1"), text(3, "t2", "other"), text(4, "t1", "lo"), end(5, "t1"), text(6, "t1", "after")];
    for (const source of [from(events), from([{ events: events.slice(0, 2) }, { events: events.slice(2) }])]) {
      const turn = await collectTurn(source);
      expect(turn.turnId).toBe("t1");
      expect(turn.text).toBe("Hello");
      expect(turn.ended?.outcome).toBe(TurnOutcome.COMPLETED);
      expect(turn.events.map((e) => Number(e.seq))).toEqual([1, 2, 4, 5]);
    }
  });

  it("takes a named turn, and reports no end when the stream stops first", async () => {
    const turn = await collectTurn(from([text(1, "t1", "a"), text(2, "t2", "b")]), "t2");
    expect(turn).toMatchObject({ turnId: "t2", text: "b", ended: undefined });
    const none = await collectTurn(from([]));
    expect(none).toMatchObject({ turnId: "", text: "", ended: undefined, events: [] });
  });

  it("eventsOf flattens batches and passes single events through", async () => {
    const out: bigint[] = [];
    for await (const event of eventsOf(from([{ events: [text(1, "t", "x"), text(2, "t", "y")] }, { events: [] }]))) out.push(event.seq);
    expect(out).toEqual([1n, 2n]);
  });
});
