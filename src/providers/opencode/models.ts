import type { AgentModel } from "../provider.js";
import { MODEL } from "./config.js";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const str = (value: unknown, max: number): string => (typeof value === "string" ? value.slice(0, max) : "");

const MAX_MODELS = 2000;

/**
 * The models of `GET /config/providers` (`{providers: [{id, name, models: {id: {id,
 * name, limit}}}], default}`), as "provider/model" ids the prompts take. Entries that
 * are no such id are left out; the list is bounded.
 */
export function modelsOf(body: unknown): AgentModel[] {
  const providers = isObject(body) && Array.isArray(body.providers) ? body.providers : [];
  const models: AgentModel[] = [];
  for (const provider of providers) {
    if (!isObject(provider) || !isObject(provider.models)) continue;
    const providerID = str(provider.id, 64);
    const providerName = str(provider.name, 200) || providerID;
    for (const [key, model] of Object.entries(provider.models)) {
      if (models.length >= MAX_MODELS) return models;
      const info = isObject(model) ? model : {};
      const id = `${providerID}/${str(info.id, 200) || key.slice(0, 200)}`;
      if (!MODEL.test(id)) continue;
      const limit = isObject(info.limit) ? info.limit : {};
      const context = typeof limit.context === "number" && Number.isFinite(limit.context) && limit.context > 0 ? Math.floor(limit.context) : 0;
      models.push({
        id,
        displayName: str(info.name, 200) || id,
        description: context > 0 ? `${providerName}, ${context} tokens of context` : providerName,
      });
    }
  }
  return models;
}
