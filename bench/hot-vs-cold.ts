// A warm hotplex turn against what peers do per message (spawn the CLI with --resume),
// with the REAL Claude Code CLI (node_modules/.bin/claude) against a local mock of the
// Messages API, so model latency is about 0 and the difference is process cost.
//
//   node --import tsx bench/hot-vs-cold.ts       (HOTCOLD_TURNS=20 by default)
//
// (a) hotplex: Execute sent → TurnEnded received, on one warm session of an in-process
//     hotplexd with the durable default store (sqlite, normal).
// (b) per-message spawn: `claude -p --input-format stream-json --output-format stream-json
//     --verbose --resume <id>` for each turn (after one `--session-id <id>` turn so the
//     conversation exists): spawn → prompt written → `result` line; then stdin is closed
//     and the exit awaited (not timed).
// The sides (hotplex over Connect, hotplex over gRPC, per-message spawn) run in a random order each round.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { claudeEnv, startMockAnthropic } from "../test/fixtures/mock-anthropic.js";
import { type BenchResult, isMain, report, repoRoot, type Row, summarize } from "./lib.js";
import { AGENT_ARGS, connectClient, grpcClient, loadNote, promptLine, revision, shuffle, startInProcessDaemon, timedExecute } from "./overhead.js";

const claudePath = path.join(repoRoot, "node_modules", ".bin", "claude");
// The flags hotplex starts the CLI with, so that both sides run the same CLI work.
const PEER_ARGS = AGENT_ARGS;

interface PeerTurn {
  ms: number;
  isError: boolean;
}

/** One turn the way a per-message host does it: a fresh CLI process. */
export function peerTurn(args: string[], cwd: string, env: Record<string, string>, prompt: string): Promise<PeerTurn> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(claudePath, [...PEER_ARGS, ...args], { cwd, env, stdio: ["pipe", "pipe", "pipe"] });
    let pending = "";
    let result: PeerTurn | undefined;
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      pending += chunk;
      let nl = pending.indexOf("\n");
      while (nl !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!result && line.startsWith('{"type":"result"')) {
          result = { ms: performance.now() - t0, isError: (JSON.parse(line) as { is_error?: boolean }).is_error === true };
          child.stdin.end();
        }
        nl = pending.indexOf("\n");
      }
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (result) resolve(result);
      else reject(new Error(`claude exited with ${code} before a result: ${stderr.slice(-2000)}`));
    });
    child.stdin.on("error", () => {});
    child.stdin.write(promptLine(prompt) + "\n");
  });
}

