// Fan-out throughput: one agent floods a session with text deltas ([[flood:N]] on the
// instant agent); 1, 10 and 100 concurrent Subscribe(follow) clients of that session
// receive them.
//
//   node --import tsx bench/throughput.ts        (THROUGHPUT_EVENTS=200000 by default)
//
// hotplexd runs as a child process (`node --import tsx src/cli/hotplexd.ts`, HOTPLEX_* env,
// default sqlite store), so its CPU time is its own: read from /proc/<pid>/stat (utime +
// stime, all its threads) before the Execute and after the last subscriber got TurnEnded.
// The subscribers attach first (after_seq = the session's last seq), then one Execute
// starts the flood and is cancelled after its first message (the turn runs on; only the
// subscribers read the events). Per subscriber: events / (last event − first event).
// Aggregate: all events delivered / (latest last event − earliest first event).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type BenchResult, isMain, report, repoRoot, type Row } from "./lib.js";
import { DEFAULT_TAIL_BOUNDS } from "../src/engine/config.js";
import { leanClient, peekEvent } from "./lean-subscriber.js";
import { connectClient, grpcClient, instantAgentPath, loadNote, partsOfSubscribe, revision, type SessionClient, timedExecute } from "./overhead.js";

export interface ChildDaemon {
  pid: number;
  url: string;
  scratch: string;
  child: ChildProcess;
  /** CPU seconds (user + system, all threads) the daemon has used so far. */
  cpuSeconds(): number;
  /** Resident set size in KiB (VmRSS). */
  rssKiB(): number;
  close(): Promise<void>;
}

/** hotplexd as a child process on a free loopback port; its stdout (pino) is drained. */
export async function startChildDaemon(options: {
  store: "memory" | "sqlite";
  maxSessions?: number;
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** The checkout whose hotplexd runs (default: this one), e.g. an earlier commit's for a comparison. */
  root?: string;
}): Promise<ChildDaemon> {
  const root = options.root ?? repoRoot;
  const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-bench-daemon-"));
  const home = path.join(scratch, "home");
  mkdirSync(home, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: home,
    HOTPLEX_LISTEN: "127.0.0.1:0",
    HOTPLEX_CLAUDE_PATH: instantAgentPath,
    HOTPLEX_WORK_ROOT: path.join(scratch, "work"),
    HOTPLEX_DATA_DIR: path.join(scratch, "data"),
    HOTPLEX_STORE: options.store,
    HOTPLEX_MAX_SESSIONS: String(options.maxSessions ?? 64),
    ...options.env,
  };
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", path.join(root, "src", "cli", "hotplexd.ts")], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-4000)));
  const url = await new Promise<string>((resolve, reject) => {
    let pending = "";
    const onData = (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      let nl = pending.indexOf("\n");
      while (nl !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as { url?: string };
          if (entry.url) {
            child.stdout!.off("data", onData);
            // Keep draining the log so the daemon never blocks on a full pipe.
            child.stdout!.resume();
            resolve(entry.url);
            return;
          }
        } catch {
          // not a log line
        }
        nl = pending.indexOf("\n");
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`hotplexd exited with ${code} before listening: ${stderr}`)));
  });
  const pid = child.pid!;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    pid,
    url,
    scratch,
    child,
    cpuSeconds: () => processCpuSeconds(pid),
    rssKiB: () => processRssKiB(pid),
    async close() {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces: count fields after its ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** VmRSS of a process in KiB. */
export function processRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return match ? Number(match[1]) : NaN;
}

interface SubscriberResult {
  events: number;
  firstAt: number;
  lastAt: number;
  /** Daemon clock (Event.time, ms) of the first and the last event received. */
  firstLoggedMs: number;
  lastLoggedMs: number;
}

type ClientKind = "full" | "lean";

