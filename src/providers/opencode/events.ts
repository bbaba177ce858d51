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
import type { AgentRequest, ParsedOutput } from "../provider.js";
import { ITEM_ID } from "./ids.js";
import { permissionRequest, questionRequest } from "./requests.js";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const str = (value: unknown, max = 4096): string => (typeof value === "string" ? value.slice(0, max) : "");
const num = (value: unknown): number => (typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.floor(value) : 0);
const id = (value: unknown): string => (typeof value === "string" && ITEM_ID.test(value) ? value : "");

// What one turn may hold before further items are kept as raw events only.
const MAX_ITEMS = 10_000;
// Requests waiting for an answer that are remembered (for their kind and withdrawal).
const MAX_PENDING = 1000;

// Events of a session that carry nothing the event model lacks: state hotplex keeps
// itself (titles, diffs, todo lists), file watchers.
const NOTHING_NEW = new Set([
  "session.updated",
  "session.created",
  "session.diff",
  "session.compacted",
  "todo.updated",
  "file.edited",
  "file.watcher.updated",
]);

// Parts that repeat what other events say (step boundaries, file snapshots, patches).
const QUIET_PARTS = new Set(["step-start", "snapshot", "patch", "compaction"]);

// The tools whose input names the one file they write.
const FILE_TOOLS = new Set(["edit", "write", "multiedit"]);

interface ToolState {
  used: boolean;
  done: boolean;
  /** The latest input (a permission request names its call by id). */
  input: Json;
}

interface TurnState {
  messageID: string;
  acknowledged: boolean;
  /** The assistant messages of the turn (one per model step). */
  assistant: Set<string>;
  /** Text and reasoning parts: their kind and the text reported so far. */
  parts: Map<string, { kind: "text" | "reasoning"; text: string }>;
  tools: Map<string, ToolState>;
  steps: Set<string>;
  usage: { input: number; output: number; cacheRead: number; cacheWrite: number };
  cost: number;
  toolMs: number;
  lastText: string;
  finish: string;
  /** The last model step of the turn has finished (and asked for no more tools). */
  done: boolean;
  error: { name: string; message: string } | undefined;
  /** An error before the server showed our message (it may have refused it outright). */
  earlyError: { name: string; message: string } | undefined;
}

/**
 * Turns one OpenCode session's events (from `/global/event`, already picked by session
 * id) into normalized outputs. Stateful, one per agent run: it knows the running turn by
 * the id of the user message hotplex sent, so an idle that an earlier abort left behind
 * is never taken for this turn's end.
 *
 * Every value comes from a server that may be broken or hostile: types are checked,
 * strings bounded, and anything it does not know is kept as a raw event.
 */
export class OpenCodeEvents {
  #current: TurnState | undefined;
  // The turn that ended last: its late tool results (after an abort) still close their calls.
  #previous: TurnState | undefined;
  // Requests of the agent's that wait for hotplex's answer, by the agent's id.
  readonly #pending = new Map<string, AgentRequest>();

  constructor(readonly sessionID: string) {}

  /** A prompt with this message id goes out: the next turn. */
  begin(messageID: string): void {
    if (this.#current) this.#previous = this.#current;
    this.#current = {
      messageID,
      acknowledged: false,
      assistant: new Set(),
      parts: new Map(),
      tools: new Map(),
      steps: new Set(),
      usage: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
      cost: 0,
      toolMs: 0,
      lastText: "",
      finish: "",
      done: false,
      error: undefined,
      earlyError: undefined,
    };
  }

  /** A turn has begun and not ended. */
  get running(): boolean {
    return this.#current !== undefined;
  }

  /** The server has taken the running turn's message. */
  get acknowledged(): boolean {
    return this.#current?.acknowledged ?? false;
  }

