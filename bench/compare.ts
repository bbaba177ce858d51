// Runs benchmarks on this checkout and on another one (an earlier revision, checked out
// elsewhere with its dependencies), alternating sides round by round, and reports each
// numeric column of each row side by side with the ratio of the medians over rounds.
//
//   node --import tsx bench/compare.ts <other checkout> [benchmark ...] [--rounds N]
//
// The machines are shared and noisy: a side's median over interleaved rounds, never one run.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type BenchResult, isMain, repoRoot, report, type Row } from "./lib.js";
import { shuffle } from "./overhead.js";

interface SideRun {
  side: "this" | "other";
  rows: Row[];
}

function revisionOf(dir: string): string {
  return execFileSync("git", ["-C", dir, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

// Numeric columns that say which row it is (the setup), not what was measured.
const IDENTITY_COLUMNS = new Set(["subscribers", "clients", "events/turn", "sessions", "turns"]);

// A row's identity: its text columns (store, side, protocol…) and setup numbers; the
// other numbers are what is compared.
function keyOf(row: Row): string {
  return Object.entries(row)
    .filter(([column, value]) => (typeof value === "string" && value !== "—") || IDENTITY_COLUMNS.has(column))
    .map(([column, value]) => `${column}=${value}`)
    .join(" · ");
}

export async function compare(other: string, names: string[], rounds: number): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-compare-"));
  try {
    for (const name of names) {
      const runs: SideRun[] = [];
      for (let round = 0; round < rounds; round += 1) {
        for (const side of shuffle(["this", "other"] as const)) {
          const dir = side === "this" ? repoRoot : other;
          const out = path.join(scratch, `${name}-${side}-${round}`);
          const run = spawnSync(process.execPath, ["--import", "tsx", path.join("bench", `${name}.ts`)], {
            cwd: dir,
            env: { ...process.env, BENCH_RESULTS_DIR: out },
            stdio: ["ignore", "ignore", "inherit"],
          });
          if (run.status !== 0) throw new Error(`${name} on ${side} (${dir}) failed with status ${run.status}`);
          const result = JSON.parse(readFileSync(path.join(out, `${name}.json`), "utf8")) as BenchResult;
          runs.push({ side, rows: result.rows });
        }
      }
      const thisRev = revisionOf(repoRoot);
      const otherRev = revisionOf(other);
      const rows: Row[] = [];
      const keys = [...new Set(runs.flatMap((r) => r.rows.map(keyOf)))];
      for (const key of keys) {
        const of = (side: "this" | "other") => runs.filter((r) => r.side === side).flatMap((r) => r.rows.filter((row) => keyOf(row) === key));
        const mine = of("this");
        const theirs = of("other");
        const columns = [
          ...new Set([...mine, ...theirs].flatMap((row) => Object.keys(row).filter((c) => typeof row[c] === "number" && c !== "n" && !IDENTITY_COLUMNS.has(c)))),
        ];
        for (const column of columns) {
          const a = median(theirs.map((row) => row[column]).filter((v): v is number => typeof v === "number"));
          const b = median(mine.map((row) => row[column]).filter((v): v is number => typeof v === "number"));
          if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
          rows.push({ row: key, column, [`${otherRev} (before)`]: a, [`${thisRev} (after)`]: b, "after / before": a === 0 ? NaN : b / a });
        }
      }
      const result: BenchResult = {
        name: `${name}-compare`,
        title: `${name}: ${otherRev} (before) vs ${thisRev} (after), medians of ${rounds} interleaved rounds`,
        command: `node --import tsx bench/compare.ts <checkout of ${otherRev}> ${name} --rounds ${rounds}`,
        rows,
        notes: [
          `Each round runs both sides once, in random order; each cell is the median over the rounds. For latencies lower is better, for rates higher is better.`,
        ],
      };
      report(result);
      results.push(result);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return results;
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2);
  const other = args[0];
  if (!other) {
    process.stderr.write("usage: bench/compare.ts <other checkout> [benchmark ...] [--rounds N]\n");
    process.exit(2);
  }
  const roundsAt = args.indexOf("--rounds");
  const rounds = roundsAt === -1 ? 3 : Number(args[roundsAt + 1]);
  const names = args.slice(1).filter((arg, i, all) => !arg.startsWith("--") && all[i - 1] !== "--rounds");
  await compare(path.resolve(other), names.length > 0 ? names : ["overhead", "throughput"], rounds);
}
