// A seeded fuzz suite against one daemon process: thousands of mutated requests over
// Connect (JSON and binary unary, streaming, also over h2c), gRPC (h2c) and gRPC-Web, and
// raw-socket requests that break HTTP itself. No request may get an internal error or
// hang, the daemon must stay up with bounded memory, and a session from before the fuzzing
// must come out of it untouched and still serving.
//
// Every case comes from one seed (printed): HOTPLEX_FUZZ_SEED replays a run exactly,
// HOTPLEX_FUZZ_CASES changes its size, HOTPLEX_FUZZ_ONLY=12,345 sends only those cases
// (by the ids the summary prints), HOTPLEX_FUZZ_REPORT=<file> writes every case's outcome
// there, one JSON line each.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import zlib from "node:zlib";
import { equals } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Event, EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { executeEvents, isAlive, rssBytes, testToken, textOf, transportFor, turnEndOf } from "../harness.js";
import { caseCounts, describeCase, type FuzzCase, fingerprint, generateCases, type HttpCase, type ProtocolName, type RawCase, type ResponseFraming } from "./fuzz-cases.js";

const DEFAULT_SEED = 0x5eed2026;
const SEED = parseSeed(process.env.HOTPLEX_FUZZ_SEED) ?? DEFAULT_SEED;
const TOTAL = Number(process.env.HOTPLEX_FUZZ_CASES ?? 4800);
const ONLY = (process.env.HOTPLEX_FUZZ_ONLY ?? "")
  .split(",")
  .filter((s) => s.trim() !== "")
  .map(Number);
const TOKEN = testToken("fuzz");
const PROTECTED = "before-fuzz";
const CONCURRENCY = 12;
// Every request must be answered (or its connection closed) within this.
const REQUEST_TIMEOUT_MS = 5_000;
const MiB = 1024 * 1024;

function parseSeed(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const seed = Number(value);
  if (!Number.isSafeInteger(seed)) throw new Error(`HOTPLEX_FUZZ_SEED must be an integer, not ${JSON.stringify(value)}`);
  return seed >>> 0;
}

// ---------------------------------------------------------------- outcomes

interface Outcome {
  /** The Connect code ("invalid_argument"), gRPC status by name, "http-415", "closed", "timeout", ... */
  code: string;
  /** A server-side internal error: HTTP 500, internal or unknown. */
  bad: boolean;
  timedOut: boolean;
  /** Something about the response that is off, though not an internal error. */
  anomaly?: string;
  ms: number;
  note?: string;
}

type Verdict = Omit<Outcome, "ms">;

const GRPC_CODES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];
const INTERNAL = new Set(["internal", "unknown"]);

type Headers = Record<string, string | string[] | number | undefined>;

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value === undefined ? undefined : String(value);
}

