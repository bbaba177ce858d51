// Scale-out on one Redis (issue #16):
// - aggregate appends/s and delivered events/s with 1, 2 and 3 nodes: each node a process of
//   its own running the real write path (EventLog → GroupCommitter → RedisStore's fenced Lua
//   commits) for 50 streaming sessions, and following another node's 50 sessions through its
//   store's watch (one blocking XREAD tailer), as Subscribe does on any node;
// - forwarding's added latency: a warm turn through the node that runs the session and through
//   another node (which forwards it), interleaved, on two hotplexd processes;
// - takeover time: the owner of a session SIGKILLed mid-turn, until a follower on another
//   node sees the turn end owner_lost (no call made).
//
// Run alone: node --import tsx bench/scale-out.ts
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { pino } from "pino";
import { SessionService } from "../gen/hotplex/v1/session_service_pb.js";
import { DEFAULT_TAIL_BOUNDS } from "../src/engine/config.js";
import { TextDeltaSchema } from "../src/events/event.js";
import { EventLog } from "../src/events/event-log.js";
import { GroupCommitter } from "../src/events/group-committer.js";
import { RedisStore } from "../src/store/redis/redis-store.js";
import { type DaemonProcess, startDaemonProcess } from "../test/daemon-process.js";
import { startRedis, type TestRedis } from "../test/fixtures/redis-server.js";
import { transportFor } from "../test/harness.js";
import { type BenchResult, isMain, repoRoot, report, type Row, summarize } from "./lib.js";
import { recordFor } from "./store-append.js";

const SESSIONS = 50;
const EVENTS_PER_NODE = Number(process.env.BENCH_SCALE_EVENTS ?? 150_000);
const BURST = 20;
const ROUNDS = Number(process.env.BENCH_FORWARD_ROUNDS ?? 200);
const TAKEOVERS = Number(process.env.BENCH_TAKEOVERS ?? 3);
const TAKEOVER_TTL = "2s";
const silent = pino({ level: "silent" });

interface NodeRun {
  appended: number;
  appendSeconds: number;
  delivered: number;
  deliverSeconds: number;
}

// ---- one node's appends and follows (a child process: `--node <i> <nodes> <url> <prefix>`)

async function nodeProcess(index: number, nodes: number, url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  const store = new RedisStore(redis, { prefix, node: `n${index}`, lease: { ttlMs: 10_000, marginMs: 2_000 }, location: url, ownsConnection: true });
  const committer = new GroupCommitter(store, silent);
  const perSession = Math.ceil(EVENTS_PER_NODE / SESSIONS / BURST) * BURST;
  const logs: EventLog[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const sessionId = `n${index}-s${i}`;
    const key = `default/${sessionId}`;
    let log: EventLog | undefined;
    log = new EventLog(sessionId, DEFAULT_TAIL_BOUNDS, 0, { store, key, committer, record: recordFor(key, sessionId, () => log!) });
    logs.push(log);
  }
  // Follows the next node's sessions (itself with one node), as Subscribe on any node does.
  const followed = (index + 1) % nodes;
  let delivered = 0;
  let firstAt = 0;
  let lastAt = 0;
  const expected = perSession * SESSIONS;
  const allDelivered = new Promise<void>((resolve) => {
    for (let i = 0; i < SESSIONS; i++) {
      store.watch(`default/n${followed}-s${i}`, 0, {
        deliver: (events) => {
          firstAt ||= performance.now();
          delivered += events.length;
          lastAt = performance.now();
          if (delivered >= expected) resolve();
        },
        trimmed: () => {},
        unreadable: () => {},
      });
    }
  });
  process.stdout.write("ready\n");
  await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once("line", () => resolve()));
  const start = performance.now();
  await Promise.all(
    logs.map(async (log, i) => {
      for (let n = 0; n < perSession; ) {
        for (let b = 0; b < BURST; b++, n++) log.append("turn-1", { case: "textDelta", value: create(TextDeltaSchema, { text: `delta ${i}:${n} of a streaming turn` }) });
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      while (log.lastSeq < perSession) await log.waitBeyond(log.lastSeq);
    }),
  );
  const appendSeconds = (performance.now() - start) / 1000;
  await allDelivered;
  const run: NodeRun = { appended: perSession * SESSIONS, appendSeconds, delivered, deliverSeconds: (lastAt - start) / 1000 };
  process.stdout.write(`${JSON.stringify(run)}\n`);
  await committer.close();
  await store.close();
}

// ---- aggregate appends and deliveries with 1, 2 and 3 nodes

