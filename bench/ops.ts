// What metrics and logging cost (`npm run bench -- ops`): three `hotplexd` processes on the
// instant agent (SQLite store, everything else at its default): one as hotplexd runs by
// default (metrics on, every RPC logged at info to a file), one with `--metrics off
// --log-level silent`, and a second such one as the control, measured interleaved in random
// order: hot-turn latency (one session, turn after turn), the daemon's own CPU per hot turn
// (from /proc, over the whole phase: work a daemon defers to after a response is counted
// too), and throughput (8 sessions running turns at once, in rounds that alternate the sides).
// Separate processes: deferred work of one daemon never lands in another's measurement.
// OPS_NODE_FLAGS adds node flags to every daemon (for example "--cpu-prof --cpu-prof-dir=DIR").
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { type BenchResult, isMain, repoRoot, report, type Row, summarize } from "./lib.js";
import { connectClient, instantAgentPath, loadNote, revision, type SessionClient, shuffle, timedExecute } from "./overhead.js";
import { freePort } from "../test/fixtures/free-port.js";

interface Side {
  name: string;
  child: ChildProcess;
  client: SessionClient;
  latencies: number[];
  rates: number[];
  /** The daemon process's user + system CPU over the latency phase, in ms. */
  cpuMs: number;
  close(): Promise<void>;
}

// utime + stime of a process, in ms (fields 14 and 15 of /proc/<pid>/stat, in clock ticks).
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerMs = 100 / 1000; // USER_HZ is 100 on Linux
  return (Number(fields[11]) + Number(fields[12])) / ticksPerMs;
}

export async function startSide(name: string, args: string[]): Promise<Side> {
  const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-bench-ops-"));
  mkdirSync(path.join(scratch, "home"), { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // On: hotplexd's defaults, its log going to a file as an operator would redirect it.
  const logFd = openSync(path.join(scratch, "hotplexd.log"), "w");
  const child = spawn(process.execPath, [...(process.env.OPS_NODE_FLAGS ? process.env.OPS_NODE_FLAGS.split(" ") : []), "--import", "tsx", path.join(repoRoot, "src/cli/hotplexd.ts"), ...args], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: path.join(scratch, "home"),
      HOTPLEX_WORK_ROOT: path.join(scratch, "work"),
      HOTPLEX_DATA_DIR: path.join(scratch, "data"),
      HOTPLEX_CLAUDE_PATH: instantAgentPath,
      HOTPLEX_LISTEN: `127.0.0.1:${port}`,
      HOTPLEX_DRAIN_GRACE: "0",
    },
    stdio: ["ignore", logFd, "pipe"],
  });
  closeSync(logFd);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const client = connectClient(url);
  // Ready once it answers; a daemon that exits fails the run.
  for (let attempt = 0; ; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`hotplexd (${name}) exited: ${stderr}`);
    const ready = await fetch(`${url}/readyz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (attempt > 300) throw new Error(`hotplexd (${name}) did not get ready: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    name,
    child,
    client,
    latencies: [],
    rates: [],
    cpuMs: 0,
    async close() {
      child.kill("SIGTERM");
      await exited;
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

const OFF = ["--metrics", "off", "--log-level", "silent"];

// Turns per second of `sessions` sessions each running `turns` turns back to back.
async function burst(side: Side, sessions: number, turns: number, round: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: sessions }, async (_, s) => {
      for (let i = 0; i < turns; i += 1) await timedExecute(side.client, `burst-${s}`, `round ${round} turn ${i}`);
    }),
  );
  return (sessions * turns) / ((performance.now() - t0) / 1000);
}

/** The median of the per-round ratios a[i] / b[i] (rounds of two sides measured back to back). */
function pairedRatio(a: readonly number[], b: readonly number[]): number {
  return summarize(a.map((value, i) => value / (b[i] ?? NaN))).median;
}

