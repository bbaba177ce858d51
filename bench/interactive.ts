// Interactive control (`npm run bench -- interactive`):
//
// - Interrupt: on a hot real Claude Code session (against the local mock of the Messages
//   API, whose answer is delayed so the turn is mid-request), the time from sending the
//   Interrupt RPC to the turn's TurnEnded arriving on its Execute stream, and to the RPC's
//   own answer. INTERACTIVE_INTERRUPTS=30 rounds by default.
// - Approval round trip: what a permission request costs the agent when the client answers
//   at once: measured in the agent (bench/fixtures/instant-agent.mjs [[ask:N]]), from writing
//   its control_request to reading the answer. In between: the daemon parses it, logs
//   PermissionRequested (a SQLite commit), the client's Execute stream brings it and it calls
//   RespondPermission, the daemon logs PermissionResolved and writes the answer. All of it
//   is hotplex's (and connect-node's) share: the client, the one that runs the turn, does
//   nothing but answer what its Execute stream brings.
//   INTERACTIVE_ASKS=500 requests by default, over Connect and over gRPC, interleaved.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import os from "node:os";
import path from "node:path";
import { claudeEnv, startMockAnthropic } from "../test/fixtures/mock-anthropic.js";
import { executeAnswering } from "./fixtures/answering.js";
import { type BenchResult, isMain, report, repoRoot, type Row, summarize } from "./lib.js";
import { connectClient, instantAgentPath, loadNote, revision, startInProcessDaemon } from "./overhead.js";

type Client = ReturnType<typeof connectClient>;
const claudePath = path.join(repoRoot, "node_modules", ".bin", "claude");

// A client in a process of its own that runs turns of one session on request and answers
// their permission requests: each call runs one turn and returns the agent's round trips.
function clientElsewhere(url: string, sessionId: string): { round: (n: number) => Promise<number[]>; close: () => void } {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "bench", "fixtures", "answering-client.ts"), url, sessionId], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    round: async (n) => {
      child.stdin!.write(`[[ask:${n}]]\n`);
      const line = await lines.next();
      if (line.done) throw new Error("the answering client exited");
      return JSON.parse(JSON.parse(line.value) as string) as number[];
    },
    close: () => child.stdin!.end(),
  };
}

// One turn of [[ask:N]] run and answered from this process: the agent's round trips in ms.
async function askRound(client: Client, sessionId: string, n: number): Promise<number[]> {
  return JSON.parse(await executeAnswering(client, sessionId, `[[ask:${n}]]`)) as number[];
}

async function approvals(asks: number): Promise<Row[]> {
  const daemon = await startInProcessDaemon({ claudePath: instantAgentPath, store: "sqlite", turnTimeoutMs: 120_000 });
  const client = connectClient(daemon.url);
  // The same client code (bench/fixtures/answering.ts: it runs the turn and answers what its
  // Execute stream brings) in the daemon's own process (no process switch, but one event loop
  // for both) and in a process of its own (as a real client).
  const sides = [
    { name: "Connect client in the daemon's process", id: "asks-in-process", own: false, trips: [] as number[] },
    { name: "Connect client in its own process", id: "asks-own-process", own: true, trips: [] as number[] },
  ];
  const elsewhere = clientElsewhere(daemon.url, "asks-own-process");
  const round = (side: (typeof sides)[number], n: number) => (side.own ? elsewhere.round(n) : askRound(client, side.id, n));
  try {
    // Warm-up: a short round per side starts its agent.
    for (const side of sides) await round(side, 20);
    const batch = 100;
    for (let done = 0; done < asks; done += batch) {
      for (const side of sides) side.trips.push(...(await round(side, Math.min(batch, asks - done))));
    }
  } finally {
    elsewhere.close();
    await daemon.close();
  }
  return sides.map((side) => {
    const s = summarize(side.trips);
    return {
      measure: `approval round trip, ${side.name}`,
      "p50 ms": s.median.toFixed(2),
      "p99 ms": s.p99.toFixed(2),
      "min ms": s.min.toFixed(2),
      n: s.n,
    };
  });
}

async function interrupts(rounds: number): Promise<Row[]> {
  const mock = await startMockAnthropic();
  const daemon = await startInProcessDaemon({
    claudePath,
    store: "sqlite",
    agentEnv: (home) => claudeEnv({ home, baseUrl: mock.url }),
    turnTimeoutMs: 120_000,
  });
  const client = connectClient(daemon.url);
  const toEnd: number[] = [];
  const rpc: number[] = [];
  const interrupted: number[] = [];
  try {
    const sessionId = "interrupt";
    for await (const _ of client.execute({ sessionId, prompt: "warm up" })) void _;
    for (let i = 0; i < rounds; i += 1) {
      const requestsBefore = mock.requests.length;
      const stream = client.execute({ sessionId, prompt: `[[delay:20000]] wait ${i}` })[Symbol.asyncIterator]();
      // The turn is running and the agent's model request is in flight.
      await stream.next();
      while (mock.requests.length <= requestsBefore) await new Promise((resolve) => setTimeout(resolve, 5));
      const t0 = performance.now();
      const answer = client.interrupt({ sessionId }).then((r) => {
        rpc.push(performance.now() - t0);
        return r;
      });
      for (let next = await stream.next(); !next.done; next = await stream.next()) {
        const end = next.value.events.find((event) => event.payload.case === "turnEnded");
        if (end) {
          toEnd.push(performance.now() - t0);
          if (end.payload.case === "turnEnded") interrupted.push(end.payload.value.outcome);
        }
      }
      await answer;
    }
  } finally {
    await daemon.close();
    await mock.close();
  }
  const end = summarize(toEnd);
  const call = summarize(rpc);
  const ok = interrupted.filter((outcome) => outcome === 3).length;
  return [
    { measure: "interrupt: Interrupt sent → TurnEnded on the Execute stream (hot Claude Code)", "p50 ms": end.median.toFixed(1), "p99 ms": end.p99.toFixed(1), "min ms": end.min.toFixed(1), n: end.n },
    { measure: `interrupt: the Interrupt RPC's answer (${ok}/${interrupted.length} INTERRUPTED)`, "p50 ms": call.median.toFixed(1), "p99 ms": call.p99.toFixed(1), "min ms": call.min.toFixed(1), n: call.n },
  ];
}

export async function main(): Promise<BenchResult> {
  const startLoad = os.loadavg()[0] ?? NaN;
  const asks = Number(process.env.INTERACTIVE_ASKS ?? 500);
  const rounds = Number(process.env.INTERACTIVE_INTERRUPTS ?? 30);
  const rows = [...(await approvals(asks)), ...(await interrupts(rounds))];
  const result: BenchResult = {
    name: "interactive",
    title: "Interactive control: interrupt latency and the approval round trip",
    command: "npm run bench -- interactive",
    rows,
    notes: [
      "Targets (issue #12): interrupt p50 ≤ 50 ms on a hot real Claude Code session; approval round trip (hotplex's added latency) p50 ≤ 2 ms.",
      `Approvals: in-process daemon (SQLite store) with the instant agent; ${asks} requests per side in turns of 100, the sides interleaved; each a control_request can_use_tool timed inside the agent until its answer arrives, the client that runs the turn answering allow at once from its Execute stream (bench/fixtures/answering.ts), in the daemon's process and in a process of its own.`,
      `Interrupt: Claude Code 2.1.197 against the mock Messages API, ${rounds} rounds on one warm session; each turn's model request is delayed 20 s, and the Interrupt is sent once the mock has received it.`,
      `Code: ${revision()}.`,
      loadNote(startLoad),
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
