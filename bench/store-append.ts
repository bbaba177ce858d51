// Append throughput through the real write path: EventLog → GroupCommitter (one flush per
// event-loop turn) → Store.commit (one transaction) → published. Sessions stream like an
// agent's stdout: bursts of text deltas, the bursts of all sessions interleaved across
// event-loop turns, so one group commit carries the bursts of every session.
//
// Run alone: node --import tsx bench/store-append.ts
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../gen/hotplex/v1/session_pb.js";
import { encodeEvent } from "../src/events/encoded-event.js";
import { TextDeltaSchema } from "../src/events/event.js";
import { EventLog } from "../src/events/event-log.js";
import { GroupCommitter } from "../src/events/group-committer.js";
import { DEFAULT_TAIL_BOUNDS } from "../src/engine/config.js";
import { MemoryStore } from "../src/store/memory-store.js";
import { type Durability, SqliteStore } from "../src/store/sqlite-store.js";
import { RedisStore } from "../src/store/redis/redis-store.js";
import type { SessionRecord, Store } from "../src/store/store.js";
import { startRedis, type TestRedis } from "../test/fixtures/redis-server.js";
import { type BenchResult, isMain, report, type Row } from "./lib.js";

const BURST = 20;
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const TOTAL_EVENTS = Number(process.env.BENCH_STORE_EVENTS ?? 200_000);
// durability "full" pays an fsync per group commit: with one session (20 events a commit)
// that is 10,000 fsyncs for 200k events, so that row uses fewer events.
const FULL_SINGLE_EVENTS = Number(process.env.BENCH_STORE_FULL_EVENTS ?? 20_000);

type StoreKind = "sqlite" | "memory" | "redis";

interface Case {
  label: string;
  store: StoreKind;
  durability: Durability | "-";
  sessions: number;
  events: number;
}

interface Run {
  seconds: number;
  /** CPU time (user + system, µs) of this process during the case. */
  cpuMicros: number;
  commits: number;
  events: number;
  /** Bytes handed to write(2) by this process while the case ran (/proc/self/io wchar). */
  writtenBytes: number | undefined;
  /** Encoded event bytes (what the events table holds as payload). */
  payloadBytes: number;
  /** hotplex.db after close (closing checkpoints the WAL into it and removes it). */
  fileBytes: number | undefined;
}

const silent = pino({ level: "silent" });

// ~40 bytes of text, varied so SQLite cannot compress pages of identical rows (it does
// not compress anyway, but keeps the payloads honest).
const WORDS = ["the ", "agent ", "writes ", "some ", "code ", "and ", "then ", "tests ", "it; ", "ok. "];
function text(i: number): string {
  let s = "";
  for (let k = 0; s.length < 40; k++) s += WORDS[(i * 7 + k * 3) % WORDS.length];
  return s;
}

