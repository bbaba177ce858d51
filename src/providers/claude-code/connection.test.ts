// The Claude Code provider's connection (StdioNdjsonConnection) against the fake CLI as a
// real child process (sandbox off): agent requests remembered until answered or withdrawn,
// host control requests correlated by id (settings, the model list), with a timeout.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_SANDBOX } from "../../engine/config.js";
import { TurnOutcome } from "../../events/event.js";
import { AgentLauncher } from "../../process/launcher.js";
import { Sandbox } from "../../process/sandbox.js";
import type { AgentConnection } from "../connection.js";
import type { AgentStart, LaunchConfig, ParsedOutput } from "../provider.js";
import { StdioNdjsonConnection } from "../transport/stdio-ndjson.js";
import { ClaudeStreamParser } from "./parser.js";
import { ClaudeCodeProvider } from "./provider.js";

const FAKE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "fixtures", "fake-claude.mjs");
const CONFIG: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: true, gateToolCalls: false };
const launcher = new AgentLauncher(Sandbox.open({ ...DEFAULT_SANDBOX, mode: "off", memoryBytes: 0, processes: 0, openFiles: 0 }, pino({ level: "silent" })));
const provider = new ClaudeCodeProvider(FAKE);

describe("the Claude Code connection with the fake CLI", () => {
  let scratch: string;
  let outputs: ParsedOutput[];
  let listeners: (() => boolean)[];
  let connection: AgentConnection | undefined;

  beforeEach(() => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-claude-conn-"));
    for (const dir of ["work", "home", "state"]) mkdirSync(path.join(scratch, dir));
    outputs = [];
    listeners = [];
  });
  afterEach(async () => {
    await connection?.close(0);
    connection = undefined;
    rmSync(scratch, { recursive: true, force: true });
  });

  const start = (config: Partial<LaunchConfig> = {}): AgentStart => ({
    tenant: "default",
    providerSessionId: "6a1e2f4b-8c3d-4e5f-9a0b-1c2d3e4f5a6b",
    mode: "new",
    config: { ...CONFIG, ...config },
    paths: { workDir: path.join(scratch, "work"), home: path.join(scratch, "home"), stateDir: path.join(scratch, "state") },
    daemonPaths: { workRoot: scratch, stateRoot: scratch },
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: path.join(scratch, "home") },
    maxLineBytes: 1024 * 1024,
    launcher,
    handlers: {
      onOutput: (item) => {
        outputs.push(item);
        listeners = listeners.filter((listener) => !listener());
      },
      onFault: () => {},
    },
  });
  const connect = async (config: Partial<LaunchConfig> = {}) => (connection = await provider.connect(start(config)));
  // Resolves with the first output (from now on) that matches.
  const next = <T extends ParsedOutput["type"]>(type: T, timeoutMs = 20_000): Promise<Extract<ParsedOutput, { type: T }>> => {
    const from = outputs.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        const found = outputs.slice(from).find((o) => o.type === type);
        if (!found) return false;
        clearTimeout(timer);
        resolve(found as Extract<ParsedOutput, { type: T }>);
        return true;
      };
      if (!check()) listeners.push(check);
    });
  };
  const textOf = (turn: Extract<ParsedOutput, { type: "turn_end" }>) => turn.turnEnded.result;

  it("answers a permission request once: the edited command runs, a second answer is dropped", async () => {
    const agent = await connect();
    const asked = next("agent_request");
    const ended = next("turn_end");
    agent.prompt("[[ask:touch first.txt]] go");
    const { request } = await asked;
    expect(request).toMatchObject({ kind: "permission", toolName: "Bash", command: "touch first.txt", path: path.join(scratch, "work", "first.txt") });
    agent.answer(request.requestId, { behavior: "allow", updatedInputJson: '{"command":"touch edited.txt"}', forSession: false });
    // A second answer would reach the CLI as a reply to nothing it asks: never written.
    agent.answer(request.requestId, { behavior: "deny", message: "too late" });
    expect(textOf(await ended)).toContain("Bash: ran touch edited.txt");
    expect(existsSync(path.join(scratch, "work", "edited.txt"))).toBe(true);
    expect(existsSync(path.join(scratch, "work", "first.txt"))).toBe(false);
  });

  it("allows with the original input when the client changed nothing", async () => {
    const agent = await connect();
    const asked = next("agent_request");
    const ended = next("turn_end");
    agent.prompt("[[ask:touch same.txt]] go");
    agent.answer((await asked).request.requestId, { behavior: "allow", forSession: true });
    expect(textOf(await ended)).toContain("Bash: ran touch same.txt");
    expect(existsSync(path.join(scratch, "work", "same.txt"))).toBe(true);
  });

  it("answers a question with the answers keyed by question text", async () => {
    const agent = await connect();
    const asked = next("agent_request");
    const ended = next("turn_end");
    const questions = [{ question: "Which color?", header: "Color", options: [{ label: "Red", description: "warm" }], multiSelect: false }];
    agent.prompt(`[[tool:AskUserQuestion:${JSON.stringify({ questions })}]] ask`);
    const { request } = await asked;
    expect(request.kind).toBe("question");
    expect(request.questions.map((q) => q.id)).toEqual(["Which color?"]);
    agent.answer(request.requestId, { behavior: "answer", answers: { "Which color?": "Red" } });
    expect(textOf(await ended)).toContain('"Which color?"="Red"');
  });

  it("reports an interrupt's withdrawal of a waiting request, and then ignores an answer to it", async () => {
    const agent = await connect();
    const asked = next("agent_request");
    agent.prompt("[[ask:touch never.txt]] go");
    const { request } = await asked;
    const cancelled = next("agent_request_cancelled");
    const ended = next("turn_end");
    agent.interrupt();
    expect((await cancelled).requestId).toBe(request.requestId);
    expect((await ended).turnEnded.outcome).toBe(TurnOutcome.INTERRUPTED);
    agent.answer(request.requestId, { behavior: "allow", forSession: false });
    const after = next("turn_end");
    agent.prompt("still here");
    expect(textOf(await after)).toBe("echo: still here");
    expect(existsSync(path.join(scratch, "work", "never.txt"))).toBe(false);
  });

  it("launches without the prompt tool when approvals are off: the CLI denies by itself", async () => {
    const agent = await connect({ approvals: false });
    const ended = next("turn_end");
    agent.prompt("[[ask:touch no.txt]] go");
    expect(textOf(await ended)).toContain("This command requires approval");
    expect(outputs.some((o) => o.type === "agent_request")).toBe(false);
  });

  it("applies live settings through control requests, resolving on their replies", async () => {
    const agent = await connect();
    await agent.applySettings!({ model: "claude-haiku-4-5", permissionMode: "acceptEdits" });
    const ended = next("turn_end");
    const started = next("turn_start");
    agent.prompt("[[model]]");
    expect((await started).model).toBe("claude-haiku-4-5");
    expect(textOf(await ended)).toBe("model: claude-haiku-4-5");
    // The replies were the connection's own: the session never sees them.
    expect(outputs.some((o) => o.type === "control_response")).toBe(false);
  });

  it("rejects a setting the agent refuses, and one hotplex knows to be wrong without asking", async () => {
    const agent = await connect();
    await expect(agent.applySettings!({ permissionMode: "bypassPermissions" })).rejects.toThrow(/bypassPermissions/);
    await expect(agent.applySettings!({ permissionMode: "bogusMode" })).rejects.toThrow(/not one of/);
  });

  it("lists the models of the initialize reply", async () => {
    const agent = await connect();
    expect(await agent.listModels!()).toEqual([
      { id: "default", displayName: "Default (recommended)", description: "fake-claude model" },
      { id: "sonnet", displayName: "Sonnet", description: "fake-claude Sonnet" },
      { id: "haiku", displayName: "Haiku", description: "fake-claude Haiku" },
    ]);
  });

  it("rejects a control request the agent never answers: after the timeout, and when the agent exits", async () => {
    const spec = start();
    const agent = (connection = await StdioNdjsonConnection.open(spec, provider.command(spec), new ClaudeStreamParser(), provider, provider.capabilities, 300));
    // [[hang-hard]]: the CLI reads nothing more (an agent wedged in a turn).
    const started = next("turn_start");
    agent.prompt("[[hang-hard]]");
    await started;
    await expect(agent.listModels()).rejects.toThrow(/did not answer initialize within 300 ms/);
    const pending = agent.applySettings({ model: "x" });
    void agent.close(0);
    await expect(pending).rejects.toThrow(/exited|not running/);
    await expect(agent.listModels()).rejects.toThrow(/not running/);
  });

  it("sets provider_turn_ref, and a fork at it copies the history up to that turn", async () => {
    const agent = await connect();
    const refs: string[] = [];
    for (const word of ["ONE", "TWO", "THREE"]) {
      const ended = next("turn_end");
      agent.prompt(`remember ${word}`);
      refs.push((await ended).turnEnded.providerTurnRef);
    }
    expect(refs.every((ref) => /^[0-9a-f-]{36}$/.test(ref))).toBe(true);
    await agent.close(5_000);
    const fork = await provider.connect({ ...start(), mode: "fork", forkFrom: start().providerSessionId, forkAt: refs[1], providerSessionId: "7b2f3a5c-9d4e-4f60-8b1c-2d3e4f5a6b7c" });
    connection = fork;
    const ended = next("turn_end");
    fork.prompt("[[history]]");
    expect(textOf(await ended)).toBe("history: remember ONE | remember TWO");
  });
});
