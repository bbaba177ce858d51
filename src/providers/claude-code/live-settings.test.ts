import { describe, expect, it } from "vitest";
import { HotplexError } from "../../errors.js";
import { modelsOf, settingsRequests } from "./live-settings.js";

describe("settingsRequests", () => {
  it("sets the permission mode (which the CLI may refuse), then the model; unset settings send nothing", () => {
    expect(settingsRequests({ model: "claude-haiku-4-5", permissionMode: "acceptEdits" })).toEqual([
      { subtype: "set_permission_mode", mode: "acceptEdits" },
      { subtype: "set_model", model: "claude-haiku-4-5" },
    ]);
    expect(settingsRequests({})).toEqual([]);
    expect(settingsRequests({ model: "", permissionMode: "" })).toEqual([
      { subtype: "set_permission_mode", mode: "default" },
      { subtype: "set_model", model: "default" },
    ]);
  });

  it("refuses what the CLI would take silently: an unknown mode, an overlong model name", () => {
    expect(() => settingsRequests({ permissionMode: "bogusMode" })).toThrow(HotplexError);
    expect(() => settingsRequests({ model: "m".repeat(257) })).toThrow(HotplexError);
    // Nothing is sent when one of them is wrong.
    expect(() => settingsRequests({ model: "claude-haiku-4-5", permissionMode: "bogusMode" })).toThrow(HotplexError);
  });
});

describe("modelsOf (the initialize reply)", () => {
  it("reads value, displayName and description, skipping entries without a value", () => {
    const payload = {
      models: [
        { value: "default", resolvedModel: "claude-opus-4-8[1m]", displayName: "Default (recommended)", description: "Use the default model", supportsEffort: true },
        { value: "sonnet", displayName: "Sonnet" },
        { displayName: "no value" },
        "junk",
        { value: 42 },
      ],
    };
    expect(modelsOf(payload)).toEqual([
      { id: "default", displayName: "Default (recommended)", description: "Use the default model" },
      { id: "sonnet", displayName: "Sonnet", description: "" },
    ]);
  });

  it("is empty for a reply without models, and bounded for a hostile one", () => {
    for (const payload of [undefined, null, 42, {}, { models: "x" }]) expect(modelsOf(payload)).toEqual([]);
    const many = { models: Array.from({ length: 1000 }, (_, i) => ({ value: `m${i}`, description: "d".repeat(10_000) })) };
    const out = modelsOf(many);
    expect(out).toHaveLength(100);
    expect(out[0]!.description.length).toBe(1024);
  });
});
