// The plain lane makes judging faster, never different: every command of the case table,
// and generated command lines mixing ordinary steps with the table's dangerous ones, get
// the same matches with the lane on and off.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { HOT } from "./facts.js";
import { BUILTIN_SETS, RuleEngine, type RuleInput } from "./index.js";
import { INERT_PROGRAMS, KEYWORDS, plainPipelines } from "./lane.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const table = parse(readFileSync(path.join(here, "../../../test/data/rules/cases.yaml"), "utf8")) as {
  defaults: { home: string; cwd: string; workRoot: string };
  cases: { cmd?: string; prompt?: string; cwd?: string }[];
};
const { home, cwd, workRoot } = table.defaults;
const options = { sets: BUILTIN_SETS, custom: [], allowPaths: [], workRoot };
const fast = RuleEngine.create(options);
const full = RuleEngine.create({ ...options, plainLane: false });

function same(input: RuleInput): void {
  const a = fast.judge(input).map((m) => `${m.severity}:${m.ruleId}`).sort();
  const b = full.judge(input).map((m) => `${m.severity}:${m.ruleId}`).sort();
  expect(a, JSON.stringify(input)).toEqual(b);
}

const commands = table.cases.flatMap((c) => (c.cmd === undefined ? [] : [{ cmd: c.cmd, cwd: c.cwd ?? cwd }]));
const ORDINARY = ["npm ci", "npm run build", "git status --short", "ls -la ./build | head -20", "cat package.json | jq .version", "mkdir -p out && touch out/stamp", "echo done 2>&1", "grep -rn TODO src > /dev/null"];

describe("the plain lane", () => {
  it("judges every command of the case table as the full analysis does", () => {
    for (const c of commands) same({ kind: "command", command: c.cmd, cwd: c.cwd, home });
  });

  it("judges every prompt of the case table as the full analysis does", () => {
    for (const c of table.cases) if (c.prompt !== undefined) same({ kind: "prompt", text: c.prompt });
  });

  it("judges long lines mixing ordinary steps and dangerous ones as the full analysis does", () => {
    let seed = 13;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const joins = [" && ", "; ", "\n", " || ", " | ", " & "];
    for (let k = 0; k < 400; k += 1) {
      const steps: string[] = [];
      for (let j = 0; j < 2 + random(12); j += 1) steps.push(random(3) === 0 ? commands[random(commands.length)]!.cmd : ORDINARY[random(ORDINARY.length)]!);
      let line = steps[0]!;
      for (const step of steps.slice(1)) line += joins[random(joins.length)] + step;
      same({ kind: "command", command: line, cwd, home });
    }
  });

  it("never skips an inert program given an argument from a dangerous case", () => {
    const words = new Set(commands.flatMap((c) => c.cmd.split(/\s+/)).filter((w) => w !== "" && !/[$`\\(){}<>!|&;'"#]/.test(w)));
    for (const program of INERT_PROGRAMS) for (const word of words) same({ kind: "command", command: `${program} ${word}`, cwd, home });
  });

  it("reads non-ASCII input byte by byte as the full analysis reads its characters", () => {
    const texts = ["echo 'café' && rm -rf ./dist", "npm run build -- --name=日本 && rm -rf /", "git commit -m \"✓ done\" && ls", "ls ./ü && cat ~/.ssh/id_rsa", "echo \ud83d\ude00 && rm -rf ./x && echo \ud83d\ude00 && rm -rf ./x"];
    for (const text of texts) same({ kind: "command", command: text, cwd, home });
    // Kept pipelines are the input's own text, not re-encoded bytes.
    expect(plainPipelines("ls && rm -rf ./é && ls && rm -rf ./é", { maxWords: 1000 })).toEqual(["rm -rf ./é"]);
    // A lone surrogate has no exact UTF-8 form: the whole input goes to the full analysis.
    expect(plainPipelines("echo \ud800 && ls", { maxWords: 1000 })).toBeUndefined();
    same({ kind: "command", command: "echo \ud800 && rm -rf /", cwd, home });
    // A long input (past the scan's first buffer) is cut like a short one.
    const long = Array.from({ length: 3000 }, (_, k) => (k % 500 === 7 ? "rm -rf ./out" : "npm test")).join(" && ");
    expect(plainPipelines(long, { maxWords: 100_000 })).toEqual(["rm -rf ./out"]);
  });

  it("covers every alternative of the hot pattern with a keyword", () => {
    const alternatives = HOT.source.replace(/\([^)]*\)/g, "").split("|").map((a) => a.replace(/\\/g, "").toLowerCase());
    for (const alternative of alternatives) expect(KEYWORDS.some((k) => alternative.includes(k)), alternative).toBe(true);
  });

  it("sends what it cannot read plainly to the full analysis", () => {
    for (const text of ["echo $HOME", "a `b`", "x \\\ny", "(cd /; rm -rf *)", "{ a; }", "cat < f", "! true", "if true; then rm -rf /; fi", "alias ls='rm -rf /'; ls", "echo 'unclosed"]) {
      expect(plainPipelines(text, { maxWords: 1000 }), text).toBeUndefined();
    }
    expect(plainPipelines("npm ci && npm test 2>&1 | tail -5", { maxWords: 1000 })).toEqual([]);
    expect(plainPipelines("npm ci && rm -rf ./dist && npm ci && rm -rf ./dist", { maxWords: 1000 })).toEqual(["rm -rf ./dist"]);
  });
});