async function nodesRound(redis: TestRedis, nodes: number, round: number): Promise<{ appended: number; delivered: number }> {
  const prefix = `scale${nodes}-${round}:`;
  const children = Array.from({ length: nodes }, (_, i) =>
    spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--node", String(i), String(nodes), redis.url, prefix], {
      cwd: repoRoot,
      stdio: ["pipe", "pipe", "inherit"],
    }),
  );
  // Listened for from the start: a node may exit before its result is read.
  const exits = children.map((child) => new Promise((resolve) => child.once("exit", resolve)));
  const lines = children.map((child) => createInterface({ input: child.stdout! })[Symbol.asyncIterator]());
  for (const line of lines) if ((await line.next()).value !== "ready") throw new Error("a node did not start");
  for (const child of children) child.stdin!.write("go\n");
  const runs = await Promise.all(lines.map(async (line) => JSON.parse((await line.next()).value as string) as NodeRun));
  await Promise.all(exits);
  // The nodes started together: the aggregate rate is all events over the slowest node's time.
  const appended = runs.reduce((sum, run) => sum + run.appended, 0) / Math.max(...runs.map((run) => run.appendSeconds));
  const delivered = runs.reduce((sum, run) => sum + run.delivered, 0) / Math.max(...runs.map((run) => run.deliverSeconds));
  return { appended, delivered };
}

// ---- forwarding's added latency and takeover time, on hotplexd processes

async function daemons(redis: TestRedis, dir: string, count: number, ttl: string): Promise<DaemonProcess[]> {
  const secret = path.join(dir, "node-secret");
  writeFileSync(secret, "a-secret-the-bench-nodes-share-0123456789");
  const prefix = `bench-nodes-${Math.random().toString(36).slice(2)}:`;
  const started: DaemonProcess[] = [];
  for (let i = 1; i <= count; i++) {
    started.push(
      await startDaemonProcess(dir, [], {
        HOTPLEX_STORE: "redis",
        HOTPLEX_REDIS_URL: redis.url,
        HOTPLEX_REDIS_PREFIX: prefix,
        HOTPLEX_NODE_ID: `n${i}`,
        HOTPLEX_LEASE_TTL: ttl,
        HOTPLEX_LEASE_MARGIN: "300ms",
        HOTPLEX_STATE_DIR: path.join(dir, "state"),
        HOTPLEX_NODE_SECRET_FILE: secret,
        HOTPLEX_SANDBOX: "off",
      }),
    );
  }
  return started;
}

async function turnMs(client: ReturnType<typeof createClient<typeof SessionService>>, sessionId: string, prompt: string): Promise<number> {
  const start = performance.now();
  for await (const message of client.execute({ sessionId, prompt })) {
    if (message.events.some((event) => event.payload.case === "turnEnded")) break;
  }
  return performance.now() - start;
}

