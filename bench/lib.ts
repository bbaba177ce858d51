import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { Engine } from "../src/engine/engine.js";
import { CredentialTable } from "../src/security/credentials.js";
import { createServer } from "../src/server/server.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** Where results are written; BENCH_RESULTS_DIR moves them (the smoke test writes to a temp dir). */
export const resultsDir = process.env.BENCH_RESULTS_DIR ?? path.join(repoRoot, "bench", "results");

/** Summary of a sample of durations (ms) or rates. */
export interface Summary {
  n: number;
  median: number;
  p99: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
  return { n: sorted.length, median: at(0.5), p99: at(0.99), min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN };
}

/** One row of a result table: a label and named values. */
export type Row = Record<string, string | number>;

export interface BenchResult {
  name: string;
  title: string;
  /** How to run this benchmark alone. */
  command: string;
  rows: Row[];
  /** Free-form notes: targets, ratios, caveats. */
  notes: string[];
}

function format(value: string | number): string {
  if (typeof value === "string") return value;
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(2) : value.toFixed(3);
}

/** The rows as a markdown table. */
export function markdownTable(rows: readonly Row[]): string {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(columns), line(columns.map(() => "---")), ...rows.map((row) => line(columns.map((c) => format(row[c] ?? ""))))].join("\n");
}

/** Prints the result as a table and writes bench/results/<name>.json and .md. */
export function report(result: BenchResult): void {
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const when = new Date().toISOString();
  const table = markdownTable(result.rows);
  process.stdout.write(`\n${result.title}\n\n${table}\n${result.notes.map((n) => `- ${n}`).join("\n")}\n`);
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, `${result.name}.json`), JSON.stringify({ ...result, machine, when }, null, 2) + "\n");
  const md = [`# ${result.title}`, "", `Measured ${when} on ${machine} with \`${result.command}\`.`, "", table, "", ...result.notes.map((n) => `- ${n}`), ""];
  writeFileSync(path.join(resultsDir, `${result.name}.md`), md.join("\n"));
}

/** True when this module is the process's entry point (run alone). */
export function isMain(importMetaUrl: string): boolean {
  return process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(importMetaUrl);
}

/** A hotplex server in this process on a free loopback port, open to any caller (no credentials). */
export async function serveEngine(engine: Engine, logger: Logger): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer({ engine, logger, credentials: () => new CredentialTable([]), version: "bench" });
  const { url } = await server.listen("127.0.0.1", 0);
  return {
    url,
    async close() {
      await engine.shutdown();
      await server.close();
    },
  };
}
