// What the OS sandbox costs an agent (`npm run bench -- sandbox`): the first turn of a new
// session (a cold start: spawn, first prompt, answer) and a warm turn, with the sandbox
// required and off, in two in-process daemons whose turns run interleaved in random order.
//
// Both with the real Claude Code CLI against the local mock of the Messages API
// (SANDBOX_COLD=20 new sessions and SANDBOX_HOT=100 warm turns per side by default), and
// with the instant agent (bench/fixtures/instant-agent.mjs), whose cold start is almost
// only process creation, so the sandbox's share shows most.
import os from "node:os";
import path from "node:path";
import { DEFAULT_SANDBOX } from "../src/engine/config.js";
import { claudeEnv, startMockAnthropic } from "../test/fixtures/mock-anthropic.js";
import { type BenchResult, isMain, report, repoRoot, type Row, summarize } from "./lib.js";
import { connectClient, instantAgentPath, type InProcessDaemon, loadNote, revision, shuffle, startInProcessDaemon, timedExecute } from "./overhead.js";

const claudePath = path.join(repoRoot, "node_modules", ".bin", "claude");

interface Side {
  name: string;
  daemon: InProcessDaemon;
  client: ReturnType<typeof connectClient>;
  cold: number[];
  hot: number[];
}

async function measure(agent: "claude" | "instant", cold: number, hot: number): Promise<Row[]> {
  const mock = agent === "claude" ? await startMockAnthropic() : undefined;
  const sides: Side[] = [];
  for (const mode of ["required", "off"] as const) {
    const daemon = await startInProcessDaemon({
      claudePath: agent === "claude" ? claudePath : instantAgentPath,
      store: "sqlite",
      agentEnv: mock ? (home) => claudeEnv({ home, baseUrl: mock.url }) : undefined,
      // The other side has neither the sandbox nor the limits: the whole cost of containment.
      sandbox: mode === "required" ? { ...DEFAULT_SANDBOX, mode } : { ...DEFAULT_SANDBOX, mode, memoryBytes: 0, processes: 0, openFiles: 0 },
      turnTimeoutMs: 60_000,
    });
    sides.push({ name: `sandbox ${mode === "required" ? "on" : "off"}`, daemon, client: connectClient(daemon.url), cold: [], hot: [] });
  }
  try {
    // Warm-up: one session per side.
    for (const side of sides) {
      await timedExecute(side.client, "warm", "warm up");
      await timedExecute(side.client, "warm", "warm up");
    }
    for (let i = 0; i < cold; i += 1) {
      for (const side of shuffle([...sides])) {
        const turn = await timedExecute(side.client, `cold-${i}`, "hello");
        side.cold.push(turn.endMs);
        // Free the agent: the daemons keep at most their live-session cap.
        await side.client.stopSession({ sessionId: `cold-${i}` });
      }
    }
    for (let i = 0; i < hot; i += 1) {
      for (const side of shuffle([...sides])) side.hot.push((await timedExecute(side.client, "warm", `turn ${i}`)).endMs);
    }
  } finally {
    for (const side of sides) await side.daemon.close();
    await mock?.close();
  }
  const [on, off] = sides as [Side, Side];
  const row = (what: string, a: number[], b: number[]): Row => {
    const x = summarize(a);
    const y = summarize(b);
    return {
      agent: agent === "claude" ? "Claude Code 2.1.197 (mock API)" : "instant agent",
      turn: what,
      "sandbox on p50 ms": x.median.toFixed(1),
      "sandbox off p50 ms": y.median.toFixed(1),
      "added p50 ms": (x.median - y.median).toFixed(1),
      "sandbox on p99 ms": x.p99.toFixed(1),
      "sandbox off p99 ms": y.p99.toFixed(1),
      n: x.n,
    };
  };
  return [row("first turn of a new session (cold)", on.cold, off.cold), row("warm turn", on.hot, off.hot)];
}

export async function main(): Promise<BenchResult> {
  const startLoad = os.loadavg()[0] ?? NaN;
  const cold = Number(process.env.SANDBOX_COLD ?? 20);
  const hot = Number(process.env.SANDBOX_HOT ?? 100);
  const rows = [...(await measure("instant", cold, hot)), ...(await measure("claude", cold, hot))];
  const result: BenchResult = {
    name: "sandbox",
    title: "Cost of the OS sandbox on a cold start and a warm turn",
    command: "npm run bench -- sandbox",
    rows,
    notes: [
      "Targets (issue #10): at most 20 ms added to a cold start, no measurable change on a warm turn. 'added' = on − off at the median.",
      `Two in-process daemons (SQLite store), one with --sandbox required and the default limits (bubblewrap, a cgroup where available, prlimit), one with --sandbox off and no limits; per round one new session per side (Execute sent → TurnEnded) then a stop, in random side order; then warm turns on one session per side, interleaved. ${cold} cold starts and ${hot} warm turns per side.`,
      `Code: ${revision()}.`,
      loadNote(startLoad),
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
