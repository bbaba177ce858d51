import { describe, expect, it } from "vitest";
import type { AgentDecision } from "../provider.js";
import { type PermissionAsk, permissionAnswer, readPermissionRequest } from "./permissions.js";

const OPTIONS = [
  { optionId: "always", name: "Always", kind: "allow_always" },
  { optionId: "once", name: "Once", kind: "allow_once" },
  { optionId: "no", name: "No", kind: "reject_once" },
  { optionId: "never", name: "Never", kind: "reject_always" },
];
const byKind = (id: string, call: Record<string, unknown>) => (typeof call.kind === "string" ? call.kind : "tool") + (id ? "" : "?");
const read = (params: unknown) => readPermissionRequest("string:7", params, "s1", byKind);
const ask = (options: unknown[] = OPTIONS, toolCall: Record<string, unknown> = { toolCallId: "c1", title: "rm -rf x", kind: "execute" }) => {
  const asked = read({ sessionId: "s1", options, toolCall });
  if (typeof asked === "string") throw new Error(asked);
  return asked;
};
const answer = (asked: PermissionAsk, decision: AgentDecision) => permissionAnswer(asked, decision);

describe("ACP permission requests", () => {
  it("reads what the call does: a shell call's command from its raw input, else its title; the path from locations or a diff", () => {
    expect(ask(OPTIONS, { toolCallId: "c1", title: "Run it", kind: "execute", rawInput: { command: ["ls", "-l"] } }).request).toMatchObject({ command: "ls -l", description: "Run it", toolName: "execute", toolUseId: "c1" });
    expect(ask().request.command).toBe("rm -rf x");
    // Not a shell kind: no command, whatever its input says.
    expect(ask(OPTIONS, { toolCallId: "c1", kind: "edit", title: "Edit", rawInput: { command: "x" }, content: [{ type: "diff", path: "/w/a.txt", newText: "" }] }).request).toMatchObject({ command: "", path: "/w/a.txt" });
    expect(ask(OPTIONS, { toolCallId: "c1", kind: "read", locations: [{ path: "/w/b.txt" }, { path: "/w/c.txt" }] }).request.path).toBe("/w/b.txt");
  });

  it("refuses requests it cannot ask: not an object, another session, no tool call id, no option it can choose", () => {
    expect(read(null)).toMatch(/not an object/);
    expect(read({ sessionId: "s2", options: OPTIONS, toolCall: { toolCallId: "c1" } })).toMatch(/another session/);
    expect(read({ sessionId: "s1", options: OPTIONS, toolCall: { toolCallId: 5 } })).toMatch(/toolCallId/);
    expect(read({ sessionId: "s1", options: OPTIONS, toolCall: { toolCallId: "x".repeat(257) } })).toMatch(/toolCallId/);
    expect(read({ sessionId: "s1", options: [{ optionId: "x", kind: "maybe" }, "junk", { kind: "allow_once" }], toolCall: { toolCallId: "c1" } })).toMatch(/no option/);
    expect(read({ sessionId: "s1", options: "all", toolCall: { toolCallId: "c1" } })).toMatch(/no option/);
  });

  it("bounds what the agent sends: options, names, titles", () => {
    const many = Array.from({ length: 500 }, (_, i) => ({ optionId: `o${i}`, kind: "allow_once", name: "n".repeat(10_000) }));
    const asked = ask(many, { toolCallId: "c1", title: "t".repeat(1_000_000), kind: "execute" });
    expect(asked.options).toHaveLength(100);
    expect(asked.options[0]!.name).toHaveLength(200);
    expect(asked.request.description).toHaveLength(1000);
  });

  it("answers allow with allow-once (also for the session), deny with reject-once, and falls back to the other kind", () => {
    expect(answer(ask(), { behavior: "allow", forSession: false })).toEqual({ result: { outcome: { outcome: "selected", optionId: "once" } } });
    expect(answer(ask(), { behavior: "allow", forSession: true })).toEqual({ result: { outcome: { outcome: "selected", optionId: "once" } } });
    expect(answer(ask(), { behavior: "deny", message: "no" })).toEqual({ result: { outcome: { outcome: "selected", optionId: "no" } }, refused: "denied: no" });
    const onlyAlways = ask([OPTIONS[0], OPTIONS[3]]);
    expect(answer(onlyAlways, { behavior: "allow", forSession: false }).result).toEqual({ outcome: { outcome: "selected", optionId: "always" } });
    expect(answer(onlyAlways, { behavior: "deny", message: "" }).result).toEqual({ outcome: { outcome: "selected", optionId: "never" } });
  });

  it("refuses what it cannot do: no allow option, an edited input, an answer to a question; with no reject option, cancelled", () => {
    expect(answer(ask([OPTIONS[2]]), { behavior: "allow", forSession: false })).toMatchObject({ result: { outcome: { outcome: "selected", optionId: "no" } }, refused: expect.stringMatching(/no option that allows/) });
    const asked = ask();
    expect(answer(asked, { behavior: "allow", forSession: false, updatedInputJson: '{"command":"other"}' }).refused).toMatch(/edited input/);
    // The input it was asked about, sent back unchanged, is no edit.
    expect(answer(asked, { behavior: "allow", forSession: false, updatedInputJson: asked.request.inputJson }).refused).toBeUndefined();
    expect(answer(asked, { behavior: "answer", answers: { q: "a" } }).refused).toMatch(/no answers/);
    expect(answer(ask([OPTIONS[1]]), { behavior: "deny", message: "x" }).result).toEqual({ outcome: { outcome: "cancelled" } });
  });
});
