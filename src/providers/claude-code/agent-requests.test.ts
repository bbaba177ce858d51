import { describe, expect, it } from "vitest";
import type { AgentRequest } from "../provider.js";
import { answerLine, GATE_HOOKS, PRE_TOOL_USE_CALLBACK, toolCheckOf } from "./agent-requests.js";

const bash: AgentRequest = {
  requestId: "fe805231-7d3a-4c2e-9b1a-2f0e6d5c4b3a",
  kind: "permission",
  toolName: "Bash",
  toolUseId: "toolu_mock_15",
  inputJson: '{"command":"touch made1.txt"}',
  description: "touch made1.txt",
  path: "/w/made1.txt",
  command: "touch made1.txt",
  suggestionsJson: [],
  questions: [],
};

const question: AgentRequest = {
  ...bash,
  requestId: "ded5d2b8-75ee-4f66-949e-67cd50751c8c",
  kind: "question",
  toolName: "AskUserQuestion",
  toolUseId: "toolu_mock_2",
  inputJson: JSON.stringify({ questions: [{ question: "Which color?", header: "Color", options: [{ label: "Red", description: "warm" }], multiSelect: false }] }),
  command: "",
  questions: [{ id: "Which color?", question: "Which color?", header: "Color", options: [{ label: "Red", description: "warm" }], multiSelect: false }],
};

const responseOf = (line: string) => {
  const parsed = JSON.parse(line);
  expect(parsed.type).toBe("control_response");
  expect(parsed.response.subtype).toBe("success");
  return parsed.response as { request_id: string; response: Record<string, unknown> };
};

describe("answerLine (the control_response to a can_use_tool)", () => {
  it("allows with the original input as updatedInput (the CLI rejects an allow without it) and the tool use id", () => {
    const { request_id, response } = responseOf(answerLine(bash, { behavior: "allow", forSession: false }));
    expect(request_id).toBe(bash.requestId);
    expect(response).toEqual({ behavior: "allow", updatedInput: { command: "touch made1.txt" }, toolUseID: "toolu_mock_15" });
  });

  it("allows with the client's edited input instead", () => {
    const { response } = responseOf(answerLine(bash, { behavior: "allow", updatedInputJson: '{"command":"touch edited.txt"}', forSession: true }));
    expect(response).toEqual({ behavior: "allow", updatedInput: { command: "touch edited.txt" }, toolUseID: "toolu_mock_15" });
  });

  it("denies with the message (a default one when empty)", () => {
    expect(responseOf(answerLine(bash, { behavior: "deny", message: "User said no" })).response).toEqual({ behavior: "deny", message: "User said no" });
    expect(responseOf(answerLine(bash, { behavior: "deny", message: "" })).response).toMatchObject({ behavior: "deny" });
  });

  it("answers a question: allow with the questions plus answers keyed by question text", () => {
    const { response } = responseOf(answerLine(question, { behavior: "answer", answers: { "Which color?": "Red" } }));
    expect(response).toEqual({
      behavior: "allow",
      updatedInput: { ...JSON.parse(question.inputJson), answers: { "Which color?": "Red" } },
      toolUseID: "toolu_mock_2",
    });
  });

  it("still answers, with a denial, a decision that does not fit: bad edited input, answers to a permission", () => {
    for (const updatedInputJson of ["[1]", "not json", "null", '"x"']) {
      const { response } = responseOf(answerLine(bash, { behavior: "allow", updatedInputJson, forSession: false }));
      expect(response.behavior).toBe("deny");
    }
    expect(responseOf(answerLine(bash, { behavior: "answer", answers: { a: "b" } })).response.behavior).toBe("deny");
  });

  it("leaves out toolUseID when the request had none; stays one line for any text", () => {
    const line = answerLine({ ...bash, toolUseId: "" }, { behavior: "deny", message: "line\nbreak\u2028" });
    expect(line).not.toContain("\n");
    expect(responseOf(answerLine({ ...bash, toolUseId: "" }, { behavior: "allow", forSession: false })).response).not.toHaveProperty("toolUseID");
  });
});

describe("the PreToolUse gate (hook_callback of hotplex's hook)", () => {
  const callback = (input: unknown, callbackId = PRE_TOOL_USE_CALLBACK) => ({ subtype: "hook_callback", callback_id: callbackId, input, tool_use_id: "toolu_9" });

  it("reads the call the CLI is about to run: tool, input, command or path", () => {
    const bashCheck = toolCheckOf("h1", callback({ hook_event_name: "PreToolUse", tool_name: "Bash", tool_input: { command: "rm -rf x" }, tool_use_id: "toolu_1" }));
    expect(bashCheck).toMatchObject({ requestId: "h1", kind: "check", toolName: "Bash", command: "rm -rf x", toolUseId: "toolu_1", inputJson: '{"command":"rm -rf x"}' });
    const write = toolCheckOf("h2", callback({ tool_name: "Write", tool_input: { file_path: "/etc/passwd", content: "x" } }));
    expect(write).toMatchObject({ kind: "check", path: "/etc/passwd", command: "", toolUseId: "toolu_9" });
  });

  it("ignores another hook's callbacks and calls it cannot read (the session refuses them as control requests)", () => {
    expect(toolCheckOf("h", callback({ tool_name: "Bash", tool_input: {} }, "someone-else"))).toBeUndefined();
    expect(toolCheckOf("h", callback({ tool_input: {} }))).toBeUndefined();
    expect(toolCheckOf("h", callback({ tool_name: "Bash", tool_input: "rm -rf /" }))).toBeUndefined();
    expect(toolCheckOf("h", callback(null))).toBeUndefined();
  });

  it("answers deny with the reason, ask, or nothing (the CLI's own settings decide)", () => {
    const check = toolCheckOf("h3", callback({ tool_name: "Bash", tool_input: { command: "x" } }));
    if (!check) throw new Error("no check");
    expect(responseOf(answerLine(check, { behavior: "deny", message: "blocked by rule r" })).response).toEqual({
      hookSpecificOutput: { hookEventName: "PreToolUse", permissionDecision: "deny", permissionDecisionReason: "blocked by rule r" },
    });
    expect(responseOf(answerLine(check, { behavior: "defer", ask: true })).response).toMatchObject({ hookSpecificOutput: { permissionDecision: "ask" } });
    expect(responseOf(answerLine(check, { behavior: "defer", ask: false })).response).toEqual({});
    // A permission request cannot be deferred: it is denied, so the CLI never waits.
    expect(responseOf(answerLine(bash, { behavior: "defer", ask: false })).response).toMatchObject({ behavior: "deny" });
  });

  it("registers one hook for every tool through initialize", () => {
    expect(GATE_HOOKS).toEqual({ PreToolUse: [{ hookCallbackIds: [PRE_TOOL_USE_CALLBACK] }] });
  });
});
