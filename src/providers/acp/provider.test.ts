// The ACP provider against a scripted ACP agent (a real child process, sandbox off): the
// handshake, turns, permission requests and their answers, cancel, live settings, and load failures.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_SANDBOX } from "../../engine/config.js";
import { HotplexError } from "../../errors.js";
import { TurnOutcome } from "../../events/event.js";
import { AgentLauncher } from "../../process/launcher.js";
import { Sandbox } from "../../process/sandbox.js";
import type { AgentConnection } from "../connection.js";
import type { AgentDecision, AgentRequest, AgentStart, LaunchConfig, ParsedOutput, StartMode } from "../provider.js";
import { AcpProvider } from "./provider.js";
import type { AcpQuirks } from "./quirks.js";

const FAKE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "fixtures", "fake-acp-agent.mjs");
const NONE: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: false, gateToolCalls: false };
const QUIRKS: AcpQuirks = {
  kind: "fake",
  envAllowList: [],
  env: {},
  tmpDir: ".tmp",
  settingsFile: { path: path.join(".fake", "settings.json"), defaults: { a: { keep: "default", mine: "default" } }, forced: { telemetry: false } },
  sessionMode: "yolo",
  loadSession: true,
};
const launcher = new AgentLauncher(Sandbox.open({ ...DEFAULT_SANDBOX, mode: "off", memoryBytes: 0, processes: 0, openFiles: 0 }, pino({ level: "silent" })));

