// How many concurrent sessions one daemon holds, with the instant agent: at 10 / 100 / 500
// sessions, each running turns in a loop.
//
//   node --import tsx bench/scale.ts      (SCALE_LEVELS=10,100,500, SCALE_LOOP_S=10)
//
// Each level gets a fresh hotplexd child process (default sqlite store,
// HOTPLEX_MAX_SESSIONS=600). Per level:
//   1. daemon RSS (VmRSS of the daemon alone, not its agents) before any session exists;
//   2. N sessions are created (first turn = cold spawn, SCALE_SPAWN_CONCURRENCY at a time),
//      stopping early if the machine runs low on memory (MemAvailable < SCALE_MIN_FREE_MB)
//      or the daemon refuses;
//   3. every held session runs turns back to back for SCALE_LOOP_S seconds: turns/s and
//      turn latency (Execute sent → TurnEnded) over all of them;
//   4. the sessions idle for SCALE_IDLE_S (3) s; daemon RSS again: per session = (RSS − RSS before) / N.
// Memory is read after a full GC forced through SIGUSR2 (see runLevel).
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { type BenchResult, isMain, report, type Row, summarize } from "./lib.js";
import { connectClient, loadNote, revision, type SessionClient, timedExecute } from "./overhead.js";
import { type ChildDaemon, processRssKiB, startChildDaemon } from "./throughput.js";

function memAvailableMiB(): number {
  const match = /MemAvailable:\s+(\d+)\s+kB/.exec(readFileSync("/proc/meminfo", "utf8"));
  return match ? Number(match[1]) / 1024 : Infinity;
}

/** Pids of the daemon's direct children (its agents). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

interface Level {
  target: number;
  held: number;
  stoppedBecause: string;
  spawnS: number;
  turns: number;
  loopS: number;
  latencies: number[];
  failures: number;
  rssBeforeKiB: number;
  rssAfterFirstKiB: number;
  rssIdleKiB: number;
  heapBeforeKiB: number;
  heapAfterFirstKiB: number;
  heapIdleKiB: number;
  heapTotalBeforeKiB: number;
  heapTotalIdleKiB: number;
  spaceGrowth: string;
  rssIdleNoGcKiB: number;
  /** V8 new-space committed KiB at the three readings: the nursery, sized by allocation rate, not by sessions. */
  newSpaceKiB: { before: number; afterFirst: number; idle: number };
  daemonCpuS: number;
  clientCpuS: number;
  agentsRssKiB: number;
  loadAvg: number;
  memAvailableMiB: number;
}