function envelopesOf(body: Buffer): { messages: { flags: number; data: Buffer }[]; truncated: boolean } {
  const messages: { flags: number; data: Buffer }[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (body.length - offset < 5) return { messages, truncated: true };
    const flags = body[offset] ?? 0;
    const length = body.readUInt32BE(offset + 1);
    if (offset + 5 + length > body.length) return { messages, truncated: true };
    messages.push({ flags, data: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return { messages, truncated: false };
}

function inflated(data: Buffer, flags: number, encoding: string | undefined): Buffer {
  if ((flags & 1) === 0) return data;
  return encoding === "br" ? zlib.brotliDecompressSync(data) : zlib.gunzipSync(data);
}

// A Connect error response: its JSON code and message, else its HTTP status.
function connectError(status: number, headers: Headers, body: Buffer): { code: string; message?: string } {
  if ((header(headers, "content-type") ?? "").startsWith("application/json")) {
    try {
      const parsed = JSON.parse(body.toString("utf8")) as { code?: unknown; message?: unknown };
      if (typeof parsed.code === "string") return { code: parsed.code, message: typeof parsed.message === "string" ? parsed.message : undefined };
    } catch {
      // not JSON after all
    }
  }
  return { code: `http-${status}` };
}

function grpcMessage(headers: Headers, trailers: Headers): string | undefined {
  const message = header(trailers, "grpc-message") ?? header(headers, "grpc-message");
  if (message === undefined) return undefined;
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

// Which protocol answered is read from the response: a request may carry one protocol's
// content type on another's path and transport (the daemon answers by content type).
function responseFraming(requested: ResponseFraming, headers: Headers): ResponseFraming | undefined {
  const type = (header(headers, "content-type") ?? "").toLowerCase();
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  if (type.startsWith("application/connect+")) return "connect-stream";
  if (type.startsWith("application/json") || type.startsWith("application/proto")) return "connect-unary";
  return type === "" ? requested : undefined;
}

function classify(requested: ResponseFraming, status: number, headers: Headers, trailers: Headers, body: Buffer): Verdict {
  const outcome = (code: string, anomaly?: string, message?: string): Verdict => {
    const bad = status === 500 || INTERNAL.has(code);
    return { code, bad, timedOut: false, anomaly, note: bad ? (message ?? body.subarray(0, 200).toString("utf8")) : undefined };
  };
  const connectOutcome = () => {
    const { code, message } = connectError(status, headers, body);
    return outcome(code, undefined, message);
  };
  const framing = responseFraming(requested, headers);
  switch (framing) {
    case undefined:
      return outcome(`http-${status}`, status === 200 ? `HTTP 200 with content type ${header(headers, "content-type")}` : undefined);
    case "connect-unary":
      return status === 200 ? outcome("ok") : connectOutcome();
    case "connect-stream": {
      if (status !== 200) return connectOutcome();
      const { messages, truncated } = envelopesOf(body);
      const end = messages.find((m) => (m.flags & 2) !== 0);
      if (!end) return outcome("no-end-stream", truncated ? "truncated stream" : "stream without end-stream message");
      try {
        const json = JSON.parse(inflated(end.data, end.flags, header(headers, "connect-content-encoding")).toString("utf8")) as {
          error?: { code?: string; message?: string };
        };
        return outcome(json.error ? (json.error.code ?? "error-without-code") : "ok", undefined, json.error?.message);
      } catch (error) {
        return outcome("bad-end-stream", `end-stream message is no JSON: ${(error as Error).message}`);
      }
    }
    case "grpc": {
      if (status !== 200) return outcome(`http-${status}`);
      const grpcStatus = header(trailers, "grpc-status") ?? header(headers, "grpc-status");
      if (grpcStatus === undefined) return outcome("no-grpc-status", "response without grpc-status");
      return outcome(GRPC_CODES[Number(grpcStatus)] ?? `grpc-${grpcStatus}`, undefined, grpcMessage(headers, trailers));
    }
    case "grpc-web": {
      if (status !== 200) return outcome(`http-${status}`);
      let grpcStatus = header(headers, "grpc-status");
      let message = grpcMessage(headers, {});
      if (grpcStatus === undefined) {
        const text = (header(headers, "content-type") ?? "").includes("grpc-web-text");
        const { messages } = envelopesOf(text ? Buffer.from(body.toString("latin1"), "base64") : body);
        const trailer = messages.find((m) => (m.flags & 0x80) !== 0)?.data.toString("latin1") ?? "";
        grpcStatus = /grpc-status:\s*(\d+)/i.exec(trailer)?.[1];
        const encoded = /grpc-message:\s*([^\r\n]*)/i.exec(trailer)?.[1];
        if (encoded !== undefined) message = grpcMessage({ "grpc-message": encoded }, {});
      }
      if (grpcStatus === undefined) return outcome("no-grpc-status", "response without grpc-status");
      return outcome(GRPC_CODES[Number(grpcStatus)] ?? `grpc-${grpcStatus}`, undefined, message);
    }
  }
}

function timedOut(): Verdict {
  return { code: "timeout", bad: false, timedOut: true };
}

// ---------------------------------------------------------------- senders

function withTimer(run: (finish: (outcome: Verdict) => void, onTimeout: (cancel: () => void) => void) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let settled = false;
    let cancel = () => {};
    const timer = setTimeout(() => {
      cancel();
      finish(timedOut());
    }, REQUEST_TIMEOUT_MS);
    function finish(outcome: Verdict) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...outcome, ms: performance.now() - started });
    }
    run(finish, (c) => (cancel = c));
  });
}

