// The benchmarks' own smoke test: each benchmark this suite runs is shrunk to a few samples,
// must finish (a benchmark that never exits or hangs on a client fails here), and must
// report every side it compares with real numbers. Nothing here is timed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const results = mkdtempSync(path.join(tmpdir(), "hotplex-bench-results-"));
const settings: Record<string, string> = {
  BENCH_RESULTS_DIR: results,
  OVERHEAD_SAMPLES: "4",
  OVERHEAD_WARMUP: "2",
  THROUGHPUT_EVENTS: "3000",
  THROUGHPUT_SUBSCRIBERS: "1,3",
  THROUGHPUT_CONFIGS: "sqlite:connect:lean:9000,sqlite:grpc:lean:9000",
  INTERACTIVE_ASKS: "40",
  INTERACTIVE_INTERRUPTS: "2",
};
const saved: Record<string, string | undefined> = {};

beforeAll(() => {
  for (const [name, value] of Object.entries(settings)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
});

afterAll(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  rmSync(results, { recursive: true, force: true });
});

const isNumber = (value: unknown) => typeof value === "number" && Number.isFinite(value);

describe("benchmarks (smoke)", () => {
  it("overhead: times every side of both client groups on both stores and writes its results", async () => {
    const { main } = await import("../bench/overhead.js");
    const result = await main();
    const sides = new Set(result.rows.map((row) => `${row.store} ${row.clients} ${row.side}`));
    for (const store of ["memory", "sqlite"]) {
      for (const side of [
        "wire raw pipe",
        "wire hotplex Connect (HTTP/1.1), wire client",
        "wire hotplex gRPC (HTTP/2), wire client",
        "wire reference: the same call, connect-node with no hotplex code, gRPC",
        "wire reference: the same bytes, plain node:http / node:http2 handler, Connect",
        "connect-es hotplex Connect (HTTP/1.1), connect-es client",
        "connect-es RPC floor, gRPC, connect-es client",
      ]) {
        expect(sides).toContain(`${store} ${side}`);
      }
    }
    for (const row of result.rows) {
      expect(row.n).toBe(4);
      expect(isNumber(row["turn end p50 ms"]), JSON.stringify(row)).toBe(true);
    }
    for (const row of result.rows.filter((r) => String(r.side).startsWith("hotplex"))) {
      expect(isNumber(row["added p50 ms (turn end)"])).toBe(true);
    }
    const written = JSON.parse(readFileSync(path.join(results, "overhead.json"), "utf8")) as { rows: unknown[] };
    expect(written.rows).toHaveLength(result.rows.length);
  }, 240_000);

  it("throughput: every subscriber of every row gets every event of the flood", async () => {
    const { main } = await import("../bench/throughput.js");
    const result = await main();
    expect(result.rows.map((row) => [row.protocol, row.subscribers])).toEqual([
      ["Connect (HTTP/1.1)", 1],
      ["Connect (HTTP/1.1)", 3],
      ["gRPC (HTTP/2)", 1],
      ["gRPC (HTTP/2)", 3],
    ]);
    for (const row of result.rows) {
      // The flood plus TurnStarted, TurnEnded and a StatusChanged after each; the
      // subscribers checked every seq.
      expect(row["events/turn"]).toBe(3004);
      expect(Number(row["aggregate events/s"])).toBeGreaterThan(0);
    }
  }, 240_000);
  it("interactive: times approval round trips from both clients and interrupts on the real CLI", async () => {
    const { main } = await import("../bench/interactive.js");
    const result = await main();
    expect(result.rows).toHaveLength(4);
    // Every side measured every sample (a client that stopped answering would hang the turn).
    expect(result.rows.map((row) => row.n)).toEqual([40, 40, 2, 2]);
    for (const row of result.rows) expect(Number(row["p50 ms"])).toBeGreaterThan(0);
    expect(String(result.rows[3]?.measure)).toContain("2/2 INTERRUPTED");
  }, 240_000);
});
