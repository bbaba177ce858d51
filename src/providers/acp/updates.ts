import { create } from "@bufbuild/protobuf";
import {
  type EventPayload,
  RawOutputSchema,
  TextDeltaSchema,
  ThinkingDeltaSchema,
  ToolResultSchema,
  ToolUseSchema,
  type TurnEnded,
  TurnEndedSchema,
  TurnOutcome,
  type Usage,
  UsageSchema,
} from "../../events/event.js";
import type { ParsedOutput } from "../provider.js";
import { isObject } from "../transport/jsonrpc.js";

// Bounds on what one agent message may put into an event.
const MAX_TEXT = 4 * 1024 * 1024;
const MAX_TOOL_CONTENT = 1024 * 1024;
const MAX_ID = 256;
const MAX_NAME = 200;
const MAX_PATHS = 100;
const MAX_PATH = 4096;
const MAX_RESULT = 4 * 1024 * 1024;
// Open tool calls remembered per turn.
const MAX_OPEN_TOOLS = 10_000;

// ACP tool kinds whose locations are files the call writes.
const WRITING_KINDS = new Set(["edit", "delete", "move"]);

const str = (value: unknown, max = MAX_TEXT): string => (typeof value === "string" ? value.slice(0, max) : "");
const count = (value: unknown): bigint => (typeof value === "number" && Number.isFinite(value) && value >= 0 ? BigInt(Math.min(Math.floor(value), Number.MAX_SAFE_INTEGER)) : 0n);

export interface AcpUpdatesOptions {
  /** The tool's name from its call id (an agent that puts it there); else the call's kind names it. */
  toolName?: (toolCallId: string) => string | undefined;
}

interface ToolState {
  name: string;
  ended: boolean;
}

/**
 * Turns one ACP session's `session/update` notifications and `session/prompt` results into
 * normalized outputs. Stateful (one per agent run): the open tool calls (an agent may
 * report a call first by its update, and never end a call it was refused), the turn's
 * answer text. Every field is the agent's and checked: a malformed update is kept raw.
 */
export class AcpUpdates {
  readonly #options: AcpUpdatesOptions;
  readonly #tools = new Map<string, ToolState>();
  #answer = "";

  constructor(
    readonly sessionId: string,
    options: AcpUpdatesOptions = {},
  ) {
    this.#options = options;
  }

