// Maps Claude Code's `result` line (the only reliable end-of-turn signal) to a TurnEnded.

import { create } from "@bufbuild/protobuf";
import { TurnEndedSchema, TurnOutcome, UsageSchema } from "../../events/event.js";
import type { TurnEnded, Usage } from "../../events/event.js";
import { isObject, num, str } from "./content.js";
import type { JsonObject } from "./content.js";

/** What the parser measured during the turn, in milliseconds. */
export interface TurnDurations {
  thinkingMs: number;
  toolMs: number;
  generationMs: number;
}

// terminal_reason values of an `error_during_execution` result caused by an interrupt
// (while waiting on or streaming from the API, or while a tool ran).
const INTERRUPT_REASONS = new Set(["aborted_streaming", "aborted_tools"]);

const MAX_UINT32 = 0xffff_ffff;

/**
 * Builds the TurnEnded of a result line. `costUsd` is this turn's cost, already derived
 * from the process-cumulative `total_cost_usd` by the caller. duration_ms stays 0: the
 * session measures the turn's wall time itself.
 */
export function turnEndedFromResult(line: JsonObject, costUsd: number, durations: TurnDurations): TurnEnded {
  const subtype = str(line.subtype) ?? "";
  const result = str(line.result) ?? "";
  const outcome = outcomeOf(line, subtype);
  return create(TurnEndedSchema, {
    outcome,
    result,
    usage: usageOf(line.usage),
    costUsd,
    thinkingDurationMs: millis(durations.thinkingMs),
    toolDurationMs: millis(durations.toolMs),
    generationDurationMs: millis(durations.generationMs),
    numTurns: Math.min(Math.trunc(Math.max(0, num(line.num_turns) ?? 0)), MAX_UINT32),
    errorMessage: outcome === TurnOutcome.COMPLETED ? "" : errorMessageOf(line, subtype, result),
    providerSubtype: subtype,
  });
}

/** Why a result line did not complete its turn (also used for a startup failure). */
export function errorMessageOf(line: JsonObject, subtype: string, result: string): string {
  const errors = Array.isArray(line.errors) ? line.errors.filter((e): e is string => typeof e === "string") : [];
  const joined = errors.join("; ");
  // An API error is reported as subtype "success" with the error in the result text
  // ("API Error: 400 ..."); every other failure lists its reasons in `errors`.
  const first = subtype === "success" ? result : joined;
  const second = subtype === "success" ? joined : result;
  if (first !== "") return first;
  if (second !== "") return second;
  const status = num(line.api_error_status);
  if (status !== undefined) return `model API error ${status}`;
  return subtype === "" ? "agent result without a subtype" : `agent ended the turn with ${subtype}`;
}

function outcomeOf(line: JsonObject, subtype: string): TurnOutcome {
  if (subtype === "success") return line.is_error === true ? TurnOutcome.FAILED : TurnOutcome.COMPLETED;
  const reason = str(line.terminal_reason) ?? "";
  if (subtype === "error_during_execution" && INTERRUPT_REASONS.has(reason)) return TurnOutcome.INTERRUPTED;
  // error_max_turns, other error_* subtypes, and anything newer we do not know.
  return TurnOutcome.FAILED;
}

function usageOf(usage: unknown): Usage {
  const u = isObject(usage) ? usage : {};
  return create(UsageSchema, {
    inputTokens: tokens(u.input_tokens),
    outputTokens: tokens(u.output_tokens),
    cacheReadTokens: tokens(u.cache_read_input_tokens),
    cacheWriteTokens: tokens(u.cache_creation_input_tokens),
  });
}

// A token count as uint64: missing, negative or non-numeric values count as 0 so that a
// malformed field can neither throw nor make totals go negative.
function tokens(value: unknown): bigint {
  const n = num(value);
  if (n === undefined || n <= 0) return 0n;
  return BigInt(Math.min(Math.trunc(n), Number.MAX_SAFE_INTEGER));
}

function millis(ms: number): bigint {
  return Number.isFinite(ms) && ms > 0 ? BigInt(Math.round(ms)) : 0n;
}
