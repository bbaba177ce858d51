// What metrics and logging cost (`npm run bench -- ops`): two in-process daemons on the
// instant agent (SQLite store), one as hotplexd runs by default (metrics on, every RPC and
// turn logged at info to /dev/null) and one with metrics off and the log silent, measured
// interleaved in random order: hot-turn latency (one session, turn after turn) and
// throughput (8 sessions running turns at once, in rounds that alternate the sides).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { DEFAULT_TAIL_BOUNDS, engineConfig } from "../src/engine/config.js";
import { Engine } from "../src/engine/engine.js";
import { Observability } from "../src/observability/observability.js";
import { providerSettings } from "../src/providers/registry.js";
import { CredentialTable } from "../src/security/credentials.js";
import { agentEnvironment } from "../src/security/env.js";
import { createServer } from "../src/server/server.js";
import { type BenchResult, isMain, report, type Row, summarize } from "./lib.js";
import { connectClient, instantAgentPath, loadNote, revision, type SessionClient, shuffle, timedExecute } from "./overhead.js";

interface Side {
  name: string;
  client: SessionClient;
  latencies: number[];
  rates: number[];
  close(): Promise<void>;
}

async function startSide(name: string, observed: boolean): Promise<Side> {
  const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-bench-ops-"));
  const home = path.join(scratch, "home");
  mkdirSync(home, { recursive: true });
  // On: what hotplexd does by default (info lines written to a file); off: nothing written.
  const logger = observed ? pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: true })) : pino({ level: "silent" });
  const observability = new Observability({ metrics: observed, logger });
  const config = engineConfig(
    { workRoot: path.join(scratch, "work"), stateRoot: path.join(scratch, "state"), store: { kind: "sqlite", dataDir: path.join(scratch, "data"), durability: "normal" }, agentEnv: { ...agentEnvironment(process.env), HOME: home } },
    {
      providers: providerSettings({ "claude-code": instantAgentPath }),
      limits: { queueLimit: 16, turnTimeoutMs: 600_000, idleTimeoutMs: 0, stopGraceMs: 2_000 },
      logBounds: DEFAULT_TAIL_BOUNDS,
      observer: observability.engineObserver,
    },
  );
  const engine = await Engine.open(config, logger);
  observability.attach(engine);
  const credentials = new CredentialTable([]);
  const server = createServer({
    engine,
    logger,
    credentials: () => credentials,
    version: "bench",
    observe: observability.interceptors,
    extraRoutes: observability.routes(() => credentials, "admin"),
  });
  const { url } = await server.listen("127.0.0.1", 0);
  return {
    name,
    client: connectClient(url),
    latencies: [],
    rates: [],
    async close() {
      await engine.shutdown();
      await server.close();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

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

export async function main(): Promise<BenchResult> {
  const startLoad = os.loadavg()[0] ?? NaN;
  const turns = Number(process.env.OPS_TURNS ?? 300);
  const rounds = Number(process.env.OPS_ROUNDS ?? 10);
  const sessions = 8;
  const perSession = 10;
  const sides = [await startSide("metrics + logging on", true), await startSide("metrics off, log silent", false)];
  try {
    for (const side of sides) {
      for (let i = 0; i < 20; i += 1) await timedExecute(side.client, "hot", `warm up ${i}`);
      await burst(side, sessions, 2, -1);
    }
    for (let i = 0; i < turns; i += 1) for (const side of shuffle([...sides])) side.latencies.push((await timedExecute(side.client, "hot", `turn ${i}`)).endMs);
    for (let r = 0; r < rounds; r += 1) for (const side of shuffle([...sides])) side.rates.push(await burst(side, sessions, perSession, r));
  } finally {
    for (const side of sides) await side.close();
  }
  const [on, off] = sides.map((side) => ({ latency: summarize(side.latencies), rate: summarize(side.rates) }));
  const rows: Row[] = sides.map((side, i) => {
    const s = i === 0 ? on! : off!;
    return {
      side: side.name,
      "hot turn p50 ms": s.latency.median.toFixed(2),
      "hot turn p99 ms": s.latency.p99.toFixed(2),
      "turns/s p50 (8 sessions)": s.rate.median.toFixed(0),
      n: s.latency.n,
    };
  });
  const latencyRatio = on!.latency.median / off!.latency.median;
  const rateRatio = on!.rate.median / off!.rate.median;
  rows.push({ side: "on / off", "hot turn p50 ms": latencyRatio.toFixed(3), "hot turn p99 ms": (on!.latency.p99 / off!.latency.p99).toFixed(3), "turns/s p50 (8 sessions)": rateRatio.toFixed(3), n: "" });
  const result: BenchResult = {
    name: "ops",
    title: "What metrics and logging cost a hot turn and throughput",
    command: "npm run bench -- ops",
    rows,
    notes: [
      `Target (issue #14): within 3% (hot-turn p50 ratio ${latencyRatio.toFixed(3)}, throughput ratio ${rateRatio.toFixed(3)}: ${Math.abs(latencyRatio - 1) <= 0.03 && Math.abs(rateRatio - 1) <= 0.03 ? "met" : "not met on this run"}).`,
      `Two in-process daemons (SQLite store, instant agent): metrics on with RPC and turn lines at info to /dev/null vs metrics off with the log silent; no trace exporter on either. ${turns} hot turns per side interleaved in random order after 20 warm-up turns (Execute sent → TurnEnded); then ${rounds} rounds per side, sides in random order, of ${sessions} sessions × ${perSession} turns at once.`,
      "The machine is shared with other jobs and noisy: differences of a few percent between runs are common; compare the ratio across several runs before concluding.",
      `Code: ${revision()}.`,
      loadNote(startLoad),
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
