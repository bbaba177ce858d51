// hotplex's PreToolUse hook on the real Claude Code CLI (against the local mock of the
// Messages API): with gateToolCalls every tool call is checked with the host before it runs,
// also one the session's settings allow; a veto refuses it and the turn goes on.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claudeEnv, type MockAnthropic, startMockAnthropic } from "../fixtures/mock-anthropic.js";
import { repoRoot } from "../harness.js";
import { AgentLauncher } from "../../src/process/launcher.js";
import { Sandbox } from "../../src/process/sandbox.js";
import type { AgentConnection } from "../../src/providers/connection.js";
import type { AgentStart, LaunchConfig, ParsedOutput } from "../../src/providers/provider.js";
import { ClaudeCodeProvider } from "../../src/providers/claude-code/provider.js";

const CLAUDE = path.join(repoRoot, "node_modules", ".bin", "claude");
const CONFIG: LaunchConfig = { model: "", permissionMode: "", allowedTools: ["Bash"], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: false, gateToolCalls: true };
const launcher = new AgentLauncher(Sandbox.open({ mode: "off", bwrap: "bwrap", network: "on", memoryBytes: 0, processes: 0, openFiles: 0, readOnlyPaths: [], hiddenPaths: [] }, pino({ level: "silent" })));

describe("hotplex's PreToolUse gate on the real Claude Code CLI", () => {
  let mock: MockAnthropic;
  let scratch: string;
  beforeAll(async () => {
    mock = await startMockAnthropic();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-claude-gate-"));
    for (const dir of ["work", "home", "state"]) mkdirSync(path.join(scratch, dir));
  });
  afterAll(async () => {
    await mock?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  // One turn on a new connection; `decide` answers each check.
  const turn = async (prompt: string, decide: (command: string) => Parameters<AgentConnection["answer"]>[1], config: Partial<LaunchConfig> = {}) => {
    const outputs: ParsedOutput[] = [];
    let connection: AgentConnection | undefined;
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    const start: AgentStart = {
      tenant: "default",
      providerSessionId: crypto.randomUUID(),
      mode: "new",
      config: { ...CONFIG, ...config },
      paths: { workDir: path.join(scratch, "work"), home: path.join(scratch, "home"), stateDir: path.join(scratch, "state") },
      daemonPaths: { workRoot: scratch, stateRoot: scratch },
      env: claudeEnv({ home: path.join(scratch, "home"), baseUrl: mock.url }),
      maxLineBytes: 16 * 1024 * 1024,
      launcher,
      handlers: {
        onOutput: (item) => {
          outputs.push(item);
          if (item.type === "agent_request" && item.request.kind === "check") connection?.answer(item.request.requestId, decide(item.request.command));
          // A permission prompt (after an "ask") is allowed, as a client would.
          if (item.type === "agent_request" && item.request.kind === "permission") connection?.answer(item.request.requestId, { behavior: "allow", forSession: false });
          if (item.type === "turn_end") done();
        },
        onFault: () => {},
      },
    };
    connection = await new ClaudeCodeProvider(CLAUDE).connect(start);
    connection.prompt(prompt);
    await ended;
    await connection.close(2_000);
    return outputs;
  };
  const bash = (command: string) => `[[tool:Bash:${JSON.stringify({ command })}]]`;

  it("vetoes a call the settings allow: it never runs, the model gets the reason, the turn completes", async () => {
    const outputs = await turn(`${bash("touch vetoed.txt")} go`, () => ({ behavior: "deny", message: "blocked by rule test.veto" }));
    const checks = outputs.flatMap((o) => (o.type === "agent_request" ? [o.request] : []));
    expect(checks.map((c) => [c.kind, c.toolName, c.command])).toEqual([["check", "Bash", "touch vetoed.txt"]]);
    const result = outputs.find((o) => o.type === "event" && o.payload.case === "toolResult");
    expect(result?.type === "event" && result.payload.case === "toolResult" && result.payload.value.isError).toBe(true);
    expect(result?.type === "event" && result.payload.case === "toolResult" && result.payload.value.content).toContain("blocked by rule test.veto");
    expect(existsSync(path.join(scratch, "work", "vetoed.txt"))).toBe(false);
    expect(outputs.at(-1)?.type === "turn_end" && outputs.at(-1)).toBeTruthy();
  });

  it("lets a deferred call go on as the settings say (here: allowed, so it runs without a prompt)", async () => {
    const outputs = await turn(`${bash("touch deferred.txt")} go`, () => ({ behavior: "defer", ask: false }));
    expect(outputs.some((o) => o.type === "agent_request" && o.request.kind === "permission")).toBe(false);
    expect(existsSync(path.join(scratch, "work", "deferred.txt"))).toBe(true);
  });

  it("makes the CLI ask when told to: with the permission prompt on, a can_use_tool follows the check, even for an allowed tool", async () => {
    const outputs = await turn(`${bash("touch asked.txt")} go`, () => ({ behavior: "defer", ask: true }), { approvals: true });
    const requests = outputs.flatMap((o) => (o.type === "agent_request" ? [[o.request.kind, o.request.command]] : []));
    expect(requests).toEqual([
      ["check", "touch asked.txt"],
      ["permission", "touch asked.txt"],
    ]);
    expect(existsSync(path.join(scratch, "work", "asked.txt"))).toBe(true);
  });
});