export async function main(): Promise<BenchResult> {
  const startLoad = os.loadavg()[0] ?? NaN;
  const turns = Number(process.env.OPS_TURNS ?? 600);
  const rounds = Number(process.env.OPS_ROUNDS ?? 80);
  const sessions = 8;
  const perSession = 5;
  // The control is a second "off" daemon: how far two identical sides drift apart in one run
  // is the noise floor the on / off ratio has to be read against.
  const sides = await Promise.all([startSide("metrics + logging on (defaults)", []), startSide("metrics off, log silent", OFF), startSide("control: off again", OFF)]);
  const [on, off, control] = sides as [Side, Side, Side];
  try {
    for (const side of sides) {
      for (let i = 0; i < 20; i += 1) await timedExecute(side.client, "hot", `warm up ${i}`);
      await burst(side, sessions, 2, -1);
    }
    const cpuBefore = sides.map((side) => cpuMsOf(side.child.pid as number));
    for (let i = 0; i < turns; i += 1) {
      for (const side of shuffle([...sides])) side.latencies.push((await timedExecute(side.client, "hot", `turn ${i}`)).endMs);
    }
    sides.forEach((side, i) => (side.cpuMs = cpuMsOf(side.child.pid as number) - (cpuBefore[i] as number)));
    for (let r = 0; r < rounds; r += 1) for (const side of shuffle([...sides])) side.rates.push(await burst(side, sessions, perSession, r));
  } finally {
    await Promise.all(sides.map((side) => side.close()));
  }
  const stats = new Map(sides.map((side) => [side, { latency: summarize(side.latencies), cpu: side.cpuMs / side.latencies.length, rate: summarize(side.rates) }]));
  const rows: Row[] = sides.map((side) => {
    const s = stats.get(side)!;
    return {
      side: side.name,
      "hot turn p50 ms": s.latency.median.toFixed(3),
      "hot turn p99 ms": s.latency.p99.toFixed(2),
      "daemon CPU per hot turn ms": s.cpu.toFixed(3),
      "turns/s p50 (8 sessions)": s.rate.median.toFixed(0),
      n: s.latency.n,
    };
  });
  const ratio = (a: Side, b: Side) => ({
    latency: stats.get(a)!.latency.median / stats.get(b)!.latency.median,
    p99: stats.get(a)!.latency.p99 / stats.get(b)!.latency.p99,
    cpu: stats.get(a)!.cpu / stats.get(b)!.cpu,
    rate: pairedRatio(a.rates, b.rates),
  });
  const measured = ratio(on, off);
  const floor = ratio(control, off);
  for (const [label, r] of [["on / off", measured], ["control / off (noise floor)", floor]] as const) {
    rows.push({ side: label, "hot turn p50 ms": r.latency.toFixed(3), "hot turn p99 ms": r.p99.toFixed(3), "daemon CPU per hot turn ms": r.cpu.toFixed(3), "turns/s p50 (8 sessions)": r.rate.toFixed(3), n: "" });
  }
  const within = (value: number) => Math.abs(value - 1) <= 0.03;
  const met = within(measured.latency) && within(measured.rate);
  const result: BenchResult = {
    name: "ops",
    title: "What metrics and logging cost a hot turn and throughput",
    command: "npm run bench -- ops",
    rows,
    notes: [
      `Target (issue #14): within 3% (hot-turn p50 ratio ${measured.latency.toFixed(3)}, throughput ratio ${measured.rate.toFixed(3)}: ${met ? "met" : "not met on this run"}; the control pair, two identical sides, differed by ${floor.latency.toFixed(3)} and ${floor.rate.toFixed(3)}).`,
      `Three hotplexd processes on the instant agent (SQLite store): its defaults (metrics on, RPC lines at info to a file), \`--metrics off --log-level silent\`, and a second such daemon as the control; no trace exporter on any. ${turns} hot turns per side, the three sides in random order on every turn, after 20 warm-up turns (Execute sent → TurnEnded). Daemon CPU per hot turn: the daemon process's user + system time over that phase (from /proc, 10 ms ticks) divided by its turns; it counts what a daemon does after a response too. Then ${rounds} rounds, sides in random order within each, of ${sessions} sessions × ${perSession} turns at once; the throughput ratio is the median of the per-round ratios.`,
      "The instant agent answers at once, so a hot turn here is nearly all hotplex's own work: the worst case for any per-turn cost; with a real agent a hot turn is tens of milliseconds and the same cost is a far smaller share.",
      "The machine is shared with other jobs and noisy: read the on / off ratio against the control / off one, which two identical sides produce in the same run.",
      `Code: ${revision()}.`,
      loadNote(startLoad),
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
