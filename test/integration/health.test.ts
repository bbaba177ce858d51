import http from "node:http";
import http2 from "node:http2";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/health/v1/health_pb.js";
import { type Event, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { executeEvents, startTestDaemon, type TestDaemon, testToken, transportFor } from "../harness.js";

const TOKEN = testToken("health");
const daemons: TestDaemon[] = [];

async function daemon(options: Parameters<typeof startTestDaemon>[0] = {}): Promise<TestDaemon> {
  const started = await startTestDaemon({ token: TOKEN, ...options });
  daemons.push(started);
  return started;
}

afterEach(async () => {
  vi.restoreAllMocks();
  for (const started of daemons.splice(0)) await started.close().catch(() => undefined);
});

// No credential at all: what a Kubernetes probe sends.
const transports: Record<string, (url: string) => Transport> = {
  connect: (url) => createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
  grpc: (url) => createGrpcTransport({ baseUrl: url }),
  "grpc-web": (url) => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }),
};

async function codeOf(call: () => Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call();
    return "ok";
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

/** Starts a turn and reads its stream until the agent is answering; the rest is read on. */
async function runningTurn(client: TestDaemon["client"], sessionId: string, prompt: string) {
  const stream = client.execute({ sessionId, prompt })[Symbol.asyncIterator]();
  const events: Event[] = [];
  while (!events.some((e) => e.payload.case === "textDelta")) {
    const next = await stream.next();
    if (next.done) throw new Error("the turn ended before it answered");
    events.push(...next.value.events);
  }
  let ended = false;
  const rest = (async () => {
    for (let r = await stream.next(); !r.done; r = await stream.next()) events.push(...r.value.events);
    ended = true;
    const end = events.at(-1);
    if (end?.payload.case !== "turnEnded") throw new Error(`the turn's stream ended with ${end?.payload.case}`);
    return end.payload.value;
  })();
  return { rest, ended: () => ended };
}

async function probe(url: string, path: string, init: RequestInit = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(new URL(path, url), init);
  return { status: response.status, text: await response.text(), headers: response.headers };
}

describe("grpc.health.v1.Health", () => {
  it.each(Object.keys(transports))("answers Check over %s without a credential, on a daemon that requires one", async (protocol) => {
    const d = await daemon();
    const health = createClient(Health, transports[protocol]!(d.server.url));
    for (const service of ["", "hotplex.v1.SessionService", "hotplex.v1.AdminService"]) {
      expect((await health.check({ service })).status, service || '""').toBe(Status.SERVING);
    }
    // The same call with a wrong credential is answered too (a probe's header is no credential).
    const wrong = createClient(Health, transportFor(d.server.url, protocol === "grpc" ? "grpc" : "connect", "not-a-valid-token-0123456789"));
    expect((await wrong.check({ service: "" })).status).toBe(Status.SERVING);
    // While every other method still needs one.
    expect(await codeOf(() => createClient(SessionService, transports[protocol]!(d.server.url)).listSessions({}))).toBe(Code.Unauthenticated);
  });

  it("lists every service it reports on", async () => {
    const d = await daemon();
    const health = createClient(Health, transports.grpc!(d.server.url));
    const { statuses } = await health.list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([name, s]) => [name, s.status]))).toEqual({
      "": Status.SERVING,
      "hotplex.v1.SessionService": Status.SERVING,
      "hotplex.v1.AdminService": Status.SERVING,
    });
  });

  it("answers NOT_FOUND to Check of an unknown service, and SERVICE_UNKNOWN to Watch of one without ending the stream", async () => {
    const d = await daemon();
    const health = createClient(Health, transports.grpc!(d.server.url));
    for (const service of ["hotplex.v1.Nope", "grpc.health.v1.Health", " ", "x".repeat(2000), "\u0000\uffff"]) {
      const error = await health.check({ service }).catch((e: unknown) => ConnectError.from(e));
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.NotFound);
      expect((error as ConnectError).rawMessage).toMatch(/unknown service .*hotplex\.v1\.SessionService/);
      // The name is echoed bounded.
      expect((error as ConnectError).rawMessage.length).toBeLessThan(400);
    }
    const abort = new AbortController();
    const watch = health.watch({ service: "hotplex.v1.Nope" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(Status.SERVICE_UNKNOWN);
    // Still open: the next message would come with a change.
    const pending = watch.next();
    const outcome = await Promise.race([pending.then(() => "message"), new Promise((resolve) => setImmediate(() => resolve("open")))]);
    expect(outcome).toBe("open");
    abort.abort();
    await pending.catch(() => undefined);
  });

  it("refuses an oversized or malformed health request with a clear code, credential or not", async () => {
    const d = await daemon();
    const health = createClient(Health, transports.grpc!(d.server.url));
    expect(await codeOf(() => health.check({ service: "x".repeat(8192) }))).toBe(Code.ResourceExhausted);
    // Watch is a stream: connect itself bounds its request by the service's limit.
    expect(await codeOf(async () => {
      for await (const _ of health.watch({ service: "x".repeat(8192) })) break;
    })).toBe(Code.ResourceExhausted);
    const connect = createClient(Health, transports.connect!(d.server.url));
    expect(await codeOf(() => connect.check({ service: "y".repeat(8192) }))).toBe(Code.ResourceExhausted);
    // Not a protobuf message at all, over the Connect protocol's unary form.
    const garbage = await fetch(new URL("/grpc.health.v1.Health/Check", d.server.url), {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]),
    });
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { code: string }).code).toBe("invalid_argument");
    const badJson = await fetch(new URL("/grpc.health.v1.Health/Check", d.server.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"service": 12',
    });
    expect(((await badJson.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("reports NOT_SERVING when the store stops answering, and SERVING once it answers again", async () => {
    const d = await daemon();
    const health = createClient(Health, transports.connect!(d.server.url));
    const spy = vi.spyOn(d.engine.store, "ping").mockImplementation(async () => {
      throw new Error("disk I/O error");
    });
    expect((await health.check({ service: "" })).status).toBe(Status.NOT_SERVING);
    const ready = await probe(d.server.url, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.text).toBe("not ready: store unusable\n");
    spy.mockRestore();
    // The probe result is kept a second at most: a flood of probes is not a flood of queries.
    await vi.waitFor(async () => expect((await health.check({ service: "" })).status).toBe(Status.SERVING), { timeout: 3_000, interval: 100 });
  });
});

describe("a drain", () => {
  it("flips health first: Watch sees NOT_SERVING and /readyz 503 while the running turn goes on; new turns get UNAVAILABLE; the turn finishes within the grace", async () => {
    const d = await daemon();
    const client = d.clientFor("grpc");
    const health = createClient(Health, transports.grpc!(d.server.url));
    const abort = new AbortController();
    const watch = health.watch({ service: "hotplex.v1.SessionService" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(Status.SERVING);
    expect((await probe(d.server.url, "/readyz")).status).toBe(200);
    await executeEvents(client.execute({ sessionId: "idle", prompt: "warm" }));

    // About a second and a half of answer left after the first delta.
    const turn = await runningTurn(client, "busy", "[[chunks:4:500]] a b c d e f g h");
    const drained = d.engine.drain(20_000);

    expect((await watch.next()).value?.status).toBe(Status.NOT_SERVING);
    const ready = await probe(d.server.url, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.text).toBe("not ready: draining\n");
    const live = await probe(d.server.url, "/healthz");
    expect(live.status).toBe(200);
    expect(live.text).toBe("ok\n");
    expect((await health.check({ service: "" })).status).toBe(Status.NOT_SERVING);
    // All of that happened while the turn still ran.
    expect(turn.ended()).toBe(false);

    // No new session, and no new turn on a live one.
    const refused = await client.execute({ sessionId: "new", prompt: "hi" })[Symbol.asyncIterator]().next().catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unavailable);
    expect(await codeOf(() => client.execute({ sessionId: "idle", prompt: "again" })[Symbol.asyncIterator]().next())).toBe(Code.Unavailable);

    expect((await turn.rest).outcome).toBe(TurnOutcome.COMPLETED);
    // The drain then stopped every live agent: the finished one and the idle one.
    expect(await drained).toEqual({ turnsFinished: 1, sessionsStopped: 2 });
    // Once draining, always NOT_SERVING: the phase never goes back.
    expect((await health.check({ service: "" })).status).toBe(Status.NOT_SERVING);
    abort.abort();
  });

  it("stops the turns still running when the grace period ends", async () => {
    const d = await daemon();
    const client = d.clientFor("connect");
    const turn = await runningTurn(client, "stuck", "[[grandchild]] [[hang]]");
    const started = Date.now();
    const result = await d.engine.drain(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(result).toEqual({ turnsFinished: 0, sessionsStopped: 1 });
    expect((await turn.rest).outcome).toBe(TurnOutcome.STOPPED);
  });

  it("serves AdminService.Drain the same way: health flips before the drain returns", async () => {
    const d = await daemon({ credentials: [{ name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken(TOKEN) }] });
    const admin = createClient(AdminService, transportFor(d.server.url, "grpc", TOKEN));
    const health = createClient(Health, transports.grpc!(d.server.url));
    const abort = new AbortController();
    const watch = health.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(Status.SERVING);
    const drained = admin.drain({ graceSeconds: 1 });
    expect((await watch.next()).value?.status).toBe(Status.NOT_SERVING);
    expect(await drained).toMatchObject({ turnsFinished: 0, sessionsStopped: 0 });
    abort.abort();
  });

  it("ends every Watch with UNAVAILABLE at shutdown, after NOT_SERVING, so that none holds up the close", async () => {
    const d = await startTestDaemon({ token: TOKEN });
    const health = createClient(Health, transports.grpc!(d.server.url));
    const statuses: Status[] = [];
    const watched = (async () => {
      for await (const { status } of health.watch({ service: "" })) statuses.push(status);
    })().then(
      () => "ended ok",
      (e: unknown) => ConnectError.from(e),
    );
    await vi.waitFor(() => expect(statuses).toEqual([Status.SERVING]));
    const closing = Date.now();
    await d.close();
    const outcome = await watched;
    expect(statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(outcome).toBeInstanceOf(ConnectError);
    expect((outcome as ConnectError).code).toBe(Code.Unavailable);
    // Not cut by the listener's force-close timer.
    expect(Date.now() - closing).toBeLessThan(4_000);
  });
});

describe("/healthz and /readyz", () => {
  it("answer GET and HEAD without a credential, over HTTP/1.1 and HTTP/2", async () => {
    const d = await daemon();
    expect(await probe(d.server.url, "/healthz")).toMatchObject({ status: 200, text: "ok\n" });
    const ready = await probe(d.server.url, "/readyz?verbose=1");
    expect(ready).toMatchObject({ status: 200, text: "ready\n" });
    expect(ready.headers.get("cache-control")).toBe("no-store");
    const head = await probe(d.server.url, "/readyz", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    expect(head.headers.get("content-length")).toBe("6");

    const session = http2.connect(d.server.url);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/readyz", ":method": "GET" });
        let body = "";
        let status = 0;
        req.on("response", (headers) => (status = Number(headers[":status"])));
        req.setEncoding("utf8");
        req.on("data", (chunk: string) => (body += chunk));
        req.on("end", () => resolve({ status, body }));
        req.on("error", reject);
        req.end();
      });
      expect(answer).toEqual({ status: 200, body: "ready\n" });
    } finally {
      session.close();
    }
  });

  it("refuse other methods with 405, long paths with 414, and never read a body", async () => {
    const d = await daemon();
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const answer = await probe(d.server.url, "/readyz", { method, body: method === "OPTIONS" ? undefined : "x".repeat(100_000) });
      expect(answer.status, method).toBe(405);
      expect(answer.headers.get("allow")).toBe("GET, HEAD");
      expect(answer.text).toBe("/readyz answers GET and HEAD only\n");
    }
    expect((await probe(d.server.url, `/readyz?${"a".repeat(5000)}`)).status).toBe(414);
    expect((await probe(d.server.url, `/${"b".repeat(5000)}`)).status).toBe(414);
    for (const path of ["/__proto__", "/constructor", "/readyz/", "/READYZ", "/readyz%20", "/"]) {
      expect((await probe(d.server.url, path)).status, path).toBe(404);
    }
    // A GET that announces a megabyte of body is answered at once, without waiting for it,
    // and its connection is not reused for another request.
    const announced = await new Promise<{ status?: number; connection?: string; body: string }>((resolve, reject) => {
      const req = http.request(new URL("/readyz", d.server.url), { method: "GET", headers: { "content-length": "1000000" } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          resolve({ status: res.statusCode, connection: res.headers.connection, body });
          req.destroy();
        });
      });
      req.on("error", reject);
      req.write("x".repeat(1000));
    });
    expect(announced).toEqual({ status: 200, connection: "close", body: "ready\n" });
    // The daemon still answers after all of that.
    expect((await probe(d.server.url, "/healthz")).status).toBe(200);
  });

  it("serve extra routes beside the probes (the seam /metrics plugs into), and refuse one that would hide a probe", async () => {
    const { createServer } = await import("../../src/server/server.js");
    const d = await daemon();
    const { CredentialTable } = await import("../../src/security/credentials.js");
    const { pino } = await import("pino");
    const base = { engine: d.engine, logger: pino({ level: "silent" }), credentials: () => new CredentialTable([]), version: "test" };
    expect(() => createServer({ ...base, extraRoutes: { "/readyz": () => ({ status: 200, body: "mine" }) } })).toThrow(/readyz is served by hotplex/);
    const server = createServer({
      ...base,
      extraRoutes: {
        "/metrics": (req) => ({ status: 200, body: `m ${req.query}\n`, contentType: "text/plain; version=0.0.4" }),
        "/broken": () => Promise.reject(new Error("boom")),
      },
    });
    const { url } = await server.listen("127.0.0.1", 0);
    try {
      const metrics = await probe(url, "/metrics?x=1");
      expect(metrics).toMatchObject({ status: 200, text: "m x=1\n" });
      expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4");
      expect((await probe(url, "/broken")).status).toBe(500);
      expect((await probe(url, "/readyz")).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
