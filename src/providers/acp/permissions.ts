import type { AgentDecision, AgentRequest } from "../provider.js";
import { isObject } from "../transport/jsonrpc.js";
import { toolCallInput } from "./updates.js";

// Bounds on what one permission request may carry into the request hotplex logs.
const MAX_OPTIONS = 100;
const MAX_ID = 256;
const MAX_NAME = 200;
const MAX_COMMAND = 64 * 1024;
const OPTION_KINDS = new Set(["allow_once", "allow_always", "reject_once", "reject_always"]);

/** One of the choices the agent offers (PermissionOption). */
export interface PermissionOption {
  optionId: string;
  kind: string;
  name: string;
}

/** A `session/request_permission` as the session asks the client, and what answering it needs. */
export interface PermissionAsk {
  request: AgentRequest;
  toolCallId: string;
  /** The request's toolCall (a ToolCallUpdate), for the ToolUse of a call the agent names here first. */
  toolCall: Record<string, unknown>;
  options: PermissionOption[];
}

/** The JSON-RPC result that answers a permission request, and whether the call will not run. */
export interface PermissionAnswer {
  result: { outcome: { outcome: "selected"; optionId: string } | { outcome: "cancelled" } };
  /** Set when the call is refused: why (the agent may never report the call's end). */
  refused?: string;
}

/**
 * Reads a `session/request_permission` request's params (the agent's, unchecked): the
 * tool call, what it does (its command for a shell kind, the first path it names) and the
 * options. A string when the request cannot be asked (the caller answers it with an error).
 */
export function readPermissionRequest(
  requestId: string,
  params: unknown,
  sessionId: string,
  toolName: (toolCallId: string, call: Record<string, unknown>) => string,
): PermissionAsk | string {
  if (!isObject(params)) return "the params are not an object";
  if (params.sessionId !== sessionId) return "the request names another session";
  const toolCall = params.toolCall;
  if (!isObject(toolCall) || typeof toolCall.toolCallId !== "string" || toolCall.toolCallId.length === 0 || toolCall.toolCallId.length > MAX_ID) {
    return "toolCall.toolCallId is missing or invalid";
  }
  const options: PermissionOption[] = [];
  for (const option of Array.isArray(params.options) ? params.options.slice(0, MAX_OPTIONS) : []) {
    if (!isObject(option) || typeof option.optionId !== "string" || option.optionId.length === 0 || option.optionId.length > MAX_ID) continue;
    options.push({
      optionId: option.optionId,
      kind: typeof option.kind === "string" ? option.kind.slice(0, 50) : "",
      name: typeof option.name === "string" ? option.name.slice(0, MAX_NAME) : "",
    });
  }
  if (!options.some((o) => OPTION_KINDS.has(o.kind))) return "the request offers no option hotplex can choose";
  const toolCallId = toolCall.toolCallId;
  const input = toolCallInput(toolCall);
  const diffPath = Array.isArray(toolCall.content) ? toolCall.content.slice(0, MAX_OPTIONS).find((c) => isObject(c) && c.type === "diff" && typeof c.path === "string") : undefined;
  const path = input.locations[0] ?? (isObject(diffPath) && typeof diffPath.path === "string" ? diffPath.path.slice(0, 4096) : "");
  const request: AgentRequest = {
    requestId,
    kind: "permission",
    toolName: toolName(toolCallId, toolCall),
    toolUseId: toolCallId,
    inputJson: JSON.stringify(input),
    description: input.title,
    path,
    command: input.kind === "execute" ? commandOf(input.rawInput, input.title) : "",
    suggestionsJson: options.map((o) => JSON.stringify(o)),
    questions: [],
  };
  return { request, toolCallId, toolCall, options };
}

/**
 * The answer to a permission request for the host's decision. Allow picks the agent's
 * "allow once" option even when the client allows for the session: the session remembers
 * that itself, for identical calls, while an agent's "always" is the agent's own and may
 * be wider (Gemini CLI allows every command with the same first word, and every later
 * edit once an edit was allowed always). Deny picks "reject once" (the client may allow
 * the next one). ACP cannot change a call's input: an allow with another input is refused.
 */
export function permissionAnswer(ask: PermissionAsk, decision: AgentDecision): PermissionAnswer {
  const pick = (...kinds: string[]) => {
    for (const kind of kinds) {
      const option = ask.options.find((o) => o.kind === kind);
      if (option) return option.optionId;
    }
    return undefined;
  };
  const refuse = (why: string): PermissionAnswer => {
    const optionId = pick("reject_once", "reject_always");
    return { result: { outcome: optionId ? { outcome: "selected", optionId } : { outcome: "cancelled" } }, refused: why };
  };
  switch (decision.behavior) {
    case "allow": {
      if (decision.updatedInputJson && decision.updatedInputJson !== ask.request.inputJson) return refuse("refused: the agent cannot run a call with an edited input");
      const optionId = pick("allow_once", "allow_always");
      if (!optionId) return refuse("refused: the agent offered no option that allows the call");
      return { result: { outcome: { outcome: "selected", optionId } } };
    }
    case "deny":
      return refuse(`denied: ${decision.message.slice(0, 4096)}`);
    default:
      return refuse("refused: a permission request takes no answers to questions");
  }
}

/** The answer to every permission request still open when the turn is cancelled (the spec's MUST). */
export const CANCELLED: PermissionAnswer["result"] = { outcome: { outcome: "cancelled" } };

// A shell call's command: its raw input's `command` (a string, or an argv joined by
// spaces), else the call's title (Gemini CLI sends no raw input; its title is the command).
function commandOf(rawInput: unknown, title: string): string {
  if (isObject(rawInput)) {
    const command = rawInput.command ?? rawInput.cmd;
    if (typeof command === "string") return command.slice(0, MAX_COMMAND);
    if (Array.isArray(command) && command.every((part) => typeof part === "string")) return command.join(" ").slice(0, MAX_COMMAND);
  }
  return title;
}
