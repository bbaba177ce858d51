import { create } from "@bufbuild/protobuf";
import {
  ErrorEventSchema,
  type EventPayload,
  RawOutputSchema,
  TextDeltaSchema,
  ThinkingDeltaSchema,
  ToolResultSchema,
  ToolUseSchema,
  TurnEndedSchema,
  TurnOutcome,
  UsageSchema,
} from "../../events/event.js";
import type { ParsedOutput } from "../provider.js";
import { isObject } from "../transport/jsonrpc.js";

// Notifications that carry nothing the event model lacks (state hotplex keeps itself,
// echoes of our own input, streamed output that the completed item repeats whole).
const NOTHING_NEW = new Set([
  "thread/started",
  "thread/status/changed",
  "thread/goal/cleared",
  "remoteControl/status/changed",
  "account/rateLimits/updated",
  "serverRequest/resolved",
  "item/reasoning/summaryPartAdded",
  // Codex may drop an output chunk here; the completed item's aggregatedOutput is whole.
  "item/commandExecution/outputDelta",
  "turn/diff/updated",
  "deprecationNotice",
]);

/** A thread or turn id as Codex makes them (a UUID); anything else from the agent is refused. */
export const THREAD_ID = /^[A-Za-z0-9-]{1,128}$/;

const str = (value: unknown): string => (typeof value === "string" ? value : "");
const num = (value: unknown): number => (typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.floor(value) : 0);

/**
 * Turns the app-server's notifications for one thread into normalized outputs. Stateful
 * (one per agent run): it remembers the running turn, its token usage and its last
 * message, for the TurnEnded that `turn/completed` becomes.
 */
export class CodexNotifications {
  /** The running turn's id (for turn/interrupt), "" between turns. */
  turnId = "";
  /** The agent announced the running turn (turn/started): only then does it take turn/interrupt. */
  turnActive = false;
  #usage: ReturnType<typeof usageOf> | undefined;
  #lastMessage = "";

  constructor(readonly threadId: string) {}

  map(method: string, params: unknown): ParsedOutput[] {
    if (!isObject(params)) return [raw(method, params, "malformed")];
    // Another thread's notification (a sub-agent's, say) is not this turn's.
    if (typeof params.threadId === "string" && params.threadId !== this.threadId) return [raw(method, params, "other_thread")];
    switch (method) {
      case "turn/started": {
        const turn = isObject(params.turn) ? params.turn : {};
        this.turnId = str(turn.id) || this.turnId;
        this.turnActive = true;
        this.#usage = undefined;
        this.#lastMessage = "";
        return [{ type: "turn_start", providerSessionId: this.threadId, model: "" }];
      }
      case "item/agentMessage/delta":
        return [event({ case: "textDelta", value: create(TextDeltaSchema, { text: str(params.delta) }) })];
      case "item/reasoning/summaryTextDelta":
      case "item/reasoning/textDelta":
        return [event({ case: "thinkingDelta", value: create(ThinkingDeltaSchema, { text: str(params.delta) }) })];
      case "item/started":
        return this.#itemStarted(method, params);
      case "item/completed":
        return this.#itemCompleted(method, params);
      case "thread/tokenUsage/updated": {
        const usage = isObject(params.tokenUsage) ? params.tokenUsage : {};
        this.#usage = usageOf(isObject(usage.last) ? usage.last : {});
        return [];
      }
      case "error": {
        const error = isObject(params.error) ? params.error : {};
        const code = str(error.codexErrorInfo) || "agent_error";
        return [event({ case: "error", value: create(ErrorEventSchema, { code: code.slice(0, 100), message: str(error.message).slice(0, 4096) }) })];
      }
      case "warning":
        return [raw(method, params, "agent_warning")];
      case "turn/completed":
        return [this.#turnCompleted(params)];
      default:
        return NOTHING_NEW.has(method) ? [] : [raw(method, params, "unknown_type")];
    }
  }

  #itemStarted(method: string, params: Record<string, unknown>): ParsedOutput[] {
    const item = isObject(params.item) ? params.item : {};
    const id = str(item.id);
    switch (item.type) {
      case "userMessage":
      case "agentMessage":
      case "reasoning":
        return [];
      case "commandExecution":
        return [toolUse(id, "shell", { command: str(item.command), cwd: str(item.cwd) }, [])];
      case "fileChange": {
        const changes = Array.isArray(item.changes) ? item.changes.filter(isObject) : [];
        return [toolUse(id, "apply_patch", { changes: changes.map((c) => ({ path: str(c.path), kind: isObject(c.kind) ? str(c.kind.type) : "" })) }, changes.map((c) => str(c.path)).filter(Boolean))];
      }
      case "mcpToolCall":
        return [toolUse(id, `mcp__${str(item.server)}__${str(item.tool)}`, item.arguments ?? {}, [])];
      default:
        return [raw(method, params, "unknown_item")];
    }
  }