  /** Ends the running turn FAILED (the server refused the prompt). */
  fail(message: string): ParsedOutput[] {
    const turn = this.#current;
    if (!turn) return [];
    this.#current = undefined;
    this.#previous = turn;
    return [...this.#withdrawAll(), { type: "turn_end", turnEnded: create(TurnEndedSchema, { outcome: TurnOutcome.FAILED, errorMessage: message.slice(0, 4096) }) }];
  }

  /**
   * hotplex answers the request with this id: it no longer waits. Returns the request as
   * it was asked (undefined when it was not, or was withdrawn meanwhile).
   */
  answered(requestId: string): AgentRequest | undefined {
    const request = this.#pending.get(requestId);
    this.#pending.delete(requestId);
    return request;
  }

  map(type: string, properties: unknown): ParsedOutput[] {
    if (!isObject(properties)) return [raw(type, properties, "malformed")];
    switch (type) {
      case "message.updated":
        return this.#messageUpdated(type, properties);
      case "message.part.updated":
        return this.#partUpdated(type, properties);
      case "message.part.delta":
        return this.#partDelta(type, properties);
      case "session.status":
        return this.#status(type, properties);
      case "session.idle":
        return this.#idle();
      case "session.error":
        return this.#error(type, properties);
      case "permission.asked":
      case "question.asked": {
        const request = type === "question.asked" ? questionRequest(properties) : permissionRequest(properties, (callID) => this.#call(callID));
        // Without an id there is nothing to answer by.
        if (!request) return [raw(type, properties, "malformed")];
        if (this.#pending.has(request.requestId)) return []; // asked again: one answer serves
        if (this.#pending.size < MAX_PENDING) this.#pending.set(request.requestId, request);
        return [{ type: "agent_request", request }];
      }
      case "permission.replied":
      case "question.replied":
      case "question.rejected": {
        // Settled by someone else than hotplex (another client of the server, or the
        // server itself): the request is withdrawn. Our own answers are forgotten first.
        const requestId = id(properties.requestID);
        if (!requestId || !this.#pending.delete(requestId)) return [];
        return [{ type: "agent_request_cancelled", requestId }];
      }
      default:
        return NOTHING_NEW.has(type) ? [] : [raw(type, properties, "unknown_type")];
    }
  }

  // A tool call of the running turn (or the one before), by its call id.
  #call(callID: string): { input: Json } | undefined {
    const known = this.#current?.tools.get(callID) ?? this.#previous?.tools.get(callID);
    return known ? { input: known.input } : undefined;
  }

  // A turn that ends takes the requests that still wait with it: the agent withdrew them
  // (an abort leaves them listed on the server, but nothing waits on them any more).
  #withdrawAll(): ParsedOutput[] {
    const out: ParsedOutput[] = [...this.#pending.keys()].map((requestId) => ({ type: "agent_request_cancelled" as const, requestId }));
    this.#pending.clear();
    return out;
  }

  #messageUpdated(type: string, properties: Json): ParsedOutput[] {
    const info = properties.info;
    if (!isObject(info)) return [raw(type, properties, "malformed")];
    const messageID = id(info.id);
    const turn = this.#current;
    if (!messageID) return [raw(type, properties, "malformed")];
    if (info.role === "user") {
      if (!turn || messageID !== turn.messageID || turn.acknowledged) return [];
      turn.acknowledged = true;
      const model = isObject(info.model) ? `${str(info.model.providerID, 100)}/${str(info.model.modelID, 200)}` : "";
      return [{ type: "turn_start", providerSessionId: this.sessionID, model: model === "/" ? "" : model }];
    }
    if (info.role !== "assistant") return [raw(type, properties, "unknown_role")];
    if (!turn || info.parentID !== turn.messageID) return [];
    if (!turn.assistant.has(messageID)) {
      if (turn.assistant.size >= MAX_ITEMS) return [raw(type, properties, "too_many_items")];
      turn.assistant.add(messageID);
    }
    if (typeof info.finish === "string") turn.finish = str(info.finish, 50);
    if (isObject(info.error)) turn.error = errorOf(info.error);
    const completed = isObject(info.time) && typeof info.time.completed === "number";
    turn.done = completed && turn.finish !== "tool-calls";
    return [];
  }

  // The turn a part belongs to: the running one (once the server took our message), or
  // the one before (events after its end), or none.
  #turnOf(messageID: string): { turn: TurnState; late: boolean } | undefined {
    const turn = this.#current;
    if ((turn && messageID === turn.messageID) || messageID === this.#previous?.messageID) return undefined;
    if (turn?.acknowledged && (turn.assistant.has(messageID) || !this.#previous?.assistant.has(messageID))) return { turn, late: false };
    if (this.#previous?.assistant.has(messageID)) return { turn: this.#previous, late: true };
    return undefined;
  }

  #partUpdated(type: string, properties: Json): ParsedOutput[] {
    const part = properties.part;
    if (!isObject(part)) return [raw(type, properties, "malformed")];
    const messageID = id(part.messageID);
    const partID = id(part.id);
    if (!messageID || !partID) return [raw(type, properties, "malformed")];
    if (this.#current?.messageID === messageID || this.#previous?.messageID === messageID) return []; // our own prompt, echoed
    const owner = this.#turnOf(messageID);
    const kind = str(part.type, 50);
    if (!owner) return QUIET_PARTS.has(kind) ? [] : [raw(type, properties, "outside_turn")];
    const { turn, late } = owner;
    switch (kind) {
      case "text":
      case "reasoning": {
        if (late) return [];
        let known = turn.parts.get(partID);
        if (!known) {
          if (turn.parts.size >= MAX_ITEMS) return [raw(type, properties, "too_many_items")];
          known = { kind, text: "" };
          turn.parts.set(partID, known);
        }
        if (typeof part.text !== "string") return [];
        const out: ParsedOutput[] = [];
        // The full text so far: what the deltas did not bring yet is sent now.
        if (part.text.length > known.text.length && part.text.startsWith(known.text)) {
          out.push(known.kind === "text" ? textDelta(part.text.slice(known.text.length)) : thinkingDelta(part.text.slice(known.text.length)));
          known.text = part.text;
        }
        if (known.kind === "text" && part.synthetic !== true && part.text) turn.lastText = part.text;
        return out;
      }
      case "tool":
        return this.#tool(type, properties, part, partID, turn);
      case "step-finish": {
        if (late || turn.steps.has(partID)) return [];
        if (turn.steps.size >= MAX_ITEMS) return [raw(type, properties, "too_many_items")];
        turn.steps.add(partID);
        const tokens = isObject(part.tokens) ? part.tokens : {};
        const cache = isObject(tokens.cache) ? tokens.cache : {};
        turn.usage.input += num(tokens.input);
        turn.usage.output += num(tokens.output) + num(tokens.reasoning);
        turn.usage.cacheRead += num(cache.read);
        turn.usage.cacheWrite += num(cache.write);
        turn.cost += typeof part.cost === "number" && Number.isFinite(part.cost) && part.cost >= 0 ? part.cost : 0;
        return [];
      }
      default:
        return QUIET_PARTS.has(kind) ? [] : [raw(type, properties, "unknown_part")];
    }
  }

  #tool(type: string, properties: Json, part: Json, partID: string, turn: TurnState): ParsedOutput[] {
    const callID = id(part.callID) || partID;
    const state = isObject(part.state) ? part.state : undefined;
    const status = str(state?.status, 50);
    if (!state || !["pending", "running", "completed", "error"].includes(status)) return [raw(type, properties, "malformed")];
    let known = turn.tools.get(callID);
    if (!known) {
      if (turn.tools.size >= MAX_ITEMS) return [raw(type, properties, "too_many_items")];
      known = { used: false, done: false, input: {} };
      turn.tools.set(callID, known);
    }
    const out: ParsedOutput[] = [];
    const input = isObject(state.input) ? state.input : {};
    if (Object.keys(input).length > 0) known.input = input;
    // A pending call has no input yet (the model still streams it): it is announced once
    // it has one, or runs, or ends.
    if (!known.used && (status !== "pending" || Object.keys(input).length > 0)) {
      known.used = true;
      const name = str(part.tool, 200) || "unknown";
      out.push(
        event({
          case: "toolUse",
          value: create(ToolUseSchema, { toolUseId: callID, name, inputJson: JSON.stringify(input), modifiedPaths: modifiedPaths(name, input) }),
        }),
      );
    }
    if (!known.done && (status === "completed" || status === "error")) {
      known.done = true;
      const time = isObject(state.time) ? state.time : {};
      const ms = num(time.end) - num(time.start);
      if (num(time.start) > 0 && ms > 0 && ms < 7 * 24 * 3600_000) turn.toolMs += ms;
      const isError = status === "error";
      const content = isError ? str(state.error, 1024 * 1024) : str(state.output, 1024 * 1024);
      const structured = isObject(state.metadata) ? JSON.stringify(state.metadata) : "";
      out.push(event({ case: "toolResult", value: create(ToolResultSchema, { toolUseId: callID, content, isError, structuredJson: structured }) }));
    }
    return out;
  }

  #partDelta(type: string, properties: Json): ParsedOutput[] {
    const messageID = id(properties.messageID);
    const partID = id(properties.partID);
    if (!messageID || !partID || typeof properties.delta !== "string") return [raw(type, properties, "malformed")];
    const owner = this.#turnOf(messageID);
    if (!owner || owner.late) return [raw(type, properties, "outside_turn")];
    const known = owner.turn.parts.get(partID);
    if (!known || (properties.field !== undefined && properties.field !== "text")) return [raw(type, properties, "unknown_part")];
    known.text += properties.delta;
    return [known.kind === "text" ? textDelta(properties.delta) : thinkingDelta(properties.delta)];
  }

  #status(type: string, properties: Json): ParsedOutput[] {
    const status = isObject(properties.status) ? properties.status : undefined;
    if (!status) return [raw(type, properties, "malformed")];
    if (status.type === "busy" || status.type === "idle") return [];
    if (status.type === "retry") {
      const message = `attempt ${num(status.attempt)}: ${str(status.message, 2048)}`;
      return [event({ case: "error", value: create(ErrorEventSchema, { code: "api_retry", message }) })];
    }
    return [raw(type, properties, "unknown_status")];
  }

  #error(type: string, properties: Json): ParsedOutput[] {
    const error = isObject(properties.error) ? errorOf(properties.error) : { name: "UnknownError", message: "" };
    const turn = this.#current;
    if (!turn) return [raw(type, properties, "outside_turn")];
    if (!turn.acknowledged) {
      // An abort's error comes late (an earlier interrupt's); any other may be the server
      // refusing this very prompt before it stored it.
      if (error.name !== "MessageAbortedError") turn.earlyError = error;
      return [];
    }
    turn.error = error;
    if (error.name === "MessageAbortedError") return [];
    return [event({ case: "error", value: create(ErrorEventSchema, { code: error.name.slice(0, 100), message: error.message }) })];
  }

  #idle(): ParsedOutput[] {
    const turn = this.#current;
    if (!turn) return [];
    if (!turn.acknowledged) {
      if (!turn.earlyError) return []; // an idle an earlier abort left behind
      return this.fail(`${turn.earlyError.name}: ${turn.earlyError.message}`);
    }
    // An abort's idles can also come after the server showed the next message: an idle
    // ends the turn only once its last step has finished, or it failed.
    if (!turn.done && !turn.error) return [];
    this.#current = undefined;
    this.#previous = turn;
    const error = turn.error;
    const outcome = !error ? TurnOutcome.COMPLETED : error.name === "MessageAbortedError" ? TurnOutcome.INTERRUPTED : TurnOutcome.FAILED;
    const turnEnded = create(TurnEndedSchema, {
      outcome,
      result: turn.lastText,
      usage: create(UsageSchema, {
        inputTokens: BigInt(turn.usage.input),
        outputTokens: BigInt(turn.usage.output),
        cacheReadTokens: BigInt(turn.usage.cacheRead),
        cacheWriteTokens: BigInt(turn.usage.cacheWrite),
      }),
      costUsd: turn.cost,
      toolDurationMs: BigInt(turn.toolMs),
      numTurns: turn.steps.size,
      errorMessage: !error ? "" : outcome === TurnOutcome.INTERRUPTED ? "interrupted" : `${error.name}: ${error.message}`.slice(0, 4096),
      providerSubtype: error ? error.name.slice(0, 50) : turn.finish,
      // The turn's last message (a fork at this turn copies up to it); ids ascend.
      providerTurnRef: [...turn.assistant].sort().at(-1) ?? turn.messageID,
    });
    return [...this.#withdrawAll(), { type: "turn_end", turnEnded }];
  }
}

function errorOf(error: Json): { name: string; message: string } {
  const data = isObject(error.data) ? error.data : {};
  return { name: str(error.name, 100) || "UnknownError", message: str(data.message, 4096) || str(error.message, 4096) };
}

/** The files a call writes, from its input: the file tools' `filePath`, a patch's file headers. */
export function modifiedPaths(tool: string, input: Json): string[] {
  if (FILE_TOOLS.has(tool)) {
    const file = str(input.filePath, 4096);
    return file ? [file] : [];
  }
  if (tool === "apply_patch" || tool === "patch") {
    const text = str(input.patchText, 1024 * 1024) || str(input.patch, 1024 * 1024);
    const files = new Set<string>();
    for (const match of text.matchAll(/^\*\*\* (?:Add File|Update File|Delete File|Move to): (.{1,4096})$/gm)) {
      if (files.size >= 1000) break;
      files.add(match[1]!.trim());
    }
    return [...files];
  }
  return [];
}

function event(payload: EventPayload): ParsedOutput {
  return { type: "event", payload };
}

function textDelta(text: string): ParsedOutput {
  return event({ case: "textDelta", value: create(TextDeltaSchema, { text }) });
}

function thinkingDelta(text: string): ParsedOutput {
  return event({ case: "thinkingDelta", value: create(ThinkingDeltaSchema, { text }) });
}

/** An event the model cannot hold, kept whole. */
export function raw(type: string, properties: unknown, reason: string): ParsedOutput {
  let line: string;
  try {
    line = JSON.stringify({ type, properties });
  } catch {
    line = JSON.stringify({ type });
  }
  return { type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line, reason }) } };
}
