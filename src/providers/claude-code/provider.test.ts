import path from "node:path";
import { describe, expect, it } from "vitest";
import { HotplexError } from "../../errors.js";
import type { LaunchConfig } from "../provider.js";
import { ClaudeCodeProvider, PERMISSION_MODES } from "./provider.js";

const provider = new ClaudeCodeProvider("/usr/bin/claude");
const NONE: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: false, gateToolCalls: false };
const launch = (config: Partial<LaunchConfig>) =>
  provider.command({ providerSessionId: "0b5e4c4a-1f8e-4d3b-9a6c-2e7f8d9c0b1a", mode: "new", config: { ...NONE, ...config }, paths: { workDir: "/w", home: "/h", stateDir: "/state/s1" } });

// A value the CLI reads from anywhere in its argv when it stands alone (see the provider).
const INJECTION = '--settings={"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"touch /tmp/x"}]}]}}';

function invalid(fn: () => void, field: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(HotplexError);
    expect((error as HotplexError).code).toBe("invalid_argument");
    expect((error as HotplexError).message).toContain(field);
    return;
  }
  throw new Error("expected an invalid_argument error");
}

describe("ClaudeCodeProvider.command", () => {
  it("never gives a config value an argv entry of its own: every value is in --flag=value form", () => {
    const { args } = launch({ model: "opus", permissionMode: "plan", allowedTools: ["Bash(git log:*)"], disallowedTools: ["WebFetch"] });
    expect(args).toContain("--model=opus");
    expect(args).toContain("--permission-mode=plan");
    expect(args).toContain("--allowedTools=Bash(git log:*)");
    expect(args).toContain("--disallowedTools=WebFetch");
    expect(args).toContain("--session-id=0b5e4c4a-1f8e-4d3b-9a6c-2e7f8d9c0b1a");
    // Every entry is a fixed flag or a flag with its value after "=".
    for (const arg of args) expect(arg).toMatch(/^--?[a-zA-Z-]+(=|$)/);
  });

  it("puts the system prompts in files of the session's state dir, never on the command line", () => {
    const { args, files } = launch({ systemPrompt: INJECTION, appendSystemPrompt: `more ${INJECTION}` });
    const system = path.join("/state/s1", "system-prompt.txt");
    const append = path.join("/state/s1", "append-system-prompt.txt");
    expect(args).toContain(`--system-prompt-file=${system}`);
    expect(args).toContain(`--append-system-prompt-file=${append}`);
    expect(files).toEqual({ [system]: INJECTION, [append]: `more ${INJECTION}` });
    expect(args.join(" ")).not.toContain("--settings");
  });

  it("keeps an injected flag inside the value of the flag it was given for", () => {
    const { args } = launch({ model: INJECTION, allowedTools: [INJECTION], disallowedTools: [INJECTION] });
    expect(args.filter((arg) => arg.startsWith("--settings"))).toEqual([]);
  });

  it("asks on stdio (--permission-prompt-tool=stdio) only with approvals", () => {
    expect(launch({ approvals: true }).args).toContain("--permission-prompt-tool=stdio");
    expect(launch({}).args.some((arg) => arg.startsWith("--permission-prompt-tool"))).toBe(false);
  });

  it("forks at a turn with --resume-session-at=<the turn's message uuid>, and refuses a ref that is not a uuid", () => {
    const at = "72f9a48c-61db-47b7-9ff1-ad9e4ed0447a";
    const fork = (forkAt?: string) =>
      provider.command({ providerSessionId: "id-2", mode: "fork", forkFrom: "id-1", forkAt, config: NONE, paths: { workDir: "/w", home: "/h", stateDir: "/s" } });
    expect(fork(at).args).toEqual(expect.arrayContaining(["--resume=id-1", "--fork-session", "--session-id=id-2", `--resume-session-at=${at}`]));
    expect(fork().args.some((arg) => arg.startsWith("--resume-session-at"))).toBe(false);
    expect(() => fork("--settings={}")).toThrow(/not a Claude Code message uuid/);
  });

  it("resumes with --resume=<id>", () => {
    const { args } = provider.command({ providerSessionId: "id-1", mode: "resume", config: NONE, paths: { workDir: "/w", home: "/h", stateDir: "/s" } });
    expect(args).toContain("--resume=id-1");
    expect(args.some((arg) => arg.startsWith("--session-id"))).toBe(false);
  });
});

describe("ClaudeCodeProvider.validateConfig", () => {
  it.each(PERMISSION_MODES)("accepts the permission mode %j", (mode) => {
    expect(() => provider.validateConfig({ ...NONE, permissionMode: mode })).not.toThrow();
  });

  it.each(["yolo", "Default", "accept_edits", " plan"])("rejects the permission mode %j", (mode) => {
    invalid(() => provider.validateConfig({ ...NONE, permissionMode: mode }), "config.permission_mode");
  });

  it.each(["Bash", "Bash(git log:*)", "Edit", "mcp__github__*", "mcp__srv__tool", "Bash(npm run test, lint)", "WebFetch(domain:example.com)"])(
    "accepts the single tool rule %j",
    (rule) => {
      expect(() => provider.validateConfig({ ...NONE, allowedTools: [rule] })).not.toThrow();
    },
  );

  // The CLI splits a value at spaces and commas outside parentheses: one entry holding two
  // rules could sneak a tool past a tenant's allow-list.
  it.each(["Read,Bash", "Read Bash", "Bash(x) Edit", "Bash((nested))", "Bash(", INJECTION])(
    "rejects %j, which is not exactly one rule",
    (rule) => {
      invalid(() => provider.validateConfig({ ...NONE, allowedTools: ["Read", rule] }), "config.allowed_tools[1]");
      invalid(() => provider.validateConfig({ ...NONE, disallowedTools: [rule] }), "config.disallowed_tools[0]");
    },
  );
});

describe("ClaudeCodeProvider fork", () => {
  const paths = { workDir: "/w", home: "/h", stateDir: "/s" };
  it("starts a fork as a copy of the source conversation, under the session's own id", () => {
    const { args } = provider.command({ providerSessionId: "new-id", mode: "fork", forkFrom: "source-id", config: NONE, paths });
    expect(args).toContain("--resume=source-id");
    expect(args).toContain("--fork-session");
    expect(args).toContain("--session-id=new-id");
    expect(args.filter((arg) => arg.startsWith("--resume") || arg.startsWith("--session-id"))).toHaveLength(2);
  });

  it("refuses a fork without a source", () => {
    expect(() => provider.command({ providerSessionId: "new-id", mode: "fork", config: NONE, paths })).toThrow("a fork needs the conversation to fork from");
  });
});
