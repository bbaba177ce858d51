import { describe, expect, it } from "vitest";
import { SessionSettings } from "./session-settings.js";

describe("ACP session settings", () => {
  it("reads modes and models (Gemini CLI's fields) and sets them with their methods", () => {
    const settings = new SessionSettings({
      modes: { availableModes: [{ id: "default", name: "Default" }, { id: "yolo", name: "YOLO", description: "never asks" }, { name: "no id" }, "junk"], currentModeId: "default" },
      models: { availableModels: [{ modelId: "auto", name: "Auto" }, { modelId: 7 }], currentModelId: "auto" },
    });
    expect(settings.canSetMode && settings.canSetModel).toBe(true);
    expect(settings.models).toEqual([{ id: "auto", displayName: "Auto", description: "" }]);
    expect(settings.modeRequest("s", "yolo")).toEqual({ method: "session/set_mode", params: { sessionId: "s", modeId: "yolo" } });
    expect(settings.modeRequest("s", "plan")).toMatch(/offers no mode "plan" \(it offers default, yolo\)/);
    // The agent judges a model id: its list need not name every model it takes.
    expect(settings.modelRequest("s", "other")).toEqual({ method: "session/set_model", params: { sessionId: "s", modelId: "other" } });
  });

  it("prefers config options (flat or grouped) of category mode and model, and follows the agent's updates", () => {
    const settings = new SessionSettings({
      modes: { availableModes: [{ id: "old", name: "Old" }], currentModeId: "old" },
      configOptions: [
        { id: "approval", name: "Approval", category: "mode", type: "select", currentValue: "ask", options: [{ value: "ask", name: "Ask" }, { value: "auto", name: "Auto" }] },
        { id: "m", name: "Model", category: "model", type: "select", currentValue: "a", options: [{ group: "g", name: "G", options: [{ value: "a", name: "A" }, { value: "b", name: "B", description: "bee" }] }] },
        { id: "effort", name: "Effort", category: "thought_level", type: "select", currentValue: "low", options: [] },
        { id: "fast", name: "Fast", type: "boolean", currentValue: true },
      ],
    });
    expect(settings.modeRequest("s", "auto")).toEqual({ method: "session/set_config_option", params: { sessionId: "s", configId: "approval", value: "auto" } });
    expect(settings.modeRequest("s", "old")).toMatch(/offers no mode "old"/);
    expect(settings.modelRequest("s", "b")).toEqual({ method: "session/set_config_option", params: { sessionId: "s", configId: "m", value: "b" } });
    expect(settings.models.map((m) => m.id)).toEqual(["a", "b"]);
    settings.readConfigOptions([{ id: "m", name: "Model", category: "model", type: "select", currentValue: "c", options: [{ value: "c", name: "C" }] }]);
    expect(settings.models.map((m) => m.id)).toEqual(["c"]);
  });

  it("offers nothing the agent did not advertise, and survives hostile shapes", () => {
    const none = new SessionSettings({ modes: "x", models: null, configOptions: { id: "model" } });
    expect(none.canSetMode || none.canSetModel).toBe(false);
    expect(none.modeRequest("s", "a")).toMatch(/no session modes/);
    expect(none.modelRequest("s", "a")).toMatch(/no choice of model/);
    expect(none.models).toEqual([]);
    const huge = new SessionSettings({ models: { availableModels: Array.from({ length: 10_000 }, (_, i) => ({ modelId: `m${i}`, name: "n".repeat(5000) })) } });
    expect(huge.models).toHaveLength(500);
    expect(huge.models[0]!.displayName).toHaveLength(1000);
  });
});
