// What the danger detector costs (`npm run bench -- rules`): judge() per prompt and per
// tool call on 4 KiB inputs with every built-in set on, each call timed alone.
//
// Inputs: a prose prompt with inline code and a fenced block; a prompt that is mostly a
// fenced shell script; a 4 KiB command line of ordinary build steps chained with && and
// pipes (≈160 programs: the worst case); the same with a dangerous step buried at the
// end; a here-document writing a 4 KiB file (the common shape of a big tool call); and a
// file tool's path.
// Targets (issue #13): p50 ≤ 20 µs, p99 ≤ 100 µs.
import os from "node:os";
import { BUILTIN_SETS, RuleEngine, type RuleInput } from "../src/security/rules/index.js";
import { INPUTS } from "./rules-inputs.js";
import { type BenchResult, isMain, report, type Row, summarize } from "./lib.js";
import { loadNote } from "./overhead.js";

export function measure(engine: RuleEngine, input: RuleInput, calls: number): { p50: number; p99: number; severity: string } {
  const perCall: number[] = [];
  let severity = "pass";
  for (let i = 0; i < calls; i += 1) {
    const start = process.hrtime.bigint();
    const matches = engine.judge(input);
    perCall.push(Number(process.hrtime.bigint() - start) / 1000);
    severity = matches[0]?.severity ?? "pass";
  }
  const summary = summarize(perCall.slice(Math.floor(calls / 10)));
  return { p50: summary.median, p99: summary.p99, severity };
}

const TABLE = new Uint8Array(65536).fill(1);
// Keeps the pass from being optimized away.
export let sink = 0;

/** One charCodeAt pass over `text` with a table lookup per character, timed like judge(). */
function measureScan(text: string, calls: number): { p50: number } {
  const perCall: number[] = [];
  for (let i = 0; i < calls; i += 1) {
    const start = process.hrtime.bigint();
    let sum = 0;
    for (let k = 0; k < text.length; k += 1) sum += TABLE[text.charCodeAt(k)]!;
    sink ^= sum;
    perCall.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return { p50: summarize(perCall.slice(Math.floor(calls / 10))).median };
}

export async function main(): Promise<BenchResult> {
  const startLoad = os.loadavg()[0] ?? NaN;
  const calls = Number(process.env.RULES_CALLS ?? 5_000);
  const engine = RuleEngine.create({ sets: BUILTIN_SETS, custom: [], allowPaths: [], workRoot: "/home/dev/.hotplex/work" });
  const rows: Row[] = [];
  const results: { what: string; p50: number; p99: number }[] = [];
  // The machine's own speed, measured right after each input: one pass over a 4 KiB
  // prompt reading every character with a table lookup, the least any judging can do. This
  // machine's speed swings by 2x from run to run; the ratio to this pass does not.
  const reference = (INPUTS[0]!.input as { text: string }).text;
  const references: number[] = [];
  const measured: { what: string; bytes: number; p50: number; p99: number; severity: string }[] = [];
  for (const { what, input } of INPUTS) {
    const { p50, p99, severity } = measure(engine, input, calls);
    const bytes = input.kind === "prompt" ? input.text.length : input.kind === "command" ? input.command.length : input.path.length;
    results.push({ what, p50, p99 });
    measured.push({ what, bytes, p50, p99, severity });
    references.push(measureScan(reference, calls).p50);
  }
  const floor = summarize(references).median;
  for (const { what, bytes, p50, p99, severity } of measured) {
    rows.push({ what, bytes, verdict: severity, median: p50.toFixed(2), p99: p99.toFixed(2), unit: "µs per judge()", "× one pass": (p50 / floor).toFixed(1) });
  }
  rows.push({ what: "reference: one pass over 4 KiB, a table lookup per character", bytes: reference.length, verdict: "", median: floor.toFixed(2), p99: "", unit: "µs per pass", "× one pass": "1.0" });
  const sized = results.filter((r) => !r.what.includes("file tool"));
  const worstP50 = Math.max(...sized.map((r) => r.p50));
  const worstP99 = Math.max(...sized.map((r) => r.p99));
  const result: BenchResult = {
    name: "rules",
    title: "Cost of the danger detector's rules per prompt and per tool call",
    command: "npm run bench -- rules",
    rows,
    notes: [
      `Worst 4 KiB input: p50 ${worstP50.toFixed(2)} µs (target ≤ 20 µs: ${worstP50 <= 20 ? "met" : "MISSED"}), p99 ${worstP99.toFixed(2)} µs (target ≤ 100 µs: ${worstP99 <= 100 ? "met" : "MISSED"}).`,
      `On this run one bare pass over 4 KiB (a table lookup per character) took ${floor.toFixed(2)} µs at p50, so the 20 µs target is ${(20 / floor).toFixed(1)} such passes; the worst input took ${(worstP50 / floor).toFixed(1)}.`,
      `Every built-in set on (${BUILTIN_SETS.join(", ")}), no custom rules; ${calls} calls per input in this process, each timed alone with hrtime, first 10% dropped (JIT warm-up).`,
      "Prompt rows: prose with inline code (commands are looked for in every sentence and every code span) and a prompt that is one fenced shell script. Command rows: a 4 KiB line of ordinary build steps chained with && and pipes, and the same with a base64 decode-and-run at its end (decoded and judged: a block).",
      loadNote(startLoad),
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