async function runLevel(target: number, loopS: number, spawnConcurrency: number, minFreeMiB: number, idleS: number): Promise<Level> {
  const daemon: ChildDaemon = await startChildDaemon({
    store: "sqlite",
    maxSessions: 600,
    // SCALE_DAEMON_ENV: extra daemon environment as JSON, for experiments (e.g. MALLOC_ARENA_MAX).
    env: { HOTPLEX_IDLE_TIMEOUT: "0", ...(JSON.parse(process.env.SCALE_DAEMON_ENV ?? "{}") as Record<string, string>) },
    // On SIGUSR2: a full GC that compacts the heap (as the daemon's own memory release does, so
    // every reading is taken in the same state), then the heap figures on stderr (an inline
    // preload: no product change).
    // SCALE_DAEMON_NODE_ARGS: extra node flags for the daemon, for experiments (e.g. --max-semi-space-size=1).
    nodeArgs: [
      ...(process.env.SCALE_DAEMON_NODE_ARGS ?? "").split(" ").filter(Boolean),
      "--expose-gc",
      "--import",
      `data:text/javascript,import v8 from "node:v8";process.on("SIGUSR2",()=>{v8.setFlagsFromString("--compact-on-every-full-gc");globalThis.gc();v8.setFlagsFromString("--no-compact-on-every-full-gc");process.stderr.write("BENCH_MEM "+JSON.stringify({...process.memoryUsage(),spaces:v8.getHeapSpaceStatistics()})+"\\n")})`,
    ],
  });
  type Mem = NodeJS.MemoryUsage & { spaces: { space_name: string; space_size: number; space_used_size: number; physical_space_size: number }[] };
  let lastMem: Mem | undefined;
  let stderrBuf = "";
  daemon.child.stderr!.on("data", (chunk: Buffer) => {
    stderrBuf += chunk.toString("utf8");
    let nl = stderrBuf.indexOf("\n");
    while (nl !== -1) {
      const line = stderrBuf.slice(0, nl);
      stderrBuf = stderrBuf.slice(nl + 1);
      if (line.startsWith("BENCH_MEM ")) lastMem = JSON.parse(line.slice(10)) as Mem;
      nl = stderrBuf.indexOf("\n");
    }
  });
  /** After a forced full GC: VmRSS (KiB) and the V8 heap + external memory in use (KiB). */
  const memoryAfterGc = async (): Promise<{ rssKiB: number; heapKiB: number; heapTotalKiB: number; spaces: Mem["spaces"] }> => {
    lastMem = undefined;
    process.kill(daemon.pid, "SIGUSR2");
    for (let i = 0; i < 50 && !lastMem; i += 1) await sleep(100);
    await sleep(500);
    const mem = lastMem as Mem | undefined;
    return {
      rssKiB: daemon.rssKiB(),
      heapKiB: mem ? (mem.heapUsed + mem.external) / 1024 : NaN,
      heapTotalKiB: mem ? mem.heapTotal / 1024 : NaN,
      spaces: mem?.spaces ?? [],
    };
  };
  try {
    // One unary call first, so code that loads on the first request is not counted per session.
    const client: SessionClient = connectClient(daemon.url);
    await client.listSessions({});
    await sleep(500);
    const before = await memoryAfterGc();

    // Create the sessions, a few at a time.
    const held: string[] = [];
    let stoppedBecause = "";
    let next = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (next < target && !stoppedBecause) {
        if (memAvailableMiB() < minFreeMiB) {
          stoppedBecause = `MemAvailable below ${minFreeMiB} MiB`;
          return;
        }
        const id = `scale-${target}-${next}`;
        next += 1;
        try {
          const t = await timedExecute(client, id, "hello");
          if (t.outcome !== 1) throw new Error(`first turn outcome ${t.outcome}`);
          held.push(id);
        } catch (error) {
          stoppedBecause ||= `session ${id} failed: ${(error as Error).message.slice(0, 200)}`;
        }
      }
    };
    await Promise.all(Array.from({ length: spawnConcurrency }, worker));
    const spawnS = (performance.now() - t0) / 1000;
    const afterFirst = await memoryAfterGc();

    // Every held session runs turns back to back.
    const latencies: number[] = [];
    let failures = 0;
    const cpu0 = daemon.cpuSeconds();
    const clientCpu0 = process.cpuUsage();
    const loopStart = performance.now();
    const deadline = loopStart + loopS * 1000;
    await Promise.all(
      held.map(async (id) => {
        while (performance.now() < deadline) {
          try {
            const t = await timedExecute(client, id, "loop");
            if (t.outcome === 1) latencies.push(t.endMs);
            else failures += 1;
          } catch {
            failures += 1;
          }
        }
      }),
    );
    const loopS2 = (performance.now() - loopStart) / 1000;
    const daemonCpuS = daemon.cpuSeconds() - cpu0;
    const clientCpu = process.cpuUsage(clientCpu0);
    await sleep(idleS * 1000);
    const rssIdleNoGcKiB = daemon.rssKiB();
    const loadAvg = os.loadavg()[0] ?? NaN;
    const idle = await memoryAfterGc();
    const agentsRssKiB = childPids(daemon.pid).reduce((sum, pid) => {
      try {
        return sum + processRssKiB(pid);
      } catch {
        return sum;
      }
    }, 0);
    return {
      target,
      held: held.length,
      stoppedBecause,
      spawnS,
      turns: latencies.length,
      loopS: loopS2,
      latencies,
      failures,
      rssBeforeKiB: before.rssKiB,
      rssAfterFirstKiB: afterFirst.rssKiB,
      rssIdleKiB: idle.rssKiB,
      heapBeforeKiB: before.heapKiB,
      heapAfterFirstKiB: afterFirst.heapKiB,
      heapIdleKiB: idle.heapKiB,
      heapTotalBeforeKiB: before.heapTotalKiB,
      heapTotalIdleKiB: idle.heapTotalKiB,
      spaceGrowth: idle.spaces
        .map((space) => {
          const was = before.spaces.find((b) => b.space_name === space.space_name);
          return `${space.space_name} committed +${((space.space_size - (was?.space_size ?? 0)) / 2 ** 20).toFixed(1)} MiB (used +${((space.space_used_size - (was?.space_used_size ?? 0)) / 2 ** 20).toFixed(1)})`;
        })
        .join(", "),
      rssIdleNoGcKiB,
      newSpaceKiB: { before: newSpaceKiB(before.spaces), afterFirst: newSpaceKiB(afterFirst.spaces), idle: newSpaceKiB(idle.spaces) },
      daemonCpuS,
      clientCpuS: (clientCpu.user + clientCpu.system) / 1e6,
      agentsRssKiB,
      loadAvg,
      memAvailableMiB: memAvailableMiB(),
    };
  } finally {
    await daemon.close();
  }
}

