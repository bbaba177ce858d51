// What "safe to expose" costs (`npm run bench -- security`):
//
// (a) authentication + authorization per call, in this process: the credential check the
//     adapter makes from a call's headers and the method→permission check of the
//     interceptor, with 1, 10 and 100 credentials configured;
// (b) the same through the RPC stack: a unary call and a streaming call (the RPC floor,
//     no turn) to a daemon with no credentials and to one with 10 (bearer token),
//     interleaved, connect-es client;
// (c) the read limits, connection deadlines and line bound at full speed: one flooding
//     agent to one subscriber, this commit's hotplexd against the commit before the
//     security work (a git worktree of BENCH_SECURITY_BASELINE, default e6a14a4, which had
//     none of them), floods interleaved.
import { providerSettings } from "../src/providers/registry.js";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { createContextValues, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { SessionService } from "../gen/hotplex/v1/session_service_pb.js";
import { engineConfig } from "../src/engine/config.js";
import { Engine } from "../src/engine/engine.js";
import { type CredentialSpec, CredentialTable, hashToken } from "../src/security/credentials.js";
import { agentEnvironment } from "../src/security/env.js";
import { createAuthorizationInterceptor } from "../src/server/authorization.js";
import { authKey } from "../src/server/context.js";
import { createServer } from "../src/server/server.js";
import { type BenchResult, isMain, report, repoRoot, type Row, summarize } from "./lib.js";
import { instantAgentPath, loadNote, revision, shuffle, timedExecute } from "./overhead.js";
import { fanOut, startChildDaemon } from "./throughput.js";

const TOKEN = "bench-token-0123456789abcdef";

function credentials(count: number): CredentialSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `c${i}`,
    tenant: "default",
    roles: ["client" as const],
    tokenSha256: hashToken(i === count - 1 ? TOKEN : `other-token-${i}-0123456789abcdef`),
  }));
}