function sendH1(base: URL, agent: http.Agent, c: HttpCase): Promise<Outcome> {
  return withTimer((finish, onTimeout) => {
    let req: http.ClientRequest;
    try {
      req = http.request({
        host: base.hostname,
        port: base.port,
        method: c.httpMethod,
        path: c.path,
        agent,
        headers: c.httpMethod === "POST" ? { ...c.headers, "content-length": String(c.body.length) } : c.headers,
      });
    } catch (error) {
      finish({ code: "not-sent", bad: false, timedOut: false, anomaly: `client refused: ${(error as Error).message}` });
      return;
    }
    onTimeout(() => req.destroy());
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => finish(classify(c.framing, res.statusCode ?? 0, res.headers, res.trailers, Buffer.concat(chunks))));
      res.on("error", () => undefined);
      res.on("close", () => {
        if (!res.complete) {
          const partial = classify(c.framing, res.statusCode ?? 0, res.headers, {}, Buffer.concat(chunks));
          finish({ ...partial, anomaly: `connection closed in the middle of the response (${partial.code})` });
        }
      });
    });
    // The server may answer early and close while the body is still on its way.
    req.on("error", (error: NodeJS.ErrnoException) => finish({ code: "reset", bad: false, timedOut: false, note: error.code ?? error.message }));
    req.end(c.body);
  });
}

/** A few HTTP/2 connections, each replaced when the server closes it. */
class H2Connections {
  readonly #url: string;
  readonly #sessions: (http2.ClientHttp2Session | undefined)[] = [undefined, undefined, undefined];
  #turn = 0;
  goaways = 0;
  constructor(url: string) {
    this.#url = url;
  }
  /** A connection of its own, closed when its one stream ends. */
  dedicated(): http2.ClientHttp2Session {
    const session = http2.connect(this.#url);
    session.on("error", () => undefined);
    session.on("goaway", () => (this.goaways += 1));
    return session;
  }
  get(): http2.ClientHttp2Session {
    const i = this.#turn++ % this.#sessions.length;
    let session = this.#sessions[i];
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(this.#url);
      session.on("error", () => undefined);
      session.on("goaway", () => (this.goaways += 1));
      this.#sessions[i] = session;
    }
    return session;
  }
  close(): void {
    for (const session of this.#sessions) session?.destroy();
  }
}

// Cases that a connection pays for beyond their own stream get a connection of their own:
// malformed header blocks count against the connection's rejected-stream allowance, and a
// large body against its memory (both make Node refuse later streams on it).
function needsOwnConnection(c: HttpCase): boolean {
  return c.body.length > MiB || ":authority" in c.headers || !c.path.startsWith("/");
}

function sendH2(connections: H2Connections, c: HttpCase): Promise<Outcome> {
  return withTimer((finish, onTimeout) => {
    let stream: http2.ClientHttp2Stream;
    const own = needsOwnConnection(c) ? connections.dedicated() : undefined;
    try {
      stream = (own ?? connections.get()).request({ ":method": c.httpMethod, ":path": c.path, ...c.headers }, { endStream: c.httpMethod === "GET" });
    } catch (error) {
      own?.destroy();
      finish({ code: "not-sent", bad: false, timedOut: false, anomaly: `client refused: ${(error as Error).message}` });
      return;
    }
    if (own) stream.once("close", () => own.destroy());
    onTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL));
    let status = 0;
    let headers: Headers = {};
    let trailers: Headers = {};
    let ended = false;
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"] ?? 0);
      headers = h as Headers;
    });
    stream.on("trailers", (t) => (trailers = t as Headers));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => (ended = true));
    stream.on("error", () => undefined);
    stream.on("close", () => {
      if (status === 0) {
        finish({ code: `h2-rst-${stream.rstCode}`, bad: false, timedOut: false, anomaly: stream.rstCode === 0 ? "stream closed without a response" : undefined });
        return;
      }
      const outcome = classify(c.framing, status, headers, trailers, Buffer.concat(chunks));
      if (!ended) finish({ ...outcome, anomaly: `stream reset (${stream.rstCode}) in the middle of the response (${outcome.code})` });
      else finish(outcome);
    });
    if (c.httpMethod === "POST") stream.end(c.body);
  });
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
// How long the server may keep a connection open after its GOAWAY (RFC 9113 §5.4.1: it
// closes the connection after a connection error).
const GOAWAY_CLOSE_MS = 1_000;

