import type { AgentModel } from "../provider.js";
import { isObject } from "../transport/jsonrpc.js";

const MAX_CHOICES = 500;
const MAX_ID = 200;
const MAX_TEXT = 1000;

/** How one setting is changed: a session config option, or the older dedicated method. */
type Setter = { kind: "option"; configId: string } | { kind: "method" };

/** One setting the agent advertised: its choices and how it is set. */
interface Setting {
  setter: Setter;
  choices: AgentModel[];
  current: string;
}

/** A JSON-RPC request that changes a setting. */
export interface SettingRequest {
  method: string;
  params: Record<string, unknown>;
}

const str = (value: unknown, max: number): string => (typeof value === "string" ? value.slice(0, max) : "");

/**
 * The session settings an ACP agent advertised in its session/new (or load) answer: the
 * mode (its permission mode; `modes`, or a config option of category "mode") and the model
 * (the unstable `models` Gemini CLI sends, or a config option of category "model"). A
 * config option wins over the older field: it is what the spec keeps. Everything is the
 * agent's and checked; what it did not advertise cannot be set.
 */
export class SessionSettings {
  mode: Setting | undefined;
  model: Setting | undefined;

  constructor(session: Record<string, unknown>) {
    const modes = isObject(session.modes) ? session.modes : undefined;
    if (modes && Array.isArray(modes.availableModes)) {
      this.mode = { setter: { kind: "method" }, choices: choices(modes.availableModes, "id"), current: str(modes.currentModeId, MAX_ID) };
    }
    const models = isObject(session.models) ? session.models : undefined;
    if (models) {
      this.model = { setter: { kind: "method" }, choices: choices(Array.isArray(models.availableModels) ? models.availableModels : [], "modelId"), current: str(models.currentModelId, MAX_ID) };
    }
    this.readConfigOptions(session.configOptions);
  }

  /** The agent's config options (session/new, or a `config_option_update`): the mode and model selectors among them. */
  readConfigOptions(configOptions: unknown): void {
    if (!Array.isArray(configOptions)) return;
    for (const option of configOptions.slice(0, 100)) {
      if (!isObject(option) || option.type !== "select" || typeof option.id !== "string" || option.id.length === 0 || option.id.length > MAX_ID) continue;
      const category = typeof option.category === "string" ? option.category : option.id;
      if (category !== "mode" && category !== "model") continue;
      // Options flat, or in groups of options.
      const flat = Array.isArray(option.options) ? option.options.slice(0, MAX_CHOICES).flatMap((o) => (isObject(o) && Array.isArray(o.options) ? o.options.slice(0, MAX_CHOICES) : [o])) : [];
      const setting: Setting = { setter: { kind: "option", configId: option.id }, choices: choices(flat, "value"), current: str(option.currentValue, MAX_ID) };
      if (category === "mode") this.mode = setting;
      else this.model = setting;
    }
  }

  /** A `current_mode_update` from the agent. */
  modeChanged(modeId: unknown): void {
    if (this.mode && typeof modeId === "string") this.mode.current = modeId.slice(0, MAX_ID);
  }

  get canSetMode(): boolean {
    return this.mode !== undefined && this.mode.choices.length > 0;
  }

  get canSetModel(): boolean {
    return this.model !== undefined;
  }

  /** The models the agent offers. */
  get models(): AgentModel[] {
    return this.model?.choices.map((m) => ({ ...m })) ?? [];
  }

  /** The request that sets the mode; a string saying why it cannot be set. */
  modeRequest(sessionId: string, modeId: string): SettingRequest | string {
    const mode = this.mode;
    if (!mode || mode.choices.length === 0) return "the agent offers no session modes";
    if (!mode.choices.some((m) => m.id === modeId)) return `the agent offers no mode ${JSON.stringify(modeId.slice(0, 100))} (it offers ${mode.choices.map((m) => m.id).join(", ")})`;
    return mode.setter.kind === "option"
      ? { method: "session/set_config_option", params: { sessionId, configId: mode.setter.configId, value: modeId } }
      : { method: "session/set_mode", params: { sessionId, modeId } };
  }

  /** The request that sets the model (the agent judges the id: its list need not be complete); a string saying why it cannot be set. */
  modelRequest(sessionId: string, modelId: string): SettingRequest | string {
    const model = this.model;
    if (!model) return "the agent offers no choice of model";
    return model.setter.kind === "option"
      ? { method: "session/set_config_option", params: { sessionId, configId: model.setter.configId, value: modelId } }
      : { method: "session/set_model", params: { sessionId, modelId } };
  }

  /** Notes a change the agent took. */
  changed(what: "mode" | "model", value: string): void {
    const setting = what === "mode" ? this.mode : this.model;
    if (setting) setting.current = value;
  }
}

// Advertised choices ({id|modelId|value, name, description}), those without a usable id left out.
function choices(list: unknown[], idKey: string): AgentModel[] {
  const out: AgentModel[] = [];
  for (const item of list.slice(0, MAX_CHOICES)) {
    if (!isObject(item)) continue;
    const id = item[idKey];
    if (typeof id !== "string" || id.length === 0 || id.length > MAX_ID) continue;
    out.push({ id, displayName: str(item.name, MAX_TEXT), description: str(item.description, MAX_TEXT) });
  }
  return out;
}
