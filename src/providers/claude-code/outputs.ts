// Builders of the parser's output items.

import { create } from "@bufbuild/protobuf";
import { ErrorEventSchema, RawOutputSchema, TextDeltaSchema, ThinkingDeltaSchema } from "../../events/event.js";
import type { EventPayload } from "../../events/event.js";
import type { ParsedOutput } from "../provider.js";
import { num, str } from "./content.js";
import type { JsonObject } from "./content.js";

export function event(payload: EventPayload): ParsedOutput {
  return { type: "event", payload };
}

/** A line kept as it is because it is not JSON, or not a kind the parser knows. */
export function raw(line: string, reason: "not_json" | "unknown_type"): ParsedOutput {
  return event({ case: "raw", value: create(RawOutputSchema, { line, reason }) });
}

/** A TextDelta, or a ThinkingDelta when `kind` is "thinking". */
export function textEvent(kind: string, text: string, parentToolUseId: string): ParsedOutput {
  // Built as literals, not with create(): deltas are most of a turn's events, and the
  // reflective create() costs more than the rest of building one (the fields are all set).
  return kind === "thinking"
    ? event({ case: "thinkingDelta", value: { $typeName: ThinkingDeltaSchema.typeName, text, parentToolUseId } })
    : event({ case: "textDelta", value: { $typeName: TextDeltaSchema.typeName, text, parentToolUseId } });
}

/** The ErrorEvent of a `system/api_retry` line: the model API failed and will be retried. */
export function apiRetryError(line: JsonObject): ParsedOutput {
  return event({ case: "error", value: create(ErrorEventSchema, { code: "api_retry", message: describeRetry(line) }) });
}

// "model API error 529 (overloaded); retry 1 of 1 in 599 ms"
function describeRetry(msg: JsonObject): string {
  const status = num(msg.error_status);
  const error = str(msg.error);
  const attempt = num(msg.attempt);
  const max = num(msg.max_retries);
  const delay = num(msg.retry_delay_ms);
  let text = "model API error";
  if (status !== undefined) text += ` ${status}`;
  if (error !== undefined && error !== "") text += ` (${error})`;
  if (attempt !== undefined || delay !== undefined) text += "; retry";
  if (attempt !== undefined) text += max !== undefined ? ` ${attempt} of ${max}` : ` ${attempt}`;
  if (delay !== undefined) text += ` in ${Math.round(delay)} ms`;
  return text;
}
