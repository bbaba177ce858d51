import { describe, expect, it } from "vitest";
import { TurnOutcome } from "../../events/event.js";
import type { ParsedOutput } from "../provider.js";
import { acpQuirks } from "./quirks.js";
import { AcpUpdates } from "./updates.js";

const SID = "5260ddda-b678-4f28-b385-f40b9cd0daf2";
const update = (u: Record<string, unknown>, sessionId: unknown = SID) => ({ sessionId, update: u });
const gemini = () => new AcpUpdates(SID, { toolName: acpQuirks("gemini").toolName });

function only(items: ParsedOutput[]) {
  expect(items).toHaveLength(1);
  return items[0]!;
}
function payload(item: ParsedOutput) {
  if (item.type !== "event") throw new Error(`not an event: ${item.type}`);
  return item.payload;
}
function turnEnded(items: ParsedOutput[]) {
  const end = items.at(-1);
  if (end?.type !== "turn_end") throw new Error("no turn_end last");
  return end.turnEnded;
}

describe("ACP session/update mapping", () => {
  it("maps message and thought chunks to text and thinking deltas, and keeps the answer for the turn's end", () => {
    const u = gemini();
    expect(payload(only(u.map(update({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: "Hello " } }))))).toMatchObject({
      case: "textDelta",
      value: { text: "Hello " },
    });
    u.map(update({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: "world" } }));
    expect(payload(only(u.map(update({ sessionUpdate: "agent_thought_chunk", content: { type: "text", text: "**Pondering**\nthe plan" } }))))).toMatchObject({
      case: "thinkingDelta",
      value: { text: "**Pondering**\nthe plan" },
    });
    const end = turnEnded(u.turnEnd({ stopReason: "end_turn", _meta: { quota: { token_count: { input_tokens: 12021, output_tokens: 22 } } } }));
    expect(end.outcome).toBe(TurnOutcome.COMPLETED);
    expect(end.result).toBe("Hello world");
    expect(end.usage?.inputTokens).toBe(12021n);
    expect(end.usage?.outputTokens).toBe(22n);
    expect(end.providerSubtype).toBe("end_turn");
    // The next turn's answer starts empty.
    expect(turnEnded(u.turnEnd({ stopReason: "end_turn" })).result).toBe("");
  });

  it("maps a tool call and its completion to ToolUse and ToolResult, named by Gemini's call id", () => {
    const u = gemini();
    const use = payload(
      only(
        u.map(
          update({
            sessionUpdate: "tool_call",
            toolCallId: "run_shell_command__call_mock_1",
            status: "in_progress",
            title: "echo hi",
            content: [{ type: "content", content: { type: "text", text: "[current working directory /w]" } }],
            locations: [],
            kind: "execute",
          }),
        ),
      ),
    );
    expect(use.case).toBe("toolUse");
    if (use.case !== "toolUse") return;
    expect(use.value.toolUseId).toBe("run_shell_command__call_mock_1");
    expect(use.value.name).toBe("run_shell_command");
    expect(JSON.parse(use.value.inputJson)).toMatchObject({ title: "echo hi", kind: "execute", content: "[current working directory /w]" });
    expect(use.value.modifiedPaths).toEqual([]);
    const result = payload(only(u.map(update({ sessionUpdate: "tool_call_update", toolCallId: "run_shell_command__call_mock_1", status: "completed", content: [] }))));
    expect(result).toMatchObject({ case: "toolResult", value: { toolUseId: "run_shell_command__call_mock_1", isError: false, content: "" } });
  });

  it("reports a call first seen in its update (no tool_call before a permission), with the files an edit writes", () => {
    const u = gemini();
    const items = u.map(
      update({
        sessionUpdate: "tool_call_update",
        toolCallId: "write_file__call_mock_2",
        status: "completed",
        kind: "edit",
        title: "Writing to note.txt",
        locations: [{ path: "/w/note.txt" }],
        content: [{ type: "diff", path: "/w/note.txt", oldText: "", newText: "hello\n" }],
      }),
    );
    expect(items.map((i) => payload(i).case)).toEqual(["toolUse", "toolResult"]);
    const use = payload(items[0]!);
    expect(use.case === "toolUse" && use.value.modifiedPaths).toEqual(["/w/note.txt"]);
    const result = payload(items[1]!);
    expect(result.case === "toolResult" && result.value.content).toBe("[diff /w/note.txt]");
  });

  it("marks a failed tool call as an error, and a generic agent's tool by its kind", () => {
    const u = new AcpUpdates(SID);
    u.map(update({ sessionUpdate: "tool_call", toolCallId: "t1", kind: "read", title: "a.txt", locations: [{ path: "/w/a.txt" }] }));
    const result = payload(only(u.map(update({ sessionUpdate: "tool_call_update", toolCallId: "t1", status: "failed", content: [{ type: "content", content: { type: "text", text: "no such file" } }] }))));
    expect(result).toMatchObject({ case: "toolResult", value: { isError: true, content: "no such file" } });
    // A read names no modified file; the generic agent's tool is named by its kind.
    const u2 = new AcpUpdates(SID);
    const use = payload(only(u2.map(update({ sessionUpdate: "tool_call", toolCallId: "t2", kind: "read", locations: [{ path: "/w/a.txt" }] }))));
    expect(use.case === "toolUse" && [use.value.name, use.value.modifiedPaths]).toEqual(["read", []]);
  });

  it("closes tool calls the agent never ended (a refused permission) when the turn ends", () => {
    const u = gemini();
    u.permissionAsked({ toolCallId: "run_shell_command__call_mock_3", status: "pending", title: "touch x", kind: "execute" });
    u.map(update({ sessionUpdate: "tool_call", toolCallId: "other__1", kind: "execute" }));
    expect(u.permissionRefused("run_shell_command__call_mock_3", "refused: no approvals").map((i) => payload(i))).toMatchObject([
      { case: "toolResult", value: { toolUseId: "run_shell_command__call_mock_3", isError: true, content: "refused: no approvals" } },
    ]);
    const items = u.turnEnd({ stopReason: "end_turn" });
    expect(items.map((i) => i.type)).toEqual(["event", "turn_end"]);
    expect(payload(items[0]!)).toMatchObject({ case: "toolResult", value: { toolUseId: "other__1", isError: true } });
  });

  it("maps stop reasons to outcomes, and a JSON-RPC error to FAILED with its message", () => {
    const outcome = (stopReason: unknown) => turnEnded(gemini().turnEnd({ stopReason })).outcome;
    expect(outcome("end_turn")).toBe(TurnOutcome.COMPLETED);
    expect(outcome("cancelled")).toBe(TurnOutcome.INTERRUPTED);
    for (const reason of ["refusal", "max_tokens", "max_turn_requests", "something_new", undefined, 42]) expect(outcome(reason)).toBe(TurnOutcome.FAILED);
    expect(turnEnded(gemini().turnEnd({ stopReason: "max_tokens" })).errorMessage).toMatch(/token limit/);
    const failed = turnEnded(gemini().turnFailed('{"error":{"code":500,"message":"Mock error 500"}}'));
    expect(failed.outcome).toBe(TurnOutcome.FAILED);
    expect(failed.errorMessage).toContain("Mock error 500");
    // ACP's own usage field wins over Gemini's _meta.
    const usage = turnEnded(gemini().turnEnd({ stopReason: "end_turn", usage: { inputTokens: 5, outputTokens: 6, cachedReadTokens: 7, totalTokens: 18 } })).usage;
    expect([usage?.inputTokens, usage?.outputTokens, usage?.cacheReadTokens]).toEqual([5n, 6n, 7n]);
  });

  it("keeps what it cannot map raw, never throws, and bounds what it keeps", () => {
    const u = gemini();
    const reasons = (params: unknown) => u.map(params).map((i) => (payload(i).case === "raw" ? (payload(i).value as { reason: string }).reason : payload(i).case));
    expect(reasons(null)).toEqual(["malformed"]);
    expect(reasons("x")).toEqual(["malformed"]);
    expect(reasons({ sessionId: SID })).toEqual(["malformed"]);
    expect(reasons({ sessionId: SID, update: { sessionUpdate: 7 } })).toEqual(["malformed"]);
    expect(reasons(update({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: "x" } }, "someone-else"))).toEqual(["other_session"]);
    expect(reasons(update({ sessionUpdate: "agent_message_chunk", content: { type: "image", data: "..." } }))).toEqual(["non_text_content"]);
    expect(reasons(update({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: 5 } }))).toEqual(["non_text_content"]);
    expect(reasons(update({ sessionUpdate: "plan", entries: [] }))).toEqual(["unknown_type"]);
    expect(reasons(update({ sessionUpdate: "available_commands_update", availableCommands: [] }))).toEqual(["unknown_type"]);
    expect(reasons(update({ sessionUpdate: "tool_call" }))).toEqual(["malformed"]);
    expect(reasons(update({ sessionUpdate: "tool_call", toolCallId: 12 }))).toEqual(["malformed"]);
    expect(reasons(update({ sessionUpdate: "tool_call", toolCallId: "a__1", locations: "nope", content: { not: "an array" } }))).toEqual(["toolUse"]);
    expect(reasons(update({ sessionUpdate: "tool_call", toolCallId: "a__1" }))).toEqual(["duplicate_tool_call"]);
    expect(reasons(update({ sessionUpdate: "tool_call_update", toolCallId: "a__1", status: "in_progress" }))).toEqual(["tool_progress"]);
    expect(reasons(update({ sessionUpdate: "tool_call_update", toolCallId: "a__1", status: "completed", content: [null, 1, { type: "weird" }] }))).toEqual(["toolResult"]);
    expect(reasons(update({ sessionUpdate: "tool_call_update", toolCallId: "a__1", status: "completed" }))).toEqual(["tool_call_already_ended"]);
    // Hostile sizes: an endless id and path list are cut, a huge raw input is left out.
    const many = Array.from({ length: 10_000 }, (_, i) => ({ path: `/w/f${i}` }));
    const use = payload(only(u.map(update({ sessionUpdate: "tool_call", toolCallId: "x".repeat(10_000), kind: "edit", locations: many, rawInput: { blob: "y".repeat(200_000) } }))));
    expect(use.case).toBe("toolUse");
    if (use.case !== "toolUse") return;
    expect(use.value.toolUseId.length).toBe(256);
    expect(use.value.modifiedPaths.length).toBe(100);
    expect(JSON.parse(use.value.inputJson).rawInput).toBe("[left out: too large]");
    // Usage that is not a count is none.
    const end = turnEnded(u.turnEnd({ stopReason: "end_turn", _meta: { quota: { token_count: { input_tokens: -4, output_tokens: "9" } } } }));
    expect([end.usage?.inputTokens, end.usage?.outputTokens]).toEqual([0n, 0n]);
    expect(turnEnded(u.turnEnd(null)).outcome).toBe(TurnOutcome.FAILED);
    expect(turnEnded(u.turnEnd({ stopReason: "end_turn", _meta: "x" })).usage).toBeUndefined();
  });
});