  /** One `session/update` notification's params. */
  map(params: unknown): ParsedOutput[] {
    if (!isObject(params) || !isObject(params.update) || typeof params.update.sessionUpdate !== "string") {
      return [raw(params, "malformed")];
    }
    if (params.sessionId !== this.sessionId) return [raw(params, "other_session")];
    const update = params.update;
    switch (update.sessionUpdate) {
      case "agent_message_chunk": {
        const text = textOf(update.content);
        if (text === undefined) return [raw(params, "non_text_content")];
        if (this.#answer.length < MAX_RESULT) this.#answer += text.slice(0, MAX_RESULT - this.#answer.length);
        return [event({ case: "textDelta", value: create(TextDeltaSchema, { text }) })];
      }
      case "agent_thought_chunk": {
        const text = textOf(update.content);
        if (text === undefined) return [raw(params, "non_text_content")];
        return [event({ case: "thinkingDelta", value: create(ThinkingDeltaSchema, { text }) })];
      }
      case "tool_call":
        return this.#toolCall(params, update, true);
      case "tool_call_update":
        return this.#toolCall(params, update, false);
      default:
        return [raw(params, "unknown_type")];
    }
  }

  /**
   * A tool call the agent asks permission for (`session/request_permission` params'
   * toolCall): an agent may name it there first. Its ToolUse, when not reported yet.
   */
  permissionAsked(toolCall: unknown): ParsedOutput[] {
    if (!isObject(toolCall)) return [];
    const id = str(toolCall.toolCallId, MAX_ID);
    if (!id || this.#tools.has(id)) return [];
    return this.#use(id, toolCall);
  }

  /** The permission for a tool call was refused: the agent runs it not, and may never say so. */
  permissionRefused(toolCallId: string, message: string): ParsedOutput[] {
    const tool = this.#tools.get(toolCallId);
    if (!tool || tool.ended) return [];
    tool.ended = true;
    return [toolResult(toolCallId, message, true, { status: "refused" })];
  }

  /** The `session/prompt` result: the turn's end. */
  turnEnd(result: unknown): ParsedOutput[] {
    const out = this.#closeOpenTools("the agent ended the turn without reporting the tool call's end");
    const response = isObject(result) ? result : {};
    const stopReason = str(response.stopReason, 50);
    let outcome: TurnOutcome;
    let errorMessage = "";
    switch (stopReason) {
      case "end_turn":
        outcome = TurnOutcome.COMPLETED;
        break;
      case "cancelled":
        outcome = TurnOutcome.INTERRUPTED;
        errorMessage = "the turn was cancelled";
        break;
      case "refusal":
        outcome = TurnOutcome.FAILED;
        errorMessage = "the agent refused to continue";
        break;
      case "max_tokens":
        outcome = TurnOutcome.FAILED;
        errorMessage = "the model reached its output token limit";
        break;
      case "max_turn_requests":
        outcome = TurnOutcome.FAILED;
        errorMessage = "the turn reached the agent's limit of model requests";
        break;
      default:
        outcome = TurnOutcome.FAILED;
        errorMessage = stopReason ? `the turn ended with stop reason ${JSON.stringify(stopReason)}` : "the agent ended the turn without a stop reason";
    }
    out.push({ type: "turn_end", turnEnded: this.#turnEnded(outcome, errorMessage, stopReason, usageOf(response)) });
    return out;
  }

  /** The `session/prompt` request failed (a JSON-RPC error): the turn's end. */
  turnFailed(message: string): ParsedOutput[] {
    const out = this.#closeOpenTools("the turn failed before the tool call ended");
    out.push({ type: "turn_end", turnEnded: this.#turnEnded(TurnOutcome.FAILED, message.slice(0, 4096), "error", undefined) });
    return out;
  }

  #turnEnded(outcome: TurnOutcome, errorMessage: string, subtype: string, usage: Usage | undefined): TurnEnded {
    const turnEnded = create(TurnEndedSchema, { outcome, result: this.#answer, usage, numTurns: 1, errorMessage, providerSubtype: subtype });
    this.#answer = "";
    this.#tools.clear();
    return turnEnded;
  }

  #toolCall(params: Record<string, unknown>, update: Record<string, unknown>, announced: boolean): ParsedOutput[] {
    const id = str(update.toolCallId, MAX_ID);
    if (!id) return [raw(params, "malformed")];
    const out: ParsedOutput[] = [];
    const known = this.#tools.get(id);
    if (!known) {
      if (this.#tools.size >= MAX_OPEN_TOOLS) return [raw(params, "too_many_tool_calls")];
      out.push(...this.#use(id, update));
    } else if (announced) {
      return [raw(params, "duplicate_tool_call")];
    }
    const tool = this.#tools.get(id)!;
    const status = str(update.status, 50);
    if (status === "completed" || status === "failed") {
      if (tool.ended) return [...out, raw(params, "tool_call_already_ended")];
      tool.ended = true;
      const content = contentText(update.content);
      out.push(toolResult(id, content, status === "failed", { status, kind: str(update.kind, MAX_NAME), title: str(update.title, 1000), rawOutput: bounded(update.rawOutput) }));
    } else if (known) {
      // Progress of a call already reported (in_progress, new content): nothing the event model holds.
      out.push(raw(params, "tool_progress"));
    }
    return out;
  }

  /** The tool's name for a call: as reported already, else from its id (an agent that puts it there), else its kind. */
  toolName(id: string, call: Record<string, unknown>): string {
    return this.#tools.get(id)?.name ?? ((this.#options.toolName?.(id) ?? "").slice(0, MAX_NAME) || str(call.kind, MAX_NAME) || "tool");
  }

  #use(id: string, call: Record<string, unknown>): ParsedOutput[] {
    const kind = str(call.kind, MAX_NAME);
    const name = this.toolName(id, call);
    this.#tools.set(id, { name, ended: false });
    const input = toolCallInput(call);
    const paths = input.locations;
    const diffPaths = (Array.isArray(call.content) ? call.content.filter(isObject).slice(0, MAX_PATHS) : [])
      .filter((c) => c.type === "diff")
      .map((c) => str(c.path, MAX_PATH))
      .filter(Boolean);
    const modifiedPaths = [...new Set([...(WRITING_KINDS.has(kind) ? paths : []), ...diffPaths])];
    return [event({ case: "toolUse", value: create(ToolUseSchema, { toolUseId: id, name, inputJson: JSON.stringify(input), modifiedPaths }) })];
  }

  #closeOpenTools(message: string): ParsedOutput[] {
    const out: ParsedOutput[] = [];
    for (const [id, tool] of this.#tools) {
      if (tool.ended) continue;
      tool.ended = true;
      out.push(toolResult(id, message, true, { status: "unreported" }));
    }
    return out;
  }
}

/**
 * What a tool call (ToolCall or ToolCallUpdate) says it does, as hotplex shows its input:
 * the same for a call's ToolUse and for a permission request about it.
 */
export function toolCallInput(call: Record<string, unknown>): { title: string; kind: string; locations: string[]; content: string; rawInput: unknown } {
  const locations = Array.isArray(call.locations) ? call.locations.filter(isObject).slice(0, MAX_PATHS) : [];
  return {
    title: str(call.title, 1000),
    kind: str(call.kind, MAX_NAME),
    locations: locations.map((l) => str(l.path, MAX_PATH)).filter(Boolean),
    content: contentText(call.content),
    rawInput: bounded(call.rawInput),
  };
}

// The text of a ContentBlock, undefined for any other kind.
function textOf(content: unknown): string | undefined {
  if (!isObject(content) || content.type !== "text" || typeof content.text !== "string") return undefined;
  return content.text.slice(0, MAX_TEXT);
}

// A tool call's content (ToolCallContent[]) as text: text blocks as they are, diffs and
// terminals as a short line each.
function contentText(content: unknown): string {
  if (!Array.isArray(content)) return "";
  const parts: string[] = [];
  let size = 0;
  for (const item of content.slice(0, 1000)) {
    if (!isObject(item)) continue;
    let part = "";
    if (item.type === "content") part = textOf(item.content) ?? `[${str(isObject(item.content) ? item.content.type : "", 50) || "content"}]`;
    else if (item.type === "diff") part = `[diff ${str(item.path, MAX_PATH)}]`;
    else if (item.type === "terminal") part = `[terminal ${str(item.terminalId, MAX_ID)}]`;
    else part = `[${str(item.type, 50) || "unknown"}]`;
    parts.push(part.slice(0, MAX_TOOL_CONTENT - size));
    size += part.length + 1;
    if (size >= MAX_TOOL_CONTENT) break;
  }
  return parts.join("\n");
}

// A JSON value the agent sent, kept when it is small (else a note that it was left out).
function bounded(value: unknown): unknown {
  if (value === undefined) return undefined;
  const json = JSON.stringify(value);
  return json !== undefined && json.length <= 64 * 1024 ? value : "[left out: too large]";
}

// Token counts of a prompt result: ACP's `usage` (unstable), else Gemini CLI's `_meta.quota.token_count`.
function usageOf(response: Record<string, unknown>): Usage | undefined {
  if (isObject(response.usage)) {
    const u = response.usage;
    return create(UsageSchema, {
      inputTokens: count(u.inputTokens),
      outputTokens: count(u.outputTokens),
      cacheReadTokens: count(u.cachedReadTokens),
      cacheWriteTokens: count(u.cachedWriteTokens),
    });
  }
  const meta = isObject(response._meta) ? response._meta : {};
  const quota = isObject(meta.quota) ? meta.quota : {};
  if (!isObject(quota.token_count)) return undefined;
  const t = quota.token_count;
  return create(UsageSchema, { inputTokens: count(t.input_tokens), outputTokens: count(t.output_tokens) });
}

function event(payload: EventPayload): ParsedOutput {
  return { type: "event", payload };
}

function toolResult(id: string, content: string, isError: boolean, structured: unknown): ParsedOutput {
  return event({ case: "toolResult", value: create(ToolResultSchema, { toolUseId: id, content, isError, structuredJson: JSON.stringify(structured) }) });
}

/** A notification the event model cannot hold, kept whole (bounded). */
export function raw(params: unknown, reason: string, method = "session/update"): ParsedOutput {
  let line = JSON.stringify({ method, params }) ?? "";
  if (line.length > MAX_TEXT) line = line.slice(0, MAX_TEXT);
  return { type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line, reason }) } };
}
