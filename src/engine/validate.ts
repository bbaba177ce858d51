import { ApprovalMode, type SessionConfig } from "../../gen/hotplex/v1/session_pb.js";
import { HotplexError } from "../errors.js";
import { MAX_PROMPT_BYTES } from "./config.js";

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_REQUEST_ID_CHARS = 128;
// Model names: aliases ("sonnet"), full names with a context suffix ("<family>-4-8[1m]"), cloud ids
// ("us.<vendor>.<model>-v1:0", ARNs with "/"). Never a leading "-".
const MODEL = /^[A-Za-z0-9][A-Za-z0-9._:/@[\]+-]{0,255}$/;
// Tool rules: one printable line, never a leading "-" (the provider checks its own syntax).
const TOOL_RULE = /^[^\u0000-\u001f\u007f-][^\u0000-\u001f\u007f]{0,511}$/;
const MAX_TOOL_RULES = 256;

function invalid(message: string): HotplexError {
  return new HotplexError("invalid_argument", message);
}

/** Validates a caller's session id: 1-128 chars of [A-Za-z0-9._:-], not "." or "..". */
export function validateSessionId(sessionId: string): void {
  if (!SESSION_ID.test(sessionId) || sessionId === "." || sessionId === "..") {
    throw invalid(
      `session_id ${JSON.stringify(sessionId.slice(0, 140))} is invalid: use 1 to 128 characters of [A-Za-z0-9._:-] (not "." or "..")`,
    );
  }
}

export function validatePrompt(prompt: string, maxBytes = MAX_PROMPT_BYTES): void {
  if (prompt.trim().length === 0) throw invalid("prompt is empty");
  if (Buffer.byteLength(prompt, "utf8") > maxBytes) throw invalid(`prompt is larger than ${maxBytes} bytes`);
}

export function validateRequestId(requestId: string, field = "request_id"): void {
  if (requestId.length > MAX_REQUEST_ID_CHARS) {
    throw invalid(`${field} is longer than ${MAX_REQUEST_ID_CHARS} characters`);
  }
}

/**
 * Checks that a session config is well formed, whatever the provider: bounded sizes and
 * counts, no control characters, no value that starts like a command-line flag. (The
 * provider checks its own vocabulary next, and the tenant's policy what is allowed.)
 */
export function validateConfig(config: SessionConfig): void {
  if (config.model && !MODEL.test(config.model)) {
    throw invalid("config.model must be 1 to 256 characters of [A-Za-z0-9._:/@[]+-], starting with a letter or digit");
  }
  for (const [field, tools] of [
    ["allowed_tools", config.allowedTools],
    ["disallowed_tools", config.disallowedTools],
  ] as const) {
    if (tools.length > MAX_TOOL_RULES) throw invalid(`config.${field} has ${tools.length} entries, more than ${MAX_TOOL_RULES}`);
    tools.forEach((tool, index) => {
      if (!TOOL_RULE.test(tool)) {
        throw invalid(`config.${field}[${index}] must be one printable line of at most 512 characters, not starting with "-"`);
      }
    });
  }
  for (const [field, text] of [
    ["system_prompt", config.systemPrompt],
    ["append_system_prompt", config.appendSystemPrompt],
  ] as const) {
    if (Buffer.byteLength(text, "utf8") > MAX_PROMPT_BYTES) throw invalid(`config.${field} is larger than ${MAX_PROMPT_BYTES} bytes`);
    if (text.includes("\u0000")) throw invalid(`config.${field} contains a NUL character`);
  }
  if (!(config.approvalMode in ApprovalMode)) throw invalid(`config.approval_mode ${config.approvalMode} is not an ApprovalMode (0, 1 or 2)`);
}

const MAX_TITLE_CHARS = 256;
// Control characters (C0, DEL, C1) and line/paragraph separators: a title is one line.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** A session title: at most 256 characters, one line of printable text. */
export function validateTitle(title: string): void {
  if ([...title].length > MAX_TITLE_CHARS) throw invalid(`title is longer than ${MAX_TITLE_CHARS} characters`);
  if (CONTROL.test(title)) throw invalid("title contains a control character");
}

/** A JSON object of at most `maxBytes` (a changed tool input), else INVALID_ARGUMENT naming `field`. */
export function validateJsonObject(json: string, field: string, maxBytes: number): void {
  if (Buffer.byteLength(json, "utf8") > maxBytes) throw invalid(`${field} is larger than ${maxBytes} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw invalid(`${field} is not JSON: ${(error as Error).message.slice(0, 200)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(`${field} must be a JSON object`);
}
