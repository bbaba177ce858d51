// The renderer on its own: every kind of event on one line (text excepted), made safe.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import picocolors from "picocolors";
import { describe, expect, it } from "vitest";
import { EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision, RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import { EventRenderer, summarizeInput } from "../../src/cli/hotplex/render.js";

const ESC = "\u001b[31m";
type Payload = NonNullable<MessageInitShape<typeof EventSchema>["payload"]>;
function rendered(payloads: Payload[], verbose = true): string {
  let out = "";
  const renderer = new EventRenderer((t) => (out += t), { colors: picocolors.createColors(false), width: 100, verbose, thinking: false });
  payloads.forEach((payload, i) => renderer.render(create(EventSchema, { seq: BigInt(i + 1), turnId: "turn-1", payload })));
  renderer.endLine();
  return out;
}

describe("EventRenderer", () => {
  it("puts each non-text event on a line of its own, after any streamed text, with agent values made safe", () => {
    const out = rendered([
      { case: "turnStarted", value: { prompt: `do it${ESC}` } },
      { case: "textDelta", value: { text: "partial" } },
      { case: "toolUse", value: { toolUseId: "t1", name: "Edit", inputJson: JSON.stringify({ file_path: `/src/a.ts${ESC}`, old: "x" }) } },
      { case: "toolResult", value: { toolUseId: "t1", content: "line one\nline two\nline three", isError: false } },
      { case: "toolResult", value: { toolUseId: "t2", content: "boom", isError: true } },
      { case: "ruleMatched", value: { ruleId: "fs.rm-root", severity: 1, description: "deletes /", evidence: "rm -rf /" } },
      { case: "turnQueued", value: { prompt: "later", position: 2 } },
      { case: "configChanged", value: { model: "m2", permissionMode: "", appliedLive: true } },
      { case: "permissionRequested", value: { requestId: "r1", kind: RequestKind.QUESTION, questions: [{ id: "q", question: "Which?" }] } },
      { case: "permissionResolved", value: { requestId: "r1", decision: PermissionDecision.DENY, decidedBy: Decider.TIMEOUT } },
      { case: "sessionEnded", value: { reason: "crashed", exitCode: 1, signal: "" } },
      { case: "raw", value: { line: `\u001b]0;x\u0007garbage`, reason: "not_json" } },
      { case: "error", value: { code: "api_retry", message: "overloaded" } },
      { case: "statusChanged", value: { status: 3, previous: 2 } },
      { case: undefined },
      { case: "turnEnded", value: { outcome: TurnOutcome.TIMED_OUT, durationMs: 65_000n, errorMessage: "turn timeout", usage: { inputTokens: 1_500n, outputTokens: 20n } } },
    ]);
    expect(out).not.toContain("\u001b");
    expect(out).toMatchInlineSnapshot(`
      "▶ turn-1 do it
      partial
      → Edit /src/a.ts
      ← ok line one (+2 lines)
      ← error boom
      ! rule fs.rm-root (block): deletes / — rm -rf /
      · queued behind 2 turn(s): later
      · settings: model m2, permission mode default (live)
      ? question (request r1): Which?
      ✗ denied by timeout
      · agent ended: crashed (exit 1)
      · raw output (not_json): garbage
      ! api_retry: overloaded
      · status: busy
      · event 15 of a kind this hotplex does not know
      ✗ timed out in 1m05s · 1.5k in / 20 out tokens: turn timeout
      "
    `);
  });

  it("leaves turn starts and status changes to tail (verbose), and thinking out unless asked", () => {
    const out = rendered([{ case: "turnStarted", value: { prompt: "p" } }, { case: "statusChanged", value: { status: 3 } }, { case: "thinkingDelta", value: { text: "hmm" } }], false);
    expect(out).toBe("");
  });

  it("summarizes a tool input by its telling field, else as compact JSON, and never parses a huge one", () => {
    expect(summarizeInput('{"command":"ls -la","timeout":5}')).toBe("ls -la");
    expect(summarizeInput('{"a":1}')).toBe('{"a":1}');
    expect(summarizeInput("not json")).toBe("not json");
    expect(summarizeInput(`{"command":"${"x".repeat(100_000)}"}`)).toHaveLength(512);
  });
});