// The error code of the first GOAWAY among the server's HTTP/2 frames, if one arrived.
function goawayOf(bytes: Buffer): number | undefined {
  let offset = 0;
  while (offset + 9 <= bytes.length) {
    const length = bytes.readUIntBE(offset, 3);
    const type = bytes[offset + 3];
    if (type === 7 && offset + 9 + 8 <= bytes.length) return bytes.readUInt32BE(offset + 9 + 4);
    offset += 9 + length;
  }
  return undefined;
}

// Raw bytes on a fresh connection: one HTTP/1.x response (1xx ones skipped), an HTTP/2
// GOAWAY, or the server closing the connection, within the timeout.
function sendRaw(url: URL, c: RawCase): Promise<Outcome> {
  const h2 = c.bytes.subarray(0, H2_PREFACE.length).equals(H2_PREFACE);
  return withTimer((finish, onTimeout) => {
    const socket = net.connect(Number(url.port), url.hostname);
    onTimeout(() => socket.destroy());
    let response = Buffer.alloc(0);
    let goaway: number | undefined;
    let lingering: NodeJS.Timeout | undefined;
    const done = (closed: boolean) => {
      clearTimeout(lingering);
      if (goaway !== undefined) {
        finish({ code: `h2-goaway-${goaway}`, bad: false, timedOut: false, anomaly: closed ? undefined : `connection left open ${GOAWAY_CLOSE_MS} ms after GOAWAY` });
        return;
      }
      const text = finalResponse(response.toString("latin1"));
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      const code = status > 0 ? `http-${status}` : response.length > 0 ? "non-http-bytes" : "closed";
      const expected = c.expectStatus === undefined || c.expectStatus.includes(status);
      finish({
        code,
        bad: status === 500,
        timedOut: false,
        anomaly: expected ? undefined : `expected HTTP ${c.expectStatus?.join(" or ")}, got ${code}`,
      });
    };
    socket.on("data", (chunk: Buffer) => {
      response = Buffer.concat([response, chunk]);
      if (h2) {
        if (goaway === undefined) {
          goaway = goawayOf(response);
          if (goaway !== undefined) {
            lingering = setTimeout(() => {
              socket.destroy();
              done(false);
            }, GOAWAY_CLOSE_MS);
          }
        }
      } else if (complete(finalResponse(response.toString("latin1")))) {
        socket.destroy();
        done(false);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => done(true));
    socket.on("connect", () => socket.write(c.bytes));
  });
}

function finalResponse(text: string): string {
  let rest = text;
  while (/^HTTP\/1\.[01] 1\d\d /.test(rest)) {
    const end = rest.indexOf("\r\n\r\n");
    if (end === -1) return rest;
    rest = rest.slice(end + 4);
  }
  return rest;
}

function complete(text: string): boolean {
  const end = text.indexOf("\r\n\r\n");
  if (end === -1 || !text.startsWith("HTTP/")) return false;
  const head = text.slice(0, end);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) return Buffer.byteLength(text, "latin1") - end - 4 >= Number(length[1]);
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return text.endsWith("\r\n0\r\n\r\n");
  return false;
}

async function inPool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

// ---------------------------------------------------------------- reporting

interface Result {
  c: FuzzCase;
  outcome: Outcome;
}

function summary(results: Result[]): string {
  const byProtocol = new Map<ProtocolName, Map<string, number>>();
  for (const { c, outcome } of results) {
    const codes = byProtocol.get(c.protocol) ?? new Map<string, number>();
    codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1);
    byProtocol.set(c.protocol, codes);
  }
  const lines = ["protocol        cases  outcomes"];
  for (const [protocol, codes] of [...byProtocol].sort(([a], [b]) => a.localeCompare(b))) {
    const total = [...codes.values()].reduce((a, b) => a + b, 0);
    const shown = [...codes].sort((a, b) => b[1] - a[1]).map(([code, n]) => `${code}=${n}`);
    lines.push(`${protocol.padEnd(15)} ${String(total).padStart(5)}  ${shown.join(" ")}`);
  }
  const ms = results.map((r) => r.outcome.ms).sort((a, b) => a - b);
  const at = (q: number) => Math.round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0);
  lines.push(`latency ms: p50 ${at(0.5)}, p90 ${at(0.9)}, p99 ${at(0.99)}, max ${at(1)}`);
  return lines.join("\n");
}

