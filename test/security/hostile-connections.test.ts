import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import zlib from "node:zlib";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { executeEvents, isAlive, rssBytes, testToken, transportFor } from "../harness.js";
import { closedByServer, connect, exchange, statusOf } from "./raw-http.js";

const TOKEN = testToken("raw");
const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS_FRAME = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

// A gzip body of 1 GiB of zeros: about 1 MB on the wire.
async function gzipBomb(): Promise<Buffer> {
  const zero = Buffer.alloc(64 * 1024);
  let left = 16 * 1024;
  const source = new Readable({
    read() {
      this.push(left-- > 0 ? zero : null);
    },
  });
  const chunks: Buffer[] = [];
  for await (const chunk of source.pipe(zlib.createGzip({ level: 9 }))) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function post(pathname: string, headers: Record<string, string>, body: Buffer, version = "1.1"): Buffer {
  const lines = [`POST ${pathname} HTTP/${version}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `Content-Length: ${body.length}`];
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), body]);
}

describe("requests no client library would send", () => {
  let dir: string;
  let daemon: DaemonProcess;
  let client: ReturnType<typeof createClient<typeof SessionService>>;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hotplex-raw-"));
    daemon = await startDaemonProcess(dir, [], { HOTPLEX_TOKEN: TOKEN, HOTPLEX_STORE: "memory" });
    client = createClient(SessionService, transportFor(daemon.url, "connect", TOKEN));
  });
  afterAll(() => {
    killDaemonProcesses();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ["HTTP/1.0 with no Host header", "1.0", {}],
    ["HTTP/1.1 with an empty Host header", "1.1", { Host: "" }],
    ["HTTP/1.1 with a Host that is no authority", "1.1", { Host: "a b/c" }],
  ])("answers %s and goes on serving", async (_what, version, host) => {
    const request = post("/hotplex.v1.SessionService/ListSessions", { "Content-Type": "application/json", ...host }, Buffer.from("{}"), version);
    const unauthenticated = await exchange(daemon.url, request);
    expect(statusOf(unauthenticated.response)).toBe(401);
    const authorized = await exchange(
      daemon.url,
      post("/hotplex.v1.SessionService/ListSessions", { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}`, ...host }, Buffer.from("{}"), version),
    );
    expect(statusOf(authorized.response)).toBe(200);
    expect(isAlive(daemon.child.pid!)).toBe(true);
    expect((await client.listSessions({})).sessions).toBeDefined();
  });

  it("never inflates a compressed body without a valid credential, and bounds it with one", async () => {
    const bomb = await gzipBomb();
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    const before = rssBytes(daemon.child.pid!);
    const headers = { Host: "x", "Content-Type": "application/json", "Content-Encoding": "gzip" };
    for (let i = 0; i < 3; i += 1) {
      const anonymous = await exchange(daemon.url, post("/hotplex.v1.SessionService/ListSessions", headers, bomb));
      expect(statusOf(anonymous.response)).toBe(401);
    }
    const authorized = await exchange(
      daemon.url,
      post("/hotplex.v1.SessionService/GetSnapshot", { ...headers, Authorization: `Bearer ${TOKEN}` }, bomb),
    );
    // RESOURCE_EXHAUSTED: the inflated message is larger than the request limit.
    expect(statusOf(authorized.response)).toBe(429);
    expect(authorized.response).toContain("resource_exhausted");
    // Also on a streaming method, where connect reads the body itself.
    const gzipped = Buffer.concat([Buffer.from([1]), Buffer.alloc(4), bomb]);
    gzipped.writeUInt32BE(bomb.length, 1);
    const streaming = await exchange(
      daemon.url,
      post("/hotplex.v1.SessionService/Subscribe", {
        Host: "x",
        "Content-Type": "application/connect+proto",
        "Connect-Content-Encoding": "gzip",
        Authorization: `Bearer ${TOKEN}`,
      }, gzipped),
    );
    expect(streaming.response).toContain("resource_exhausted");
    const grown = rssBytes(daemon.child.pid!) - before;
    expect(grown).toBeLessThan(96 * 1024 * 1024);
    expect((await client.listSessions({})).sessions).toBeDefined();
  });
});

