import type { SessionConfig } from "../../gen/hotplex/v1/session_pb.js";
import { HotplexError } from "../errors.js";

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_PROMPT_BYTES = 1024 * 1024;
const MAX_REQUEST_ID_CHARS = 128;
const PERMISSION_MODES = new Set(["default", "acceptEdits", "plan", "dontAsk", "bypassPermissions"]);
// Model names and tool rules end up as single argv entries (never a shell string), so
// the check is about clear errors, not injection: printable, one line, bounded.
const ARG_TEXT = /^[^\u0000-\u001f\u007f]{1,512}$/;

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

export function validatePrompt(prompt: string): void {
  if (prompt.trim().length === 0) throw invalid("prompt is empty");
  if (Buffer.byteLength(prompt, "utf8") > MAX_PROMPT_BYTES) {
    throw invalid(`prompt is larger than ${MAX_PROMPT_BYTES} bytes`);
  }
}

export function validateRequestId(requestId: string): void {
  if (requestId.length > MAX_REQUEST_ID_CHARS) {
    throw invalid(`request_id is longer than ${MAX_REQUEST_ID_CHARS} characters`);
  }
}

export function validateConfig(config: SessionConfig): void {
  if (config.permissionMode && !PERMISSION_MODES.has(config.permissionMode)) {
    throw invalid(
      `config.permission_mode "${config.permissionMode}" is not one of ${[...PERMISSION_MODES].join(", ")}`,
    );
  }
  if (config.model && !ARG_TEXT.test(config.model)) throw invalid("config.model must be one printable line of at most 512 characters");
  for (const [field, tools] of [
    ["allowed_tools", config.allowedTools],
    ["disallowed_tools", config.disallowedTools],
  ] as const) {
    tools.forEach((tool, index) => {
      if (!ARG_TEXT.test(tool)) throw invalid(`config.${field}[${index}] must be one printable line of at most 512 characters`);
    });
  }
  for (const [field, text] of [
    ["system_prompt", config.systemPrompt],
    ["append_system_prompt", config.appendSystemPrompt],
  ] as const) {
    if (Buffer.byteLength(text, "utf8") > MAX_PROMPT_BYTES) throw invalid(`config.${field} is larger than ${MAX_PROMPT_BYTES} bytes`);
    if (text.includes("\u0000")) throw invalid(`config.${field} contains a NUL character`);
  }
}
