import { describe, expect, it } from "vitest";
import type { AgentRequest } from "../provider.js";
import { answerLine } from "./agent-requests.js";

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