  #itemCompleted(method: string, params: Record<string, unknown>): ParsedOutput[] {
    const item = isObject(params.item) ? params.item : {};
    const id = str(item.id);
    const status = str(item.status);
    switch (item.type) {
      case "userMessage":
      case "reasoning":
        return [];
      case "agentMessage":
        this.#lastMessage = str(item.text);
        return [];
      case "commandExecution": {
        const exitCode = typeof item.exitCode === "number" ? item.exitCode : undefined;
        const structured = { status, exitCode: exitCode ?? null, durationMs: num(item.durationMs) };
        return [
          toolResult(id, str(item.aggregatedOutput), status !== "completed" || (exitCode !== undefined && exitCode !== 0), structured),
        ];
      }
      case "fileChange": {
        const changes = Array.isArray(item.changes) ? item.changes.filter(isObject) : [];
        const summary = changes.map((c) => `${isObject(c.kind) ? str(c.kind.type) : "change"} ${str(c.path)}`).join("\n");
        return [toolResult(id, summary, status !== "completed", { status })];
      }
      case "mcpToolCall": {
        const result = item.result ?? item.error ?? null;
        return [toolResult(id, typeof result === "string" ? result : JSON.stringify(result), status !== "completed", { status })];
      }
      default:
        return [raw(method, params, "unknown_item")];
    }
  }

  #turnCompleted(params: Record<string, unknown>): ParsedOutput {
    const turn = isObject(params.turn) ? params.turn : {};
    const status = str(turn.status);
    const error = isObject(turn.error) ? turn.error : undefined;
    const outcome = status === "completed" ? TurnOutcome.COMPLETED : status === "interrupted" ? TurnOutcome.INTERRUPTED : TurnOutcome.FAILED;
    const turnEnded = create(TurnEndedSchema, {
      outcome,
      result: this.#lastMessage,
      usage: this.#usage,
      numTurns: 1,
      errorMessage: error ? str(error.message).slice(0, 4096) : outcome === TurnOutcome.FAILED ? `the turn ended "${status.slice(0, 50)}"` : "",
      providerSubtype: status.slice(0, 50),
      // What thread/fork takes as lastTurnId to copy the thread up to this turn.
      providerTurnRef: typeof turn.id === "string" && THREAD_ID.test(turn.id) ? turn.id : "",
    });
    this.turnId = "";
    this.turnActive = false;
    return { type: "turn_end", turnEnded };
  }
}

function usageOf(usage: Record<string, unknown>) {
  return create(UsageSchema, {
    inputTokens: BigInt(num(usage.inputTokens)),
    outputTokens: BigInt(num(usage.outputTokens)),
    cacheReadTokens: BigInt(num(usage.cachedInputTokens)),
    cacheWriteTokens: BigInt(num(usage.cacheWriteInputTokens)),
  });
}

function event(payload: EventPayload): ParsedOutput {
  return { type: "event", payload };
}

function toolUse(id: string, name: string, input: unknown, modifiedPaths: string[]): ParsedOutput {
  return event({ case: "toolUse", value: create(ToolUseSchema, { toolUseId: id, name, inputJson: JSON.stringify(input), modifiedPaths }) });
}

function toolResult(id: string, content: string, isError: boolean, structured: unknown): ParsedOutput {
  return event({ case: "toolResult", value: create(ToolResultSchema, { toolUseId: id, content, isError, structuredJson: JSON.stringify(structured) }) });
}

/** A notification the event model cannot hold, kept whole. */
export function raw(method: string, params: unknown, reason: string): ParsedOutput {
  return { type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line: JSON.stringify({ method, params }), reason }) } };
}
