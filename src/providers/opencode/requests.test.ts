import { describe, expect, it } from "vitest";
import type { AgentRequest } from "../provider.js";
import { answerCall, APPROVAL_RULES, CONFIG_RULES, permissionRequest, rulesToAdd } from "./requests.js";

const question: AgentRequest = {
  requestId: "que_1",
  kind: "question",
  toolName: "question",
  toolUseId: "",
  inputJson: "{}",
  description: "",
  path: "",
  command: "",
  suggestionsJson: [],
  questions: [
    { id: "0", question: "Color?", header: "", options: [], multiSelect: false },
    { id: "1", question: "Files?", header: "", options: [], multiSelect: true },
    { id: "2", question: "Unanswered?", header: "", options: [], multiSelect: false },
  ],
};

describe("OpenCode permission rules", () => {
  it("asks with approvals, gives the decisions back to the config without, and adds nothing that is in force", () => {
    expect(rulesToAdd(true, undefined)).toEqual(APPROVAL_RULES);
    expect(APPROVAL_RULES).toContainEqual({ permission: "bash", pattern: "*", action: "ask" });
    expect(APPROVAL_RULES).toContainEqual({ permission: "edit", pattern: "*", action: "ask" });
    expect(APPROVAL_RULES).toContainEqual({ permission: "question", pattern: "*", action: "allow" });
    expect(rulesToAdd(true, [...APPROVAL_RULES])).toEqual([]);
    // Rules are appended by the server; only the last ones count.
    expect(rulesToAdd(true, [...APPROVAL_RULES, ...CONFIG_RULES])).toEqual(APPROVAL_RULES);
    expect(rulesToAdd(false, [])).toEqual([]);
    expect(rulesToAdd(false, "garbage")).toEqual([]);
    expect(rulesToAdd(false, [...APPROVAL_RULES])).toEqual(CONFIG_RULES);
    expect(rulesToAdd(false, [...APPROVAL_RULES, ...CONFIG_RULES])).toEqual([]);
  });
});

describe("OpenCode answers", () => {
  it("allows once (also for the session), refuses with the message", () => {
    expect(answerCall("per_1", undefined, { behavior: "allow", forSession: false })).toEqual({ path: "/permission/per_1/reply", body: { reply: "once" } });
    expect(answerCall("per_1", undefined, { behavior: "allow", forSession: true })).toEqual({ path: "/permission/per_1/reply", body: { reply: "once" } });
    expect(answerCall("per_1", undefined, { behavior: "deny", message: "no" })).toEqual({ path: "/permission/per_1/reply", body: { reply: "reject", message: "no" } });
    expect(answerCall("per_1", undefined, { behavior: "deny", message: "" })).toEqual({ path: "/permission/per_1/reply", body: { reply: "reject" } });
    // An answer to a permission request refuses it.
    expect(answerCall("per_1", undefined, { behavior: "answer", answers: {} })).toEqual({ path: "/permission/per_1/reply", body: { reply: "reject" } });
    expect(answerCall("per_../x", undefined, { behavior: "allow", forSession: false }).path).toBe("/permission/per_..%2Fx/reply");
  });

  it("answers questions by position, splitting multiple choices; anything but an answer rejects", () => {
    expect(answerCall("que_1", question, { behavior: "answer", answers: { "0": "blue", "1": "a.ts, b.ts", "9": "stray" } })).toEqual({
      path: "/question/que_1/reply",
      body: { answers: [["blue"], ["a.ts", "b.ts"], []] },
    });
    expect(answerCall("que_1", question, { behavior: "deny", message: "no" })).toEqual({ path: "/question/que_1/reject", body: undefined });
    expect(answerCall("que_1", question, { behavior: "allow", forSession: false })).toEqual({ path: "/question/que_1/reject", body: undefined });
    // Forgotten (withdrawn or never seen): the id says which kind it was.
    expect(answerCall("que_2", undefined, { behavior: "deny", message: "" }).path).toBe("/question/que_2/reject");
  });

  it("bounds and types what a hostile request carries", () => {
    const request = permissionRequest(
      { id: "per_1", permission: 5, patterns: ["x".repeat(10_000), 3], metadata: { command: ["rm"] }, always: "all", tool: { callID: "../../" } },
      () => undefined,
    );
    expect(request).toMatchObject({ toolName: "unknown", toolUseId: "", command: "", suggestionsJson: [] });
    expect(request!.description.length).toBeLessThan(2100);
    expect(permissionRequest({ id: "no spaces allowed" }, () => undefined)).toBeUndefined();
  });
});