function writtenSoFar(): number | undefined {
  try {
    const match = /^wchar:\s*(\d+)/m.exec(readFileSync("/proc/self/io", "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The registry entry of a streaming session, as Session.record() builds it at each commit. */
export function recordFor(key: string, sessionId: string, log: () => EventLog): () => SessionRecord {
  // The shape Session.record() builds at each commit (a fresh object each time).
  const config = create(SessionConfigSchema);
  const stats = create(SessionStatsSchema);
  const createdAtMs = Date.now();
  return () => ({
    key,
    tenant: "default",
    sessionId,
    incarnation: "00000000-0000-4000-8000-000000000000",
    provider: "claude-code",
    providerSessionId: "11111111-1111-5111-8111-111111111111",
    workDir: `/srv/work/${sessionId}`,
    config,
    status: SessionStatus.BUSY,
    createdAtMs,
    lastActiveMs: Date.now(),
    stats,
    pgid: 4242,
    agentCommand: "/usr/bin/claude",
    hasConversation: true,
    currentTurnId: "turn-1",
    lastSeq: log().assignedSeq,
    extras: "",
  });
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

// The Redis rows' server: started once, with an append-only file (fsync every second, the
// usual production setting), on loopback.
let redis: TestRedis | undefined;
let redisRuns = 0;

function openStore(c: Case, dir: string): Store {
  if (c.store === "sqlite") return new SqliteStore(dir, c.durability === "full" ? "full" : "normal");
  if (c.store === "redis") {
    return new RedisStore(redis!.client(), { prefix: `bench${++redisRuns}:`, node: "bench", lease: { ttlMs: 10_000, marginMs: 2_000 }, location: redis!.url });
  }
  return new MemoryStore({ maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 });
}

async function runCase(c: Case): Promise<Run> {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-bench-append-"));
  try {
    const inner = openStore(c, dir);
    let commits = 0;
    let committed = 0;
    let payloadBytes = 0;
    // Counts commits by wrapping the store; everything else goes straight through.
    const commit = inner.commit.bind(inner);
    inner.commit = (events, sessions) => {
      commits += 1;
      committed += events.length;
      const moved = commit(events, sessions);
      // Cached by the store's own encoding (sqlite); one encode per event for memory.
      if (c.store === "sqlite") for (const { event } of events) payloadBytes += encodeEvent(event).length;
      return moved;
    };
    const committer = new GroupCommitter(inner, silent);
    const perSession = Math.ceil(c.events / c.sessions / BURST) * BURST;
    const logs: EventLog[] = [];
    for (let i = 0; i < c.sessions; i++) {
      const sessionId = `s${i}`;
      const key = `default/${sessionId}`;
      let log: EventLog | undefined;
      log = new EventLog(sessionId, DEFAULT_TAIL_BOUNDS, 0, { store: inner, key, committer, record: recordFor(key, sessionId, () => log!) });
      logs.push(log);
    }
    global.gc?.();
    const written0 = writtenSoFar();
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    await Promise.all(
      logs.map(async (log, i) => {
        for (let n = 0; n < perSession; ) {
          for (let b = 0; b < BURST; b++, n++) {
            log.append("turn-1", { case: "textDelta", value: create(TextDeltaSchema, { text: text(i + n) }) });
          }
          await nextTurn();
        }
        while (log.lastSeq < perSession) await log.waitBeyond(log.lastSeq);
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const written1 = writtenSoFar();
    await inner.close();
    const fileBytes = c.store === "sqlite" ? fileSize(path.join(dir, "hotplex.db")) : undefined;
    if (committed !== perSession * c.sessions) throw new Error(`${c.label}: committed ${committed}, expected ${perSession * c.sessions}`);
    return {
      seconds,
      cpuMicros: cpu.user + cpu.system,
      commits,
      events: committed,
      writtenBytes: c.store === "sqlite" && written0 !== undefined && written1 !== undefined ? written1 - written0 : undefined,
      payloadBytes,
      fileBytes,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MB = 2 ** 20;

export async function main(): Promise<BenchResult> {
  const cases: Case[] = [
    { label: "sqlite normal, 1 session", store: "sqlite", durability: "normal", sessions: 1, events: TOTAL_EVENTS },
    { label: "sqlite normal, 50 sessions", store: "sqlite", durability: "normal", sessions: 50, events: TOTAL_EVENTS },
    { label: "sqlite full, 1 session", store: "sqlite", durability: "full", sessions: 1, events: FULL_SINGLE_EVENTS },
    { label: "sqlite full, 50 sessions", store: "sqlite", durability: "full", sessions: 50, events: TOTAL_EVENTS },
    { label: "redis (AOF, loopback), 1 session", store: "redis", durability: "-", sessions: 1, events: TOTAL_EVENTS },
    { label: "redis (AOF, loopback), 50 sessions", store: "redis", durability: "-", sessions: 50, events: TOTAL_EVENTS },
    { label: "memory (reference), 1 session", store: "memory", durability: "-", sessions: 1, events: TOTAL_EVENTS },
    { label: "memory (reference), 50 sessions", store: "memory", durability: "-", sessions: 50, events: TOTAL_EVENTS },
  ];
  // BENCH_CASES=substring[|substring]: run only the matching cases.
  const only = process.env.BENCH_CASES?.split("|").filter(Boolean);
  const rows: Row[] = [];
  const selected = cases.filter((c) => !only || only.some((o) => c.label.includes(o)));
  if (selected.some((c) => c.store === "redis")) redis = await startRedis({ appendOnly: true });
  try {
  for (const c of selected) {
    const runs: Run[] = [];
    for (let r = 0; r < REPEATS; r++) runs.push(await runCase(c));
    const rates = runs.map((run) => run.events / run.seconds);
    const sorted = [...runs].sort((a, b) => a.events / a.seconds - b.events / b.seconds);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const row: Row = {
      case: c.label,
      events: median.events,
      "events/s (median)": Math.round(median.events / median.seconds),
      "events/s (min–max)": `${Math.round(Math.min(...rates)).toLocaleString("en-US")}–${Math.round(Math.max(...rates)).toLocaleString("en-US")}`,
      seconds: median.seconds,
      "CPU µs/event": median.cpuMicros / median.events,
      commits: median.commits,
      "events/commit": median.events / median.commits,
      "µs/commit": (median.seconds * 1e6) / median.commits,
    };
    if (c.store === "sqlite") {
      row["payload MB"] = median.payloadBytes / MB;
      row["MB written"] = median.writtenBytes !== undefined ? median.writtenBytes / MB : "n/a";
      row["bytes written/event"] = median.writtenBytes !== undefined ? Math.round(median.writtenBytes / median.events) : "n/a";
      row["db MB (after close)"] = (median.fileBytes ?? 0) / MB;
      row["db bytes/event"] = Math.round((median.fileBytes ?? 0) / median.events);
    }
    rows.push(row);
    process.stderr.write(`store-append: ${c.label}: ${rates.map((r) => Math.round(r)).join(", ")} events/s\n`);
  }
  } finally {
    await redis?.stop();
  }
  const result: BenchResult = {
    name: "store-append",
    title: "Store append throughput (EventLog + GroupCommitter + store, until published)",
    command: "node --import tsx bench/store-append.ts",
    rows,
    notes: [
      `Each session appends bursts of ${BURST} text deltas (~40-byte texts) and yields to the event loop (setImmediate) between bursts; the bursts of all sessions interleave, so one group commit (one store transaction, plus one registry upsert per dirty session) carries one burst of every session. Timed until every event of every session is published (stored and visible to readers).`,
      `Median of ${REPEATS} runs per case, each in a fresh temporary data dir (${tmpdir()}); the min–max column shows the spread. Shared, noisy 2-core machine: compare rows, not absolute numbers.`,
      `durability "normal": WAL + synchronous=NORMAL: a commit reaches the WAL (the OS page cache) before its events are published, so it survives a crash of the daemon (SIGKILL); a power loss can lose the last commits. durability "full": synchronous=FULL, one fsync of the WAL per group commit: survives power loss too. The cost of "full" is per commit, not per event, so it shrinks as more sessions share a commit (compare events/commit).`,
      `"sqlite full, 1 session" runs ${FULL_SINGLE_EVENTS.toLocaleString("en-US")} events (one fsync per ${BURST}-event commit), the other rows ${TOTAL_EVENTS.toLocaleString("en-US")}.`,
      `MB written = bytes this process passed to write(2) during the case (/proc/self/io wchar): WAL frames plus checkpoints into hotplex.db. payload MB = encoded events alone; the rest is row/index overhead, page granularity (a commit rewrites its last partly filled pages), WAL frame headers and the checkpoint copy.`,
      `CPU µs/event: user + system CPU time of the process per event (append, encode, insert, publish, GC, and the kernel's share of write/fsync): less sensitive to other load on the machine than events/s. db MB: hotplex.db after close (the WAL checkpointed into it): table rows plus the (session_key, seq) primary-key index and the time_ms index.`,
      `redis rows: RedisStore on a redis-server this bench starts on loopback with appendonly yes (appendfsync everysec): each group commit is one fenced script call per session in it (lease checked, seqs continued, byte count kept), all sent at once on one connection; the lease is taken at the first commit. One node: the issue's target (≥ 100k events/s appended across nodes) is for several nodes on one Redis, not measurable until routing exists.`,
      `memory rows: MemoryStore (no durability, --store memory) through the same EventLog and GroupCommitter: the cost of the write path without SQLite.`,
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
