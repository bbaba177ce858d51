// Claude Code's permission prompts (`--permission-prompt-tool=stdio`, reference §10): the
// CLI asks `can_use_tool` before each tool call its settings do not allow, AskUserQuestion
// included, and waits for exactly one control_response. This file reads those requests
// into AgentRequests and writes the answers.

import type { AgentDecision, AgentQuestion, AgentRequest } from "../provider.js";
import { isObject, str } from "./content.js";
import type { JsonObject } from "./content.js";

/** The tool through which the model asks the user questions (a can_use_tool like any other). */
export const ASK_USER_QUESTION = "AskUserQuestion";

// Bounds on what one request may carry to a client. The line itself is bounded by the
// daemon's line limit; these keep a request's shape sane for clients rendering it.
const MAX_QUESTIONS = 16;
const MAX_OPTIONS = 32;
const MAX_SUGGESTIONS = 32;
const MAX_TEXT = 64 * 1024;

const bounded = (value: unknown): string => (str(value) ?? "").slice(0, MAX_TEXT);

/**
 * The AgentRequest of a `can_use_tool` request, or undefined when the request is not one
 * hotplex can put to a client (no tool name, an input that is not an object, a question
 * without questions): the session then refuses it, so the agent never waits for ever.
 */
export function agentRequestOf(requestId: string, request: JsonObject): AgentRequest | undefined {
  const toolName = str(request.tool_name);
  if (!toolName) return undefined;
  const input = request.input === undefined ? {} : request.input;
  if (!isObject(input)) return undefined;
  const suggestions = Array.isArray(request.permission_suggestions) ? request.permission_suggestions : [];
  const base: AgentRequest = {
    requestId,
    kind: "permission",
    toolName,
    toolUseId: str(request.tool_use_id) ?? "",
    inputJson: JSON.stringify(input),
    description: bounded(request.description) || bounded(request.decision_reason),
    path: bounded(request.blocked_path),
    command: toolName === "Bash" ? bounded(input.command) : "",
    suggestionsJson: suggestions.slice(0, MAX_SUGGESTIONS).map((s) => JSON.stringify(s ?? null)),
    questions: [],
  };
  if (toolName !== ASK_USER_QUESTION) return base;
  const questions = questionsOf(input.questions);
  return questions ? { ...base, kind: "question", questions } : undefined;
}

// AskUserQuestion's input: {questions: [{question, header, options: [{label, description}],
// multiSelect}]}. Its answers are keyed by the question text (as the Agent SDK keys them),
// so the text is the id and must come through whole.
function questionsOf(value: unknown): AgentQuestion[] | undefined {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_QUESTIONS) return undefined;
  const out: AgentQuestion[] = [];
  for (const q of value) {
    const question = isObject(q) ? str(q.question) : undefined;
    if (!isObject(q) || !question || question.length > MAX_TEXT) return undefined;
    const options = Array.isArray(q.options) ? q.options.slice(0, MAX_OPTIONS) : [];
    out.push({
      id: question,
      question,
      header: bounded(q.header),
      options: options.filter(isObject).map((o) => ({ label: bounded(o.label), description: bounded(o.description) })),
      multiSelect: q.multiSelect === true,
    });
  }
  return out;
}

/**
 * The control_response line that answers `request` with `decision`.
 * - allow: the CLI rejects an allow without `updatedInput` (a ZodError, counted as a
 *   denial), so the original input goes back when the client changed nothing.
 * - answer: AskUserQuestion takes its answers as `updatedInput.answers` beside the
 *   original questions.
 * A decision that does not fit the request (answers to a permission, input that is not
 * a JSON object) becomes a denial saying why: the agent always gets its one answer.
 */
export function answerLine(request: AgentRequest, decision: AgentDecision): string {
  return JSON.stringify({
    type: "control_response",
    response: { subtype: "success", request_id: request.requestId, response: answerPayload(request, decision) },
  });
}

/** The id of the PreToolUse hook hotplex registers (LaunchConfig.gateToolCalls). */
export const PRE_TOOL_USE_CALLBACK = "hotplex-pre-tool-use";

/** The PreToolUse hooks to register through `initialize` (every tool: no matcher). */
export const GATE_HOOKS = { PreToolUse: [{ hookCallbackIds: [PRE_TOOL_USE_CALLBACK] }] };

/**
 * The check of a `hook_callback` for hotplex's PreToolUse hook (reference §10, hooks
 * through initialize): the CLI is about to run the call, whatever its settings say.
 */
export function toolCheckOf(requestId: string, request: JsonObject): AgentRequest | undefined {
  if (request.callback_id !== PRE_TOOL_USE_CALLBACK) return undefined;
  const input = isObject(request.input) ? request.input : {};
  const toolName = str(input.tool_name);
  const toolInput = input.tool_input === undefined ? {} : input.tool_input;
  if (!toolName || !isObject(toolInput)) return undefined;
  return {
    requestId,
    kind: "check",
    toolName,
    toolUseId: str(input.tool_use_id) ?? str(request.tool_use_id) ?? "",
    inputJson: JSON.stringify(toolInput),
    description: "",
    // File tools name their target in one of these; Bash its command.
    path: bounded(toolInput.file_path ?? toolInput.notebook_path ?? toolInput.path),
    command: toolName === "Bash" ? bounded(toolInput.command) : "",
    suggestionsJson: [],
    questions: [],
  };
}

// A PreToolUse hook's answer: deny (the CLI refuses the call, the turn goes on), ask (its
// permission flow asks), or nothing (its own settings decide).
function checkPayload(decision: AgentDecision): JsonObject {
  if (decision.behavior === "deny" || (decision.behavior === "defer" && decision.ask)) {
    return {
      hookSpecificOutput: {
        hookEventName: "PreToolUse",
        permissionDecision: decision.behavior === "deny" ? "deny" : "ask",
        permissionDecisionReason: decision.behavior === "deny" ? decision.message : "a rule of the host asks for approval",
      },
    };
  }
  return {};
}

function answerPayload(request: AgentRequest, decision: AgentDecision): JsonObject {
  if (request.kind === "check") return checkPayload(decision);
  const deny = (message: string): JsonObject => ({ behavior: "deny", message });
  const allow = (updatedInput: JsonObject): JsonObject => ({
    behavior: "allow",
    updatedInput,
    ...(request.toolUseId ? { toolUseID: request.toolUseId } : {}),
  });
  const original = parseObject(request.inputJson) ?? {};
  switch (decision.behavior) {
    case "deny":
      return deny(decision.message || "The user denied this tool call.");
    case "allow": {
      if (!decision.updatedInputJson) return allow(original);
      const edited = parseObject(decision.updatedInputJson);
      return edited ? allow(edited) : deny("hotplex: the edited tool input was not a JSON object");
    }
    case "answer": {
      if (request.kind !== "question") return deny("hotplex: answers were given to a permission request");
      const answers: Record<string, string> = {};
      for (const [key, value] of Object.entries(decision.answers)) if (typeof value === "string") answers[key] = value;
      return allow({ ...original, answers });
    }
    case "defer":
      return deny("hotplex: a permission request cannot be deferred");
  }
}

function parseObject(json: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