function newSpaceKiB(spaces: { space_name: string; space_size: number }[]): number {
  return (spaces.find((space) => space.space_name === "new_space")?.space_size ?? 0) / 1024;
}

export async function main(): Promise<BenchResult> {
  const codeAtStart = revision();
  const startLoad = os.loadavg()[0] ?? NaN;
  const levels = (process.env.SCALE_LEVELS ?? "10,100,500").split(",").map(Number);
  const loopS = Number(process.env.SCALE_LOOP_S ?? 10);
  const spawnConcurrency = Number(process.env.SCALE_SPAWN_CONCURRENCY ?? 8);
  const minFreeMiB = Number(process.env.SCALE_MIN_FREE_MB ?? 3072);
  // Longer than the daemon's release-memory-after (10 s by default, checked every 10 s).
  const idleS = Number(process.env.SCALE_IDLE_S ?? 25);
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const target of levels) {
    const level = await runLevel(target, loopS, spawnConcurrency, minFreeMiB, idleS);
    const lat = summarize(level.latencies);
    const held = Math.max(1, level.held);
    // Per session: RSS growth over the baseline, less the change in V8's new space (the
    // nursery: up to 16 MiB per semi-space, sized by the allocation rate of the moment,
    // not by the number of sessions; it can be larger at the baseline than when idle).
    const nursery = level.newSpaceKiB;
    const perSessionFirst = (level.rssAfterFirstKiB - level.rssBeforeKiB - (nursery.afterFirst - nursery.before)) / held;
    // What an operator sees: the idle daemon as it is, no GC forced from outside.
    const perSessionIdle = (level.rssIdleNoGcKiB - level.rssBeforeKiB - (nursery.idle - nursery.before)) / held;
    const perSessionIdleRaw = (level.rssIdleNoGcKiB - level.rssBeforeKiB) / held;
    rows.push({
      "target sessions": target,
      "sessions held": level.held,
      "spawn s (all sessions)": level.spawnS,
      "turns/s": level.turns / level.loopS,
      "turns per session": level.turns / Math.max(1, level.held),
      "turn p50 ms": lat.median,
      "turn p99 ms": lat.p99,
      "failed turns": level.failures,
      "daemon CPU ms / turn": (level.daemonCpuS * 1000) / Math.max(1, level.turns),
      "daemon CPU % (of 1 core)": (100 * level.daemonCpuS) / level.loopS,
      "client CPU %": (100 * level.clientCpuS) / level.loopS,
      "daemon RSS before MiB": level.rssBeforeKiB / 1024,
      "daemon RSS idle MiB": level.rssIdleNoGcKiB / 1024,
      "KiB / session after 1 turn (forced GC)": perSessionFirst,
      "KiB / idle session after loop": perSessionIdle,
      "KiB / idle session after loop, nursery included": perSessionIdleRaw,
      "new space MiB (before / after 1 turn / idle)": `${(nursery.before / 1024).toFixed(1)} / ${(nursery.afterFirst / 1024).toFixed(1)} / ${(nursery.idle / 1024).toFixed(1)}`,
      "heap+external KiB / session after 1 turn": (level.heapAfterFirstKiB - level.heapBeforeKiB) / Math.max(1, level.held),
      "heap+external KiB / idle session after loop": (level.heapIdleKiB - level.heapBeforeKiB) / Math.max(1, level.held),
      "agents RSS MiB (sum)": level.agentsRssKiB / 1024,
      "load avg (1 min)": level.loadAvg,
    });
    if (level.stoppedBecause) notes.push(`${target} sessions: stopped at ${level.held}: ${level.stoppedBecause}.`);
    if (target >= 500) {
      notes.push(
        `${target}-session level: ${level.held} sessions held (target ≥ 500: ${level.held >= 500 ? "met" : "MISSED"}); ` +
          `${perSessionIdle.toFixed(0)} KiB daemon memory per idle session after ${(level.turns / Math.max(1, level.held)).toFixed(0)} turns each ` +
          `(target ≤ 100 KB: ${perSessionIdle * 1.024 <= 100 ? "met" : "MISSED"}); ${perSessionFirst.toFixed(0)} KiB per session after its first turn.`,
        `${target}-session level, RSS growth ${((level.rssIdleKiB - level.rssBeforeKiB) / 1024).toFixed(1)} MiB after the loop and a forced GC: V8 heap in use +${((level.heapIdleKiB - level.heapBeforeKiB) / 1024).toFixed(1)} MiB (heap + external), ` +
          `V8 heap committed +${((level.heapTotalIdleKiB - level.heapTotalBeforeKiB) / 1024).toFixed(1)} MiB; the rest is memory the process keeps mapped after the load (allocator high-water, code, stacks). By V8 space: ${level.spaceGrowth}.`,
      );
    }
  }
  notes.push(
    `Code: ${codeAtStart}${revision() === codeAtStart ? "" : ` at start, ${revision()} at end`}. ${loadNote(startLoad)}`,
    `hotplexd as a child process (default sqlite store, HOTPLEX_MAX_SESSIONS=600, HOTPLEX_IDLE_TIMEOUT=0), a fresh daemon per level; one Connect (HTTP/1.1) client in the bench process; sessions created ${spawnConcurrency} at a time; each held session then runs turns back to back for ${loopS} s.`,
    `Daemon memory = VmRSS of the daemon process alone (its agents excluded). Per-session figures are its growth over the baseline less the change in V8's new space (the nursery, up to 16 MiB per semi-space, sized by the allocation rate of the moment rather than by sessions: it is often larger at the baseline, taken right after start-up, than once idle); 'nursery included' is the plain difference. 'KiB / idle session after loop' (the target's figure) is read after the loop and ${idleS} s idle, as the daemon is: it compacts its heap on its own once quiet (--release-memory-after, default 10 s). The '(forced GC)' figures and the baseline are read 1 s after a compacting full GC forced from outside (the daemon runs with --expose-gc and an inline --import that calls gc() with --compact-on-every-full-gc on SIGUSR2, the same GC the daemon's memory release runs): before any session, after every session's first turn, and after the idle read. 'heap+external' = V8 heapUsed + external after that GC: what the sessions retain. 'agents RSS' sums the agents' own VmRSS (shared pages counted in each).`,
  );
  const result: BenchResult = {
    name: "scale",
    title: "Concurrent sessions on one daemon (instant agent)",
    command: "node --import tsx bench/scale.ts",
    rows,
    notes,
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
