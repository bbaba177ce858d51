// Codex's server requests as the host sees them, and the answers they get: the shapes are
// those `codex app-server` 0.171 sends (item/commandExecution/requestApproval as measured).
import { describe, expect, it } from "vitest";
import { fileChangesOf, mapServerRequest } from "./requests.js";

const none = () => undefined;

describe("Codex server requests", () => {
  it("asks about a command with the call's tool name and input, its cwd, reason and proposed amendments", () => {
    const mapped = mapServerRequest(
      "0",
      "item/commandExecution/requestApproval",
      {
        kind: "command",
        threadId: "t",
        turnId: "u",
        itemId: "call_mock_1",
        startedAtMs: 1,
        environmentId: "local",
        command: "/bin/bash -lc 'touch a.txt'",
        cwd: "/w",
        reason: "needs to write",
        commandActions: [{ type: "unknown", command: "touch a.txt" }],
        proposedExecpolicyAmendment: ["touch", "a.txt"],
        proposedNetworkPolicyAmendments: [{ host: "example.com", action: "allow" }],
        availableDecisions: ["accept", "cancel"],
      },
      none,
    );
    expect(mapped?.request).toEqual({
      requestId: "0",
      kind: "permission",
      toolName: "shell",
      toolUseId: "call_mock_1",
      // What the tool_use event of the same call carries.
      inputJson: JSON.stringify({ command: "/bin/bash -lc 'touch a.txt'", cwd: "/w" }),
      description: "needs to write",
      path: "/w",
      command: "/bin/bash -lc 'touch a.txt'",
      suggestionsJson: ['{"execpolicyAmendment":["touch","a.txt"]}', '{"networkPolicyAmendment":{"host":"example.com","action":"allow"}}'],
      questions: [],
    });
    expect(mapped?.respond({ behavior: "allow", forSession: false })).toEqual({ decision: "accept" });
    expect(mapped?.respond({ behavior: "allow", forSession: true })).toEqual({ decision: "acceptForSession" });
    // Codex runs what it asked about or nothing: an edited input is not passed on.
    expect(mapped?.respond({ behavior: "allow", forSession: false, updatedInputJson: '{"command":"rm -rf /"}' })).toEqual({ decision: "accept" });
    expect(mapped?.respond({ behavior: "deny", message: "no" })).toEqual({ decision: "decline" });
    expect(mapped?.respond({ behavior: "answer", answers: { a: "b" } })).toEqual({ decision: "decline" });
  });

  it("asks about a file change with the changes its item announced", () => {
    const item = { type: "fileChange", id: "call_2", changes: [{ path: "/w/hello.txt", kind: { type: "add" }, diff: "hi\n" }, { path: 7 }, "junk"] };
    const changes = fileChangesOf(item);
    expect(changes).toEqual([
      { path: "/w/hello.txt", kind: "add" },
      { path: "", kind: "" },
    ]);
    const mapped = mapServerRequest("5", "item/fileChange/requestApproval", { threadId: "t", turnId: "u", itemId: "call_2", reason: null, grantRoot: null }, (id) =>
      id === "call_2" ? changes : undefined,
    );
    expect(mapped?.request).toMatchObject({
      kind: "permission",
      toolName: "apply_patch",
      toolUseId: "call_2",
      inputJson: JSON.stringify({ changes }),
      path: "/w/hello.txt",
      command: "",
      suggestionsJson: [],
    });
    expect(mapped?.respond({ behavior: "allow", forSession: true })).toEqual({ decision: "acceptForSession" });
    expect(mapped?.respond({ behavior: "deny", message: "" })).toEqual({ decision: "decline" });

    const unknownItem = mapServerRequest("6", "item/fileChange/requestApproval", { itemId: "other", grantRoot: "/w/sub" }, none);
    expect(unknownItem?.request).toMatchObject({ inputJson: '{"changes":[]}', path: "/w/sub", suggestionsJson: ['{"grantRoot":"/w/sub"}'] });
  });

  it("maps the legacy approval requests with their own decisions", () => {
    const exec = mapServerRequest("1", "execCommandApproval", { conversationId: "t", callId: "c1", approvalId: null, command: ["touch", "x"], cwd: "/w", reason: null, parsedCmd: [] }, none);
    expect(exec?.request).toMatchObject({ toolName: "shell", toolUseId: "c1", command: "touch x", path: "/w", inputJson: '{"command":"touch x","cwd":"/w"}' });
    expect(exec?.respond({ behavior: "allow", forSession: false })).toEqual({ decision: "approved" });
    expect(exec?.respond({ behavior: "allow", forSession: true })).toEqual({ decision: "approved_for_session" });
    expect(exec?.respond({ behavior: "deny", message: "not now" })).toEqual({ decision: { denied: { rejection: "not now" } } });

    const patch = mapServerRequest("2", "applyPatchApproval", { conversationId: "t", callId: "c2", fileChanges: { "/w/a.txt": { type: "add", content: "x" } }, reason: "r", grantRoot: null }, none);
    expect(patch?.request).toMatchObject({ toolName: "apply_patch", toolUseId: "c2", path: "/w/a.txt", description: "r", inputJson: '{"changes":[{"path":"/w/a.txt","kind":"add"}]}' });
  });

  it("puts request_user_input as a question and answers by question id, only the questions asked", () => {
    const mapped = mapServerRequest(
      "3",
      "item/tool/requestUserInput",
      {
        threadId: "t",
        turnId: "u",
        itemId: "call_3",
        isBlocking: false,
        questions: [
          { id: "color", header: "Color", question: "Which color?", isOther: true, isSecret: false, options: [{ label: "red", description: "warm" }, { label: 3 }] },
          { id: "__proto__", header: "", question: "Tricky?", options: null },
          { header: "no id" },
        ],
      },
      none,
    );
    expect(mapped?.request).toMatchObject({
      kind: "question",
      toolName: "request_user_input",
      toolUseId: "call_3",
      description: "Which color?\nTricky?",
      questions: [
        { id: "color", question: "Which color?", header: "Color", multiSelect: false, options: [{ label: "red", description: "warm" }, { label: "", description: "" }] },
        { id: "__proto__", question: "Tricky?", header: "", multiSelect: false, options: [] },
      ],
    });
    const answered = mapped?.respond({ behavior: "answer", answers: JSON.parse('{"color":"blue","__proto__":"yes","extra":"x"}') as Record<string, string> });
    expect(JSON.stringify(answered)).toBe('{"answers":{"color":{"answers":["blue"]},"__proto__":{"answers":["yes"]}}}');
    expect(mapped?.respond({ behavior: "deny", message: "no" })).toEqual({ answers: {} });
  });

  it("leaves every other request (and garbage) to be refused", () => {
    for (const method of ["item/permissions/requestApproval", "mcpServer/elicitation/request", "item/tool/call", "account/chatgptAuthTokens/refresh", "whatever"]) {
      expect(mapServerRequest("9", method, {}, none)).toBeUndefined();
    }
    // Malformed params still make a request that can be answered.
    for (const params of [null, "x", [1], { command: { $: 1 }, cwd: 5, proposedExecpolicyAmendment: "rm" }]) {
      const mapped = mapServerRequest("9", "item/commandExecution/requestApproval", params, none);
      expect(mapped?.request).toMatchObject({ toolName: "shell", command: "", path: "", suggestionsJson: [] });
      expect(mapped?.respond({ behavior: "deny", message: "" })).toEqual({ decision: "decline" });
    }
    const huge = mapServerRequest("9", "item/commandExecution/requestApproval", { command: "x".repeat(1_000_000) }, none);
    expect(huge?.request.command.length).toBe(64 * 1024);
  });
});
