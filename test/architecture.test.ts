// The layers below the providers know agents only through the Provider seam: no agent's
// name, flag or wire format may appear in them, so that adding a provider touches
// src/providers/ (and the daemon's options) only.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./harness.js";

const AGENT_NEUTRAL_DIRS = ["src/engine", "src/session", "src/events", "src/store", "src/server"];

// Provider names and what only one agent says: its flags, its wire vocabulary, its env.
const AGENT_SPECIFIC = [
  /claude/i,
  /anthropic/i,
  /codex/i,
  /openai/i,
  /opencode/i,
  /gemini/i,
  /\bacp\b/i,
  /stream-json/,
  /--resume|--session-id|--permission-mode|--allowedTools|app-server/,
  /\b(Bash|MultiEdit|NotebookEdit)\b/,
  /thread\/start|session\/prompt|prompt_async|item\/completed/,
];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const file = path.join(dir, entry);
    if (statSync(file).isDirectory()) return sources(file);
    return file.endsWith(".ts") && !file.endsWith(".test.ts") ? [file] : [];
  });
}

describe("agent-neutral layers", () => {
  it("name no provider and use no agent-specific flag or message in engine, session, events, store and server", () => {
    const files = AGENT_NEUTRAL_DIRS.flatMap((dir) => sources(path.join(repoRoot, dir)));
    expect(files.length).toBeGreaterThan(20);
    const hits: string[] = [];
    for (const file of files) {
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((line, index) => {
          for (const pattern of AGENT_SPECIFIC) {
            if (pattern.test(line)) hits.push(`${path.relative(repoRoot, file)}:${index + 1}: ${line.trim()}`);
          }
        });
    }
    expect(hits).toEqual([]);
  });

  it("import no provider's own module: only the seam (provider, connection, registry)", () => {
    const allowed = new Set(["provider.js", "connection.js", "registry.js"]);
    const hits: string[] = [];
    for (const file of AGENT_NEUTRAL_DIRS.flatMap((dir) => sources(path.join(repoRoot, dir)))) {
      for (const match of readFileSync(file, "utf8").matchAll(/from "([^"]*\/providers\/[^"]*)"/g)) {
        const target = match[1] ?? "";
        if (!allowed.has(path.basename(target)) || /providers\/[^/]+\//.test(target)) hits.push(`${path.relative(repoRoot, file)}: ${target}`);
      }
    }
    expect(hits).toEqual([]);
  });
});
