// What the tenants' rules cost a hot turn (`npm run bench -- rules-turn`): warm turns of the
// instant agent through two in-process daemons, one with every built-in rule set on (the
// default: each prompt is judged) and one with none, interleaved in random order; a 4 KiB
// prompt of ordinary text and code, as a chat product sends.
import os from "node:os";
import { defaultPolicy, NO_TENANT_LIMITS, TenantDirectory } from "../src/security/tenant-policy.js";
import { type BenchResult, isMain, report, type Row, summarize } from "./lib.js";
import { connectClient, instantAgentPath, loadNote, revision, shuffle, startInProcessDaemon, timedExecute } from "./overhead.js";

const PROMPT = `Please refactor the function below so it handles errors, then run the tests.\n\`\`\`ts\n${"export function add(a: number, b: number): number {\n  return a + b;\n}\n".repeat(50)}\`\`\`\nThen run \`npm test\` and \`git status\`.`.slice(0, 4096);

export async function main(): Promise<BenchResult> {
  const startLoad = os.loadavg()[0] ?? NaN;
  const turns = Number(process.env.RULES_TURNS ?? 300);
  const sides = [];
  for (const rules of ["on", "off"] as const) {
    const tenants =
      rules === "on" ? undefined : new TenantDirectory({ policy: defaultPolicy(600_000), limits: NO_TENANT_LIMITS, rules: { sets: [], custom: [], allowPaths: [] } });
    const daemon = await startInProcessDaemon({ claudePath: instantAgentPath, store: "sqlite", ...(tenants ? { tenants } : {}) });
    sides.push({ name: `rules ${rules}`, daemon, client: connectClient(daemon.url), ms: [] as number[] });
  }
  try {
    for (const side of sides) for (let i = 0; i < 20; i += 1) await timedExecute(side.client, "hot", PROMPT);
    for (let i = 0; i < turns; i += 1) for (const side of shuffle([...sides])) side.ms.push((await timedExecute(side.client, "hot", PROMPT)).endMs);
  } finally {
    for (const side of sides) await side.daemon.close();
  }
  const [on, off] = sides.map((side) => summarize(side.ms));
  const rows: Row[] = [
    {
      turn: "hot turn, 4 KiB prompt, instant agent",
      "rules on p50 ms": on!.median.toFixed(2),
      "rules off p50 ms": off!.median.toFixed(2),
      "added p50 ms": (on!.median - off!.median).toFixed(2),
      "rules on p99 ms": on!.p99.toFixed(2),
      "rules off p99 ms": off!.p99.toFixed(2),
      n: on!.n,
    },
  ];
  const result: BenchResult = {
    name: "rules-turn",
    title: "What the tenants' rules cost a hot turn",
    command: "npm run bench -- rules-turn",
    rows,
    notes: [
      "Target (issue #13): no measurable effect on the hot-turn latency.",
      `Two in-process daemons (SQLite store), every built-in set on vs none; ${turns} warm turns per side, interleaved in random order, after 20 warm-up turns each; Execute sent → TurnEnded.`,
      `Code: ${revision()}.`,
      loadNote(startLoad),
    ],
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