describe("connections that never finish", () => {
  let dir: string;
  let daemon: DaemonProcess;
  const MAX_CONNECTIONS = 40;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hotplex-slow-"));
    daemon = await startDaemonProcess(dir, [], {
      HOTPLEX_STORE: "memory",
      HOTPLEX_HANDSHAKE_TIMEOUT: "300ms",
      HOTPLEX_HEADERS_TIMEOUT: "400ms",
      HOTPLEX_REQUEST_TIMEOUT: "600ms",
      HOTPLEX_CONNECTION_IDLE_TIMEOUT: "700ms",
      HOTPLEX_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
    });
  });
  afterAll(() => {
    killDaemonProcesses();
    rmSync(dir, { recursive: true, force: true });
  });

  it("closes a connection that sends nothing", async () => {
    const socket = await connect(daemon.url);
    await closedByServer(socket, 5_000);
  });

  it("closes a connection that stops in the middle of the HTTP/2 preface", async () => {
    const socket = await connect(daemon.url);
    socket.write(H2_PREFACE.slice(0, 10));
    await closedByServer(socket, 5_000);
  });

  it("closes an HTTP/1.1 connection that drips its headers a byte at a time", async () => {
    const socket = await connect(daemon.url);
    socket.write("POST /hotplex.v1.SessionService/ListSessions HTTP/1.1\r\nHost: x\r\n");
    const drip = setInterval(() => socket.writable && socket.write("X"), 50);
    try {
      await closedByServer(socket, 5_000);
    } finally {
      clearInterval(drip);
    }
  });

  it("closes an HTTP/1.1 connection whose body never arrives", async () => {
    const socket = await connect(daemon.url);
    socket.write("POST /hotplex.v1.SessionService/ListSessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{");
    await closedByServer(socket, 5_000);
  });

  it("closes an HTTP/2 connection that sends its preface and settings, then nothing", async () => {
    const socket = await connect(daemon.url);
    socket.write(Buffer.concat([Buffer.from(H2_PREFACE), SETTINGS_FRAME]));
    await closedByServer(socket, 5_000);
  });

  it("closes an HTTP/2 connection whose header block never ends", async () => {
    const socket = await connect(daemon.url);
    // HEADERS on stream 1 without END_HEADERS, then no CONTINUATION: no stream ever opens.
    const headers = Buffer.from([0, 0, 1, 1, 0, 0, 0, 0, 1, 0x83]);
    socket.write(Buffer.concat([Buffer.from(H2_PREFACE), SETTINGS_FRAME, headers]));
    await closedByServer(socket, 5_000);
  });

  it("closes an idle keep-alive connection after its last response", async () => {
    const socket = await connect(daemon.url);
    socket.write(post("/hotplex.v1.SessionService/ListSessions", { Host: "x", "Content-Type": "application/json" }, Buffer.from("{}")));
    await closedByServer(socket, 5_000);
  });

  it(`accepts at most ${MAX_CONNECTIONS} connections at once and closes the ones beyond`, async () => {
    const sockets = await Promise.all(Array.from({ length: MAX_CONNECTIONS + 20 }, () => connect(daemon.url)));
    const closed = sockets.map(() => false);
    sockets.forEach((socket, i) => socket.once("close", () => (closed[i] = true)));
    try {
      // The extra ones are closed as they arrive, long before any timeout.
      await new Promise<void>((resolve) => {
        const check = () => (closed.filter(Boolean).length >= 20 ? resolve() : setTimeout(check, 10));
        check();
      });
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    // Once they are gone the slots free up again: the server notices each close on its own time,
    // so retry until a fresh connection is served (the cap itself answers with a closed connection).
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    for (let attempt = 0; ; attempt += 1) {
      try {
        await client.listSessions({});
        break;
      } catch (error) {
        if (attempt > 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  });

  it("keeps a following stream with no events open past the idle timeout", async () => {
    const client = createClient(SessionService, transportFor(daemon.url, "grpc"));
    await executeEvents(client.execute({ sessionId: "quiet", prompt: "hi" }));
    const snapshot = await client.getSnapshot({ sessionId: "quiet" });
    const abort = new AbortController();
    const stream = client.subscribe({ sessionId: "quiet", afterSeq: snapshot.lastSeq, follow: true }, { signal: abort.signal })[Symbol.asyncIterator]();
    await stream.next(); // the header
    // Three idle timeouts with nothing sent (a fixed wait: checking that nothing happens).
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const turn = executeEvents(client.execute({ sessionId: "quiet", prompt: "again" }));
    const next = await stream.next();
    expect(next.done).toBe(false);
    expect(next.value?.events.length).toBeGreaterThan(0);
    await turn;
    abort.abort();
    await stream.return?.().catch(() => undefined);
  });

  it("still serves after all of it", async () => {
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    await expect(client.getSnapshot({ sessionId: "missing" })).rejects.toSatisfy((e) => e instanceof ConnectError && e.code === Code.NotFound);
  });
});
