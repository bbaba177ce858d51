import { create, toBinary } from "@bufbuild/protobuf";
import { modifiedPathsOf } from "../providers/claude-code/parser.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  type Event,
  EventSchema,
  TextDeltaSchema,
  ToolResultSchema,
  ToolUseSchema,
  TurnEndedSchema,
  TurnOutcome,
  TurnStartedSchema,
  UsageSchema,
} from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatsSchema } from "../../gen/hotplex/v1/session_pb.js";
import { StatsAccumulator } from "./stats.js";

let seq = 0n;
function event(payload: Event["payload"]): Event {
  seq += 1n;
  return create(EventSchema, { seq, sessionId: "s1", turnId: "t", payload });
}

const turnStarted = () => event({ case: "turnStarted", value: create(TurnStartedSchema, {}) });
const text = (value: string) => event({ case: "textDelta", value: create(TextDeltaSchema, { text: value }) });
// The files a call writes, as the provider's parser names them (Claude Code's tools here).
const toolUse = (toolUseId: string, name: string, input: unknown = {}) =>
  event({
    case: "toolUse",
    value: create(ToolUseSchema, { toolUseId, name, inputJson: JSON.stringify(input), modifiedPaths: modifiedPathsOf(name, input) }),
  });
const toolResult = (toolUseId: string, isError = false) =>
  event({ case: "toolResult", value: create(ToolResultSchema, { toolUseId, content: isError ? "Error" : "ok", isError }) });
const turnEnded = (init: MessageInitShape<typeof TurnEndedSchema>) => event({ case: "turnEnded", value: create(TurnEndedSchema, init) });
const usage = (input: number, output: number, cacheRead: number, cacheWrite: number) =>
  create(UsageSchema, { inputTokens: BigInt(input), outputTokens: BigInt(output), cacheReadTokens: BigInt(cacheRead), cacheWriteTokens: BigInt(cacheWrite) });

function accumulate(events: Event[]): StatsAccumulator {
  const acc = new StatsAccumulator();
  for (const e of events) acc.apply(e);
  return acc;
}

