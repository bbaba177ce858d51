import { describe, expect, it } from "vitest";
import { RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import type { AgentRequest } from "../providers/provider.js";
import { MAX_INPUT_JSON_BYTES, permissionRequested, unaskable } from "./permission-request.js";

const request = (overrides: Partial<AgentRequest> = {}): AgentRequest => ({
  requestId: "a-1",
  kind: "permission",
  toolName: "Bash",
  toolUseId: "t-1",
  inputJson: '{"command":"ls"}',
  description: "ls",
  path: "",
  command: "ls",
  suggestionsJson: [],
  questions: [],
  ...overrides,
});

describe("permissionRequested", () => {
  it("bounds every field an agent sets: a hostile agent cannot make the log or a snapshot huge", () => {
    const question = { id: "q".repeat(10_000), question: "?".repeat(10_000), header: "h".repeat(1000), multiSelect: false, options: Array.from({ length: 100 }, (_, i) => ({ label: `o${i}`, description: "d".repeat(10_000) })) };
    const logged = permissionRequested(
      request({
        toolName: "T".repeat(10_000),
        description: "x".repeat(100_000),
        command: "c".repeat(1_000_000),
        path: "/".repeat(100_000),
        suggestionsJson: Array.from({ length: 100 }, () => "s".repeat(10_000)),
        questions: Array.from({ length: 100 }, () => question),
      }),
      "id",
      undefined,
      true,
    );
    expect(logged.toolName).toHaveLength(256);
    expect(logged.description).toHaveLength(4096);
    expect(logged.command).toHaveLength(64 * 1024);
    expect(logged.path).toHaveLength(4096);
    expect(logged.suggestionsJson).toHaveLength(16);
    expect(logged.suggestionsJson.every((s) => s.length === 4096)).toBe(true);
    expect(logged.questions).toHaveLength(16);
    expect(logged.questions[0]?.options).toHaveLength(32);
    expect(logged.questions[0]?.id).toHaveLength(4096);
    expect(logged.deadline).toBeUndefined();
  });

  it("marks only permission requests editable, gives an empty input as {}, and sets the deadline", () => {
    expect(permissionRequested(request(), "id", 1_700_000_000_000, true).inputEditable).toBe(true);
    expect(permissionRequested(request(), "id", undefined, false).inputEditable).toBe(false);
    const question = permissionRequested(request({ kind: "question", inputJson: "", questions: [{ id: "q", question: "?", header: "", options: [], multiSelect: false }] }), "id", 1_700_000_000_000, true);
    expect(question).toMatchObject({ kind: RequestKind.QUESTION, inputEditable: false, inputJson: "{}" });
    expect(Number(question.deadline?.seconds)).toBe(1_700_000_000);
  });

  it("refuses to ask about an input over the limit, or a question without questions", () => {
    expect(unaskable(request())).toBeUndefined();
    expect(unaskable(request({ inputJson: `{"a":"${"x".repeat(MAX_INPUT_JSON_BYTES)}"}` }))).toContain("too large");
    expect(unaskable(request({ kind: "question", questions: [] }))).toContain("no questions");
  });
});
