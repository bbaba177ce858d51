// What hotplex adds to one warm turn: the instant agent behind hotplexd (Connect over
// HTTP/1.1, gRPC over HTTP/2) against the same agent driven over a raw pipe.
//
//   node --import tsx bench/overhead.ts            (OVERHEAD_SAMPLES=600 by default)
//
// Each side runs its own warm agent process; rounds interleave the three sides in a
// random order, so machine noise hits them alike. Measured per turn:
//   - first event: Execute sent → first response message (hotplex); prompt line written →
//     first stdout line (raw);
//   - turn end: Execute sent → TurnEnded received (hotplex); prompt written → `result` line.
// Done once with the in-memory store and once with the durable default (sqlite, normal).
import type { Provider } from "../src/providers/provider.js";
import { ProviderRegistry, type ProviderSettings, providerSettings } from "../src/providers/registry.js";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import http from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import type { Event } from "../gen/hotplex/v1/event_pb.js";
import { SessionService, SubscribeResponseSchema } from "../gen/hotplex/v1/session_service_pb.js";
import { DEFAULT_TAIL_BOUNDS, type EngineConfig, engineConfig, type StoreConfig } from "../src/engine/config.js";
import { Engine } from "../src/engine/engine.js";
import type { SandboxSettings } from "../src/process/sandbox.js";
import { agentEnvironment } from "../src/security/env.js";
import { DEFAULT_CONNECTION_LIMITS, DualProtocolListener } from "../src/server/listener.js";
import { type BenchResult, isMain, report, repoRoot, type Row, serveEngine, summarize } from "./lib.js";
import { connectWireClient, envelope, grpcWireClient, type WireClient } from "./wire-client.js";

export const instantAgentPath = path.join(repoRoot, "bench", "fixtures", "instant-agent.mjs");

/** The flags hotplex starts Claude Code with (see the provider), for raw comparisons. */
export const AGENT_ARGS = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose", "--include-partial-messages"];

/** A prompt line in the form hotplex writes it (the SDK's form). */
export function promptLine(prompt: string): string {
  return JSON.stringify({ type: "user", session_id: "", message: { role: "user", content: [{ type: "text", text: prompt }] }, parent_tool_use_id: null });
}

export interface InProcessDaemon {
  url: string;
  engine: Engine;
  server: { url: string; close(): Promise<void> };
  scratch: string;
  home: string;
  close(): Promise<void>;
}

/**
 * hotplexd in this process on a free loopback port. Logs at info (the daemon's default)
 * into /dev/null, so the per-RPC log line is paid as in production.
 */
