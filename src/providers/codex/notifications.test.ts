import { describe, expect, it } from "vitest";
import { TurnOutcome } from "../../events/event.js";
import type { ParsedOutput } from "../provider.js";
import { CodexNotifications } from "./notifications.js";

const THREAD = "01a2344c-2645-7000-8000-000000000001";

function run(notes: CodexNotifications, ...messages: [string, unknown][]): ParsedOutput[] {
  return messages.flatMap(([method, params]) => notes.map(method, params));
}

const cases = (items: ParsedOutput[]) => items.map((item) => (item.type === "event" ? item.payload.case : item.type));

describe("CodexNotifications", () => {
  it("maps a turn: start, message deltas, reasoning, usage and completion", () => {
    const notes = new CodexNotifications(THREAD);
    const out = run(
      notes,
      ["turn/started", { threadId: THREAD, turn: { id: "turn-1", status: "inProgress" } }],
      ["item/started", { threadId: THREAD, item: { type: "userMessage", id: "u1" } }],
      ["item/reasoning/summaryTextDelta", { threadId: THREAD, delta: "Thinking" }],
      ["item/agentMessage/delta", { threadId: THREAD, itemId: "m1", delta: "Hello " }],
      ["item/agentMessage/delta", { threadId: THREAD, itemId: "m1", delta: "there" }],
      ["item/completed", { threadId: THREAD, item: { type: "agentMessage", id: "m1", text: "Hello there" } }],
      ["thread/tokenUsage/updated", { threadId: THREAD, tokenUsage: { last: { inputTokens: 10, outputTokens: 3, cachedInputTokens: 2 } } }],
      ["account/rateLimits/updated", { rateLimits: {} }],
      ["turn/completed", { threadId: THREAD, turn: { id: "turn-1", status: "completed", error: null } }],
    );
    expect(cases(out)).toEqual(["turn_start", "thinkingDelta", "textDelta", "textDelta", "turn_end"]);
    expect(out[0]).toEqual({ type: "turn_start", providerSessionId: THREAD, model: "" });
    const end = out.at(-1);
    if (end?.type !== "turn_end") throw new Error("no turn end");
    expect(end.turnEnded.outcome).toBe(TurnOutcome.COMPLETED);
    expect(end.turnEnded.result).toBe("Hello there");
    expect(end.turnEnded.usage).toMatchObject({ inputTokens: 10n, outputTokens: 3n, cacheReadTokens: 2n });
    // The turn's id, what thread/fork takes to fork up to this turn.
    expect(end.turnEnded.providerTurnRef).toBe("turn-1");
    expect(notes.turnId).toBe("");
  });

  it("maps command executions and file changes to tool calls, the changed files named", () => {
    const notes = new CodexNotifications(THREAD);
    const out = run(
      notes,
      ["item/started", { threadId: THREAD, item: { type: "commandExecution", id: "c1", command: "/bin/bash -lc 'echo hi'", cwd: "/w" } }],
      ["item/commandExecution/outputDelta", { threadId: THREAD, delta: "h" }],
      ["item/completed", { threadId: THREAD, item: { type: "commandExecution", id: "c1", status: "completed", aggregatedOutput: "hi\n", exitCode: 0 } }],
      ["item/started", { threadId: THREAD, item: { type: "fileChange", id: "f1", changes: [{ path: "/w/a.txt", kind: { type: "add" } }] } }],
      ["item/completed", { threadId: THREAD, item: { type: "fileChange", id: "f1", status: "completed", changes: [{ path: "/w/a.txt", kind: { type: "add" } }] } }],
      ["item/completed", { threadId: THREAD, item: { type: "commandExecution", id: "c2", status: "completed", aggregatedOutput: "", exitCode: 2 } }],
    );
    expect(cases(out)).toEqual(["toolUse", "toolResult", "toolUse", "toolResult", "toolResult"]);
    const [use, result, edit, , failed] = out;
    expect(use?.type === "event" && use.payload.case === "toolUse" && use.payload.value).toMatchObject({ toolUseId: "c1", name: "shell" });
    expect(result?.type === "event" && result.payload.case === "toolResult" && result.payload.value).toMatchObject({ content: "hi\n", isError: false });
    expect(edit?.type === "event" && edit.payload.case === "toolUse" && edit.payload.value.modifiedPaths).toEqual(["/w/a.txt"]);
    expect(failed?.type === "event" && failed.payload.case === "toolResult" && failed.payload.value.isError).toBe(true);
  });

  it("ends interrupted and failed turns with their outcome and the agent's error", () => {
    const notes = new CodexNotifications(THREAD);
    const [interrupted] = notes.map("turn/completed", { threadId: THREAD, turn: { status: "interrupted" } });
    const [failed] = notes.map("turn/completed", { threadId: THREAD, turn: { status: "failed", error: { message: "high demand" } } });
    const [odd] = notes.map("turn/completed", { threadId: THREAD, turn: { status: "exploded" } });
    expect(interrupted?.type === "turn_end" && interrupted.turnEnded.outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(failed?.type === "turn_end" && failed.turnEnded).toMatchObject({ outcome: TurnOutcome.FAILED, errorMessage: "high demand" });
    expect(odd?.type === "turn_end" && odd.turnEnded).toMatchObject({ outcome: TurnOutcome.FAILED, errorMessage: 'the turn ended "exploded"' });
    const [hostile] = notes.map("turn/completed", { threadId: THREAD, turn: { id: "../../etc", status: "completed" } });
    expect(hostile?.type === "turn_end" && hostile.turnEnded.providerTurnRef).toBe("");
  });

  it("keeps what it cannot map as raw output, never drops it, and takes hostile values without throwing", () => {
    const notes = new CodexNotifications(THREAD);
    const out = run(
      notes,
      ["something/new", { threadId: THREAD, x: 1 }],
      ["item/started", { threadId: THREAD, item: { type: "webSearch", id: "w" } }],
      ["item/agentMessage/delta", "not an object"],
      ["item/agentMessage/delta", { threadId: "another-thread", delta: "theirs" }],
      ["item/agentMessage/delta", { threadId: THREAD, delta: 42 }],
      ["item/completed", { threadId: THREAD, item: { type: "commandExecution", id: ["x"], exitCode: "0", aggregatedOutput: {} } }],
      ["thread/tokenUsage/updated", { threadId: THREAD, tokenUsage: { last: { inputTokens: -5, outputTokens: Number.NaN } } }],
      ["error", { threadId: THREAD, error: { message: "m".repeat(10_000), codexErrorInfo: "c".repeat(500) } }],
    );
    expect(out.map((item) => (item.type === "event" && item.payload.case === "raw" ? item.payload.value.reason : cases([item])[0]))).toEqual([
      "unknown_type",
      "unknown_item",
      "malformed",
      "other_thread",
      "textDelta",
      "toolResult",
      "error",
    ]);
    const error = out.at(-1);
    expect(error?.type === "event" && error.payload.case === "error" && error.payload.value.message.length).toBe(4096);
    expect(error?.type === "event" && error.payload.case === "error" && error.payload.value.code.length).toBe(100);
  });
});
