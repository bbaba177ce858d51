// The case table (test/data/rules/cases.yaml) with every built-in set on: each case must
// get exactly its expected severity. Prints the false-positive and false-negative counts.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { BUILTIN_SETS, RuleEngine, type RuleInput } from "./index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const table = parse(readFileSync(path.join(here, "../../../test/data/rules/cases.yaml"), "utf8")) as {
  defaults: { home: string; cwd: string; workRoot: string };
  cases: { cmd?: string; file?: string; op?: "read" | "write" | "delete"; prompt?: string; cwd?: string; expect: string; rule?: string; note?: string }[];
};
const RANK: Record<string, number> = { pass: 0, warn: 1, ask: 2, block: 3 };

export function inputOf(c: (typeof table.cases)[number]): RuleInput {
  const { home, cwd } = table.defaults;
  if (c.cmd !== undefined) return { kind: "command", command: c.cmd, cwd: c.cwd ?? cwd, home };
  if (c.file !== undefined) return { kind: "file", operation: c.op ?? "write", path: c.file, cwd: c.cwd ?? cwd, home };
  return { kind: "prompt", text: c.prompt ?? "" };
}

describe("the case table", () => {
  const engine = RuleEngine.create({ sets: BUILTIN_SETS, custom: [], allowPaths: [], workRoot: table.defaults.workRoot });

  it("has at least 200 cases, as many benign as dangerous", () => {
    const benign = table.cases.filter((c) => c.expect === "pass" || c.expect === "warn").length;
    expect(table.cases.length).toBeGreaterThanOrEqual(200);
    expect(benign).toBeGreaterThanOrEqual(table.cases.length - benign);
  });

  it("judges every case as the table says: 0 false positives, 0 false negatives", () => {
    const falsePositives: string[] = [];
    const falseNegatives: string[] = [];
    for (const c of table.cases) {
      const { severity, matches } = engine.verdict(inputOf(c));
      const label = `${JSON.stringify(c.cmd ?? c.file ?? c.prompt)}: expected ${c.expect}, got ${severity} ${matches.map((m) => `${m.ruleId}(${m.evidence})`).join(" ")}`;
      if (RANK[severity]! > RANK[c.expect]!) falsePositives.push(label);
      else if (RANK[severity]! < RANK[c.expect]!) falseNegatives.push(label);
      else if (c.rule !== undefined && !matches.some((m) => m.ruleId === c.rule)) falseNegatives.push(`${label} (rule ${c.rule} expected)`);
    }
    const dangerous = table.cases.filter((c) => c.expect === "block" || c.expect === "ask").length;
    process.stdout.write(
      `rule case table: ${table.cases.length} cases (${dangerous} dangerous, ${table.cases.length - dangerous} benign or prose): ` +
        `${falsePositives.length} false positive(s), ${falseNegatives.length} false negative(s)\n` +
        [...falsePositives.map((l) => `  FP ${l}`), ...falseNegatives.map((l) => `  FN ${l}`)].join("\n") + "\n",
    );
    expect({ falsePositives, falseNegatives }).toEqual({ falsePositives: [], falseNegatives: [] });
  });
});
