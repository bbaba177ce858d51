// A seeded fuzz suite: thousands of mutated requests over Connect JSON, Connect binary,
// Connect streaming, gRPC and gRPC-Web, plus raw-socket cases, against one daemon process.
// Afterwards the daemon must serve, its memory must be bounded, and a session started
// before the fuzzing must be intact. HOTPLEX_FUZZ_SEED replays a run; HOTPLEX_FUZZ_CASES
// changes its size.
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { collect, executeEvents, isAlive, rssBytes, testToken, transportFor, turnEndOf } from "../harness.js";
import { exchange } from "./raw-http.js";

const SEED = Number(process.env.HOTPLEX_FUZZ_SEED ?? 20261201);
const CASES = Number(process.env.HOTPLEX_FUZZ_CASES ?? 3600);
const TOKEN = testToken("fuzz");

// mulberry32: small, fast, reproducible.
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const METHODS = [...SessionService.methods, ...AdminService.methods];
type Protocol = "connect-json" | "connect-proto" | "connect-stream" | "grpc" | "grpc-web" | "raw";

class Fuzzer {
  readonly random: () => number;
  constructor(seed: number) {
    this.random = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.random() < p;
  }

  // A value for a string field: often valid, often hostile.
  string(): string {
    return this.pick([
      () => "",
      () => `fuzz-${this.int(50)}`,
      () => "before-fuzz",
      () => "../../etc",
      () => "a\u0000b",
      () => "x".repeat(this.pick([129, 300, 5000, 100_000])),
      () => "\ud800\udfff\u202e\ufffd",
      () => "--settings={}",
      () => "/",
      () => ".",
      () => String.fromCharCode(...Array.from({ length: 20 }, () => this.int(0x3000))),
    ])();
  }

  // A JSON value of any shape, for JSON bodies.
  json(depth = 0): unknown {
    const kind = this.int(depth > 3 ? 5 : 8);
    switch (kind) {
      case 0:
        return this.string();
      case 1:
        return this.pick([0, -1, 1.5, 2 ** 53 + 1, 1e308, -0]);
      case 2:
        return this.pick(["18446744073709551615", "18446744073709551616", "-1", "1e400", "0x10"]);
      case 3:
        return this.chance(0.5);
      case 4:
        return null;
      case 5:
        return Array.from({ length: this.int(4) }, () => this.json(depth + 1));
      default: {
        const fields = ["sessionId", "prompt", "requestId", "config", "queue", "afterSeq", "follow", "incarnation", "tenant", "limit", "afterId",
          "graceSeconds", "deleteTranscript", "workDir", "model", "permissionMode", "allowedTools", "idleTimeoutSeconds", "bogus"];
        return Object.fromEntries(Array.from({ length: this.int(5) }, () => [this.pick(fields), this.json(depth + 1)]));
      }
    }
  }

  // A well-formed message of the method's input, with hostile field values, encoded.
  message(input: DescMessage): Uint8Array {
    const init: Record<string, unknown> = {};
    for (const field of input.fields) {
      if (!this.chance(0.6)) continue;
      if (field.fieldKind === "scalar") {
        switch (field.scalar) {
          case 9: // string
            init[field.localName] = field.localName === "sessionId" && this.chance(0.3) ? `fuzz-${this.int(20)}` : this.string();
            break;
          case 8: // bool
            init[field.localName] = this.chance(0.5);
            break;
          case 4: // uint64
            init[field.localName] = this.pick([0n, 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]);
            break;
          case 13: // uint32
            init[field.localName] = this.pick([0, 1, 2_147_484, 4_294_967_295]);
            break;
          default:
            break;
        }
      }
    }
    // Executes of valid sessions would start agents: keep those rare.
    if (input.typeName === "hotplex.v1.ExecuteRequest" && this.chance(0.9)) init.prompt = "";
    return toBinary(input, create(input, init as never));
  }

  mutate(bytes: Uint8Array): Uint8Array {
    const out = Buffer.from(bytes);
    switch (this.int(6)) {
      case 0:
        return out;
      case 1: // flip bytes
        for (let i = 0; i < 1 + this.int(4) && out.length > 0; i += 1) out[this.int(out.length)] = this.int(256);
        return out;
      case 2: // truncate
        return out.subarray(0, this.int(out.length + 1));
      case 3: // extend with garbage
        return Buffer.concat([out, Buffer.from(Array.from({ length: 1 + this.int(16) }, () => this.int(256)))]);
      case 4: // random bytes
        return Buffer.from(Array.from({ length: this.int(64) }, () => this.int(256)));
      default: // a field announcing more than follows
        return Buffer.concat([out, Buffer.from([0x0a, 0xff, 0xff, 0x03])]);
    }
  }

  envelope(payload: Uint8Array): Buffer {
    const flags = this.pick([0, 0, 0, 1, 2, 0x80, 0xff]);
    const length = this.chance(0.85) ? payload.length : this.pick([0, payload.length + 10, 0xffffffff, 2 ** 30]);
    const head = Buffer.alloc(5);
    head[0] = flags;
    head.writeUInt32BE(length >>> 0, 1);
    return Buffer.concat([head, payload]);
  }