function listed(title: string, results: Result[], limit = 25): string {
  if (results.length === 0) return `${title}: none`;
  const lines = results.slice(0, limit).map(({ c, outcome }) => `  ${outcome.code}${outcome.anomaly ? ` (${outcome.anomaly})` : ""}${outcome.note ? ` [${outcome.note}]` : ""}: ${describeCase(c)}`);
  if (results.length > limit) lines.push(`  … and ${results.length - limit} more`);
  return `${title}: ${results.length}\n${lines.join("\n")}`;
}

// ---------------------------------------------------------------- the suite

async function subscribeAll(client: ReturnType<typeof createClient<typeof SessionService>>, sessionId: string): Promise<Event[]> {
  const events: Event[] = [];
  for await (const message of client.subscribe({ sessionId, afterSeq: 0n })) events.push(...message.events);
  return events;
}

describe(`fuzzing every protocol (seed ${SEED})`, () => {
  let dir: string;
  let daemon: DaemonProcess;
  let client: ReturnType<typeof createClient<typeof SessionService>>;
  let baseline: Event[];
  let exited = false;
  const serverErrors: string[] = [];
  const serverCodes = new Map<string, number>();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hotplex-fuzz-"));
    // Symlinks and a file in the tenant's work root, for work_dir values that lead out of it.
    const tenantRoot = path.join(dir, "work", "default");
    mkdirSync(tenantRoot, { recursive: true });
    symlinkSync("/", path.join(tenantRoot, "escape"));
    symlinkSync("loop", path.join(tenantRoot, "loop"));
    symlinkSync(path.join(dir, "nowhere", "at-all"), path.join(tenantRoot, "dangling"));
    symlinkSync("..", path.join(tenantRoot, "up"));
    writeFileSync(path.join(tenantRoot, "afile"), "not a directory\n");
    daemon = await startDaemonProcess(dir, [], {
      HOTPLEX_TOKEN: TOKEN,
      HOTPLEX_STORE: "memory",
      // Few agents at once: fuzzed Execute calls that create sessions hit the limit instead.
      HOTPLEX_MAX_SESSIONS: "10",
      // Connections that never finish a request are closed well within a case's timeout.
      HOTPLEX_HANDSHAKE_TIMEOUT: "2s",
      HOTPLEX_HEADERS_TIMEOUT: "2s",
      HOTPLEX_REQUEST_TIMEOUT: "3s",
    });
    void daemon.exit.then(() => (exited = true));
    createInterface({ input: daemon.child.stdout! }).on("line", (line) => {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        serverErrors.push(`not JSON: ${line.slice(0, 200)}`);
        return;
      }
      if (typeof record.code === "string") serverCodes.set(record.code, (serverCodes.get(record.code) ?? 0) + 1);
      if (typeof record.level === "number" && record.level >= 50) {
        const err = record.err as { message?: string; type?: string } | undefined;
        serverErrors.push(`${String(record.msg)}${record.rpc ? ` (${String(record.rpc)})` : ""}${err ? `: ${err.type ?? ""} ${err.message ?? ""}` : ""}`.slice(0, 300));
      }
    });
    client = createClient(SessionService, transportFor(daemon.url, "connect", TOKEN));
    const events = await executeEvents(client.execute({ sessionId: PROTECTED, prompt: "before the fuzzing" }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    baseline = await subscribeAll(client, PROTECTED);
    expect(baseline.length).toBeGreaterThan(0);
  });

  afterAll(() => {
    killDaemonProcesses();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers thousands of mutated requests without an internal error or a hang, in bounded memory", async () => {
    const started = performance.now();
    const context = { token: TOKEN, protectedSession: PROTECTED };
    const all = generateCases(SEED, TOTAL, context);
    const print = fingerprint(all);
    // The same seed gives the same cases, byte for byte.
    expect(fingerprint(generateCases(SEED, TOTAL, context))).toBe(print);
    const cases = ONLY.length > 0 ? all.filter((c) => ONLY.includes(c.id)) : all;
    console.log(
      `fuzz seed ${SEED} (HOTPLEX_FUZZ_SEED=${SEED} replays it), ${cases.length} cases, fingerprint ${print}, ` +
        `per protocol ${JSON.stringify(caseCounts(TOTAL))}, generated in ${Math.round(performance.now() - started)} ms`,
    );
    if (ONLY.length === 0 && process.env.HOTPLEX_FUZZ_CASES === undefined) expect(cases.length).toBeGreaterThanOrEqual(3000);

    const pid = daemon.child.pid!;
    const rssBefore = rssBytes(pid);
    let rssPeak = rssBefore;
    let deadSeen = false;
    const monitor = setInterval(() => {
      if (!isAlive(pid)) deadSeen = true;
      else rssPeak = Math.max(rssPeak, rssBytes(pid));
    }, 200);

    const base = new URL(daemon.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const h2 = new H2Connections(daemon.url);
    const results: Result[] = [];
    const fuzzStarted = performance.now();
    try {
      await inPool(cases, CONCURRENCY, async (c) => {
        const outcome = c.kind === "raw" ? await sendRaw(base, c) : c.kind === "h1" ? await sendH1(base, agent, c) : await sendH2(h2, c);
        results.push({ c, outcome });
      });
    } finally {
      clearInterval(monitor);
      agent.destroy();
      h2.close();
    }
    const fuzzMs = performance.now() - fuzzStarted;
    const rssAfter = rssBytes(pid);

    const internal = results.filter((r) => r.outcome.bad);
    const hangs = results.filter((r) => r.outcome.timedOut);
    const anomalies = results.filter((r) => r.outcome.anomaly !== undefined);
    const resets = results.filter((r) => r.outcome.code.startsWith("h2-rst-"));
    const internalKinds = new Map<string, number>();
    for (const r of internal) {
      const kind = `${r.c.protocol} ${r.c.method}: ${r.outcome.code} "${(r.outcome.note ?? "").trim().slice(0, 100)}"`;
      internalKinds.set(kind, (internalKinds.get(kind) ?? 0) + 1);
    }
    // A credential the daemon must refuse never gets a call through...
    const admittedWithout = results.filter((r) => r.c.kind !== "raw" && (r.c.auth === "missing" || r.c.auth === "wrong") && r.outcome.code === "ok");
    // ...and the right token in any spelling of the scheme is never refused.
    const refusedVariant = results.filter((r) => r.c.kind !== "raw" && r.c.auth === "variant" && r.outcome.code === "unauthenticated");
    // A plain request with a bad credential is UNAUTHENTICATED, whatever its body holds.
    const unauthenticatedExpected = results.filter(
      (r) => r.c.kind !== "raw" && r.c.sane && (r.c.auth === "missing" || r.c.auth === "wrong") && r.outcome.code !== "unauthenticated" && r.outcome.code !== "reset",
    );
    if (process.env.HOTPLEX_FUZZ_REPORT) {
      const lines = [...results]
        .sort((a, b) => a.c.id - b.c.id)
        .map(({ c, outcome }) => JSON.stringify({ id: c.id, protocol: c.protocol, method: c.method, what: c.what, ...outcome, ms: Math.round(outcome.ms), request: describeCase(c) }));
      writeFileSync(process.env.HOTPLEX_FUZZ_REPORT, `${lines.join("\n")}\n`);
    }
    const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
    console.log(
      [
        `fuzz: ${results.length} cases in ${(fuzzMs / 1000).toFixed(1)} s (${CONCURRENCY} in flight)`,
        summary(results),
        `daemon rss: before ${mib(rssBefore)}, peak ${mib(rssPeak)}, after ${mib(rssAfter)}; h2 GOAWAYs received ${h2.goaways}`,
        `daemon's own log, codes of RPCs: ${JSON.stringify(Object.fromEntries(serverCodes))}`,
        listed("internal/unknown errors", internal),
        `internal/unknown errors by protocol, method and message:\n  ${[...internalKinds].sort((x, y) => y[1] - x[1]).map(([k, n]) => `${n} × ${k}`).join("\n  ")}`,
        listed("HTTP/2 streams reset without a response", resets),
        listed("hangs (no answer within 5 s)", hangs),
        listed("anomalies", anomalies),
        listed("calls admitted without a valid credential", admittedWithout),
        listed("valid token refused for its spelling", refusedVariant),
        listed("bad credential not answered UNAUTHENTICATED", unauthenticatedExpected),
        serverErrors.length === 0 ? "daemon error log: empty" : `daemon error log (${serverErrors.length}):\n  ${[...new Set(serverErrors)].slice(0, 20).join("\n  ")}`,
      ].join("\n"),
    );

    expect(results.length).toBe(cases.length);
    expect(deadSeen || exited, "the daemon died during the fuzzing").toBe(false);
    expect(isAlive(pid)).toBe(true);
    // Soft: every property is checked and reported, whichever fails first.
    expect.soft(internal.map((r) => describeCase(r.c)), "responses with an internal error").toEqual([]);
    expect.soft(hangs.map((r) => describeCase(r.c)), "requests without an answer within their timeout").toEqual([]);
    expect.soft(admittedWithout.map((r) => describeCase(r.c)), "calls admitted without a valid credential").toEqual([]);
    expect.soft(refusedVariant.map((r) => describeCase(r.c)), "valid token refused for its spelling").toEqual([]);
    expect.soft(unauthenticatedExpected.map((r) => describeCase(r.c)), "bad credentials not answered UNAUTHENTICATED").toEqual([]);
    expect.soft(rssAfter - rssBefore, "daemon RSS growth").toBeLessThan(200 * MiB);
  }, 120_000);

  it("still serves afterwards, with the session from before the fuzzing untouched", async () => {
    expect(exited).toBe(false);
    expect(isAlive(daemon.child.pid!)).toBe(true);
    const after = await subscribeAll(client, PROTECTED);
    expect(after.map((e) => [e.seq, e.payload.case])).toEqual(baseline.map((e) => [e.seq, e.payload.case]));
    after.forEach((event, i) => expect(equals(EventSchema, event, baseline[i] as Event)).toBe(true));
    const turn = await executeEvents(client.execute({ sessionId: PROTECTED, prompt: "after the fuzzing" }));
    expect(turnEndOf(turn).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(turn)).toContain("echo: after the fuzzing");
    expect(turn[0]?.seq).toBe(BigInt(baseline.length + 1));
    // And over gRPC too.
    const grpc = createClient(SessionService, transportFor(daemon.url, "grpc", TOKEN));
    const snapshot = await grpc.getSnapshot({ sessionId: PROTECTED });
    // The turn's events, then the StatusChanged (READY) logged right after its end.
    expect(snapshot.lastSeq).toBe(BigInt(baseline.length + turn.length + 1));
  }, 60_000);
});
