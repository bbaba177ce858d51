// Tracing through a whole daemon with an in-memory span exporter: a SERVER span per RPC that
// continues the caller's W3C traceparent, a span per turn as a child of the Execute span
// that started it (a queued turn's of its own call), stream spans that end with the stream,
// and hostile traceparent headers that start a new trace instead of being trusted.
import { Code, type ConnectError } from "@connectrpc/connect";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-node";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { FakeProvider } from "../fixtures/fake-provider.js";
import { afterDeferred, executeEvents, followUntil, turnEndOf, waitUntil } from "../harness.js";
import { type ObservedDaemon, startObservedDaemon } from "./observed-daemon.js";

const FAKE = { provider: "fake" };

/** A caller's trace: a new trace id and span id, and the traceparent header for them. */
function callerTrace(sampled = true) {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-${sampled ? "01" : "00"}` };
}

describe("tracing with an exporter", () => {
  let d: ObservedDaemon;
  let n = 0;
  const sessionId = () => `t${++n}`;
  const spansOf = (traceId: string) => d.spans().filter((span) => span.spanContext().traceId === traceId);
  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
  // Spans are exported as they end; a stream's span ends right after its last message.
  const awaitSpans = async (traceId: string, count: number) => {
    await waitUntil(() => spansOf(traceId).length >= count, 5_000, `${count} spans of trace ${traceId}`);
    return spansOf(traceId);
  };

  beforeAll(async () => {
    d = await startObservedDaemon({ providerInstances: [new FakeProvider("fake")], tracing: true });
  });
  afterAll(async () => {
    await d?.close();
  });

  it("makes a SERVER span for Execute under the caller's span, and a turn span under it", async () => {
    const caller = callerTrace();
    const client = d.clientFor(undefined, "connect");
    const id = sessionId();
    const events = await executeEvents(client.execute({ sessionId: id, prompt: "hi", config: FAKE }, { headers: { traceparent: caller.header } }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const spans = await awaitSpans(caller.traceId, 2);
    const execute = spans.find((span) => span.name === "hotplex.v1.SessionService/Execute");
    const turn = spans.find((span) => span.name === "hotplex.turn");
    expect(execute?.kind).toBe(SpanKind.SERVER);
    expect(parentOf(execute!)).toBe(caller.spanId);
    expect(execute?.attributes).toMatchObject({ "rpc.system": "connect_rpc", "rpc.service": "hotplex.v1.SessionService", "rpc.method": "Execute" });
    expect(execute?.attributes["rpc.connect_rpc.error_code"]).toBeUndefined();
    expect(parentOf(turn!)).toBe(execute?.spanContext().spanId);
    expect(turn?.attributes).toMatchObject({
      "hotplex.session_id": id,
      "hotplex.turn_id": events[0]?.turnId,
      "hotplex.provider": "fake",
      "hotplex.turn.outcome": "completed",
      "hotplex.turn.start": "cold",
    });
    expect(turn?.events.map((event) => event.name)).toEqual(["agent started", "first output"]);
    // The turn lies within the call: it started when the call was accepted, ended before it.
    const ms = (time: [number, number]) => time[0] * 1000 + time[1] / 1e6;
    expect(ms(turn!.startTime)).toBeGreaterThanOrEqual(ms(execute!.startTime) - 1);
    expect(ms(turn!.endTime)).toBeLessThanOrEqual(ms(execute!.endTime) + 1);
  });

  it("gives a queued turn the trace of its own Execute call, over gRPC too", async () => {
    const id = sessionId();
    const client = d.clientFor(undefined, "grpc");
    await executeEvents(client.execute({ sessionId: id, prompt: "warm up", config: FAKE }));
    const first = callerTrace();
    const second = callerTrace();
    const running = executeEvents(client.execute({ sessionId: id, prompt: "[[hang]]" }, { headers: { traceparent: first.header } }));
    await followUntil(client, id, (e) => e.payload.case === "turnStarted" && e.payload.value.prompt.includes("hang"));
    const queued = executeEvents(client.execute({ sessionId: id, prompt: "next", queue: true }, { headers: { traceparent: second.header } }));
    await followUntil(client, id, (e) => e.payload.case === "turnQueued");
    await client.interrupt({ sessionId: id });
    expect(turnEndOf(await running).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(turnEndOf(await queued).outcome).toBe(TurnOutcome.COMPLETED);
    for (const [trace, outcome] of [
      [first, "interrupted"],
      [second, "completed"],
    ] as const) {
      const spans = await awaitSpans(trace.traceId, 2);
      const execute = spans.find((span) => span.name.endsWith("/Execute"));
      const turn = spans.find((span) => span.name === "hotplex.turn");
      expect(parentOf(execute!)).toBe(trace.spanId);
      expect(parentOf(turn!)).toBe(execute?.spanContext().spanId);
      expect(turn?.attributes["hotplex.turn.outcome"]).toBe(outcome);
    }
    expect(spansOf(second.traceId).find((span) => span.name === "hotplex.turn")?.attributes["hotplex.turn.start"]).toBe("queued");
  });

  it("records the Connect error code of a failed call; only server faults mark the span an error", async () => {
    const caller = callerTrace();
    const error = await d.client.getSnapshot({ sessionId: "no-such" }, { headers: { traceparent: caller.header } }).catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    const [span] = await awaitSpans(caller.traceId, 1);
    expect(span?.name).toBe("hotplex.v1.SessionService/GetSnapshot");
    expect(span?.attributes["rpc.connect_rpc.error_code"]).toBe("not_found");
    expect(span?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("ends a stream's span when the stream ends: a Subscribe the client cancels ends canceled", async () => {
    const id = sessionId();
    await executeEvents(d.client.execute({ sessionId: id, prompt: "hi", config: FAKE }));
    const caller = callerTrace();
    const abort = new AbortController();
    const stream = d.client.subscribe({ sessionId: id, afterSeq: 0n, follow: true }, { signal: abort.signal, headers: { traceparent: caller.header } });
    for await (const message of stream) {
      if (message.events.some((e) => e.payload.case === "turnEnded")) break;
    }
    expect(spansOf(caller.traceId)).toEqual([]);
    abort.abort();
    const [span] = await awaitSpans(caller.traceId, 1);
    expect(span?.name).toBe("hotplex.v1.SessionService/Subscribe");
    expect(span?.attributes["rpc.connect_rpc.error_code"]).toBe("canceled");
  });

  it("starts a new trace for a missing or hostile traceparent instead of trusting it", async () => {
    const valid = callerTrace();
    const hostile = [
      valid.header.toUpperCase(),
      `ff-${valid.traceId}-${valid.spanId}-01`,
      `00-${"0".repeat(32)}-${valid.spanId}-01`,
      `00-${valid.traceId}-${"0".repeat(16)}-01`,
      `${valid.header}-extra`,
      `00-${valid.traceId}-${valid.spanId}`,
      "x".repeat(8_000),
      "",
    ];
    const before = d.spans().length;
    for (const header of hostile) {
      const client = d.clientFor(undefined, "connect");
      await client.listSessions({}, header ? { headers: { traceparent: header } } : {});
    }
    await waitUntil(() => d.spans().length >= before + hostile.length, 5_000, "the spans of the hostile calls");
    const spans = d.spans().slice(before);
    expect(spans).toHaveLength(hostile.length);
    for (const span of spans) {
      expect(span.parentSpanContext).toBeUndefined();
      expect(span.spanContext().traceId).not.toBe(valid.traceId);
    }
    // A later version may append fields: it is read, the rest ignored.
    const future = callerTrace();
    await d.client.listSessions({}, { headers: { traceparent: `01-${future.traceId}-${future.spanId}-01-whatever` } });
    const [span] = await awaitSpans(future.traceId, 1);
    expect(parentOf(span!)).toBe(future.spanId);
  });

  it("exports nothing for a caller that asked not to be sampled, and still logs its trace id", async () => {
    const caller = callerTrace(false);
    const client = d.clientFor(undefined, "connect");
    await client.listSessions({}, { headers: { traceparent: caller.header } });
    await afterDeferred();
    const line = d.records.findLast((record) => record.msg === "rpc" && record.rpc === "SessionService.ListSessions");
    expect(line?.trace_id).toBe(caller.traceId);
    expect(spansOf(caller.traceId)).toEqual([]);
  });
});

describe("tracing without an exporter", () => {
  it("creates no span and no provider, yet hands the caller's trace id to the turn's log line", async () => {
    const d = await startObservedDaemon({ providerInstances: [new FakeProvider("fake")], tracing: false });
    try {
      expect(d.observability.tracing).toBeUndefined();
      const caller = callerTrace();
      await executeEvents(d.client.execute({ sessionId: "plain", prompt: "hi", config: FAKE }, { headers: { traceparent: caller.header } }));
      await afterDeferred();
      expect(d.spans()).toEqual([]);
      const turnLine = d.records.find((record) => record.msg === "turn ended");
      expect(turnLine).toMatchObject({ session: "plain", tenant: "default", outcome: "completed", trace_id: caller.traceId });
    } finally {
      await d.close();
    }
  });
});
