// Replay speed: Subscribe(after_seq 0, follow false) of a session with 1,000,000 (and
// 100,000) stored events, from a SQLite data dir, to a client over Connect (HTTP/1.1) and
// over gRPC (HTTP/2). The daemon (Engine + startServer) runs in a child process, as in
// production, so the client's decoding does not share its event loop.
//
// Run alone: node --import tsx bench/replay.ts
// (The child is this file with `--serve <dataDir>`.)
import { providerSettings } from "../src/providers/registry.js";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { EventSchema, TextDeltaSchema } from "../gen/hotplex/v1/event_pb.js";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../gen/hotplex/v1/session_pb.js";
import { SessionService } from "../gen/hotplex/v1/session_service_pb.js";
import { DEFAULT_TAIL_BOUNDS, type EngineConfig, engineConfig } from "../src/engine/config.js";
import { Engine } from "../src/engine/engine.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import type { StoredEvent } from "../src/store/store.js";
import { type BenchResult, isMain, report, type Row, serveEngine } from "./lib.js";

const TENANT = "default";
const SESSIONS = [
  { sessionId: "replay-100k", events: Number(process.env.BENCH_REPLAY_SMALL ?? 100_000) },
  { sessionId: "replay-1m", events: Number(process.env.BENCH_REPLAY_LARGE ?? 1_000_000) },
];
const SEED_BATCH = 5_000;
// Repeats per (session, protocol); the 1M case runs fewer times to stay within minutes.
const REPEATS_SMALL = Number(process.env.BENCH_REPEATS ?? 3);
const REPEATS_LARGE = Number(process.env.BENCH_REPLAY_LARGE_REPEATS ?? 1);
const REPEATS_UNCOMPRESSED = Number(process.env.BENCH_REPLAY_UNCOMPRESSED_REPEATS ?? 1);

const WORDS = ["the ", "agent ", "writes ", "some ", "code ", "and ", "then ", "tests ", "it; ", "ok. "];
function text(i: number): string {
  let s = "";
  for (let k = 0; s.length < 40; k++) s += WORDS[(i * 7 + k * 3) % WORDS.length];
  return s;
}

function replayConfig(dataDir: string): EngineConfig {
  const workRoot = path.join(dataDir, "work");
  mkdirSync(workRoot, { recursive: true });
  return engineConfig(
    { workRoot, stateRoot: path.join(dataDir, "state"), store: { kind: "sqlite", dataDir, durability: "normal" }, agentEnv: {} },
    {
      providers: providerSettings({ "claude-code": "/nonexistent/claude" }),
      maxLiveSessions: 16,
      // The daemon's default in-memory tail: a replay from 0 is served by the store.
      logBounds: DEFAULT_TAIL_BOUNDS,
      retention: { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 },
      compactIntervalMs: 3_600_000,
      limits: { queueLimit: 4, turnTimeoutMs: 20_000, idleTimeoutMs: 0, stopGraceMs: 1_000 },
    },
  );
}

/** Writes the sessions' records and events straight through SqliteStore.commit. */
async function seed(dataDir: string): Promise<{ seconds: number; events: number; dbBytes: number }> {
  const store = new SqliteStore(dataDir, "normal");
  const start = performance.now();
  let total = 0;
  const baseMs = Date.now() - 3_600_000;
  for (const { sessionId, events } of SESSIONS) {
    const key = `${TENANT}/${sessionId}`;
    const record = {
      key,
      tenant: TENANT,
      sessionId,
      incarnation: randomUUID(),
      provider: "claude-code",
      providerSessionId: randomUUID(),
      workDir: path.join(dataDir, "work", sessionId),
      config: create(SessionConfigSchema),
      status: SessionStatus.DEAD,
      createdAtMs: baseMs,
      lastActiveMs: baseMs,
      stats: create(SessionStatsSchema),
      pgid: 0,
      agentCommand: "",
      hasConversation: true,
      currentTurnId: "",
      lastSeq: 0,
      extras: "",
    };
    for (let from = 1; from <= events; from += SEED_BATCH) {
      const batch: StoredEvent[] = [];
      const to = Math.min(events, from + SEED_BATCH - 1);
      for (let seq = from; seq <= to; seq++) {
        batch.push({
          key,
          event: create(EventSchema, {
            seq: BigInt(seq),
            sessionId,
            turnId: `turn-${Math.ceil(seq / 1000)}`,
            time: timestampFromMs(baseMs + Math.floor(seq / 100)),
            payload: { case: "textDelta", value: create(TextDeltaSchema, { text: text(seq) }) },
          }),
        });
      }
      await store.commit(batch, [{ ...record, lastSeq: to }]);
    }
    total += events;
  }
  await store.close();
  return { seconds: (performance.now() - start) / 1000, events: total, dbBytes: statSync(path.join(dataDir, "hotplex.db")).size };
}

