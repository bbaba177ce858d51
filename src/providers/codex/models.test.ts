// model/list pages read into AgentModels, bounded whatever the agent answers.
import { describe, expect, it } from "vitest";
import { listCodexModels } from "./models.js";

describe("Codex model list", () => {
  it("reads every page, leaving hidden models and garbage out", async () => {
    const asked: unknown[] = [];
    const pages: Record<string, unknown> = {
      first: { data: [{ id: "gpt-a", model: "gpt-a", displayName: "GPT A", description: "fast", hidden: false }, { id: "h", model: "h", hidden: true }, 7], nextCursor: "p2" },
      p2: { data: [{ id: "only-id", displayName: 5 }, { displayName: "no id" }], nextCursor: null },
    };
    const models = await listCodexModels((params) => {
      asked.push(params);
      const cursor = (params as { cursor?: string }).cursor;
      return Promise.resolve(pages[cursor ?? "first"]);
    });
    expect(asked).toEqual([{}, { cursor: "p2" }]);
    expect(models).toEqual([
      { id: "gpt-a", displayName: "GPT A", description: "fast" },
      { id: "only-id", displayName: "only-id", description: "" },
    ]);
  });

  it("stops at a cursor that repeats and at the page bound", async () => {
    let calls = 0;
    const models = await listCodexModels(() => {
      calls++;
      return Promise.resolve({ data: [{ model: `m${calls}` }], nextCursor: "same" });
    });
    expect(calls).toBe(2);
    expect(models.map((m) => m.id)).toEqual(["m1", "m2"]);
    let pages = 0;
    await listCodexModels(() => Promise.resolve({ data: [], nextCursor: `c${++pages}` }));
    expect(pages).toBe(20);
    await expect(listCodexModels(() => Promise.resolve("garbage"))).resolves.toEqual([]);
  });
});
