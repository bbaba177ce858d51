import { toJson } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Event, EventSchema } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { executeEvents, followUntil, startTestDaemon, subscribedEvents, type TestDaemon, textOf } from "../harness.js";

// Many readers of one flooding session, most of them behind its in-memory tail (64 events
// here): they are served from the store's shared pages, over every codec, and each one
// gets every event, in order, byte for byte the same as the others.
describe("fan-out of a flooding session to readers behind the tail (sqlite store)", () => {
  let daemon: TestDaemon;

  beforeAll(async () => {
    daemon = await startTestDaemon({ storeKind: "sqlite", engine: { logBounds: { maxEvents: 64, maxBytes: 1 << 20 } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("delivers every event to every reader: Connect, gRPC and JSON, followers and late replays", async () => {
    const sessionId = "flood-fan-out";
    await executeEvents(daemon.client.execute({ sessionId, prompt: "warm up" }));
    const { lastSeq } = await daemon.client.getSnapshot({ sessionId });
    const json = createClient(SessionService, createConnectTransport({ baseUrl: daemon.server.url, httpVersion: "1.1", useBinaryFormat: false }));
    const isEnd = (event: Event) => event.payload.case === "turnEnded" && event.seq > lastSeq + 1n;
    // Followers attach before the flood (from the session's last seq).
    const followers = [
      followUntil(daemon.clientFor("connect"), sessionId, isEnd, lastSeq),
      followUntil(daemon.clientFor("grpc"), sessionId, isEnd, lastSeq),
      followUntil(json, sessionId, isEnd, lastSeq),
      followUntil(daemon.clientFor("grpc"), sessionId, isEnd, lastSeq),
    ];
    // The flood runs on after its Execute is cancelled: only the readers take it in.
    const started = new AbortController();
    for await (const _ of daemon.client.execute({ sessionId, prompt: "[[flood:3000]] go" }, { signal: started.signal })) break;
    started.abort();
    const followed = await Promise.all(followers);
    // Late readers replay the whole log from the store, from two positions, concurrently.
    const [all, fromMiddle] = await Promise.all([subscribedEvents(daemon, sessionId), subscribedEvents(daemon, sessionId, 1000n)]);

    // What the followers read: up to the flood turn's end (its StatusChanged READY follows it).
    const flood = all.filter((event) => event.seq > lastSeq && event.seq <= (followed[0]?.at(-1)?.seq ?? 0n));
    expect(flood.length).toBeGreaterThan(3000);
    expect(all.map((event) => Number(event.seq))).toEqual(all.map((_, i) => i + 1));
    expect(textOf(flood)).toContain("t2999");
    const asJson = (events: Event[]) => events.map((event) => toJson(EventSchema, event));
    for (const events of followed) expect(asJson(events)).toEqual(asJson(flood));
    expect(asJson(fromMiddle)).toEqual(asJson(all.slice(1000)));
  });
});
