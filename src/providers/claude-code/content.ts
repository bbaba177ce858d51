// Defensive readers for Claude Code's JSON lines. The CLI adds fields between releases
// and a bad line must never crash the session, so every field is checked before use:
// a reader returns undefined (or a neutral value) instead of trusting the shape.

/** A parsed JSON object (not null, not an array). */
export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The value if it is a string, else undefined. */
export function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** The value if it is a finite number, else undefined. */
export function num(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** `parent_tool_use_id` of a line: the sub-agent's tool call, "" for the main agent (null). */
export function parentToolUseId(line: JsonObject): string {
  return str(line.parent_tool_use_id) ?? "";
}

/**
 * The text of a tool_result's `content`, which the CLI gives either as a string or as an
 * array of content blocks: text blocks are joined with newlines, other blocks become a
 * short placeholder ("[image]", "[document]") so the client sees something was there.
 */
export function toolResultText(content: unknown): string {
  if (typeof content === "string") return content;
  if (content === undefined || content === null) return "";
  if (!Array.isArray(content)) return JSON.stringify(content);
  const parts: string[] = [];
  for (const block of content) {
    if (typeof block === "string") {
      parts.push(block);
    } else if (isObject(block)) {
      const type = str(block.type) ?? "unknown";
      const text = str(block.text);
      parts.push(type === "text" && text !== undefined ? text : `[${type}]`);
    }
  }
  return parts.join("\n");
}

/** `structured_json` of a ToolResult: the line's `tool_use_result` as JSON, "" when absent. */
export function structuredJson(value: unknown): string {
  // JSON.parse output has no cycles or bigints, so stringify cannot throw here.
  return value === undefined || value === null ? "" : JSON.stringify(value);
}
