import { describe, expect, it } from "vitest";
import type { LaunchConfig } from "../provider.js";
import { configContent } from "./config.js";
import { nativeOpenCode } from "./executable.js";
import { OpenCodeProvider } from "./provider.js";

const base: LaunchConfig = { model: "", permissionMode: "", allowedTools: [], disallowedTools: [], systemPrompt: "", appendSystemPrompt: "", approvals: false, gateToolCalls: false };

describe("OpenCode provider", () => {
  const provider = new OpenCodeProvider();

  it("accepts provider/model and an appended system prompt, refuses what OpenCode cannot take", () => {
    expect(() => provider.validateConfig({ ...base, model: "anthropic/claude-sonnet-4-5", appendSystemPrompt: "be brief" })).not.toThrow();
    for (const [config, field] of [
      [{ model: "claude-sonnet-4-5" }, "config.model"],
      [{ model: "anthropic/" }, "config.model"],
      [{ model: "a/b c" }, "config.model"],
      [{ permissionMode: "plan" }, "config.permission_mode"],
      [{ allowedTools: ["bash"] }, "config.allowed_tools"],
      [{ disallowedTools: ["bash"] }, "config.disallowed_tools"],
      [{ systemPrompt: "you are" }, "config.system_prompt"],
    ] as const) {
      expect(() => provider.validateConfig({ ...base, ...config })).toThrow(expect.objectContaining({ code: "invalid_argument", message: expect.stringMatching(new RegExp(`^${field.replace(".", "\\.")} .*provider opencode`)) }));
    }
  });

  it("classifies a missing conversation as resume_missing", () => {
    expect(provider.classifyStartupFailure("", "opencode session not found: ses_x")).toBe("resume_missing");
    expect(provider.classifyStartupFailure("", "the opencode server did not create a session")).toBeUndefined();
    expect(provider.classifyStartupFailure("", undefined)).toBeUndefined();
  });

  it("runs the platform binary of the npm package, not its stub", () => {
    expect(nativeOpenCode()).toMatch(/opencode-[a-z]+-[a-z0-9]+(-baseline)?(-musl)?\/bin\/opencode$/);
    expect(nativeOpenCode("/no/such/opencode")).toBe("/no/such/opencode");
  });

  it("reports the version without touching the real HOME", async () => {
    expect(await provider.version()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("OpenCode config", () => {
  it("points OpenCode's anthropic provider at the operator's API, everything else off", () => {
    const config = JSON.parse(configContent({ ANTHROPIC_BASE_URL: "http://127.0.0.1:9/", ANTHROPIC_API_KEY: "k" }, {}));
    expect(config.provider.anthropic.options).toEqual({ baseURL: "http://127.0.0.1:9/v1", apiKey: "k" });
    expect(config).toMatchObject({ autoupdate: false, share: "disabled", lsp: false, formatter: false, plugin: [], snapshot: false, enabled_providers: ["anthropic"] });
    expect(config.permission).toMatchObject({ bash: "allow", edit: "allow", question: "deny", external_directory: "deny" });
    const file = JSON.parse(configContent({ ANTHROPIC_BASE_URL: "http://a/v1" }, { anthropic: { baseURL: "https://b/v1" }, model: "anthropic/x" }));
    expect(file.provider.anthropic.options).toEqual({ baseURL: "https://b/v1" });
    expect(file.model).toBe("anthropic/x");
    expect(() => configContent({ ANTHROPIC_BASE_URL: "file:///etc" }, {})).toThrow(/not http/);
  });
});
