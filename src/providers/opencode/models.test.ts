import { describe, expect, it } from "vitest";
import { cutAfter } from "./fork.js";
import { modelsOf } from "./models.js";

describe("OpenCode models", () => {
  it("lists the providers' models as provider/model ids, leaving out what is no such id", () => {
    const body = {
      providers: [
        { id: "anthropic", name: "Anthropic", models: { "claude-haiku-4-5": { id: "claude-haiku-4-5", name: "Claude Haiku 4.5", limit: { context: 200000 } }, bad: { id: "has space" } } },
        { id: "x", models: "nope" },
        "junk",
      ],
      default: { anthropic: "claude-haiku-4-5" },
    };
    expect(modelsOf(body)).toEqual([{ id: "anthropic/claude-haiku-4-5", displayName: "Claude Haiku 4.5", description: "Anthropic, 200000 tokens of context" }]);
    expect(modelsOf(null)).toEqual([]);
  });
});

describe("OpenCode fork cuts", () => {
  const messages = [
    { id: "msg_1", role: "user", parentID: "" },
    { id: "msg_2", role: "assistant", parentID: "msg_1" },
    { id: "msg_3", role: "assistant", parentID: "msg_1" },
    { id: "msg_4", role: "user", parentID: "" },
    { id: "msg_5", role: "assistant", parentID: "msg_4" },
  ];

  it("cuts at the first message after the turn, none after the last turn", () => {
    expect(cutAfter(messages, "msg_3")).toEqual({ found: true, cut: "msg_4" });
    // By any message of the turn.
    expect(cutAfter(messages, "msg_2")).toEqual({ found: true, cut: "msg_4" });
    expect(cutAfter(messages, "msg_1")).toEqual({ found: true, cut: "msg_4" });
    expect(cutAfter(messages, "msg_5")).toEqual({ found: true, cut: undefined });
    expect(cutAfter(messages, "msg_9")).toEqual({ found: false, cut: undefined });
  });
});
