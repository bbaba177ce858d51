// The inputs the rules benchmarks judge (bench/rules.ts, bench/rules-turn.ts): 4 KiB
// prompts and tool calls of the shapes agents and users send.
import type { RuleInput } from "../src/security/rules/index.js";

const KIB4 = 4096;

function fill(unit: readonly string[], size: number, join: string): string {
  let out = "";
  for (let k = 0; out.length < size; k += 1) out += (out === "" ? "" : join) + unit[k % unit.length];
  return out.slice(0, size);
}

const PROSE = [
  "Please refactor the session module so that each turn is queued rather than rejected when the agent is busy.",
  "The tests in `test/integration/session.test.ts` should keep passing; run `npm test` when you are done.",
  "Keep the public API as it is, and explain any change to the event log format in the pull request description.",
  "If a helper such as `rm -rf ./build` is needed in a script, put it under scripts/ and make it executable with `chmod +x`.",
];
const SCRIPT_LINES = ["npm ci", "npm run build", "rm -rf ./dist ./coverage", "npx vitest run src/session", "git status --short", "ls -la ./build | head -20", "cat package.json | jq .version"];

/**
 * Each input as it reaches the engine: decoded from the wire (a tool call's JSON from the
 * agent, a prompt from the request), not a string still made of the pieces it was built from.
 */
function asDecoded(input: RuleInput): RuleInput {
  return JSON.parse(JSON.stringify(input)) as RuleInput;
}

const BUILT: { what: string; input: RuleInput }[] = [
  { what: "prompt: prose with inline code", input: { kind: "prompt", text: fill(PROSE, KIB4, " ") } },
  { what: "prompt: a fenced shell script", input: { kind: "prompt", text: "Run this and tell me what fails:\n```sh\n" + fill(SCRIPT_LINES, KIB4 - 48, "\n") + "\n```\n" } },
  { what: "tool call: 4 KiB command line", input: { kind: "command", command: fill(SCRIPT_LINES, KIB4, " && "), cwd: "/home/dev/.hotplex/work/s1", home: "/home/dev" } },
  { what: "tool call: 4 KiB, dangerous at the end", input: { kind: "command", command: fill(SCRIPT_LINES, KIB4 - 40, " && ") + " && echo cm0gLXJmIC8= | base64 -d | sh", cwd: "/home/dev/.hotplex/work/s1", home: "/home/dev" } },
  { what: "tool call: 4 KiB here-document (a file write)", input: { kind: "command", command: "cat > src/session/queue.ts <<'EOF'\n" + fill(PROSE, KIB4 - 40, "\n") + "\nEOF", cwd: "/home/dev/.hotplex/work/s1", home: "/home/dev" } },
  { what: "tool call: a file tool's path", input: { kind: "file", operation: "write", path: "./src/session/queue.ts", cwd: "/home/dev/.hotplex/work/s1", home: "/home/dev" } },
];

export const INPUTS: { what: string; input: RuleInput }[] = BUILT.map(({ what, input }) => ({ what, input: asDecoded(input) }));
