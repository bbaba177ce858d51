import type { AgentModel } from "../provider.js";
import { isObject } from "../transport/jsonrpc.js";

// `model/list` pages: bounded, whatever the agent answers.
const MAX_PAGES = 20;
const MAX_MODELS = 1000;

const str = (value: unknown, max: number): string => (typeof value === "string" ? value.slice(0, max) : "");

/** Every model `model/list` offers (hidden ones left out), page by page. */
export async function listCodexModels(request: (params: unknown) => Promise<unknown>): Promise<AgentModel[]> {
  const models: AgentModel[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_PAGES && models.length < MAX_MODELS; page++) {
    const result = await request(cursor === null ? {} : { cursor });
    const data = isObject(result) && Array.isArray(result.data) ? result.data : [];
    for (const entry of data.slice(0, MAX_MODELS - models.length)) {
      if (!isObject(entry) || entry.hidden === true) continue;
      // `model` is the name turn/start takes; `id` names the catalog entry (the same today).
      const id = str(entry.model, 256) || str(entry.id, 256);
      if (id) models.push({ id, displayName: str(entry.displayName, 256) || id, description: str(entry.description, 4096) });
    }
    const next = isObject(result) ? result.nextCursor : null;
    if (typeof next !== "string" || next === "" || next === cursor) break;
    cursor = next.slice(0, 4096);
  }
  return models;
}