async function forwarding(redis: TestRedis): Promise<{ direct: number[]; forwarded: number[] }> {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-bench-forward-"));
  const [owner, other] = await daemons(redis, dir, 2, "10s");
  try {
    const direct = createClient(SessionService, transportFor(owner!.url, "connect"));
    const via = createClient(SessionService, transportFor(other!.url, "connect"));
    await turnMs(direct, "warm", "hello");
    // Warm-up of both paths (connections, JIT), then interleaved rounds.
    for (let i = 0; i < 20; i++) {
      await turnMs(direct, "warm", "hi");
      await turnMs(via, "warm", "hi");
    }
    const times = { direct: [] as number[], forwarded: [] as number[] };
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 2 === 0) {
        times.direct.push(await turnMs(direct, "warm", "hi"));
        times.forwarded.push(await turnMs(via, "warm", "hi"));
      } else {
        times.forwarded.push(await turnMs(via, "warm", "hi"));
        times.direct.push(await turnMs(direct, "warm", "hi"));
      }
    }
    return times;
  } finally {
    for (const daemon of [owner, other]) daemon?.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function takeover(redis: TestRedis): Promise<number[]> {
  const times: number[] = [];
  for (let round = 0; round < TAKEOVERS; round++) {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-bench-takeover-"));
    const nodes = await daemons(redis, dir, 2, TAKEOVER_TTL);
    const [one, two] = nodes as [DaemonProcess, DaemonProcess];
    try {
      const clientOne = createClient(SessionService, transportFor(one.url, "connect"));
      const clientTwo = createClient(SessionService, transportFor(two.url, "connect"));
      await turnMs(clientOne, "cut", "hello");
      void turnMs(clientOne, "cut", "[[hang]]").catch(() => 0);
      const snapshot = async () => clientTwo.getSnapshot({ sessionId: "cut" });
      while (!(await snapshot()).session?.currentTurn) await new Promise((resolve) => setTimeout(resolve, 20));
      const { lastSeq, session } = await snapshot();
      let killedAt = 0;
      const ended = (async () => {
        for await (const message of clientTwo.subscribe({ sessionId: "cut", afterSeq: lastSeq, follow: true })) {
          if (message.events.some((e) => e.payload.case === "turnEnded" && e.payload.value.errorMessage.includes("owner_lost"))) return performance.now() - killedAt;
        }
        throw new Error("the follower ended without the owner_lost end");
      })();
      killedAt = performance.now();
      one.child.kill("SIGKILL");
      process.kill(-session!.pid, "SIGKILL");
      times.push(await ended);
    } finally {
      for (const daemon of nodes) daemon.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return times;
}

export async function main(): Promise<BenchResult> {
  const redis = await startRedis({ appendOnly: true });
  try {
    const rows: Row[] = [];
    const rounds = Number(process.env.BENCH_REPEATS ?? 2);
    const base: { appended: number; delivered: number }[] = [];
    for (const nodes of [1, 2, 3]) {
      const results: { appended: number; delivered: number }[] = [];
      for (let round = 0; round < rounds; round++) results.push(await nodesRound(redis, nodes, round));
      const appended = summarize(results.map((r) => r.appended)).median;
      const delivered = summarize(results.map((r) => r.delivered)).median;
      base.push({ appended, delivered });
      rows.push({
        case: `${nodes} node${nodes > 1 ? "s" : ""}, ${SESSIONS * nodes} streaming sessions, each node following another's ${SESSIONS}`,
        "appended events/s (all nodes)": Math.round(appended),
        "delivered events/s (all nodes)": Math.round(delivered),
        "appended vs 1 node": `x${(appended / base[0]!.appended).toFixed(2)}`,
      });
    }
    const times = await forwarding(redis);
    const direct = summarize(times.direct);
    const forwarded = summarize(times.forwarded);
    rows.push({
      case: `warm turn (fake agent), ${ROUNDS} interleaved rounds: through the owner / through another node`,
      "appended events/s (all nodes)": `p50 ${direct.median.toFixed(2)} / ${forwarded.median.toFixed(2)} ms`,
      "delivered events/s (all nodes)": `p99 ${direct.p99.toFixed(2)} / ${forwarded.p99.toFixed(2)} ms`,
      "appended vs 1 node": `forwarding adds p50 ${(forwarded.median - direct.median).toFixed(2)} ms (x${(forwarded.median / direct.median).toFixed(2)})`,
    });
    const takeovers = await takeover(redis);
    rows.push({
      case: `takeover: owner SIGKILLed mid-turn until a follower on another node sees owner_lost (lease ttl ${TAKEOVER_TTL}), ${TAKEOVERS} runs`,
      "appended events/s (all nodes)": takeovers.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(", "),
      "delivered events/s (all nodes)": `max ${(Math.max(...takeovers) / 1000).toFixed(2)} s`,
      "appended vs 1 node": `target ttl + 1 s = ${Number.parseInt(TAKEOVER_TTL, 10) + 1} s`,
    });
    const result: BenchResult = {
      name: "scale-out",
      title: "Scale-out: nodes on one Redis",
      command: "npm run bench -- scale-out",
      rows,
      notes: [
        `Each node is a process of its own appending ${EVENTS_PER_NODE} text deltas over ${SESSIONS} sessions in bursts of ${BURST} (the store-append workload) through fenced Lua group commits, while following the next node's ${SESSIONS} sessions through RedisStore.watch (one blocking XREAD per node). One redis-server with its AOF (fsync every second), on loopback; the nodes, Redis and this process share the machine's 2 cores, so more nodes add contention, not cores.`,
        "Delivered: events received by the followers over the time from the start to the last one received.",
        "Forwarding: two hotplexd processes on one Redis with a node secret; the same warm session driven alternately through its owner and through the other node, which forwards the Execute (connect-node, HTTP/2, binary) and relays its stream.",
        "Takeover: lease ttl 2 s, margin 300 ms; the survivor's sweep runs every 500 ms and takes a session seen orphaned twice in a row.",
      ],
    };
    report(result);
    return result;
  } finally {
    await redis.stop();
  }
}

if (process.argv[2] === "--node") {
  const [index, nodes, url, prefix] = process.argv.slice(3);
  await nodeProcess(Number(index), Number(nodes), url!, prefix!);
  process.exit(0);
} else if (isMain(import.meta.url)) {
  await main();
}