/** Follows a session from `afterSeq` until TurnEnded; resolves `attached` once the header arrived. */
function subscriber(url: string, protocol: "connect" | "grpc", kind: ClientKind, sessionId: string, afterSeq: bigint) {
  let attach!: () => void;
  const attached = new Promise<void>((resolve) => (attach = resolve));
  const done = (async (): Promise<SubscriberResult> => {
    const abort = new AbortController();
    const result: SubscriberResult = { events: 0, firstAt: NaN, lastAt: NaN, firstLoggedMs: NaN, lastLoggedMs: NaN };
    // Both kinds check that seqs arrive in order, without gaps.
    let expected = Number(afterSeq) + 1;
    const received = (seq: number, timeMs: number, now: number) => {
      if (seq !== expected) throw new Error(`subscriber got seq ${seq}, expected ${expected}`);
      expected += 1;
      if (result.events === 0) {
        result.firstAt = now;
        result.firstLoggedMs = timeMs;
      }
      result.events += 1;
      result.lastAt = now;
      result.lastLoggedMs = timeMs;
    };
    try {
      const request = { sessionId, afterSeq, follow: true };
      if (kind === "lean") {
        let first = true;
        for await (const response of leanClient(url, protocol).subscribe(request, { signal: abort.signal })) {
          // The first message is the header.
          if (first) {
            first = false;
            attach();
            continue;
          }
          const now = performance.now();
          let ended = false;
          for (const bytes of response.events) {
            const { seq, timeMs, turnEnded } = peekEvent(bytes);
            received(seq, timeMs, now);
            ended ||= turnEnded;
          }
          if (ended) break;
        }
      } else {
        const client = protocol === "grpc" ? grpcClient(url) : connectClient(url);
        for await (const response of client.subscribe(request, { signal: abort.signal })) {
          const { header, events: batch } = partsOfSubscribe(response);
          if (header) attach();
          const now = performance.now();
          for (const event of batch) received(Number(event.seq), event.time ? timestampMs(event.time) : NaN, now);
          if (batch.some((event) => event.payload.case === "turnEnded")) break;
        }
      }
    } finally {
      abort.abort();
    }
    return result;
  })();
  return { attached, done };
}

/** Starts a turn and cancels the Execute stream after its first message; the turn runs on. */
async function startTurn(client: SessionClient, sessionId: string, prompt: string): Promise<void> {
  const abort = new AbortController();
  try {
    for await (const _ of client.execute({ sessionId, prompt }, { signal: abort.signal })) break;
  } finally {
    abort.abort();
  }
}

interface FanOut {
  subscribers: number;
  events: number;
  perSubscriberMedian: number;
  perSubscriberMin: number;
  aggregate: number;
  /** Events logged per second by the daemon (its clock, first to last event of the turn). */
  ingest: number;
  wallS: number;
  daemonCpuS: number;
  clientCpuS: number;
}

export async function fanOut(
  daemon: ChildDaemon,
  protocol: "connect" | "grpc",
  kind: ClientKind,
  sessionId: string,
  subscribers: number,
  n: number,
): Promise<FanOut> {
  const control = connectClient(daemon.url);
  // The session exists and its agent is warm.
  await timedExecute(control, sessionId, "warm-up");
  const { lastSeq } = await control.getSnapshot({ sessionId });
  // One client per subscriber: one HTTP/1.1 connection each for Connect; gRPC clients
  // share one HTTP/2 connection per client, so each subscriber has its own as well.
  const subs = Array.from({ length: subscribers }, () => subscriber(daemon.url, protocol, kind, sessionId, lastSeq));
  await Promise.all(subs.map((s) => s.attached));
  const cpu0 = daemon.cpuSeconds();
  const clientCpu0 = process.cpuUsage();
  await startTurn(control, sessionId, `[[flood:${n}]]`);
  const results = await Promise.all(subs.map((s) => s.done));
  const daemonCpuS = daemon.cpuSeconds() - cpu0;
  const clientCpu = process.cpuUsage(clientCpu0);
  const rates = results.map((r) => r.events / ((r.lastAt - r.firstAt) / 1000)).sort((a, b) => a - b);
  const total = results.reduce((sum, r) => sum + r.events, 0);
  const wallMs = Math.max(...results.map((r) => r.lastAt)) - Math.min(...results.map((r) => r.firstAt));
  const expected = results[0]?.events ?? 0;
  if (results.some((r) => r.events !== expected)) throw new Error(`subscribers got different event counts: ${results.map((r) => r.events).join(",")}`);
  return {
    subscribers,
    events: expected,
    perSubscriberMedian: rates[Math.floor(rates.length / 2)] ?? NaN,
    perSubscriberMin: rates[0] ?? NaN,
    aggregate: total / (wallMs / 1000),
    ingest: expected / (((results[0]?.lastLoggedMs ?? NaN) - (results[0]?.firstLoggedMs ?? NaN)) / 1000),
    wallS: wallMs / 1000,
    daemonCpuS,
    clientCpuS: (clientCpu.user + clientCpu.system) / 1e6,
  };
}