describe("StatsAccumulator", () => {
  it("starts at zero", () => {
    expect(new StatsAccumulator().stats).toMatchObject({ turns: 0, failedTurns: 0, costUsd: 0, toolCalls: 0, toolsUsed: {}, modifiedFiles: [] });
  });

  it("sums two turns' usage, cost and durations exactly once", () => {
    const { stats } = accumulate([
      turnStarted(),
      text("hi"),
      turnEnded({
        outcome: TurnOutcome.COMPLETED,
        usage: usage(10, 20, 30, 40),
        costUsd: 0.25,
        durationMs: 1000n,
        thinkingDurationMs: 100n,
        toolDurationMs: 200n,
        generationDurationMs: 300n,
        numTurns: 1,
      }),
      turnStarted(),
      turnEnded({
        outcome: TurnOutcome.COMPLETED,
        usage: usage(1, 2, 3, 4),
        costUsd: 0.5,
        durationMs: 500n,
        thinkingDurationMs: 10n,
        toolDurationMs: 20n,
        generationDurationMs: 30n,
        numTurns: 3,
      }),
    ]);
    expect(stats).toMatchObject({
      turns: 2,
      failedTurns: 0,
      inputTokens: 11n,
      outputTokens: 22n,
      cacheReadTokens: 33n,
      cacheWriteTokens: 44n,
      costUsd: 0.75,
      totalDurationMs: 1500n,
      thinkingDurationMs: 110n,
      toolDurationMs: 220n,
      generationDurationMs: 330n,
      toolCalls: 0,
    });
  });

  it("counts a turn without usage, adding no tokens", () => {
    const { stats } = accumulate([turnEnded({ outcome: TurnOutcome.COMPLETED, costUsd: 0.1 })]);
    expect(stats).toMatchObject({ turns: 1, inputTokens: 0n, outputTokens: 0n, costUsd: 0.1 });
  });

  it("counts every turn that did not complete in failedTurns", () => {
    const { stats } = accumulate([
      turnEnded({ outcome: TurnOutcome.COMPLETED }),
      turnEnded({ outcome: TurnOutcome.FAILED, errorMessage: "API Error: 529", usage: usage(5, 0, 0, 0), costUsd: 0.01 }),
      turnEnded({ outcome: TurnOutcome.INTERRUPTED }),
      turnEnded({ outcome: TurnOutcome.STOPPED }),
      turnEnded({ outcome: TurnOutcome.TIMED_OUT }),
      turnEnded({ outcome: TurnOutcome.COMPLETED }),
    ]);
    expect(stats.turns).toBe(6);
    expect(stats.failedTurns).toBe(4);
    expect(stats.inputTokens).toBe(5n); // a failed turn's usage still counts
    expect(stats.costUsd).toBe(0.01);
  });

  it("ignores a negative cost", () => {
    const { stats } = accumulate([turnEnded({ outcome: TurnOutcome.COMPLETED, costUsd: 0.2 }), turnEnded({ outcome: TurnOutcome.COMPLETED, costUsd: -5 })]);
    expect(stats.costUsd).toBe(0.2);
  });

  it("counts tool calls and calls per tool", () => {
    const { stats } = accumulate([
      toolUse("t1", "Bash", { command: "ls" }),
      toolResult("t1"),
      toolUse("t2", "Read", { file_path: "a" }),
      toolUse("t3", "Bash", { command: "pwd" }),
      toolResult("t3", true),
      turnEnded({ outcome: TurnOutcome.COMPLETED }),
      toolUse("t4", "mcp__srv__tool"),
    ]);
    expect(stats.toolCalls).toBe(4);
    expect(stats.toolsUsed).toEqual({ Bash: 2, Read: 1, mcp__srv__tool: 1 });
    expect(stats.modifiedFiles).toEqual([]);
  });

  it("counts tools whose names collide with Object.prototype members, and the stats still serialize", () => {
    const { stats } = accumulate([toolUse("t1", "constructor"), toolUse("t2", "toString"), toolUse("t3", "constructor"), toolUse("t4", "__proto__")]);
    expect(stats.toolCalls).toBe(4);
    expect(Object.entries(stats.toolsUsed)).toEqual([["constructor", 2], ["toString", 1], ["__proto__", 1]]);
    expect(() => toBinary(SessionStatsSchema, stats)).not.toThrow();
  });

  it("records the files of successful Write, Edit, MultiEdit and NotebookEdit calls, each once, in first-modified order", () => {
    const { stats } = accumulate([
      toolUse("w1", "Write", { file_path: "/w/a.ts", content: "x" }),
      toolResult("w1"),
      toolUse("e1", "Edit", { file_path: "/w/b.ts", old_string: "a", new_string: "b" }),
      toolUse("m1", "MultiEdit", { file_path: "/w/c.ts", edits: [] }),
      toolResult("m1"),
      toolResult("e1"),
      toolUse("n1", "NotebookEdit", { notebook_path: "/w/d.ipynb", new_source: "" }),
      toolResult("n1"),
      toolUse("e2", "Edit", { file_path: "/w/a.ts", old_string: "x", new_string: "y" }),
      toolResult("e2"),
      turnEnded({ outcome: TurnOutcome.COMPLETED }),
      toolUse("w2", "Write", { file_path: "/w/a.ts", content: "z" }),
      toolResult("w2"),
      turnEnded({ outcome: TurnOutcome.COMPLETED }),
    ]);
    expect(stats.modifiedFiles).toEqual(["/w/a.ts", "/w/c.ts", "/w/b.ts", "/w/d.ipynb"]);
    expect(stats.toolsUsed).toEqual({ Write: 2, Edit: 2, MultiEdit: 1, NotebookEdit: 1 });
  });

  it("does not record a file edit whose result is an error", () => {
    const { stats } = accumulate([
      toolUse("w1", "Write", { file_path: "/w/refused.ts", content: "x" }),
      toolResult("w1", true),
      turnEnded({ outcome: TurnOutcome.COMPLETED }),
    ]);
    expect(stats.modifiedFiles).toEqual([]);
    expect(stats.toolCalls).toBe(1);
  });

  it("does not record a file edit whose result never comes, even if a later turn reuses its id", () => {
    const { stats } = accumulate([
      toolUse("w1", "Write", { file_path: "/w/lost.ts", content: "x" }),
      turnEnded({ outcome: TurnOutcome.INTERRUPTED }),
      toolResult("w1"),
      turnEnded({ outcome: TurnOutcome.COMPLETED }),
    ]);
    expect(stats.modifiedFiles).toEqual([]);
  });

  it("ignores the path field of tools that do not edit files, and edits without a usable path", () => {
    const { stats } = accumulate([
      toolUse("r1", "Read", { file_path: "/w/read.ts" }),
      toolResult("r1"),
      toolUse("w1", "Write", { content: "no path" }),
      toolResult("w1"),
      toolUse("w2", "Write", { file_path: "" }),
      toolResult("w2"),
      toolUse("n1", "NotebookEdit", { file_path: "/w/wrong-field.ipynb" }),
      toolResult("n1"),
      event({ case: "toolUse", value: create(ToolUseSchema, { toolUseId: "w3", name: "Write", inputJson: "{not json" }) }),
      toolResult("w3"),
      toolResult("unknown-id"),
    ]);
    expect(stats.modifiedFiles).toEqual([]);
    expect(stats.toolCalls).toBe(5);
  });
});
