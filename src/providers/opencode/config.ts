import { readFileSync } from "node:fs";
import { LaunchError } from "../../process/launcher.js";

/** The model when a session names none (one the bundled model catalog knows). */
export const DEFAULT_MODEL = "anthropic/claude-sonnet-4-5";

/** "provider/model", e.g. "anthropic/claude-sonnet-4-5". */
export const MODEL = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\/([A-Za-z0-9][A-Za-z0-9._:@/-]{0,199})$/;

/**
 * The operator's settings for the model API, from a JSON file of theirs:
 * `{"anthropic": {"baseURL": "https://…/v1", "apiKey": "…"}, "model": "anthropic/…"}`.
 * Each value present wins over the daemon's environment.
 */
export interface OperatorSettings {
  anthropic?: { baseURL?: string; apiKey?: string };
  model?: string;
}

/** Reads the operator's settings file (a config error when it is unreadable or malformed). */
export function readOperatorSettings(file: string): OperatorSettings {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new LaunchError(`cannot read the opencode settings file ${file}: ${(error as Error).message}`);
  }
  const bad = (why: string) => new LaunchError(`the opencode settings file ${file} is malformed: ${why}`);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw bad("not a JSON object");
  const { anthropic, model } = parsed as Record<string, unknown>;
  const settings: OperatorSettings = {};
  if (model !== undefined) {
    if (typeof model !== "string" || !MODEL.test(model)) throw bad('"model" is not "provider/model"');
    settings.model = model;
  }
  if (anthropic !== undefined) {
    if (typeof anthropic !== "object" || anthropic === null) throw bad('"anthropic" is not an object');
    const { baseURL, apiKey } = anthropic as Record<string, unknown>;
    if (baseURL !== undefined && typeof baseURL !== "string") throw bad('"anthropic.baseURL" is not a string');
    if (apiKey !== undefined && typeof apiKey !== "string") throw bad('"anthropic.apiKey" is not a string');
    settings.anthropic = { baseURL: baseURL as string | undefined, apiKey: apiKey as string | undefined };
  }
  return settings;
}

/**
 * The OpenCode config every session on the shared server gets (OPENCODE_CONFIG_CONTENT):
 * the model API from the operator (the session's allow-listed ANTHROPIC_BASE_URL and
 * ANTHROPIC_API_KEY, or the settings file) as the only model provider, nothing else
 * online (updates, sharing, LSP downloads, formatters, plugins, snapshots off, and not
 * OpenCode's own hosted models) and tools allowed without asking. A session with
 * approvals adds rules of its own that ask (requests.ts). The question tool (it waits
 * for a user) is off unless such a session allows it, and so are paths outside the
 * session's work dir as far as OpenCode's own tools check them.
 */
export function configContent(env: Record<string, string>, operator: OperatorSettings): string {
  const model = operator.model ?? DEFAULT_MODEL;
  const options: Record<string, string> = {};
  const baseURL = operator.anthropic?.baseURL ?? messagesBase(env.ANTHROPIC_BASE_URL);
  if (baseURL) {
    let url: URL;
    try {
      url = new URL(baseURL);
    } catch {
      throw new LaunchError(`the Anthropic base URL for opencode is not a URL: ${JSON.stringify(baseURL.slice(0, 200))}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new LaunchError("the Anthropic base URL for opencode is not http(s)");
    options.baseURL = baseURL;
  }
  const apiKey = operator.anthropic?.apiKey ?? env.ANTHROPIC_API_KEY;
  if (apiKey) options.apiKey = apiKey;
  return JSON.stringify({
    $schema: "https://opencode.ai/config.json",
    model,
    small_model: model,
    autoupdate: false,
    share: "disabled",
    lsp: false,
    formatter: false,
    plugin: [],
    snapshot: false,
    enabled_providers: ["anthropic"],
    permission: {
      read: "allow",
      edit: "allow",
      glob: "allow",
      grep: "allow",
      list: "allow",
      bash: "allow",
      task: "allow",
      todowrite: "allow",
      webfetch: "allow",
      websearch: "allow",
      lsp: "allow",
      skill: "allow",
      doom_loop: "allow",
      question: "deny",
      external_directory: "deny",
    },
    provider: { anthropic: { options } },
  });
}

// ANTHROPIC_BASE_URL names the API root (Claude Code's convention); OpenCode's
// Anthropic provider wants the versioned base.
function messagesBase(base: string | undefined): string | undefined {
  if (!base) return undefined;
  const trimmed = base.replace(/\/+$/, "");
  return trimmed.endsWith("/v1") ? trimmed : `${trimmed}/v1`;
}