export async function main(): Promise<BenchResult> {
  const codeAtStart = revision();
  const startLoad = os.loadavg()[0] ?? NaN;
  const turns = Number(process.env.HOTCOLD_TURNS ?? 20);
  const mock = await startMockAnthropic();
  // The daemon's scratch dir holds HOME (transcripts), the work root and the sqlite file.
  const daemon = await startInProcessDaemon({
    store: "sqlite",
    claudePath,
    turnTimeoutMs: 120_000,
    agentEnv: (home) => claudeEnv({ home, baseUrl: mock.url }),
  });
  // The peer runs with the same environment and HOME, in its own work dir.
  const env = claudeEnv({ home: daemon.home, baseUrl: mock.url });
  const peerDir = path.join(daemon.scratch, "peer");
  mkdirSync(peerDir, { recursive: true });
  const client = connectClient(daemon.url);
  const grpc = grpcClient(daemon.url);
  const sessionId = "hot-vs-cold";
  const grpcSessionId = "hot-vs-cold-grpc";
  const peerId = randomUUID();
  const hot: number[] = [];
  const hotGrpc: number[] = [];
  const cold: number[] = [];
  let coldErrors = 0;
  let hotFirst = NaN;
  let peerFirst = NaN;
  try {
    // hotplex's first turn spawns the CLI (cold); the peer's first turn creates the conversation.
    const first = await timedExecute(client, sessionId, "hello, remember PINEAPPLE");
    hotFirst = first.endMs;
    await timedExecute(grpc, grpcSessionId, "hello, remember PINEAPPLE");
    peerFirst = (await peerTurn(["--session-id", peerId], peerDir, env, "hello, remember PINEAPPLE")).ms;
    // One warm turn each side before measuring.
    await timedExecute(client, sessionId, "warm-up");
    await timedExecute(grpc, grpcSessionId, "warm-up");
    await peerTurn(["--resume", peerId], peerDir, env, "warm-up");
    for (let i = 0; i < turns; i += 1) {
      for (const side of shuffle(["hot", "hot-grpc", "cold"] as const)) {
        const prompt = `turn ${i}: what was the word?`;
        if (side !== "cold") {
          const t = side === "hot" ? await timedExecute(client, sessionId, prompt) : await timedExecute(grpc, grpcSessionId, prompt);
          if (t.outcome !== 1) throw new Error(`hotplex turn ${i} did not complete (outcome ${t.outcome})`);
          (side === "hot" ? hot : hotGrpc).push(t.endMs);
        } else {
          const t = await peerTurn(["--resume", peerId], peerDir, env, prompt);
          if (t.isError) coldErrors += 1;
          cold.push(t.ms);
        }
      }
    }
  } finally {
    await daemon.close();
    await mock.close();
  }
  const h = summarize(hot);
  const g = summarize(hotGrpc);
  const c = summarize(cold);
  const ratio = c.median / h.median;
  const rows: Row[] = [
    { side: "hotplex warm turn, Connect HTTP/1.1 (Execute → TurnEnded)", n: h.n, "median ms": h.median, "p99 ms": h.p99, "min ms": h.min, "max ms": h.max },
    { side: "hotplex warm turn, gRPC HTTP/2 (Execute → TurnEnded)", n: g.n, "median ms": g.median, "p99 ms": g.p99, "min ms": g.min, "max ms": g.max },
    { side: "spawn per message (claude --resume, spawn → result)", n: c.n, "median ms": c.median, "p99 ms": c.p99, "min ms": c.min, "max ms": c.max },
    { side: "hotplex first turn (cold spawn, --session-id)", n: 1, "median ms": hotFirst, "p99 ms": hotFirst, "min ms": hotFirst, "max ms": hotFirst },
    { side: "peer first turn (spawn, --session-id)", n: 1, "median ms": peerFirst, "p99 ms": peerFirst, "min ms": peerFirst, "max ms": peerFirst },
  ];
  const notes = [
    `Ratio spawn-per-message / hotplex warm (Connect): ${ratio.toFixed(1)}× at the median, ${(c.p99 / h.p99).toFixed(1)}× at p99 (target: hot ≥ 15× faster: ${ratio >= 15 ? "met" : "MISSED"}).`,
    `Ratio spawn-per-message / hotplex warm (gRPC): ${(c.median / g.median).toFixed(1)}× at the median, ${(c.p99 / g.p99).toFixed(1)}× at p99 (target ≥ 15×: ${c.median / g.median >= 15 ? "met" : "MISSED"}).`,
    `Code: ${codeAtStart}${revision() === codeAtStart ? "" : ` at start, ${revision()} at end`}. ${loadNote(startLoad)} Real Claude Code CLI 2.1.197 against the local mock Messages API (test/fixtures/mock-anthropic.ts); hotplexd in-process with the sqlite store (durability normal); one warm session per protocol.`,
    `${turns} turns per side, alternating in random order; one untimed warm-up turn per side first.${coldErrors > 0 ? ` ${coldErrors} per-message turns ended with is_error.` : ""}`,
  ];
  const result: BenchResult = {
    name: "hot-vs-cold",
    title: "Warm hotplex turn vs spawn-per-message (real Claude Code CLI, mock API)",
    command: "node --import tsx bench/hot-vs-cold.ts",
    rows,
    notes,
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
