import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { HotplexError } from "../../errors.js";
import { LaunchError } from "../../process/launcher.js";
import type { AgentStart, LaunchConfig } from "../provider.js";
import { nativeCodex } from "./executable.js";
import { CodexProvider } from "./provider.js";

const NONE: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: false, gateToolCalls: false };
const repoRoot = path.resolve(import.meta.dirname, "..", "..", "..");

describe("CodexProvider", () => {
  const provider = new CodexProvider("/opt/codex");

  it("refuses settings Codex has no way to honour, naming the field and the provider", () => {
    expect(() => provider.validateConfig(NONE)).not.toThrow();
    expect(() => provider.validateConfig({ ...NONE, model: "gpt-5.5", systemPrompt: "s", appendSystemPrompt: "a" })).not.toThrow();
    for (const config of [{ permissionMode: "plan" }, { allowedTools: ["Read"] }, { disallowedTools: ["Bash"] }]) {
      const error = (() => {
        try {
          provider.validateConfig({ ...NONE, ...config });
        } catch (e) {
          return e;
        }
      })() as HotplexError;
      expect(error).toBeInstanceOf(HotplexError);
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/^config\.(permission_mode|allowed_tools|disallowed_tools) is not supported by provider codex/);
    }
  });

  it("does not start when the tenant's policy disallows tools it cannot enforce", async () => {
    const start = { config: { ...NONE, disallowedTools: ["Bash"] } } as unknown as AgentStart;
    await expect(provider.connect(start)).rejects.toBeInstanceOf(LaunchError);
  });

  it("puts no session value on the command line: the model and prompts go over the protocol", async () => {
    let command: { args: string[]; env?: Record<string, string> } | undefined;
    const start = {
      config: { ...NONE, model: "--settings=evil", systemPrompt: "--config=x" },
      paths: { workDir: "/w", home: "/h", stateDir: "/s" },
      launcher: {
        sandbox: { enabled: true },
        ensureAgentDir: () => Promise.resolve(),
        launch: (request: { command: { args: string[]; env?: Record<string, string> } }) => {
          command = request.command;
          return Promise.reject(new LaunchError("stop here"));
        },
      },
    } as unknown as AgentStart;
    await expect(provider.connect(start)).rejects.toThrow("stop here");
    expect(command?.args[0]).toBe("app-server");
    expect(command?.args.join(" ")).not.toMatch(/evil|--settings|x$/);
    expect(command?.args.slice(1).every((arg) => arg.startsWith("--config="))).toBe(true);
    expect(command?.env).toEqual({ CODEX_HOME: "/h/.codex", TMPDIR: "/h/.tmp" });
  });

  it("asks for approvals and lets the model ask questions only when the host approves, and forks only a named thread", async () => {
    const argsFor = async (config: Partial<LaunchConfig>, extra: Partial<AgentStart> = {}) => {
      let args: string[] = [];
      const start = {
        mode: "new",
        ...extra,
        config: { ...NONE, ...config },
        paths: { workDir: "/w", home: "/h", stateDir: "/s" },
        launcher: {
          sandbox: { enabled: true },
          ensureAgentDir: () => Promise.resolve(),
          launch: (request: { command: { args: string[] } }) => {
            args = request.command.args;
            return Promise.reject(new LaunchError("stop here"));
          },
        },
      } as unknown as AgentStart;
      await expect(provider.connect(start)).rejects.toThrow("stop here");
      return args;
    };
    expect(await argsFor({ approvals: false })).toContain('--config=approval_policy="never"');
    expect((await argsFor({ approvals: false })).join(" ")).not.toContain("request_user_input");
    const asking = await argsFor({ approvals: true });
    // The thread asks with "untrusted" (over the protocol); Codex refuses it in its config.
    expect(asking).toContain('--config=approval_policy="on-request"');
    expect(asking).toContain("--config=features.default_mode_request_user_input=true");
    expect(asking).not.toContain('--config=approval_policy="never"');
    await expect(provider.connect({ mode: "fork", config: NONE } as unknown as AgentStart)).rejects.toThrow(/fork needs the Codex thread/);
    await expect(provider.connect({ mode: "fork", forkFrom: "../x", config: NONE } as unknown as AgentStart)).rejects.toBeInstanceOf(LaunchError);
    await expect(provider.connect({ mode: "fork", forkFrom: "t-1", forkAt: "a b", config: NONE } as unknown as AgentStart)).rejects.toThrow(/not a Codex turn id/);
    expect(await argsFor({}, { mode: "fork", forkFrom: "t-1", forkAt: "turn-1" })).toContain("app-server");
    expect(provider.capabilities).toMatchObject({ approvals: true, questions: true, steer: true, fork: true, forkAtTurn: true, setModel: true, listModels: true });
    expect(provider.capabilities).toMatchObject({ setPermissionMode: false, editApprovedInput: false });
  });

  it("runs the native binary behind the npm launcher, and anything else as given", () => {
    const launcher = path.join(repoRoot, "node_modules", ".bin", "codex");
    if (existsSync(launcher)) {
      const native = nativeCodex(launcher);
      expect(native).not.toBe(launcher);
      expect(native).toMatch(/codex-linux-[a-z0-9]+\/vendor\/.+\/codex$/);
    }
    expect(nativeCodex("/nonexistent/codex")).toBe("/nonexistent/codex");
    expect(nativeCodex("/bin/sh")).toBe("/bin/sh");
  });

  it("takes a missing or malformed thread to resume for a conversation to start anew", () => {
    expect(provider.classifyStartupFailure("", "no rollout found for thread id 0190")).toBe("resume_missing");
    expect(provider.classifyStartupFailure("", "invalid session id: invalid character")).toBe("resume_missing");
    expect(provider.classifyStartupFailure("", "something else")).toBeUndefined();
    // A fork of a thread that is not there fails: it never starts as a new conversation.
    expect(provider.classifyStartupFailure("", 'cannot fork the thread "0190": no rollout found for thread id 0190')).toBeUndefined();
  });
});