/** The child: the daemon on the seeded data dir; prints its URL, exits when stdin ends. */
async function serve(dataDir: string): Promise<void> {
  const logger = pino({ level: "silent" });
  const start = performance.now();
  const engine = await Engine.open(replayConfig(dataDir), logger);
  const openMs = performance.now() - start;
  const server = await serveEngine(engine, logger);
  process.stdout.write(JSON.stringify({ url: server.url, openMs }) + "\n");
  // Each line "cpu" on stdin is answered with this process's CPU time so far (µs).
  const commands = createInterface({ input: process.stdin });
  commands.on("line", () => {
    const { user, system } = process.cpuUsage();
    process.stdout.write(JSON.stringify({ cpuMicros: user + system }) + "\n");
  });
  commands.on("close", () => void server.close().then(() => process.exit(0)));
}

interface Daemon {
  url: string;
  openMs: number;
  /** The daemon's CPU time so far (user + system, µs). */
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
}

async function startDaemon(dataDir: string): Promise<Daemon> {
  // BENCH_REPLAY_DAEMON_ARGS: extra node options for the daemon (e.g. --cpu-prof).
  const extra = process.env.BENCH_REPLAY_DAEMON_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extra, "--import", "tsx", fileURLToPath(import.meta.url), "--serve", dataDir], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines = createInterface({ input: child.stdout });
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      const exit = (code: number | null) => reject(new Error(`the daemon exited (${code})`));
      child.once("exit", exit);
      lines.once("line", (line) => {
        child.off("exit", exit);
        resolve(line);
      });
    });
  const { url, openMs } = JSON.parse(await nextLine()) as { url: string; openMs: number };
  return {
    url,
    openMs,
    async cpuMicros() {
      const answer = nextLine();
      child.stdin.write("cpu\n");
      return (JSON.parse(await answer) as { cpuMicros: number }).cpuMicros;
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

type Protocol = "connect" | "grpc";

interface Variant {
  protocol: Protocol;
  /** false: the client accepts no compression (the default client accepts gzip, and the
   * daemon then gzips every message of 1 KiB or more, i.e. every event batch). */
  gzip: boolean;
}

function variantName({ protocol, gzip }: Variant): string {
  return `${protocol === "grpc" ? "gRPC (HTTP/2)" : "Connect (HTTP/1.1)"}${gzip ? "" : ", no compression"}`;
}

interface Replay {
  seconds: number;
  /** CPU time (µs) of the daemon and of the client during the replay. */
  daemonCpuMicros: number;
  clientCpuMicros: number;
  /** Until the header (the first message) arrived. */
  firstMs: number;
  events: number;
  /** Response messages, the header included. */
  messages: number;
  lastSeq: bigint;
}

async function replay(daemon: Daemon, { protocol, gzip }: Variant, sessionId: string): Promise<Replay> {
  const baseUrl = daemon.url;
  // Default clients accept gzip (and brotli); [] asks for uncompressed responses.
  const compression = gzip ? {} : { acceptCompression: [] };
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl, ...compression })
      : createConnectTransport({ baseUrl, httpVersion: "1.1", ...compression });
  const client = createClient(SessionService, transport);
  const daemonCpu0 = await daemon.cpuMicros();
  const clientCpu0 = process.cpuUsage();
  const start = performance.now();
  let firstMs = NaN;
  let events = 0;
  let lastSeq = 0n;
  let headerLast = -1n;
  let messages = 0;
  for await (const response of client.subscribe({ sessionId, afterSeq: 0n, follow: false })) {
    messages += 1;
    if (response.header) {
      firstMs = performance.now() - start;
      headerLast = response.header.lastSeq;
    }
    for (const event of response.events) {
      events += 1;
      // Every event in order, none skipped.
      if (event.seq !== lastSeq + 1n) throw new Error(`${sessionId}: seq ${event.seq} after ${lastSeq}`);
      lastSeq = event.seq;
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const clientCpu = process.cpuUsage(clientCpu0);
  const daemonCpuMicros = (await daemon.cpuMicros()) - daemonCpu0;
  if (lastSeq !== headerLast) throw new Error(`${sessionId}: last seq ${lastSeq}, header said ${headerLast}`);
  return { seconds, daemonCpuMicros, clientCpuMicros: clientCpu.user + clientCpu.system, firstMs, events, messages, lastSeq };
}

/** The same replay without RPC: the engine's subscription iterated in this process. */
async function inProcess(dataDir: string, sessionId: string): Promise<Replay> {
  const engine = await Engine.open(replayConfig(dataDir), pino({ level: "silent" }));
  try {
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    const subscription = await engine.subscribe({ tenant: TENANT, name: "bench" }, sessionId, 0, false);
    const firstMs = performance.now() - start;
    let events = 0;
    let messages = 0;
    let lastSeq = 0n;
    for await (const batch of subscription.events) {
      messages += 1;
      for (const event of batch) {
        events += 1;
        lastSeq = event.seq;
      }
    }
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { seconds, daemonCpuMicros: cpu.user + cpu.system, clientCpuMicros: 0, firstMs, events, messages, lastSeq };
  } finally {
    await engine.shutdown();
  }
}

function median<T>(runs: T[], key: (run: T) => number): T {
  return [...runs].sort((a, b) => key(a) - key(b))[Math.floor(runs.length / 2)]!;
}

export async function main(): Promise<BenchResult> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "hotplex-bench-replay-"));
  try {
    const seeded = await seed(dataDir);
    process.stderr.write(`replay: seeded ${seeded.events} events in ${seeded.seconds.toFixed(1)} s\n`);
    const rows: Row[] = [];
    const daemon = await startDaemon(dataDir);
    try {
      const defaults: Variant[] = [
        { protocol: "connect", gzip: true },
        { protocol: "grpc", gzip: true },
      ];
      const uncompressed: Variant[] = [
        { protocol: "connect", gzip: false },
        { protocol: "grpc", gzip: false },
      ];
      const plan = [
        ...defaults.map((variant) => ({ session: SESSIONS[0]!, variant, repeats: REPEATS_SMALL })),
        ...uncompressed.map((variant) => ({ session: SESSIONS[0]!, variant, repeats: REPEATS_UNCOMPRESSED })),
        ...defaults.map((variant) => ({ session: SESSIONS[1]!, variant, repeats: REPEATS_LARGE })),
      ];
      for (const { session, variant, repeats } of plan) {
        const { sessionId, events } = session;
        {
          const runs: Replay[] = [];
          for (let r = 0; r < repeats; r++) {
            const run = await replay(daemon, variant, sessionId);
            if (run.events !== events || run.lastSeq !== BigInt(events)) {
              throw new Error(`${sessionId} over ${variantName(variant)}: got ${run.events} events up to ${run.lastSeq}, expected ${events}`);
            }
            runs.push(run);
            process.stderr.write(`replay: ${events} events over ${variantName(variant)}: ${run.seconds.toFixed(2)} s\n`);
          }
          const m = median(runs, (run) => run.seconds);
          rows.push({
            case: `${events.toLocaleString("en-US")} events, ${variantName(variant)}`,
            events: m.events,
            runs: runs.length,
            "seconds (median)": m.seconds,
            "events/s": Math.round(m.events / m.seconds),
            "seconds (min–max)": `${Math.min(...runs.map((r) => r.seconds)).toFixed(2)}–${Math.max(...runs.map((r) => r.seconds)).toFixed(2)}`,
            "events/message": m.events / (m.messages - 1),
            "daemon CPU µs/event": m.daemonCpuMicros / m.events,
            "client CPU µs/event": m.clientCpuMicros / m.events,
            "first message ms": m.firstMs,
            "last seq": Number(m.lastSeq),
          });
        }
      }
    } finally {
      await daemon.stop();
    }
    // Reference: the same read path (store read + decode + EventLog + readEvents) without RPC.
    // The 100k session only: the in-process rate does not depend on the log's length.
    for (const { sessionId, events } of SESSIONS.slice(0, 1)) {
      const run = await inProcess(dataDir, sessionId);
      if (run.events !== events) throw new Error(`${sessionId} in process: got ${run.events} events, expected ${events}`);
      rows.push({
        case: `${events.toLocaleString("en-US")} events, in process (no RPC, reference)`,
        events: run.events,
        runs: 1,
        "seconds (median)": run.seconds,
        "events/s": Math.round(run.events / run.seconds),
        "seconds (min–max)": `${run.seconds.toFixed(2)}–${run.seconds.toFixed(2)}`,
        "events/message": run.events / run.messages,
        "daemon CPU µs/event": run.daemonCpuMicros / run.events,
        "client CPU µs/event": "-",
        "first message ms": run.firstMs,
        "last seq": Number(run.lastSeq),
      });
    }
    const result: BenchResult = {
      name: "replay",
      title: "Replay from sequence 0 (SQLite store → Subscribe, follow=false)",
      command: "node --import tsx bench/replay.ts",
      rows,
      notes: [
        `Seeded through SqliteStore.commit in batches of ${SEED_BATCH.toLocaleString("en-US")}: ${seeded.events.toLocaleString("en-US")} text-delta events (~40-byte texts, ${Math.round(seeded.dbBytes / seeded.events)} bytes of hotplex.db per event, ${(seeded.dbBytes / 2 ** 20).toFixed(0)} MB) in ${seeded.seconds.toFixed(1)} s (${Math.round(seeded.events / seeded.seconds).toLocaleString("en-US")} events/s bulk insert).`,
        `The daemon (Engine.open + startServer, default in-memory tail of ${DEFAULT_TAIL_BOUNDS.maxEvents} events, so the replay is read from SQLite in pages of 256) runs in a child process and sends the events in batches (one SubscribeResponse per page read, header message excluded from events/message); the client (one Connect client per protocol, decoding every message, checking every seq) in the bench process. Engine.open on this data dir took ${Math.round(daemon.openMs)} ms (includes PRAGMA quick_check over the whole file).`,
        `Each run is verified: exactly N events, seqs 1..N in order, the last seq equal to the header's last_seq. 100k runs: median of ${REPEATS_SMALL} (${REPEATS_UNCOMPRESSED} without compression); 1M runs: ${REPEATS_LARGE} run(s) each.`,
        `Compression: connect-node clients accept gzip by default and the daemon (connect-node defaults) then gzips every response message of 1 KiB or more, i.e. every event batch (~256 × ~110 bytes). The "no compression" rows use a client with acceptCompression: [] to show what gzip costs on loopback.`,
        `CPU µs/event = user + system CPU time of the daemon process (asked over its stdin before and after each run) and of the client process, per event: less sensitive to other load on the machine than wall time. The daemon's includes everything it does during the run (store reads, protobuf, Connect framing, HTTP, syscalls, GC).`,
        `"first message ms" is the time to the SubscribeHeader (the replay starts streaming at once; nothing is read ahead).`,
        `"in process" rows iterate engine.subscribe(...).events directly: the store read + protobuf decode + EventLog paging alone, the floor under the RPC rows.`,
        `Shared, noisy 2-core machine: compare rows, not absolute numbers.`,
      ],
    };
    report(result);
    return result;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) {
  const serveAt = process.argv.indexOf("--serve");
  if (serveAt >= 0) await serve(process.argv[serveAt + 1] ?? "");
  else await main();
}
