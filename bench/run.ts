// Runs every benchmark in turn (`npm run bench`), or the ones named on the command line
// (`npm run bench -- overhead replay`). Each also runs alone: `node --import tsx bench/<name>.ts`.
import { type BenchResult, isMain, markdownTable, resultsDir } from "./lib.js";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const BENCHMARKS: Record<string, () => Promise<{ main: () => Promise<BenchResult> }>> = {
  "hot-vs-cold": () => import("./hot-vs-cold.js"),
  "cold-start": () => import("./cold-start.js"),
  overhead: () => import("./overhead.js"),
  throughput: () => import("./throughput.js"),
  scale: () => import("./scale.js"),
  replay: () => import("./replay.js"),
  "store-append": () => import("./store-append.js"),
  "scale-out": () => import("./scale-out.js"),
  security: () => import("./security.js"),
  sandbox: () => import("./sandbox.js"),
  providers: () => import("./providers.js"),
  interactive: () => import("./interactive.js"),
  "rules-turn": () => import("./rules-turn.js"),
  rules: () => import("./rules.js"),
  ops: () => import("./ops.js"),
};

async function main(): Promise<void> {
  const names = process.argv.slice(2).filter((arg) => !arg.startsWith("-"));
  const unknown = names.filter((name) => !(name in BENCHMARKS));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(BENCHMARKS).join(", ")}\n`);
    process.exit(2);
  }
  const results: BenchResult[] = [];
  for (const name of names.length > 0 ? names : Object.keys(BENCHMARKS)) {
    const module = await BENCHMARKS[name]!();
    results.push(await module.main());
  }
  // One page with the latest result of every benchmark, this run's and earlier ones'.
  const latest = Object.keys(BENCHMARKS).flatMap((name) => {
    const file = path.join(resultsDir, `${name}.json`);
    return existsSync(file) ? [JSON.parse(readFileSync(file, "utf8")) as BenchResult & { when: string }] : [];
  });
  const page = latest.flatMap((r) => [
    `## ${r.title}`,
    "",
    `\`${r.command}\`, measured ${r.when}`,
    "",
    markdownTable(r.rows),
    "",
    ...r.notes.map((n) => `- ${n}`),
    "",
  ]);
  writeFileSync(path.join(resultsDir, "latest.md"), [`# Benchmark results`, "", ...page].join("\n"));
  process.stdout.write(`\n${results.length} benchmark(s) run; ${path.join("bench", "results", "latest.md")} has the latest of all ${latest.length}.\n`);
}

if (isMain(import.meta.url)) await main();
