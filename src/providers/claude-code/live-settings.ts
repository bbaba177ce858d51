// Settings a live Claude Code process takes between turns (reference §7): `set_model`
// and `set_permission_mode` control requests, and the model list of the `initialize`
// reply.

import { HotplexError } from "../../errors.js";
import type { AgentModel, LiveSettings } from "../provider.js";
import type { ControlRequestBody } from "../transport/stdio-ndjson.js";
import { isObject, str } from "./content.js";
import { PERMISSION_MODES } from "./permission-modes.js";

const MAX_MODEL_NAME = 256;
const MAX_MODELS = 100;
const MAX_TEXT = 1024;

/**
 * The control requests for `settings`, all checked before any is sent. The CLI validates
 * neither value (an unknown mode is taken and then acts as "default"), so hotplex does.
 * The mode goes first: it is the one the CLI may refuse (bypassPermissions without the
 * launch flag), and then the model has not changed either.
 */
export function settingsRequests(settings: LiveSettings): ControlRequestBody[] {
  const out: ControlRequestBody[] = [];
  if (settings.permissionMode !== undefined) {
    // "" is the agent's default mode.
    const mode = settings.permissionMode || "default";
    if (!PERMISSION_MODES.includes(mode)) {
      throw new HotplexError("invalid_argument", `permission mode "${mode.slice(0, 100)}" is not one of ${PERMISSION_MODES.join(", ")}`);
    }
    out.push({ subtype: "set_permission_mode", mode });
  }
  if (settings.model !== undefined) {
    if (settings.model.length > MAX_MODEL_NAME) {
      throw new HotplexError("invalid_argument", `model name longer than ${MAX_MODEL_NAME} characters`);
    }
    // "" goes back to the default model, as the CLI's "default" does.
    out.push({ subtype: "set_model", model: settings.model || "default" });
  }
  return out;
}

/** The models of an `initialize` reply: `models[]` of `{value, displayName, description}`. */
export function modelsOf(payload: unknown): AgentModel[] {
  const models = isObject(payload) && Array.isArray(payload.models) ? payload.models : [];
  const out: AgentModel[] = [];
  for (const m of models.slice(0, MAX_MODELS)) {
    const id = isObject(m) ? str(m.value) : undefined;
    if (!isObject(m) || !id || id.length > MAX_MODEL_NAME) continue;
    out.push({
      id,
      displayName: (str(m.displayName) ?? id).slice(0, MAX_TEXT),
      description: (str(m.description) ?? "").slice(0, MAX_TEXT),
    });
  }
  return out;
}
