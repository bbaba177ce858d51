// The ACP provider against a scripted ACP agent (a real child process, sandbox off): the
// handshake, turns, permission requests, cancel, and load failures.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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
import type { AgentStart, LaunchConfig, ParsedOutput, StartMode } from "../provider.js";
import { AcpProvider } from "./provider.js";
import type { AcpQuirks } from "./quirks.js";

const FAKE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "test", "fixtures", "fake-acp-agent.mjs");
const NONE: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "" };
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
  let refuseRequests: boolean;
  // Each returns true once it is done.
  let listeners: (() => boolean)[] = [];

  beforeEach(() => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-acp-"));
    for (const dir of ["work", "home", "state"]) mkdirSync(path.join(scratch, dir));
    outputs = [];
    refuseRequests = true;
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
          if (item.type === "control_request" && refuseRequests) connection?.refuse(item.requestId, "no approvals here");
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
    expect(turn[0]).toEqual({ type: "turn_start", providerSessionId: "fake-session-1", model: "" });
    expect(JSON.parse(text(turn))).toEqual({ clientCapabilities: {}, protocolVersion: 1, modes: ["yolo"] });
    expect(ended(turn)).toMatchObject({ outcome: TurnOutcome.COMPLETED, result: text(turn) });
    expect(JSON.parse(readFileSync(path.join(scratch, "home", ".fake", "settings.json"), "utf8"))).toEqual({ a: { keep: "default", mine: "operator" }, telemetry: false });
  });

  it("refuses a permission request by selecting the reject option, and closes the refused tool call", async () => {
    const agent = await connect();
    agent.prompt("[[perm]]");
    const turn = await until(0);
    expect(text(turn)).toBe('outcome: {"outcome":{"outcome":"selected","optionId":"cancel"}}');
    const kinds = turn.map((o) => (o.type === "event" ? o.payload.case : o.type));
    expect(kinds.slice(0, 4)).toEqual(["turn_start", "toolUse", "control_request", "toolResult"]);
    const result = turn.find((o) => o.type === "event" && o.payload.case === "toolResult");
    expect(result?.type === "event" && result.payload.case === "toolResult" && result.payload.value).toMatchObject({ toolUseId: "shell__1", isError: true });
    expect(ended(turn).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("cancels a turn with session/cancel, answering an open permission request with cancelled", async () => {
    refuseRequests = false;
    const agent = await connect();
    agent.prompt("[[hold-perm]]");
    await until(0, "control_request");
    agent.interrupt();
    expect(ended(await until(0)).outcome).toBe(TurnOutcome.INTERRUPTED);
    // The agent stays warm.
    const from = outputs.length;
    agent.prompt("again");
    expect(text(await until(from))).toBe("ok: again");
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
    expect(turn[0]).toEqual({ type: "turn_start", providerSessionId: "fake-old-1", model: "" });
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
    const agent = await connect({ config: { model: "some-model" } });
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
    invalid({ permissionMode: "default" }, "permission_mode");
    invalid({ allowedTools: ["x"] }, "allowed_tools");
    invalid({ disallowedTools: ["x"] }, "disallowed_tools");
    invalid({ systemPrompt: "x" }, "system_prompt");
    invalid({ appendSystemPrompt: "x" }, "append_system_prompt");
    expect(() => p.validateConfig({ ...NONE, model: "m" })).not.toThrow();
    expect(() => new AcpProvider({ name: "gemini", command: ["gemini", "--acp"], quirks: "gemini" }).validateConfig({ ...NONE, systemPrompt: "x" })).not.toThrow();
  });
});