describe("AcpProvider with a scripted ACP agent", () => {
  let scratch: string;
  let outputs: ParsedOutput[];
  let connection: AgentConnection | undefined;
  // How the "session" answers an agent_request (undefined: it leaves it open).
  let decide: (request: AgentRequest) => AgentDecision | undefined;
  // Each returns true once it is done.
  let listeners: (() => boolean)[] = [];

  beforeEach(() => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-acp-"));
    for (const dir of ["work", "home", "state"]) mkdirSync(path.join(scratch, dir));
    outputs = [];
    decide = () => ({ behavior: "deny", message: "no approvals here" });
  });
  afterEach(async () => {
    await connection?.close(0);
    connection = undefined;
    rmSync(scratch, { recursive: true, force: true });
  });

  const provider = (quirks: AcpQuirks = QUIRKS) => new AcpProvider({ name: "fake", command: [process.execPath, FAKE], quirks });
  const connect = async (options: { mode?: StartMode; providerSessionId?: string; config?: Partial<LaunchConfig>; env?: Record<string, string>; quirks?: AcpQuirks } = {}) => {
    const start: AgentStart = {
      tenant: "default",
    providerSessionId: options.providerSessionId ?? "hotplex-chosen-id",
      mode: options.mode ?? "new",
      config: { ...NONE, ...options.config },
      paths: { workDir: path.join(scratch, "work"), home: path.join(scratch, "home"), stateDir: path.join(scratch, "state") },
      daemonPaths: { workRoot: scratch, stateRoot: scratch },
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env },
      maxLineBytes: 1024 * 1024,
      launcher,
      handlers: {
        onOutput: (item) => {
          outputs.push(item);
          listeners = listeners.filter((listener) => !listener());
          if (item.type === "control_request") connection?.refuse(item.requestId, "not served here");
          if (item.type === "agent_request") {
            const decision = decide(item.request);
            if (decision) connection?.answer(item.request.requestId, decision);
          }
        },
        onFault: (code, message) => {
          outputs.push({ type: "fatal_startup", message: `${code}: ${message}` });
          listeners = listeners.filter((listener) => !listener());
        },
      },
    };
    connection = await provider(options.quirks).connect(start);
    return connection;
  };
  // Resolves when the outputs hold a turn_end (or a fatal_startup), returning those since `from`.
  const until = async (from: number, type: ParsedOutput["type"] = "turn_end") => {
    const seen = () => outputs.slice(from).some((o) => o.type === type);
    if (!seen()) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${type} in ${JSON.stringify(outputs.slice(from).map((o) => o.type))}`)), 10_000);
        listeners.push(() => {
          if (!seen()) return false;
          clearTimeout(timer);
          resolve();
          return true;
        });
      });
    }
    return outputs.slice(from);
  };
  const text = (items: ParsedOutput[]) => items.map((o) => (o.type === "event" && o.payload.case === "textDelta" ? o.payload.value.text : "")).join("");
  const ended = (items: ParsedOutput[]) => {
    const end = items.find((o) => o.type === "turn_end");
    if (end?.type !== "turn_end") throw new Error("no turn_end");
    return end.turnEnded;
  };

  it("advertises no fs or terminal, sets its session mode, names the agent's session in turn_start, and writes its settings", async () => {
    mkdirSync(path.join(scratch, "home", ".fake"));
    writeFileSync(path.join(scratch, "home", ".fake", "settings.json"), JSON.stringify({ a: { mine: "operator" }, telemetry: true }));
    const agent = await connect({ env: {} });
    agent.prompt("[[caps]]");
    const turn = await until(0);
    expect(turn[0]).toEqual({ type: "turn_start", providerSessionId: "fake-session-1", model: "fake-small" });
    expect(JSON.parse(text(turn))).toEqual({ clientCapabilities: {}, protocolVersion: 1, modes: ["yolo"], models: [] });
    expect(ended(turn)).toMatchObject({ outcome: TurnOutcome.COMPLETED, result: text(turn) });
    expect(JSON.parse(readFileSync(path.join(scratch, "home", ".fake", "settings.json"), "utf8"))).toEqual({ a: { keep: "default", mine: "operator" }, telemetry: false });
  });

  it("denies a permission request by selecting the reject option, and closes the refused tool call", async () => {
    const agent = await connect();
    agent.prompt("[[perm]]");
    const turn = await until(0);
    expect(text(turn)).toBe('outcome: {"outcome":{"outcome":"selected","optionId":"cancel"}}');
    const kinds = turn.map((o) => (o.type === "event" ? o.payload.case : o.type));
    expect(kinds.slice(0, 4)).toEqual(["turn_start", "toolUse", "agent_request", "toolResult"]);
    const result = turn.find((o) => o.type === "event" && o.payload.case === "toolResult");
    expect(result?.type === "event" && result.payload.case === "toolResult" && result.payload.value).toMatchObject({ toolUseId: "shell__1", isError: true });
    expect(ended(turn).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("cancels a turn with session/cancel, answering an open permission request with cancelled, once", async () => {
    decide = () => undefined;
    const agent = await connect();
    agent.prompt("[[hold-perm]]");
    const asked = (await until(0, "agent_request")).find((o) => o.type === "agent_request");
    const requestId = asked?.type === "agent_request" ? asked.request.requestId : "";
    agent.interrupt();
    // The fake ends the turn "cancelled" only when the request was answered "cancelled".
    const turn = await until(0);
    expect(ended(turn).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(turn.filter((o) => o.type === "agent_request_cancelled")).toEqual([{ type: "agent_request_cancelled", requestId }]);
    // The session's late answer is not sent: the agent got one answer.
    agent.answer(requestId, { behavior: "allow", forSession: false });
    // The agent stays warm.
    const from = outputs.length;
    agent.prompt("[[state]]");
    expect(JSON.parse(text(await until(from)))).toMatchObject({ strayAnswers: 0 });
  });

  it("cancels a turn interrupted before it was sent, once it is", async () => {
    const agent = await connect();
    // Handed over while the handshake still runs, interrupted before it reached the agent.
    agent.prompt("[[hang]]");
    agent.interrupt();
    expect(ended(await until(0)).outcome).toBe(TurnOutcome.INTERRUPTED);
  });

  it("ignores an interrupt between turns (it must not cancel the next one)", async () => {
    const agent = await connect();
    agent.prompt("one");
    await until(0);
    agent.interrupt();
    const from = outputs.length;
    agent.prompt("two");
    const turn = await until(from);
    expect(ended(turn).outcome).toBe(TurnOutcome.COMPLETED);
    expect(text(turn)).toBe("ok: two");
  });

  it("refuses to write its settings through a link planted in the HOME", async () => {
    const elsewhere = path.join(scratch, "elsewhere");
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, path.join(scratch, "home", ".fake"));
    await expect(connect()).rejects.toThrow(/\.fake in the session HOME is not a directory/);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it("continues a conversation with session/load, keeping the replayed history out of the turn", async () => {
    const agent = await connect({ mode: "resume", providerSessionId: "fake-old-1" });
    agent.prompt("next");
    const turn = await until(0);
    expect(turn[0]).toEqual({ type: "turn_start", providerSessionId: "fake-old-1", model: "fake-small" });
    expect(text(turn)).toBe("ok: next");
    const raws = turn.filter((o) => o.type === "event" && o.payload.case === "raw").map((o) => (o.type === "event" && o.payload.case === "raw" ? o.payload.value.reason : ""));
    expect(raws).toContain("history_replay");
  });

  it("ends a run whose load fails: unclassified (the saved history is kept), unless no conversation exists", async () => {
    const p = provider();
    const agent = await connect({ mode: "resume", providerSessionId: "missing" });
    agent.prompt("x");
    const fatal = (await until(0, "fatal_startup")).find((o) => o.type === "fatal_startup");
    expect(fatal?.type === "fatal_startup" && fatal.message).toMatch(/session\/load of missing failed: Internal error/);
    expect(fatal?.type === "fatal_startup" && p.classifyStartupFailure("", fatal.message)).toBeUndefined();
    await agent.exited;
    expect(outputs.some((o) => o.type === "turn_start")).toBe(false);
    // With a guard that finds no saved conversation, it is a missing one: the session starts a new one.
    const from = outputs.length;
    const guarded = await connect({ mode: "resume", providerSessionId: "fake-old-2", quirks: { ...QUIRKS, prepareLoad: async () => ({ missing: true, waitMs: 0, restore: async () => {}, discard: async () => {} }) } });
    guarded.prompt("x");
    const missing = (await until(from, "fatal_startup")).filter((o) => o.type === "fatal_startup").at(-1);
    expect(missing?.type === "fatal_startup" && p.classifyStartupFailure("", missing.message)).toBe("resume_missing");
  });

  it("refuses a session id the agent makes up that could be anything", async () => {
    const agent = await connect({ env: { FAKE_SESSION_ID: "../../etc/passwd" } });
    agent.prompt("x");
    const fatal = (await until(0, "fatal_startup")).find((o) => o.type === "fatal_startup");
    expect(fatal?.type === "fatal_startup" && fatal.message).toMatch(/no usable session id/);
    await agent.exited;
  });

  it("refuses a model when the agent offers no choice of one", async () => {
    const agent = await connect({ config: { model: "some-model" }, env: { FAKE_NO_SETTINGS: "1" } });
    agent.prompt("x");
    const fatal = (await until(0, "fatal_startup")).find((o) => o.type === "fatal_startup");
    expect(fatal?.type === "fatal_startup" && fatal.message).toMatch(/config.model is not supported by provider fake/);
  });

  it("leaves the turn's end to the session when the agent dies in it", async () => {
    const agent = await connect();
    agent.prompt("[[exit]]");
    const exit = await agent.exited;
    expect(exit.exitCode).toBe(3);
    // The failed prompt's continuation runs right after the exit.
    await new Promise((resolve) => setImmediate(resolve));
    expect(outputs.some((o) => o.type === "turn_end")).toBe(false);
  });

  const requestsIn = (items: ParsedOutput[]) => items.flatMap((o) => (o.type === "agent_request" ? [o.request] : []));
  const state = async (agent: AgentConnection) => {
    const from = outputs.length;
    agent.prompt("[[state]]");
    return JSON.parse(text(await until(from))) as { mode: string; model: string; strayAnswers: number };
  };
  const workFile = (name: string) => path.join(scratch, "work", name);

  it("asks the session before a tool call: the request names the tool, its command, path and the agent's options", async () => {
    decide = () => ({ behavior: "allow", forSession: false });
    const agent = await connect({ config: { approvals: true } });
    agent.prompt("[[run:made.txt]]");
    const turn = await until(0);
    const [request] = requestsIn(turn);
    const use = turn.find((o) => o.type === "event" && o.payload.case === "toolUse");
    const toolUse = use?.type === "event" && use.payload.case === "toolUse" ? use.payload.value : undefined;
    expect(request).toEqual({
      requestId: expect.stringMatching(/^string:agent-/),
      kind: "permission",
      toolName: "execute",
      toolUseId: toolUse?.toolUseId,
      // The same input as the call's ToolUse (the session's memory of allowed calls compares it).
      inputJson: toolUse?.inputJson,
      description: "touch made.txt",
      path: workFile("made.txt"),
      command: "touch made.txt",
      suggestionsJson: [
        JSON.stringify({ optionId: "proceed_always", kind: "allow_always", name: "Allow for this session" }),
        JSON.stringify({ optionId: "proceed_once", kind: "allow_once", name: "Allow" }),
        JSON.stringify({ optionId: "cancel", kind: "reject_once", name: "Reject" }),
      ],
      questions: [],
    });
    expect(JSON.parse(request!.inputJson)).toMatchObject({ rawInput: { command: "touch made.txt" } });
    expect(text(turn)).toBe("ran made.txt (proceed_once). ");
    expect(existsSync(workFile("made.txt"))).toBe(true);
    expect(ended(turn).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("allows for the session with the agent's allow-once option (the session remembers; the agent's always is wider)", async () => {
    decide = () => ({ behavior: "allow", forSession: true });
    const agent = await connect({ config: { approvals: true } });
    agent.prompt("[[run:a.txt]][[run:b.txt]]");
    const turn = await until(0);
    expect(text(turn)).toBe("ran a.txt (proceed_once). ran b.txt (proceed_once). ");
    expect(requestsIn(turn)).toHaveLength(2);
  });

  it("denies: the call is skipped, and its end is the agent's failed update", async () => {
    decide = () => ({ behavior: "deny", message: "not that" });
    const agent = await connect({ config: { approvals: true } });
    agent.prompt("[[run:denied.txt]]");
    const turn = await until(0);
    expect(text(turn)).toBe("skipped denied.txt (cancel). ");
    expect(existsSync(workFile("denied.txt"))).toBe(false);
    const results = turn.filter((o) => o.type === "event" && o.payload.case === "toolResult");
    expect(results).toHaveLength(1);
    expect(ended(turn).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("refuses an allow with an edited input (ACP cannot change a call's input) rather than run the original", async () => {
    decide = () => ({ behavior: "allow", forSession: false, updatedInputJson: JSON.stringify({ command: "touch other.txt" }) });
    const agent = await connect({ config: { approvals: true } });
    agent.prompt("[[run:edited.txt]]");
    const turn = await until(0);
    expect(text(turn)).toBe("skipped edited.txt (cancel). ");
    expect(existsSync(workFile("edited.txt"))).toBe(false);
    expect(agent.capabilities.editApprovedInput).toBe(false);
  });

  it("interrupts a call waiting for its answer: session/cancel, the request answered cancelled and withdrawn", async () => {
    decide = () => undefined;
    const agent = await connect({ config: { approvals: true } });
    agent.prompt("[[run:waiting.txt]]");
    const [request] = requestsIn(await until(0, "agent_request"));
    agent.interrupt();
    const turn = await until(0);
    expect(ended(turn).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(turn.filter((o) => o.type === "agent_request_cancelled")).toEqual([{ type: "agent_request_cancelled", requestId: request!.requestId }]);
    agent.answer(request!.requestId, { behavior: "allow", forSession: false });
    expect(await state(agent)).toMatchObject({ strayAnswers: 0 });
    expect(existsSync(workFile("waiting.txt"))).toBe(false);
  });

  it("answers a malformed permission request with an error at once, without asking the session", async () => {
    const agent = await connect({ config: { approvals: true } });
    agent.prompt("[[bad-perm]]");
    const turn = await until(0);
    expect(requestsIn(turn)).toEqual([]);
    expect(text(turn)).toMatch(/^outcome: \{"error":\{"code":-32602,"message":"invalid session\/request_permission: the request offers no option/);
  });

  it("hands on a request the agent withdraws ($/cancel_request) as cancelled, and answers it as cancelled", async () => {
    decide = () => undefined;
    const agent = await connect({ config: { approvals: true } });
    agent.prompt("[[withdraw]]");
    const turn = await until(0);
    const [request] = requestsIn(turn);
    expect(turn.filter((o) => o.type === "agent_request_cancelled")).toEqual([{ type: "agent_request_cancelled", requestId: request!.requestId }]);
    expect(text(turn)).toBe('outcome: {"error":{"code":-32800,"message":"Request cancelled"}}');
    agent.answer(request!.requestId, { behavior: "deny", message: "late" });
    expect(await state(agent)).toMatchObject({ strayAnswers: 0 });
  });

  it("keeps the agent's own mode with approvals, sets its quirks' mode without, and the configured mode in either case", async () => {
    const modesSet = async (config: Partial<LaunchConfig>) => {
      const from = outputs.length;
      const agent = await connect({ config });
      agent.prompt("[[caps]]");
      const modes = (JSON.parse(text(await until(from))) as { modes: string[] }).modes;
      await agent.close(0);
      return modes;
    };
    expect(await modesSet({ approvals: true })).toEqual([]);
    expect(await modesSet({ approvals: false })).toEqual(["yolo"]);
    expect(await modesSet({ approvals: true, permissionMode: "yolo" })).toEqual(["yolo"]);
    expect(await modesSet({ approvals: false, permissionMode: "default" })).toEqual(["default"]);
    const from = outputs.length;
    const agent = await connect({ config: { permissionMode: "nope" } });
    agent.prompt("x");
    const fatal = (await until(from, "fatal_startup")).find((o) => o.type === "fatal_startup");
    expect(fatal?.type === "fatal_startup" && fatal.message).toMatch(/config.permission_mode is not supported by provider fake: the agent offers no mode "nope" \(it offers default, plan, yolo\)/);
  });

  it("starts with the configured model, and names it in turn_start", async () => {
    const agent = await connect({ config: { model: "fake-large" } });
    agent.prompt("[[state]]");
    const turn = await until(0);
    expect(turn[0]).toMatchObject({ type: "turn_start", model: "fake-large" });
    expect(JSON.parse(text(turn))).toMatchObject({ model: "fake-large" });
  });

  for (const [how, env] of [
    ["session/set_mode and session/set_model", {}],
    ["session config options", { FAKE_CONFIG_OPTIONS: "1" }],
  ] as const) {
    it(`changes mode and model of the live agent through ${how}, and lists its models`, async () => {
      const agent = await connect({ env, config: { approvals: true } });
      agent.prompt("one");
      await until(0);
      expect(agent.capabilities).toMatchObject({ setModel: true, setPermissionMode: true, listModels: true, approvals: true, fork: false, questions: false });
      expect(await agent.listModels!()).toEqual([
        { id: "fake-small", displayName: "Fake Small", description: "The small one" },
        { id: "fake-large", displayName: "Fake Large", description: "The large one" },
      ]);
      await agent.applySettings!({ permissionMode: "yolo", model: "fake-large" });
      expect(await state(agent)).toMatchObject({ mode: "yolo", model: "fake-large" });
      // Back to no permission mode and no model: what the agent began with (approvals are on).
      await agent.applySettings!({ permissionMode: "" });
      expect(await state(agent)).toMatchObject({ mode: "default", model: "fake-large" });
      await agent.applySettings!({ model: "" });
      expect(await state(agent)).toMatchObject({ mode: "default", model: "fake-small" });
      await agent.applySettings!({ model: "fake-large" });
      // The agent's refusal is the error; a mode it does not offer is refused before anything is sent.
      await expect(agent.applySettings!({ model: "fake-huge" })).rejects.toThrow(/no model fake-huge/);
      await expect(agent.applySettings!({ permissionMode: "acceptEdits", model: "fake-small" })).rejects.toThrow(/offers no mode "acceptEdits"/);
      expect(await state(agent)).toMatchObject({ mode: "default", model: "fake-large" });
    });
  }

  it("says it cannot change settings when the agent advertised none", async () => {
    const agent = await connect({ env: { FAKE_NO_SETTINGS: "1" } });
    agent.prompt("one");
    await until(0);
    expect(agent.capabilities).toMatchObject({ setModel: false, setPermissionMode: false, listModels: false, approvals: true, interrupt: true });
    await expect(agent.applySettings!({ permissionMode: "yolo" })).rejects.toThrow(/offers no session modes/);
    await expect(agent.listModels!()).rejects.toThrow(/no choice of model/);
  });

  it("validates the config by name", () => {
    const p = provider();
    const invalid = (config: Partial<LaunchConfig>, field: string) => {
      try {
        p.validateConfig({ ...NONE, ...config });
      } catch (error) {
        expect(error).toBeInstanceOf(HotplexError);
        expect((error as HotplexError).code).toBe("invalid_argument");
        expect((error as HotplexError).message).toContain(`config.${field} is not supported by provider fake`);
        return;
      }
      throw new Error(`expected ${field} to be refused`);
    };
    invalid({ permissionMode: "--mode" }, "permission_mode");
    expect(() => p.validateConfig({ ...NONE, permissionMode: "default" })).not.toThrow();
    const gemini = new AcpProvider({ name: "gemini", command: ["gemini", "--acp"], quirks: "gemini" });
    expect(() => gemini.validateConfig({ ...NONE, permissionMode: "autoEdit" })).not.toThrow();
    expect(() => gemini.validateConfig({ ...NONE, permissionMode: "bypassPermissions" })).toThrow(/default, autoEdit, yolo, plan/);
    invalid({ allowedTools: ["x"] }, "allowed_tools");
    invalid({ disallowedTools: ["x"] }, "disallowed_tools");
    invalid({ systemPrompt: "x" }, "system_prompt");
    invalid({ appendSystemPrompt: "x" }, "append_system_prompt");
    expect(() => p.validateConfig({ ...NONE, model: "m" })).not.toThrow();
    expect(() => new AcpProvider({ name: "gemini", command: ["gemini", "--acp"], quirks: "gemini" }).validateConfig({ ...NONE, systemPrompt: "x" })).not.toThrow();
  });
});