  authorization(): string | undefined {
    return this.pick([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`, `Bearer ${TOKEN}`, `bearer ${TOKEN}`, undefined, "Bearer wrong-token-0123456789", "Basic x", "Bearer"]);
  }
}

/** The error code a response carries, as a name, or "ok". */
type Outcome = string;

function connectUnaryOutcome(status: number, body: string): Outcome {
  if (status === 200) return "ok";
  try {
    return (JSON.parse(body) as { code?: string }).code ?? `http ${status}`;
  } catch {
    return `http ${status}`;
  }
}

describe("a fuzzing of every protocol", () => {
  let scratch: string;
  let daemon: DaemonProcess;
  let before: Event[];
  const outcomes = new Map<string, number>();
  const internal: string[] = [];
  const count = (protocol: Protocol, outcome: Outcome, what: string) => {
    const key = `${protocol} ${outcome}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    if (/^(internal|unknown|13|2|http 500)$/.test(outcome)) internal.push(`${protocol}: ${what}`);
  };

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-fuzz-"));
    daemon = await startDaemonProcess(scratch, [], {
      HOTPLEX_TOKEN: TOKEN,
      HOTPLEX_STORE: "memory",
      HOTPLEX_MAX_SESSIONS: "4",
      HOTPLEX_SANDBOX: "off",
    });
    const client = createClient(SessionService, transportFor(daemon.url, "connect", TOKEN));
    await executeEvents(client.execute({ sessionId: "before-fuzz", prompt: "remember FUZZ" }));
    before = (await collect(client.subscribe({ sessionId: "before-fuzz" }))).flatMap((m) => m.events);
  });
  afterAll(() => {
    killDaemonProcesses();
    rmSync(scratch, { recursive: true, force: true });
  });

