// Claude Code's control protocol lines (see the reference, §2, §7 and §10): either side
// may send a `control_request`, and the receiver answers it with exactly one
// `control_response` carrying the same request_id; `control_cancel_request` withdraws a
// request the CLI sent.

import type { ParsedOutput } from "../provider.js";
import type { ControlReply } from "../transport/stdio-ndjson.js";
import { agentRequestOf, toolCheckOf } from "./agent-requests.js";
import { isObject, str } from "./content.js";
import type { JsonObject } from "./content.js";

/** The CLI's answer to a request the host sent (an interrupt, a mode change...), with its payload. */
export function controlResponse(msg: JsonObject): ParsedOutput[] | undefined {
  const response = msg.response;
  if (!isObject(response)) return undefined;
  // The CLI answers a request without request_id with none either: "" matches no request.
  const requestId = str(response.request_id) ?? "";
  const reply: ControlReply =
    response.subtype === "error"
      ? { type: "control_response", requestId, error: str(response.error) ?? "control request failed" }
      : { type: "control_response", requestId, payload: response.response };
  return [reply];
}

/**
 * A request from the CLI. `can_use_tool` (a permission prompt, AskUserQuestion among
 * them) becomes an agent_request the session puts to its client; anything else, or a
 * can_use_tool hotplex cannot read, stays a control_request, which the session refuses.
 */
export function controlRequest(msg: JsonObject): ParsedOutput[] | undefined {
  const requestId = str(msg.request_id);
  // Without an id the request cannot be answered: keep it as raw output.
  if (requestId === undefined || requestId === "") return undefined;
  const request = isObject(msg.request) ? msg.request : {};
  const subtype = str(request.subtype) ?? "";
  if (subtype === "can_use_tool") {
    const agentRequest = agentRequestOf(requestId, request);
    if (agentRequest) return [{ type: "agent_request", request: agentRequest }];
  }
  if (subtype === "hook_callback") {
    const check = toolCheckOf(requestId, request);
    if (check) return [{ type: "agent_request", request: check }];
  }
  return [{ type: "control_request", requestId, subtype }];
}

/** The CLI gave up waiting for an answer (an interrupt while a prompt was pending). */
export function controlCancelRequest(msg: JsonObject): ParsedOutput[] {
  const requestId = str(msg.request_id);
  return requestId ? [{ type: "agent_request_cancelled", requestId }] : [];
}
