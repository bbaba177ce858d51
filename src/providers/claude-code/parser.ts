// Parser of Claude Code's `--output-format stream-json` stdout: one JSON line in, zero or
// more normalized items out. Stateful per process: it pairs streamed deltas with the full
// assistant lines (so text is never emitted twice), times thinking, tool and generation
// blocks, and turns the process-cumulative cost into a per-turn cost.

import { create } from "@bufbuild/protobuf";
import { ToolResultSchema, ToolUseSchema } from "../../events/event.js";
import type { OutputParser, ParsedOutput } from "../provider.js";
import { controlCancelRequest, controlRequest, controlResponse } from "./control.js";
import { isObject, num, parentToolUseId, str, structuredJson, toolResultText } from "./content.js";
import type { JsonObject } from "./content.js";
import { apiRetryError, event, raw, textEvent } from "./outputs.js";
import { errorMessageOf, turnEndedFromResult } from "./result.js";
import { StreamBlocks } from "./stream-blocks.js";
import { readStreamedDelta } from "./streamed-delta.js";
import type { StoppedBlock } from "./stream-blocks.js";

// System subtypes that carry nothing a client needs (status pings, hook and task
// bookkeeping, compaction markers).
const QUIET_SYSTEM_SUBTYPES = new Set([
  "status",
  "compact_boundary",
  "hook_started",
  "hook_progress",
  "hook_response",
  "task_started",
  "task_progress",
  "task_notification",
  "files_persisted",
]);

// Messages API SSE events with nothing to emit: tool input arrives whole in the assistant
// line, and API errors surface as system/api_retry or in the result.
const QUIET_STREAM_EVENTS = new Set(["message_delta", "message_stop", "ping", "error"]);
const QUIET_DELTAS = new Set(["input_json_delta", "signature_delta", "citations_delta"]);

const THINKING_KINDS = new Set(["thinking", "redacted_thinking"]);

/** The Claude Code stream-json output parser. Create one per process. */
export class ClaudeStreamParser implements OutputParser {
  /** A `system/init` was seen: a `result` before it is a startup failure. */
  #sawInit = false;
  /** `total_cost_usd` of the previous result; it is cumulative over the process. */
  #prevTotalCostUsd = 0;
  /** Streamed content blocks of the current API responses. */
  #blocks = new StreamBlocks();
  /** When each pending tool call was requested, by tool_use id. */
  #toolStarts = new Map<string, number>();
  #thinkingMs = 0;
  #toolMs = 0;
  #generationMs = 0;
  /**
   * The uuid of the turn's last main-agent assistant line: where a fork can cut the
   * conversation (`--resume-session-at`), reported as TurnEnded.provider_turn_ref.
   */
  #lastAssistantUuid = "";

