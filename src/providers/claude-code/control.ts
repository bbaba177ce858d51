// Claude Code's control protocol lines (see the reference, §2 and §7): either side may
// send a `control_request`, and the receiver answers it with exactly one
// `control_response` carrying the same request_id.

import type { ParsedOutput } from "../provider.js";
import { isObject, str } from "./content.js";
import type { JsonObject } from "./content.js";

/** The CLI's answer to a request the host sent (an interrupt, a mode change...). */
export function controlResponse(msg: JsonObject): ParsedOutput[] | undefined {
  const response = msg.response;
  if (!isObject(response)) return undefined;
  // The CLI answers a request without request_id with none either: "" matches no request.
  const requestId = str(response.request_id) ?? "";
  if (response.subtype === "error") {
    return [{ type: "control_response", requestId, error: str(response.error) ?? "control request failed" }];
  }
  return [{ type: "control_response", requestId }];
}

/** A question from the CLI, e.g. `can_use_tool`; the host must answer it. */
export function controlRequest(msg: JsonObject): ParsedOutput[] | undefined {
  const requestId = str(msg.request_id);
  // Without an id the request cannot be answered: keep it as raw output.
  if (requestId === undefined || requestId === "") return undefined;
  const request = isObject(msg.request) ? msg.request : {};
  return [{ type: "control_request", requestId, subtype: str(request.subtype) ?? "" }];
}