  it(`survives ${CASES} mutated requests (seed ${SEED}) with no internal error, no hang, bounded memory`, { timeout: 120_000 }, async () => {
    const fuzz = new Fuzzer(SEED);
    const rssBefore = rssBytes(daemon.child.pid!);
    const url = new URL(daemon.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const h2 = http2.connect(daemon.url);
    h2.on("error", () => undefined);

    // A response that started but goes on (a following Subscribe, a turn that waits) is a
    // working stream: it is left after OPEN_MS. One that never starts is a hang.
    const OPEN_MS = 2_000;
    const h1 = (pathname: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: url.hostname, port: url.port, path: pathname, method: "POST", headers, agent, timeout: 10_000 }, (res) => {
          const chunks: Buffer[] = [];
          const open = setTimeout(() => {
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("latin1") });
            req.destroy();
          }, OPEN_MS);
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            clearTimeout(open);
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("latin1") });
          });
          res.on("error", () => undefined);
        });
        req.on("timeout", () => req.destroy(new Error(`no answer within 10 s: ${pathname}`)));
        req.on("error", (error) => (error.message.startsWith("no answer") ? reject(error) : undefined));
        req.end(body);
      });

    const grpc = (pathname: string, headers: Record<string, string>, body: Buffer): Promise<string> =>
      new Promise((resolve, reject) => {
        const stream = h2.request({ ":method": "POST", ":path": pathname, te: "trailers", ...headers });
        let status: string | undefined;
        const timer = setTimeout(() => {
          stream.close();
          reject(new Error(`no gRPC answer within 10 s: ${pathname} ${JSON.stringify(headers)} body ${body.toString("hex").slice(0, 200)}`));
        }, 10_000);
        let httpStatus = 0;
        stream.on("response", (h) => {
          httpStatus = Number(h[":status"] ?? 0);
          status = (h["grpc-status"] as string | undefined) ?? status;
          // Headers without a status: a stream that runs; left after a while.
          if (status === undefined) setTimeout(() => ((status ??= "open stream"), stream.close()), OPEN_MS);
        });
        stream.on("trailers", (t) => (status = (t["grpc-status"] as string | undefined) ?? status));
        stream.on("close", () => {
          clearTimeout(timer);
          resolve(status ?? (httpStatus && httpStatus !== 200 ? `http ${httpStatus}` : `rst ${stream.rstCode}`));
        });
        stream.on("error", () => {});
        stream.resume();
        stream.end(body);
      });

    const oneCase = async (i: number) => {
      const method = fuzz.pick(METHODS);
      const pathname = fuzz.chance(0.97) ? `/${method.parent.typeName}/${method.name}` : fuzz.pick(["/", "//x", "/hotplex.v1.SessionService/Nope", "/%00"]);
      const auth = fuzz.authorization();
      const authHeader: Record<string, string> = auth ? { authorization: auth } : {};
      const streaming = method.methodKind !== "unary";
      const protocol = fuzz.pick<Protocol>(["connect-json", "connect-proto", "connect-stream", "grpc", "grpc", "grpc-web", "raw"]);
      const payload = fuzz.mutate(fuzz.message(method.input));
      const compress = fuzz.chance(0.1);
      const what = `case ${i} ${pathname}`;
      if (process.env.HOTPLEX_FUZZ_TRACE) process.stdout.write(`case ${i} ${protocol} ${pathname}\n`);
      switch (protocol) {
        case "connect-json": {
          const text = Buffer.from(fuzz.chance(0.8) ? JSON.stringify(fuzz.json()) : fuzz.string());
          const body = compress ? zlib.gzipSync(text) : text;
          if (streaming) {
            const res = await h1(pathname, { "content-type": "application/connect+json", ...authHeader }, fuzz.envelope(body));
            count(protocol, res.status === 200 ? streamOutcome(res.body) : connectUnaryOutcome(res.status, res.body), what);
          } else {
            const headers = { "content-type": "application/json", ...authHeader, ...(compress ? { "content-encoding": "gzip" } : {}) };
            const res = await h1(pathname, headers, body);
            count(protocol, connectUnaryOutcome(res.status, res.body), what);
          }
          break;
        }
        case "connect-proto":
        case "connect-stream": {
          const body = compress ? zlib.gzipSync(payload) : Buffer.from(payload);
          if (streaming || protocol === "connect-stream") {
            const headers = { "content-type": "application/connect+proto", ...authHeader, ...(compress ? { "connect-content-encoding": "gzip" } : {}) };
            const res = await h1(pathname, headers, fuzz.envelope(body));
            count(protocol, res.status === 200 ? streamOutcome(res.body) : connectUnaryOutcome(res.status, res.body), what);
          } else {
            const headers = { "content-type": "application/proto", ...authHeader, ...(compress ? { "content-encoding": "gzip" } : {}) };
            const res = await h1(pathname, headers, body);
            count(protocol, connectUnaryOutcome(res.status, res.body), what);
          }
          break;
        }
        case "grpc": {
          const contentType = fuzz.pick(["application/grpc", "application/grpc+proto", "application/grpc+json", "application/grpcx"]);
          const body = contentType.endsWith("json") ? Buffer.from(JSON.stringify(fuzz.json())) : Buffer.from(payload);
          const envelope = fuzz.envelope(body);
          count(protocol, await grpc(pathname, { "content-type": contentType, ...authHeader }, envelope), `${what} ${contentType} ${envelope.toString("hex").slice(0, 80)}`);
          break;
        }
        case "grpc-web": {
          const envelope = fuzz.envelope(payload);
          const res = await h1(pathname, { "content-type": "application/grpc-web+proto", ...authHeader }, envelope);
          const status = /grpc-status:\s*(\d+)/.exec(res.body)?.[1] ?? (res.status === 200 ? "0" : `http ${res.status}`);
          count(protocol, status, `${what} ${envelope.toString("hex").slice(0, 80)} ${/grpc-message:([^\r]*)/.exec(res.body)?.[1] ?? ""}`);
          break;
        }
        case "raw": {
          const request = fuzz.pick([
            () => `POST ${pathname} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
            () => `POST ${pathname} HTTP/1.1\r\nHost:\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`,
            () => `${fuzz.string().slice(0, 200)}\r\n\r\n`,
            () => "PRI * HTTP/2.0\r\n\r\nSM",
            () => `GET ${pathname} HTTP/1.1\r\nHost: x\r\n\r\n`,
            () => `POST ${pathname} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nzzz\r\n`,
          ])();
          const { response } = await exchange(daemon.url, request, 3_000);
          const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);
          count(protocol, status === 500 ? "http 500" : `http ${status}`, what);
          break;
        }
      }
    };

    let next = 0;
    const worker = async () => {
      while (next < CASES) await oneCase(next++);
    };
    await Promise.all(Array.from({ length: Number(process.env.HOTPLEX_FUZZ_WORKERS ?? 12) }, worker));
    agent.destroy();
    h2.close();

    const table = [...outcomes].sort().map(([key, n]) => `  ${key.padEnd(40)} ${n}`);
    process.stdout.write(`\nFuzzing, seed ${SEED}, ${CASES} cases (protocol, outcome, count):\n${table.join("\n")}\n`);
    expect(internal, `internal errors:\n${internal.slice(0, 20).join("\n")}`).toEqual([]);
    expect(isAlive(daemon.child.pid!)).toBe(true);
    expect(rssBytes(daemon.child.pid!) - rssBefore).toBeLessThan(200 * 1024 * 1024);
  });

  it("still serves afterwards, with the session started before intact", async () => {
    const client = createClient(SessionService, transportFor(daemon.url, "connect", TOKEN));
    const after = (await collect(client.subscribe({ sessionId: "before-fuzz" }))).flatMap((m) => m.events);
    expect(after.map((e) => [e.seq, e.payload.case])).toEqual(before.map((e) => [e.seq, e.payload.case]));
    const next = await executeEvents(client.execute({ sessionId: "before-fuzz", prompt: "[[history]]" }));
    expect(turnEndOf(next).outcome).toBe(1);
  });
});

// The code of a Connect streaming response's end-stream message (the last envelope, flag 0x02).
function streamOutcome(body: string): Outcome {
  const match = /"code":"([a-z_]+)"/.exec(body.slice(-2000));
  return match?.[1] ?? "ok";
}