export async function startInProcessDaemon(options: {
  store: "memory" | "sqlite";
  claudePath: string;
  /** The agents' environment, given the daemon's private HOME (default: the allow-listed env). */
  agentEnv?: (home: string) => Record<string, string>;
  maxLiveSessions?: number;
  turnTimeoutMs?: number;
  /** The agents' sandbox (default: the daemon's, "auto"). */
  sandbox?: SandboxSettings;
  /** The providers to enable (default: Claude Code at claudePath). */
  providers?: ProviderSettings;
  /** Copied into every new session HOME (agent settings). */
  agentHomeTemplate?: string;
  /** Wraps each provider the settings create (instrumentation). */
  wrapProvider?: (provider: Provider) => Provider;
  /** The tenants' settings (default: the daemon's defaults, every built-in rule set on). */
  tenants?: EngineConfig["tenants"];
  /** Launch configs to keep agents started ahead of demand for. */
  prewarm?: EngineConfig["prewarm"];
}): Promise<InProcessDaemon> {
  const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-bench-"));
  const workRoot = path.join(scratch, "work");
  const home = path.join(scratch, "home");
  mkdirSync(workRoot, { recursive: true });
  mkdirSync(home, { recursive: true });
  const store: StoreConfig =
    options.store === "sqlite" ? { kind: "sqlite", dataDir: path.join(scratch, "data"), durability: "normal" } : { kind: "memory" };
  const config = engineConfig(
    {
      workRoot,
      stateRoot: path.join(scratch, "state"),
      store,
      agentEnv: options.agentEnv?.(home) ?? { ...agentEnvironment(process.env), HOME: home },
    },
    {
      providers: options.providers ?? providerSettings({ "claude-code": options.claudePath }),
      ...(options.agentHomeTemplate ? { agentHomeTemplate: options.agentHomeTemplate } : {}),
      maxLiveSessions: options.maxLiveSessions ?? 64,
      limits: { queueLimit: 16, turnTimeoutMs: options.turnTimeoutMs ?? 600_000, idleTimeoutMs: 0, stopGraceMs: 2_000 },
      logBounds: DEFAULT_TAIL_BOUNDS,
      ...(options.sandbox ? { sandbox: options.sandbox } : {}),
      ...(options.tenants ? { tenants: options.tenants } : {}),
      ...(options.prewarm ? { prewarm: options.prewarm } : {}),
    },
  );
  const logger = pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: true }));
  const engine = await Engine.open(
    config,
    logger,
    options.wrapProvider ? ProviderRegistry.fromSettings(config.providers).all.map(options.wrapProvider) : undefined,
  );
  const server = await serveEngine(engine, logger);
  return {
    url: server.url,
    engine,
    server,
    scratch,
    home,
    async close() {
      await server.close();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

export type SessionClient = Client<typeof SessionService>;

// The API is moving from one event per response message to batches of events; these two
// read either shape, so the benchmarks run against both.

/** The events of one ExecuteResponse (`events`, or the older single `event`). */
export function eventsOfExecute(response: object): Event[] {
  const r = response as { events?: Event[]; event?: Event };
  return r.events ?? (r.event ? [r.event] : []);
}

/** Whether one SubscribeResponse is the header, and its events. */
export function partsOfSubscribe(response: object): { header: boolean; events: Event[] } {
  const r = response as { header?: unknown; events?: Event[]; message?: { case?: string; value?: unknown } };
  if (r.message !== undefined) {
    return { header: r.message.case === "header", events: r.message.case === "event" ? [r.message.value as Event] : [] };
  }
  return { header: r.header !== undefined, events: r.events ?? [] };
}

/** The 1-minute load average now and at `startLoad`, for the notes (other jobs share the machine). */
export function loadNote(startLoad: number): string {
  return `Load average (1 min): ${startLoad.toFixed(1)} at start, ${(os.loadavg()[0] ?? NaN).toFixed(1)} at end, on ${os.cpus().length} cores shared with other jobs.`;
}

/** The code under test: commit, plus "-dirty" for uncommitted changes. */
export function revision(): string {
  try {
    return execFileSync("git", ["describe", "--always", "--dirty"], { cwd: repoRoot, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

export function connectClient(url: string): SessionClient {
  return createClient(SessionService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
}

export function grpcClient(url: string): SessionClient {
  return createClient(SessionService, createGrpcTransport({ baseUrl: url }));
}

export interface TurnTiming {
  /** ms from the call to the first response message (the first events). */
  firstMs: number;
  /** ms from the call to TurnEnded. */
  endMs: number;
  events: number;
  outcome: number;
}

/** One Execute, timed; the stream is read to its end. */
export async function timedExecute(client: SessionClient, sessionId: string, prompt: string, provider = ""): Promise<TurnTiming> {
  const t0 = performance.now();
  let firstMs = NaN;
  let endMs = NaN;
  let events = 0;
  let outcome = -1;
  for await (const response of client.execute({ sessionId, prompt, ...(provider ? { config: { provider } } : {}) })) {
    const now = performance.now();
    if (Number.isNaN(firstMs)) firstMs = now - t0;
    for (const event of eventsOfExecute(response)) {
      events += 1;
      if (event.payload.case === "turnEnded") {
        endMs = now - t0;
        outcome = event.payload.value.outcome;
      }
    }
  }
  if (Number.isNaN(endMs)) throw new Error(`Execute on ${sessionId} ended without TurnEnded`);
  return { firstMs, endMs, events, outcome };
}

/** The agent on a raw pipe: write a prompt line, time the first stdout line and the result line. */
export class RawAgent {
  readonly child: ChildProcess;
  #pending = "";
  #waiter: { t0: number; firstMs: number; resolve: (t: TurnTiming) => void; lines: number } | undefined;

  constructor(file: string, args: string[], options: { cwd: string; env: Record<string, string> }) {
    this.child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ["pipe", "pipe", "ignore"] });
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (chunk: string) => this.#onData(chunk));
  }

  #onData(chunk: string): void {
    const now = performance.now();
    let start = 0;
    let nl = chunk.indexOf("\n");
    while (nl !== -1) {
      const line = this.#pending + chunk.slice(start, nl);
      this.#pending = "";
      this.#onLine(line, now);
      start = nl + 1;
      nl = chunk.indexOf("\n", start);
    }
    this.#pending += chunk.slice(start);
  }

  #onLine(line: string, now: number): void {
    const w = this.#waiter;
    if (!w) return;
    w.lines += 1;
    if (Number.isNaN(w.firstMs)) w.firstMs = now - w.t0;
    if (line.startsWith('{"type":"result"')) {
      this.#waiter = undefined;
      w.resolve({ firstMs: w.firstMs, endMs: now - w.t0, events: w.lines, outcome: 1 });
    }
  }

  turn(prompt: string): Promise<TurnTiming> {
    return new Promise((resolve) => {
      this.#waiter = { t0: performance.now(), firstMs: NaN, resolve, lines: 0 };
      this.child.stdin!.write(promptLine(prompt) + "\n");
    });
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin!.end();
    await exited;
  }
}

// A turn that takes this long is stuck: the run stops with its side's name.
const TURN_LIMIT_MS = 30_000;

function bounded<T>(side: { name: string }, turn: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${side.name}: no answer within ${TURN_LIMIT_MS} ms`)), TURN_LIMIT_MS);
  });
  return Promise.race([turn, limit]).finally(() => clearTimeout(timer));
}

export function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

interface Side {
  name: string;
  /** A turn through hotplex, the raw pipe, the RPC floor, or a reference server's floor. */
  kind: "turn" | "raw" | "floor" | "reference";
  protocol: "connect" | "grpc" | "raw";
  turn: (prompt: string) => Promise<TurnTiming>;
  first: number[];
  end: number[];
}

type ClientGroup = "wire" | "connect-es";

async function measureStore(
  store: "memory" | "sqlite",
  group: ClientGroup,
  samples: number,
  warmup: number,
): Promise<{ rows: Row[]; notes: string[] }> {
  const daemon = await startInProcessDaemon({ store, claudePath: instantAgentPath });
  const rawDir = path.join(daemon.scratch, "raw");
  mkdirSync(rawDir, { recursive: true });
  const raw = new RawAgent(instantAgentPath, [...AGENT_ARGS, "--session-id", randomUUID()], {
    cwd: rawDir,
    env: { ...agentEnvironment(process.env), HOME: path.join(daemon.scratch, "home") },
  });
  const references = group === "wire" ? await startReferenceServers() : undefined;
  const closers: (() => unknown)[] = [];
  // The RPC floor: a streaming call through the same server stack (HTTP, Connect, the
  // auth/error/logging interceptors, the engine's subscribe) that answers one message and
  // ends, with no turn: what any streaming RPC costs before the agent is involved.
  let floorAfterSeq = 0n;
  const side = (name: string, protocol: Side["protocol"], turn: Side["turn"], kind: Side["kind"] = "turn"): Side => ({
    name,
    kind,
    protocol,
    turn,
    first: [],
    end: [],
  });
  const sides: Side[] = [side("raw pipe", "raw", (p) => raw.turn(p), "raw")];
  if (group === "wire") {
    const connectWire = connectWireClient(daemon.url);
    const grpcWire = grpcWireClient(daemon.url);
    closers.push(() => connectWire.close(), () => grpcWire.close());
    const wireFloor = (client: WireClient) => async (): Promise<TurnTiming> => {
      const t = await client.subscribe({ sessionId: "overhead-floor", afterSeq: floorAfterSeq, follow: false });
      return { firstMs: t.firstMs, endMs: t.endMs, events: 0, outcome: 0 };
    };
    const wireTurn = (client: WireClient, sessionId: string) => async (prompt: string): Promise<TurnTiming> => {
      const t = await client.execute({ sessionId, prompt });
      if (Number.isNaN(t.turnEndMs)) throw new Error(`Execute on ${sessionId} ended without TurnEnded`);
      return { firstMs: t.firstMs, endMs: t.turnEndMs, events: t.events, outcome: 1 };
    };
    sides.push(
      side("hotplex Connect (HTTP/1.1), wire client", "connect", wireTurn(connectWire, "overhead-connect-wire")),
      side("hotplex gRPC (HTTP/2), wire client", "grpc", wireTurn(grpcWire, "overhead-grpc-wire")),
      side("RPC floor, Connect, wire client", "connect", wireFloor(connectWire), "floor"),
      side("RPC floor, gRPC, wire client", "grpc", wireFloor(grpcWire), "floor"),
    );
    for (const reference of references ?? []) {
      const connectRef = connectWireClient(reference.url);
      const grpcRef = grpcWireClient(reference.url);
      closers.push(() => connectRef.close(), () => grpcRef.close());
      sides.push(
        side(`${reference.name}, Connect`, "connect", wireFloor(connectRef), "reference"),
        side(`${reference.name}, gRPC`, "grpc", wireFloor(grpcRef), "reference"),
      );
    }
  } else {
    const connect = connectClient(daemon.url);
    const grpc = grpcClient(daemon.url);
    const floor = (client: SessionClient) => async (): Promise<TurnTiming> => {
      const t0 = performance.now();
      let firstMs = NaN;
      for await (const _ of client.subscribe({ sessionId: "overhead-floor", afterSeq: floorAfterSeq, follow: false })) {
        if (Number.isNaN(firstMs)) firstMs = performance.now() - t0;
      }
      return { firstMs, endMs: performance.now() - t0, events: 0, outcome: 0 };
    };
    sides.push(
      side("hotplex Connect (HTTP/1.1), connect-es client", "connect", (p) => timedExecute(connect, "overhead-connect", p)),
      side("hotplex gRPC (HTTP/2), connect-es client", "grpc", (p) => timedExecute(grpc, "overhead-grpc", p)),
      side("RPC floor, Connect, connect-es client", "connect", floor(connect), "floor"),
      side("RPC floor, gRPC, connect-es client", "grpc", floor(grpc), "floor"),
    );
  }
  try {
    await timedExecute(connectClient(daemon.url), "overhead-floor", "the floor session's one turn");
    floorAfterSeq = (await connectClient(daemon.url).getSnapshot({ sessionId: "overhead-floor" })).lastSeq;
    // The first hotplex turn is cold (spawns the agent); then everyone warms up.
    for (let i = 0; i < warmup; i += 1) for (const side of sides) await bounded(side, side.turn(`warmup ${i}`));
    for (let i = 0; i < samples; i += 1) {
      for (const side of shuffle(sides)) {
        const t = await bounded(side, side.turn(`sample ${i}`));
        side.first.push(t.firstMs);
        side.end.push(t.endMs);
      }
    }
  } finally {
    for (const close of closers) close();
    await references?.close();
    await raw.close();
    await daemon.close();
  }
  const rawSide = sides[0]!;
  const rawFirst = summarize(rawSide.first);
  const rawEnd = summarize(rawSide.end);
  const rows: Row[] = [];
  const notes: string[] = [];
  const floorOf = (side: Side) => sides.find((f) => f.kind === "floor" && f.protocol === side.protocol);
  for (const side of sides) {
    const first = summarize(side.first);
    const end = summarize(side.end);
    const isTurn = side.kind === "turn";
    const floorEnd = isTurn ? summarize(floorOf(side)!.end) : undefined;
    rows.push({
      store,
      clients: group,
      side: side.name,
      n: end.n,
      "first event p50 ms": first.median,
      "first event p99 ms": first.p99,
      "turn end p50 ms": end.median,
      "turn end p99 ms": end.p99,
      "added p50 ms (turn end)": isTurn ? end.median - rawEnd.median : "—",
      "added p99 ms (turn end)": isTurn ? end.p99 - rawEnd.p99 : "—",
      "added p50 ms (first event)": isTurn ? first.median - rawFirst.median : "—",
      "added p99 ms (first event)": isTurn ? first.p99 - rawFirst.p99 : "—",
      "added p50 ms beyond the RPC floor": floorEnd ? end.median - rawEnd.median - floorEnd.median : "—",
    });
    if (isTurn && floorEnd) {
      const addP50 = end.median - rawEnd.median;
      const addP99 = end.p99 - rawEnd.p99;
      notes.push(
        `${store} / ${side.name}: added latency to turn end p50 ${addP50.toFixed(3)} ms (target ≤ 1 ms: ${addP50 <= 1 ? "met" : "MISSED"}), ` +
          `p99 ${addP99.toFixed(3)} ms (target ≤ 5 ms: ${addP99 <= 5 ? "met" : "MISSED"}); ` +
          `of the p50, ${floorEnd.median.toFixed(3)} ms is the RPC floor (a streaming call that carries no turn) and ${(addP50 - floorEnd.median).toFixed(3)} ms the turn itself`,
      );
    }
  }
  return { rows, notes };
}

/**
 * Reference servers for the floor, on their own ports in this process: the same
 * Subscribe answered by connect-node with no hotplex code (a handler that yields one
 * header), and by plain node:http writing the same bytes. They split the RPC floor into
 * Node's HTTP, connect-node, and hotplex's own share.
 */
async function startReferenceServers(): Promise<{ name: string; url: string }[] & { close(): Promise<void> }> {
  const bare = connectNodeAdapter({
    routes: (router) =>
      router.service(SessionService, {
        async *subscribe() {
          yield { header: { lastSeq: 1n } };
        },
      }),
  });
  // A header message, then the end of the stream as each protocol writes it: Connect's
  // end-stream message over HTTP/1.1, gRPC's status trailer over HTTP/2.
  const header = Buffer.from(toBinary(SubscribeResponseSchema, create(SubscribeResponseSchema, { header: { lastSeq: 1n } })));
  const message = envelope(header);
  const connectBody = Buffer.concat([message, envelope(Buffer.from("{}"), 0x02)]);
  const plain = (req: http.IncomingMessage | Http2ServerRequest, res: http.ServerResponse | Http2ServerResponse) => {
    req.resume();
    req.on("end", () => {
      if (req.httpVersion === "2.0") {
        const response = res as Http2ServerResponse;
        response.writeHead(200, { "content-type": "application/grpc+proto" });
        response.addTrailers({ "grpc-status": "0" });
        response.end(message);
      } else {
        const response = res as http.ServerResponse;
        response.writeHead(200, { "content-type": "application/connect+proto" });
        response.end(connectBody);
      }
    });
  };
  const listeners = [bare, plain].map((handler) => new DualProtocolListener(handler, { limits: DEFAULT_CONNECTION_LIMITS }));
  const urls = [];
  for (const listener of listeners) urls.push(`http://127.0.0.1:${(await listener.listen("127.0.0.1", 0)).port}`);
  const servers = [
    { name: "reference: the same call, connect-node with no hotplex code", url: urls[0]! },
    { name: "reference: the same bytes, plain node:http / node:http2 handler", url: urls[1]! },
  ];
  return Object.assign(servers, { close: async () => void (await Promise.all(listeners.map((l) => l.close()))) });
}

export async function main(): Promise<BenchResult> {
  const codeAtStart = revision();
  const startLoad = os.loadavg()[0] ?? NaN;
  const samples = Number(process.env.OVERHEAD_SAMPLES ?? 600);
  const warmup = Number(process.env.OVERHEAD_WARMUP ?? 100);
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const store of ["memory", "sqlite"] as const) {
    for (const group of ["wire", "connect-es"] as const) {
      const result = await measureStore(store, group, samples, warmup);
      rows.push(...result.rows);
      notes.push(...result.notes);
    }
  }
  notes.push(
    `Code: ${codeAtStart}${revision() === codeAtStart ? "" : ` at start, ${revision()} at end`}. ${loadNote(startLoad)} Instant agent (bench/fixtures/instant-agent.mjs): one stdout write per turn (init, text delta, assistant, result). ${samples} interleaved samples per side after ${warmup} warm-up turns each; the daemon runs in the bench process, logging at info to /dev/null.`,
    "Per store, two groups run one after the other, each with its own daemon and raw pipe, its sides interleaved: 'wire' clients (bench/wire-client.ts: the Connect protocol written on a raw keep-alive socket, gRPC on node:http2, no client library; about what a client in a compiled language costs) and connect-es's Node clients (createConnectTransport / createGrpcTransport, which spend ~0.6 ms of CPU per call in this process).",
    "hotplex's first event is its own TurnStarted, logged before the prompt is written to the agent; the raw pipe's first event is the agent's first stdout line. 'Added' = hotplex − raw at the same percentile (so a p99 can come out negative when the raw pipe's tail is the slower one).",
    "RPC floor rows: Subscribe(after_seq = last seq, follow = false) on a session with no new events, through the same daemon and clients: HTTP, Connect framing, the auth/error/logging interceptors and the engine, one response message (the header), no turn and no agent. It is what any streaming call costs on this stack; 'beyond the RPC floor' = added − floor, the part of the added latency a turn itself costs (engine, session, parser, store commits, agent pipes).",
    "Reference rows (wire group): the same Subscribe answered on other ports of this process by connect-node with a handler that only yields the header (no hotplex code), and the same response written by a plain node:http / node:http2 handler: the floor split into Node's HTTP, connect-node, and hotplex's own share, per protocol.",
  );
  const result: BenchResult = {
    name: "overhead",
    title: "Added latency of one warm turn: hotplexd vs a raw pipe (instant agent)",
    command: "node --import tsx bench/overhead.ts",
    rows,
    notes,
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