/** Events of the untimed flood each daemon gets before its measured rows. */
const WARM_UP_EVENTS = 20_000;

export async function main(): Promise<BenchResult> {
  const codeAtStart = revision();
  const startLoad = os.loadavg()[0] ?? NaN;
  const n = Number(process.env.THROUGHPUT_EVENTS ?? 200_000);
  const counts = (process.env.THROUGHPUT_SUBSCRIBERS ?? "1,10,100").split(",").map(Number);
  // store:protocol:most deliveries per row. The flood of a row is min(N, deliveries / subscribers)
  // events, so that a row stays within a few minutes at the rates measured.
  // store:protocol:client:most deliveries per row.
  const configs = (
    process.env.THROUGHPUT_CONFIGS ?? "sqlite:connect:lean:2000000,sqlite:grpc:lean:2000000,sqlite:connect:full:400000,memory:connect:lean:2000000"
  )
    .split(",")
    .map((c) => {
      const [store, protocol, kind, cap] = c.split(":") as ["memory" | "sqlite", "connect" | "grpc", ClientKind, string | undefined];
      return { store, protocol, kind, maxDeliveries: Number(cap ?? Infinity) };
    });
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const { store, protocol, kind, maxDeliveries } of configs) {
    // No retention during the run (default 100k events/session could drop events a
    // lagging subscriber still needs; the run is shorter than a compaction interval anyway).
    const daemon = await startChildDaemon({
      store,
      env: { HOTPLEX_RETAIN_EVENTS: "0", HOTPLEX_RETAIN_BYTES: "0" },
      nodeArgs: process.env.THROUGHPUT_DAEMON_NODE_ARGS?.split(" ").filter(Boolean),
    });
    try {
      // One untimed flood first, so that no row pays for the daemon's JIT warm-up.
      await fanOut(daemon, protocol, kind, "tp-warm-up", 1, Math.min(WARM_UP_EVENTS, n));
      for (const k of counts) {
        const r = await fanOut(daemon, protocol, kind, `tp-${kind}-${k}`, k, Math.max(1000, Math.min(n, Math.floor(maxDeliveries / k))));
        const deliveries = r.events * r.subscribers;
        rows.push({
          store,
          protocol: protocol === "grpc" ? "gRPC (HTTP/2)" : "Connect (HTTP/1.1)",
          client: kind === "lean" ? "lean (events as bytes, no gzip)" : "protobuf-es (decodes events, gzip)",
          subscribers: k,
          "events/turn": r.events,
          "events/s per subscriber (median)": Math.round(r.perSubscriberMedian),
          "events/s per subscriber (min)": Math.round(r.perSubscriberMin),
          "aggregate events/s": Math.round(r.aggregate),
          "logged events/s (daemon clock)": Math.round(r.ingest),
          "wall s": r.wallS,
          "daemon CPU s": r.daemonCpuS,
          "daemon CPU ms / 100k events": (r.daemonCpuS * 1000) / (r.events / 100_000),
          "daemon CPU µs / delivery": (r.daemonCpuS * 1e6) / deliveries,
          "client CPU s (bench process)": r.clientCpuS,
        });
        if (store === "sqlite" && protocol === "connect" && kind === "lean" && k === 1) {
          notes.push(`sqlite/Connect, 1 subscriber: ${Math.round(r.perSubscriberMedian)} events/s (target ≥ 100k: ${r.perSubscriberMedian >= 100_000 ? "met" : "MISSED"}).`);
        }
        if (store === "sqlite" && protocol === "connect" && kind === "lean" && k === 100) {
          notes.push(`sqlite/Connect, 100 subscribers: ${Math.round(r.aggregate)} events/s aggregate (target ≥ 300k: ${r.aggregate >= 300_000 ? "met" : "MISSED"}).`);
        }
      }
    } finally {
      await daemon.close();
    }
  }
  notes.push(
    `Code: ${codeAtStart}${revision() === codeAtStart ? "" : ` at start, ${revision()} at end`}. ${loadNote(startLoad)}`,
    `The flood is min(${n}, cap / subscribers) text-delta stream_event lines from bench/fixtures/instant-agent.mjs (plus TurnStarted, TurnEnded and a StatusChanged after each; 'events/turn' shows the count), with cap = ${configs.map((c) => `${c.maxDeliveries} deliveries for ${c.store}/${c.protocol}/${c.kind}`).join(", ")}, so that each row ends within a minute or so at the rates measured. Each flood is longer than the daemon's in-memory tail (${DEFAULT_TAIL_BOUNDS.maxEvents} events), so subscribers that fall behind read from the store; see 'wall s' for how long each row ran.`,
    `Each daemon first gets one untimed ${WARM_UP_EVENTS.toLocaleString("en-US")}-event flood to one subscriber (JIT warm-up), then the rows in the order shown.`,
    "hotplexd runs as a child process with default settings (store as shown, durability normal, info logs drained), except HOTPLEX_RETAIN_EVENTS=0 and HOTPLEX_RETAIN_BYTES=0 so compaction cannot drop events a lagging subscriber still needs. Its CPU comes from /proc/<pid>/stat and includes all its threads, not the agent's.",
    "Subscribers run in the bench process, each on its own connection, through connect-es clients. 'lean' clients (bench/lean-subscriber.ts) read SubscribeResponse with a schema whose events field is `repeated bytes` (wire-compatible), check every event's seq (in order, no gap) and look for TurnEnded in its bytes, and do not accept gzip: they cost about what a client in a compiled language would, so the daemon sets the rate. 'protobuf-es' clients decode every event into a message (~13 µs each here) and accept gzip as connect-es does by default; with 10 or 100 of them the bench process needs more CPU than the machine has, and the rate measures the clients. 'client CPU' is the bench process's CPU over the same window (2 cores shared by daemon, agent and clients).",
    "'logged events/s' is the rate at which the daemon logged the flood (the Event.time of the first and the last event a subscriber received): when it is well above the delivery rate, delivery was the limit; when both are equal, ingesting (reading, parsing, storing) was.",
    "gRPC rows: the daemon spends about twice the CPU per delivery on HTTP/2 (node's http2 / nghttp2 framing) as on HTTP/1.1, so fan-out over gRPC saturates sooner; subscribers then fall behind the in-memory tail and are served from the store. Giving the clients a 4 MiB stream window (Go's default) instead of HTTP/2's 64 KiB did not change the rate in a trial run.",
  );
  const result: BenchResult = {
    name: "throughput",
    title: "Fan-out throughput: one flooding agent, 1 / 10 / 100 Subscribe(follow) clients",
    command: "node --import tsx bench/throughput.ts",
    rows,
    notes,
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
