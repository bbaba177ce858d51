// One log line per RPC (method, code, duration, caller, tenant, session, trace id) and, at
// debug, one per turn (session, outcome, trace id), captured from pino; hostile session ids and trace
// headers stay out of them or are cut short.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/health/v1/health_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { FakeProvider } from "../fixtures/fake-provider.js";
import { afterDeferred, executeEvents, testToken, waitUntil } from "../harness.js";
import { type ObservedDaemon, startObservedDaemon } from "./observed-daemon.js";

const TOKEN = testToken("rpc-log");
const FAKE = { provider: "fake" };

function traceparent() {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

describe("the log lines of RPCs and turns", () => {
  let d: ObservedDaemon;
  const rpcLines = (rpc: string) => d.records.filter((record) => record.msg === "rpc" && record.rpc === rpc);

  beforeAll(async () => {
    d = await startObservedDaemon({
      providerInstances: [new FakeProvider("fake")],
      credentials: [{ name: "app", tenant: "acme", roles: ["client"], tokenSha256: hashToken(TOKEN) }],
      token: TOKEN,
    });
  });
  afterAll(async () => {
    await d?.close();
  });

  it("writes one line per RPC with its session, tenant, caller, code, duration and the caller's trace id", async () => {
    const trace = traceparent();
    const before = d.records.length;
    await executeEvents(d.client.execute({ sessionId: "log-1", prompt: "hi", config: FAKE }, { headers: { traceparent: trace.header } }));
    await d.client.getSnapshot({ sessionId: "log-1" }, { headers: { traceparent: trace.header } });
    await afterDeferred();
    const lines = d.records.slice(before).filter((record) => record.msg === "rpc");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      rpc: "SessionService.Execute",
      code: "ok",
      principal: "app",
      tenant: "acme",
      session: "log-1",
      trace_id: trace.traceId,
      span_id: trace.spanId,
    });
    expect(lines[0]?.messages).toBeGreaterThan(0);
    expect(typeof lines[0]?.ms).toBe("number");
    expect(lines[1]).toMatchObject({ rpc: "SessionService.GetSnapshot", code: "ok", session: "log-1", trace_id: trace.traceId });
  });

  it("writes one line per turn at debug with the session, its outcome and the trace id of the Execute that started it", async () => {
    const trace = traceparent();
    const events = await executeEvents(d.client.execute({ sessionId: "log-2", prompt: "hi", config: FAKE }, { headers: { traceparent: trace.header } }));
    await afterDeferred();
    const turnLines = d.records.filter((record) => record.msg === "turn ended" && record.session === "log-2");
    expect(turnLines).toHaveLength(1);
    expect(turnLines[0]).toMatchObject({ tenant: "acme", turn: events[0]?.turnId, provider: "fake", outcome: "completed", start: "cold", trace_id: trace.traceId });
    // A turn without a trace has a line all the same.
    await executeEvents(d.client.execute({ sessionId: "log-2", prompt: "again" }));
    await afterDeferred();
    const again = d.records.filter((record) => record.msg === "turn ended" && record.session === "log-2");
    expect(again).toHaveLength(2);
    expect(again[1]).toMatchObject({ outcome: "completed", start: "hot" });
    expect(again[1]?.trace_id).toBeUndefined();
  });

  it("writes no turn line and no health probe's line at info: the Execute line is the turn's line there", async () => {
    const info = await startObservedDaemon({ providerInstances: [new FakeProvider("fake")], logLevel: "info" });
    try {
      await executeEvents(info.client.execute({ sessionId: "log-info", prompt: "hi", config: FAKE }));
      await executeEvents(info.client.execute({ sessionId: "log-info", prompt: "again" }));
      const health = createClient(Health, createConnectTransport({ baseUrl: info.url, httpVersion: "1.1" }));
      await health.check({ service: "" });
      await afterDeferred();
      expect(info.records.filter((record) => record.msg === "rpc" && record.rpc === "SessionService.Execute")).toHaveLength(2);
      expect(info.records.some((record) => record.msg === "turn ended")).toBe(false);
      expect(info.records.some((record) => record.rpc === "Health.Check")).toBe(false);
    } finally {
      await info.close();
    }
  });

  it("logs health probes at debug", async () => {
    const health = createClient(Health, createConnectTransport({ baseUrl: d.url, httpVersion: "1.1" }));
    await health.check({ service: "" });
    await afterDeferred();
    expect(d.records.findLast((record) => record.rpc === "Health.Check")).toMatchObject({ level: 20, code: "ok" });
  });

  it("logs the final code of a failed call, and of a stream the client cancelled", async () => {
    const error = await d.client.getSnapshot({ sessionId: "log-missing" }).catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    await afterDeferred();
    expect(rpcLines("SessionService.GetSnapshot").at(-1)).toMatchObject({ code: "not_found", session: "log-missing", tenant: "acme" });

    await executeEvents(d.client.execute({ sessionId: "log-3", prompt: "hi", config: FAKE }));
    const abort = new AbortController();
    for await (const message of d.client.subscribe({ sessionId: "log-3", afterSeq: 0n, follow: true }, { signal: abort.signal })) {
      if (message.events.some((e) => e.payload.case === "turnEnded")) break;
    }
    abort.abort();
    // The server logs the stream once it sees the cancel, a moment after the client.
    const line = () => rpcLines("SessionService.Subscribe").find((record) => record.session === "log-3");
    await waitUntil(() => line() !== undefined, 5_000, "the Subscribe line");
    expect(line()).toMatchObject({ code: "canceled", session: "log-3" });
    expect(line()?.messages).toBeGreaterThan(0);
  });

  it("cuts a hostile session id short, keeps the line one line, and ignores an invalid traceparent", async () => {
    const hostile = `${"A".repeat(10_000)}\n{"msg":"forged"}`;
    const error = await d.client.getSnapshot({ sessionId: hostile }, { headers: { traceparent: `00-${"g".repeat(32)}-${"0".repeat(16)}-01` } }).catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    await afterDeferred();
    const line = rpcLines("SessionService.GetSnapshot").at(-1);
    expect(line?.code).toBe("invalid_argument");
    expect(line?.session).toBe(`${"A".repeat(128)}…`);
    expect(line?.trace_id).toBeUndefined();
    expect(d.records.some((record) => record.msg === "forged")).toBe(false);
  });

  it("logs an unauthenticated call without a caller, and with the session it named", async () => {
    const error = await d.clientFor("wrong-token-0123456789abcdef").getSnapshot({ sessionId: "log-1" }).catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.Unauthenticated);
    const line = rpcLines("SessionService.GetSnapshot").at(-1);
    expect(line).toMatchObject({ code: "unauthenticated" });
    expect(line?.principal).toBeUndefined();
  });
});

describe("log lines with metrics off and no exporter", () => {
  it("still carry the caller's trace id on RPC lines; no turn lines are written (nothing observes events)", async () => {
    const d = await startObservedDaemon({ providerInstances: [new FakeProvider("fake")], metrics: false });
    try {
      const trace = traceparent();
      await executeEvents(d.client.execute({ sessionId: "quiet", prompt: "hi", config: FAKE }, { headers: { traceparent: trace.header } }));
      await afterDeferred();
      expect(d.records.find((record) => record.msg === "rpc" && record.rpc === "SessionService.Execute")).toMatchObject({
        session: "quiet",
        trace_id: trace.traceId,
        code: "ok",
      });
      expect(d.records.some((record) => record.msg === "turn ended")).toBe(false);
    } finally {
      await d.close();
    }
  });
});