  parse(line: string, nowMs: number): ParsedOutput[] {
    // Most lines of a streaming turn are deltas: read those without JSON.parse.
    const streamed = readStreamedDelta(line);
    if (streamed) return this.#delta(streamed.parent, streamed.index, streamed.kind, streamed.text, nowMs);
    if (!/\S/.test(line)) return [];
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return [raw(line, "not_json")];
    }
    if (!isObject(value)) return [raw(line, "not_json")];
    try {
      // A handler returns undefined for a line it does not recognize (or cannot read).
      return this.#dispatch(value, line, nowMs) ?? [raw(line, "unknown_type")];
    } catch {
      // Defence in depth: the handlers check every field, but output must never kill the session.
      return [raw(line, "unknown_type")];
    }
  }

  #dispatch(msg: JsonObject, line: string, nowMs: number): ParsedOutput[] | undefined {
    switch (msg.type) {
      case "system":
        return this.#system(msg);
      case "stream_event":
        return this.#streamEvent(msg, nowMs);
      case "assistant":
        return this.#assistant(msg, line, nowMs);
      case "user":
        return this.#user(msg, line, nowMs);
      case "result":
        return this.#result(msg, nowMs);
      case "control_response":
        return controlResponse(msg);
      case "control_request":
        return controlRequest(msg);
      case "control_cancel_request":
        return controlCancelRequest(msg);
      case "keep_alive":
        return [];
      default:
        return undefined;
    }
  }

  #system(msg: JsonObject): ParsedOutput[] | undefined {
    const subtype = str(msg.subtype) ?? "";
    if (subtype === "init") {
      // The CLI prints init at the start of every turn, not once per process.
      this.#sawInit = true;
      this.#resetTurn();
      return [{ type: "turn_start", providerSessionId: str(msg.session_id) ?? "", model: str(msg.model) ?? "" }];
    }
    if (subtype === "api_retry") {
      return [apiRetryError(msg)];
    }
    return QUIET_SYSTEM_SUBTYPES.has(subtype) ? [] : undefined;
  }

  #streamEvent(msg: JsonObject, nowMs: number): ParsedOutput[] | undefined {
    const ev = msg.event;
    if (!isObject(ev)) return undefined;
    const type = str(ev.type) ?? "";
    const parent = parentToolUseId(msg);
    if (type === "message_start") {
      this.#blocks.newMessage(parent);
      return [];
    }
    if (QUIET_STREAM_EVENTS.has(type)) return [];
    const index = num(ev.index);
    if (index === undefined) return undefined;

    if (type === "content_block_start") {
      const block = isObject(ev.content_block) ? ev.content_block : {};
      const kind = str(block.type) ?? "unknown";
      this.#blocks.start(parent, index, kind, nowMs);
      // The API starts text blocks empty; should one carry text, it counts as a delta.
      const initial = kind === "text" ? str(block.text) : kind === "thinking" ? str(block.thinking) : undefined;
      return initial ? this.#delta(parent, index, kind, initial, nowMs) : [];
    }
    if (type === "content_block_delta") {
      const delta = isObject(ev.delta) ? ev.delta : {};
      const deltaType = str(delta.type) ?? "";
      if (deltaType === "text_delta" || deltaType === "thinking_delta") {
        const kind = deltaType === "text_delta" ? "text" : "thinking";
        const text = kind === "text" ? str(delta.text) : (str(delta.thinking) ?? str(delta.text));
        return text === undefined ? undefined : this.#delta(parent, index, kind, text, nowMs);
      }
      return QUIET_DELTAS.has(deltaType) ? [] : undefined;
    }
    if (type === "content_block_stop") {
      const stopped = this.#blocks.stop(parent, index, nowMs);
      if (stopped) this.#addBlockTime(stopped);
      return [];
    }
    return undefined;
  }

  // Emits one streamed delta and records it, so the block's whole assistant line is not
  // emitted again.
  #delta(parent: string, index: number, kind: string, text: string, nowMs: number): ParsedOutput[] {
    this.#blocks.delta(parent, index, kind, text, nowMs);
    return text === "" ? [] : [textEvent(kind, text, parent)];
  }

  #assistant(msg: JsonObject, line: string, nowMs: number): ParsedOutput[] | undefined {
    const message = msg.message;
    if (!isObject(message)) return undefined;
    const content = typeof message.content === "string" ? [{ type: "text", text: message.content }] : message.content;
    if (!Array.isArray(content)) return undefined;
    const parent = parentToolUseId(msg);
    // Sub-agents' messages live in transcripts of their own: only the main agent's count.
    const uuid = str(msg.uuid);
    if (parent === "" && uuid !== undefined && UUID.test(uuid)) this.#lastAssistantUuid = uuid;
    // A synthetic message (a failed API call, "API Error: 400 ...") was never streamed.
    const synthetic = message.model === "<synthetic>";
    const out: ParsedOutput[] = [];
    let unknown = false;
    for (const block of content) {
      const type = isObject(block) ? str(block.type) : undefined;
      if (!isObject(block) || type === undefined) {
        unknown = true;
      } else if (type === "text" || type === "thinking") {
        const text = str(type === "text" ? block.text : block.thinking);
        if (text === undefined) {
          unknown = true;
          continue;
        }
        const rest = synthetic ? text : this.#blocks.notYetStreamed(parent, type, text);
        if (rest !== "") out.push(textEvent(type, rest, parent));
      } else if (type === "tool_use") {
        const id = str(block.id);
        const name = str(block.name);
        if (id === undefined || name === undefined) {
          unknown = true;
          continue;
        }
        this.#toolStarts.set(id, nowMs);
        const inputJson = JSON.stringify(block.input ?? {});
        const modifiedPaths = modifiedPathsOf(name, block.input);
        const value = create(ToolUseSchema, { toolUseId: id, name, inputJson, parentToolUseId: parent, modifiedPaths });
        out.push(event({ case: "toolUse", value }));
      } else if (type !== "redacted_thinking") {
        // redacted_thinking is encrypted: nothing to show. Anything else is new to us.
        unknown = true;
      }
    }
    if (unknown) out.push(raw(line, "unknown_type"));
    return out;
  }

  #user(msg: JsonObject, line: string, nowMs: number): ParsedOutput[] | undefined {
    // Replays echo what the host sent (or local command output): nothing new.
    if (msg.isReplay === true) return [];
    const message = msg.message;
    if (!isObject(message)) return undefined;
    // A string content is a plain text message (e.g. an interrupt marker).
    if (typeof message.content === "string") return [];
    if (!Array.isArray(message.content)) return undefined;
    const results = message.content.filter((b): b is JsonObject => isObject(b) && b.type === "tool_result");
    const parent = parentToolUseId(msg);
    // `tool_use_result` is per line; the CLI writes one tool_result per line. Should a line
    // hold several, it is not known which one the structured output belongs to.
    const structured = results.length === 1 ? structuredJson(msg.tool_use_result) : "";
    const out: ParsedOutput[] = [];
    let unknown = false;
    for (const block of results) {
      const id = str(block.tool_use_id);
      if (id === undefined) {
        unknown = true;
        continue;
      }
      const start = this.#toolStarts.get(id);
      if (start !== undefined) {
        this.#toolMs += Math.max(0, nowMs - start);
        this.#toolStarts.delete(id);
      }
      const value = create(ToolResultSchema, {
        toolUseId: id,
        content: toolResultText(block.content),
        isError: block.is_error === true,
        structuredJson: structured,
        parentToolUseId: parent,
      });
      out.push(event({ case: "toolResult", value }));
    }
    // Text blocks (interrupt markers, prompts) were sent by the host: nothing to emit.
    if (unknown) out.push(raw(line, "unknown_type"));
    return out;
  }

  // A streamed block's time counts as thinking or as generation (text, tool calls).
  #addBlockTime(block: StoppedBlock): void {
    if (THINKING_KINDS.has(block.kind)) this.#thinkingMs += block.ms;
    else this.#generationMs += block.ms;
  }

  #result(msg: JsonObject, nowMs: number): ParsedOutput[] {
    if (!this.#sawInit) {
      // Written before any turn started, e.g. `--resume` of an unknown conversation
      // ("No conversation found with session ID: ..."); the process exits next.
      const message = errorMessageOf(msg, str(msg.subtype) ?? "", str(msg.result) ?? "");
      return [{ type: "fatal_startup", message }];
    }
    for (const block of this.#blocks.stopAll(nowMs)) this.#addBlockTime(block);
    const turnEnded = turnEndedFromResult(msg, this.#turnCost(msg.total_cost_usd), {
      thinkingMs: this.#thinkingMs,
      toolMs: this.#toolMs,
      generationMs: this.#generationMs,
    });
    turnEnded.providerTurnRef = this.#lastAssistantUuid;
    this.#resetTurn();
    return [{ type: "turn_end", turnEnded }];
  }

  // total_cost_usd adds up over the whole process: this turn's cost is the increase since
  // the previous result. Summing the raw values would count earlier turns again.
  #turnCost(total: unknown): number {
    const t = num(total);
    if (t === undefined || t < 0) return 0;
    const cost = Math.max(0, t - this.#prevTotalCostUsd);
    this.#prevTotalCostUsd = t;
    return cost;
  }

  #resetTurn(): void {
    this.#blocks.clear();
    this.#toolStarts.clear();
    this.#thinkingMs = 0;
    this.#toolMs = 0;
    this.#generationMs = 0;
    this.#lastAssistantUuid = "";
  }
}

/** The CLI's message uuids (the only form `--resume-session-at` takes). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// Tools whose successful call writes the file named in their input, and that input's field.
const FILE_EDIT_TOOLS: Record<string, string> = {
  Write: "file_path",
  Edit: "file_path",
  MultiEdit: "file_path",
  NotebookEdit: "notebook_path",
};

/** The file a Claude Code tool call writes, from its input. */
export function modifiedPathsOf(name: string, input: unknown): string[] {
  const field = Object.hasOwn(FILE_EDIT_TOOLS, name) ? FILE_EDIT_TOOLS[name] : undefined;
  if (!field || !input || typeof input !== "object") return [];
  const value = (input as Record<string, unknown>)[field];
  return typeof value === "string" && value.length > 0 ? [value] : [];
}