// (a) The check the adapter makes, then the interceptor's, per call, in microseconds.
async function inProcess(count: number, calls: number): Promise<{ p50: number; p99: number }> {
  const table = new CredentialTable(credentials(count));
  const interceptor: Interceptor = createAuthorizationInterceptor();
  const next = interceptor(async () => ({}) as never);
  const method = SessionService.method.getSnapshot;
  const perCall: number[] = [];
  for (let i = 0; i < calls; i += 1) {
    const start = process.hrtime.bigint();
    const auth = table.authenticate(`Bearer ${TOKEN}`);
    const contextValues = createContextValues().set(authKey, auth);
    await next({ method, service: SessionService, contextValues } as never);
    perCall.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  const summary = summarize(perCall.slice(calls / 10));
  return { p50: summary.median, p99: summary.p99 };
}

// (b) Two in-process daemons, one open, one with credentials; calls interleaved.
async function throughRpc(calls: number): Promise<Row[]> {
  const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-bench-sec-"));
  const logger = pino({ level: "info" }, pino.destination({ dest: "/dev/null", sync: true }));
  const sides: {
    name: string;
    engine: Engine;
    server: ReturnType<typeof createServer>;
    client: ReturnType<typeof createClient<typeof SessionService>>;
    unary: number[];
    stream: number[];
  }[] = [];
  for (const [name, specs] of [
    ["no credentials", [] as CredentialSpec[]],
    ["10 credentials, bearer token", credentials(10)],
  ] as const) {
    const dir = path.join(scratch, name.replace(/\W+/g, "-"));
    const engine = await Engine.open(
      engineConfig({
        workRoot: path.join(dir, "work"),
        stateRoot: path.join(dir, "state"),
        store: { kind: "memory" },
        agentEnv: { ...agentEnvironment(process.env), HOME: dir },
      }, { providers: providerSettings({ "claude-code": instantAgentPath }) }),
      logger,
    );
    const table = new CredentialTable(specs);
    const server = createServer({ engine, logger, credentials: () => table, version: "bench" });
    const { url } = await server.listen("127.0.0.1", 0);
    const client = createClient(
      SessionService,
      createConnectTransport({
        baseUrl: url,
        httpVersion: "1.1",
        interceptors: specs.length > 0 ? [(next) => (req) => (req.header.set("authorization", `Bearer ${TOKEN}`), next(req))] : [],
      }),
    );
    await timedExecute(client, "s", "warm-up");
    sides.push({ name, engine, server, client, unary: [] as number[], stream: [] as number[] });
  }
  try {
    const { lastSeq } = await sides[0]!.client.getSnapshot({ sessionId: "s" });
    for (let i = 0; i < calls; i += 1) {
      for (const side of shuffle([...sides])) {
        let start = performance.now();
        await side.client.getSnapshot({ sessionId: "s" });
        side.unary.push(performance.now() - start);
        start = performance.now();
        for await (const _ of side.client.subscribe({ sessionId: "s", afterSeq: lastSeq })) void _;
        side.stream.push(performance.now() - start);
      }
    }
  } finally {
    for (const side of sides) {
      await side.engine.shutdown();
      await side.server.close();
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  const warm = (values: number[]) => summarize(values.slice(Math.floor(values.length / 10)));
  return (["unary", "stream"] as const).flatMap((kind) =>
    sides.map((side) => {
      const summary = warm(side[kind]);
      return {
        what: kind === "unary" ? "GetSnapshot through the RPC stack" : "Subscribe floor (no turn) through the RPC stack",
        side: side.name,
        median: summary.median.toFixed(3),
        p99: summary.p99.toFixed(3),
        unit: "ms per call",
      };
    }),
  );
}

// A checkout of `ref` beside this one, sharing its node_modules.
function baselineCheckout(ref: string): { root: string; remove(): void } {
  const root = mkdtempSync(path.join(tmpdir(), "hotplex-baseline-"));
  rmSync(root, { recursive: true, force: true });
  execFileSync("git", ["worktree", "add", "--detach", root, ref], { cwd: repoRoot, stdio: "ignore" });
  symlinkSync(path.join(repoRoot, "node_modules"), path.join(root, "node_modules"));
  return {
    root,
    remove: () => {
      execFileSync("git", ["worktree", "remove", "--force", root], { cwd: repoRoot, stdio: "ignore" });
      if (existsSync(root)) rmSync(root, { recursive: true, force: true });
    },
  };
}

// (c) Floods through both builds, one after the other, several rounds.
async function floods(ref: string, rounds: number, events: number): Promise<Row[]> {
  const baseline = baselineCheckout(ref);
  const env = { HOTPLEX_RETAIN_EVENTS: "0", HOTPLEX_RETAIN_BYTES: "0" };
  const daemons = [
    { name: `this commit (${revision()})`, daemon: await startChildDaemon({ store: "sqlite", env }) },
    { name: `before the security work (${ref})`, daemon: await startChildDaemon({ store: "sqlite", env, root: baseline.root }) },
  ];
  const rates = new Map(daemons.map((d) => [d.name, [] as number[]]));
  const cpu = new Map(daemons.map((d) => [d.name, [] as number[]]));
  try {
    for (const { daemon } of daemons) await fanOut(daemon, "connect", "lean", "warm-up", 1, 20_000);
    for (let round = 0; round < rounds; round += 1) {
      for (const { name, daemon } of shuffle([...daemons])) {
        const r = await fanOut(daemon, "connect", "lean", `flood-${round}`, 1, events);
        rates.get(name)!.push(r.perSubscriberMedian);
        cpu.get(name)!.push((r.daemonCpuS * 1e6) / r.events);
      }
    }
  } finally {
    for (const { daemon } of daemons) await daemon.close();
    baseline.remove();
  }
  const medians = daemons.map((d) => summarize(rates.get(d.name)!).median);
  return daemons.flatMap((d, i) => [
    {
      what: "flood to 1 subscriber (events/s; ratio to the baseline in p99's place)",
      side: d.name,
      median: Math.round(medians[i]!),
      p99: `×${(medians[i]! / medians[1]!).toFixed(3)}`,
      unit: "events/s",
    },
    {
      what: "daemon CPU per event of the flood",
      side: d.name,
      median: summarize(cpu.get(d.name)!).median.toFixed(2),
      p99: summarize(cpu.get(d.name)!).p99.toFixed(2),
      unit: "µs",
    },
  ]);
}

export async function main(): Promise<BenchResult> {
  const startLoad = os.loadavg()[0] ?? NaN;
  const calls = Number(process.env.SECURITY_CALLS ?? 2000);
  const micro: Row[] = [];
  for (const count of [1, 10, 100]) {
    const { p50, p99 } = await inProcess(count, Number(process.env.SECURITY_MICRO_CALLS ?? 50_000));
    micro.push({ what: "authenticate + authorize, in process", side: `${count} credential(s)`, median: p50.toFixed(2), p99: p99.toFixed(2), unit: "µs per call" });
  }
  const rpc = await throughRpc(calls);
  const ref = process.env.BENCH_SECURITY_BASELINE ?? "e6a14a4";
  const flood = process.env.SECURITY_SKIP_FLOODS ? [] : await floods(ref, Number(process.env.SECURITY_ROUNDS ?? 5), Number(process.env.SECURITY_EVENTS ?? 100_000));
  const rows: Row[] = [...micro, ...rpc, ...flood];
  const target = Number(micro[1]?.median) <= 20 ? "met" : "MISSED";
  const result: BenchResult = {
    name: "security",
    title: "Cost of authentication, authorization, read limits and connection deadlines",
    command: "npm run bench -- security",
    rows,
    notes: [
      `Authentication + authorization per call, 10 credentials: p50 ${micro[1]?.median} µs (target ≤ 20 µs: ${target}). In this process: the adapter's credential check from the Authorization header (SHA-256 of the token, compared in constant time with every credential) and the authorization interceptor, each call timed alone (first 10% dropped).`,
      "RPC rows: the same unary call (GetSnapshot) and streaming call (Subscribe after the last seq: the RPC floor, no turn) to two in-process daemons, one without credentials, one with 10 and a bearer token on every call; sides interleaved in random order, connect-es client over HTTP/1.1, first 10% dropped. The difference between the sides is the whole cost of the checks through the stack; connect-node's own per-call cost (~0.5 ms here) dwarfs it.",
      `Flood rows: one flooding agent (bench/fixtures/instant-agent.mjs) to one lean Connect subscriber, SQLite store, each daemon warmed with 20,000 events first, then ${process.env.SECURITY_ROUNDS ?? 5} rounds of ${process.env.SECURITY_EVENTS ?? 100_000} events with the two builds in random order per round. The baseline build has no request limits, connection deadlines or line bound; 'vs the baseline' is the ratio of the median rates.`,
      loadNote(startLoad),
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
