import { describe, expect, it } from "vitest";
import { TurnOutcome } from "../../events/event.js";
import type { ParsedOutput } from "../provider.js";
import { modifiedPaths, OpenCodeEvents } from "./events.js";

const SES = "ses_dcbb72badffeAbCdEf012345";
const USER = "msg_23448d486001T17fmHal70BvIE";
const ASSISTANT = "msg_23448d487001aaaaaaaaaaaaaa";

const user = (id = USER) => ["message.updated", { sessionID: SES, info: { id, role: "user", sessionID: SES, model: { providerID: "anthropic", modelID: "claude-sonnet-4-5" } } }] as const;
const assistant = (extra: Record<string, unknown> = {}, id = ASSISTANT, parentID = USER) =>
  ["message.updated", { sessionID: SES, info: { id, parentID, role: "assistant", sessionID: SES, ...extra } }] as const;
const part = (p: Record<string, unknown>, messageID = ASSISTANT) => ["message.part.updated", { sessionID: SES, part: { sessionID: SES, messageID, ...p } }] as const;
const delta = (partID: string, text: string, messageID = ASSISTANT) => ["message.part.delta", { sessionID: SES, messageID, partID, field: "text", delta: text }] as const;
const idle = ["session.idle", { sessionID: SES }] as const;
const finished = () => assistant({ finish: "stop", time: { created: 1, completed: 2 } });

function run(events: OpenCodeEvents, items: readonly (readonly [string, unknown])[]): ParsedOutput[] {
  return items.flatMap(([type, properties]) => events.map(type, properties));
}

const kinds = (outputs: ParsedOutput[]) => outputs.map((o) => (o.type === "event" ? o.payload.case : o.type));
const ends = (outputs: ParsedOutput[]) => outputs.flatMap((o) => (o.type === "turn_end" ? [o.turnEnded] : []));
const texts = (outputs: ParsedOutput[]) => outputs.map((o) => (o.type === "event" && o.payload.case === "textDelta" ? o.payload.value.text : "")).join("");

describe("OpenCode events", () => {
  it("maps a plain turn: turn_start at our message, deltas, usage, one turn_end at the idle", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const out = run(events, [
      user(),
      part({ id: "prt_user1", type: "text", text: "hello" }, USER),
      ["session.status", { sessionID: SES, status: { type: "busy" } }],
      assistant(),
      part({ id: "prt_step1", type: "step-start" }),
      part({ id: "prt_text1", type: "text", text: "" }),
      delta("prt_text1", "Hello "),
      delta("prt_text1", "world"),
      part({ id: "prt_text1", type: "text", text: "Hello world", time: { start: 1, end: 2 } }),
      part({ id: "prt_fin1", type: "step-finish", reason: "stop", cost: 0.5, tokens: { input: 30, output: 21, reasoning: 0, cache: { read: 7625, write: 3 } } }),
      assistant({ finish: "stop", time: { created: 1, completed: 2 } }),
      ["session.status", { sessionID: SES, status: { type: "idle" } }],
      idle,
      ["session.updated", { sessionID: SES, info: {} }],
      ["session.diff", { sessionID: SES, diff: [] }],
    ]);
    expect(kinds(out)).toEqual(["turn_start", "textDelta", "textDelta", "turn_end"]);
    expect(out[0]).toEqual({ type: "turn_start", providerSessionId: SES, model: "anthropic/claude-sonnet-4-5" });
    expect(texts(out)).toBe("Hello world");
    const [end] = ends(out);
    expect(end).toMatchObject({ outcome: TurnOutcome.COMPLETED, result: "Hello world", numTurns: 1, costUsd: 0.5, providerSubtype: "stop" });
    expect(end?.usage).toMatchObject({ inputTokens: 30n, outputTokens: 21n, cacheReadTokens: 7625n, cacheWriteTokens: 3n });
    expect(events.running).toBe(false);
  });

  it("sends text that came only as full part updates, once", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const out = run(events, [user(), assistant(), part({ id: "prt_t", type: "text", text: "Hel" }), delta("prt_t", "lo"), part({ id: "prt_t", type: "text", text: "Hello!" }), finished(), idle]);
    expect(texts(out)).toBe("Hello!");
  });

  it("maps reasoning to thinking", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const out = run(events, [user(), assistant(), part({ id: "prt_r", type: "reasoning", text: "" }), delta("prt_r", "hmm")]);
    expect(out.at(-1)).toMatchObject({ type: "event", payload: { case: "thinkingDelta", value: { text: "hmm" } } });
  });

  it("maps a tool call once per call id, with its input, result and the files it writes", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const tool = (state: Record<string, unknown>, tool = "bash", callID = "toolu_mock_1") => part({ id: `prt_${callID}`, type: "tool", tool, callID, state });
    const out = run(events, [
      user(),
      assistant(),
      tool({ status: "pending", input: {}, raw: "" }),
      tool({ status: "running", input: { command: "echo hi", description: "x" }, time: { start: 1000 } }),
      tool({ status: "running", input: { command: "echo hi", description: "x" }, metadata: { output: "hi\n" }, time: { start: 1000 } }),
      tool({ status: "completed", input: { command: "echo hi" }, output: "hi\n", metadata: { exit: 0 }, time: { start: 1000, end: 1250 } }),
      tool({ status: "completed", input: { command: "echo hi" }, output: "hi\n", time: { start: 1000, end: 1250 } }),
      tool({ status: "running", input: { filePath: "/w/a.txt", content: "x" } }, "write", "toolu_mock_2"),
      tool({ status: "error", input: { filePath: "/w/a.txt" }, error: "denied" }, "write", "toolu_mock_2"),
      finished(),
      idle,
    ]);
    expect(kinds(out)).toEqual(["turn_start", "toolUse", "toolResult", "toolUse", "toolResult", "turn_end"]);
    expect(out[1]).toMatchObject({ payload: { value: { toolUseId: "toolu_mock_1", name: "bash", inputJson: '{"command":"echo hi","description":"x"}', modifiedPaths: [] } } });
    expect(out[2]).toMatchObject({ payload: { value: { toolUseId: "toolu_mock_1", content: "hi\n", isError: false, structuredJson: '{"exit":0}' } } });
    expect(out[3]).toMatchObject({ payload: { value: { name: "write", modifiedPaths: ["/w/a.txt"] } } });
    expect(out[4]).toMatchObject({ payload: { value: { content: "denied", isError: true } } });
    expect(ends(out)[0]).toMatchObject({ toolDurationMs: 250n });
  });

  it("names the files of edits and patches", () => {
    expect(modifiedPaths("edit", { filePath: "/w/x.ts" })).toEqual(["/w/x.ts"]);
    expect(modifiedPaths("apply_patch", { patchText: "*** Begin Patch\n*** Update File: a.ts\n@@\n*** Add File: b.ts\n*** End Patch" })).toEqual(["a.ts", "b.ts"]);
    expect(modifiedPaths("bash", { command: "rm x" })).toEqual([]);
    expect(modifiedPaths("write", { filePath: 42 })).toEqual([]);
  });

  it("ignores the idles an earlier abort left behind: the turn ends at the first idle after its own message", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const first = run(events, [user(), assistant(), ["session.error", { sessionID: SES, error: { name: "MessageAbortedError", data: { message: "Aborted" } } }], idle]);
    expect(ends(first)[0]).toMatchObject({ outcome: TurnOutcome.INTERRUPTED, errorMessage: "interrupted" });
    expect(kinds(first)).not.toContain("error");
    // The next turn: stale idles (and an abort error) come before the server shows its message.
    const NEXT = "msg_23448d489001bbbbbbbbbbbbbb";
    events.begin(NEXT);
    const stale = run(events, [idle, ["session.error", { sessionID: SES, error: { name: "MessageAbortedError" } }], idle]);
    expect(stale).toEqual([]);
    expect(events.running).toBe(true);
    // Late ones even after it did: the turn's step has not finished, so they are not its end.
    const NEXT_ASSISTANT = "msg_23448d48a001cccccccccccccc";
    const second = run(events, [
      user(NEXT),
      idle,
      assistant({}, NEXT_ASSISTANT, NEXT),
      idle,
      part({ id: "prt_n", type: "text", text: "fine" }, NEXT_ASSISTANT),
      assistant({ finish: "tool-calls", time: { created: 1, completed: 2 } }, NEXT_ASSISTANT, NEXT),
      idle,
      assistant({ finish: "stop", time: { created: 1, completed: 3 } }, NEXT_ASSISTANT, NEXT),
      idle,
    ]);
    expect(kinds(second)).toEqual(["turn_start", "textDelta", "turn_end"]);
    expect(ends(second)[0]?.outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("still closes a tool call whose result comes after the turn ended (abort during a tool)", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const tool = (status: string) => part({ id: "prt_tool", type: "tool", tool: "bash", callID: "toolu_1", state: { status, input: { command: "sleep 4" }, output: "aborted" } });
    const during = run(events, [user(), assistant(), tool("running"), ["session.error", { sessionID: SES, error: { name: "MessageAbortedError" } }], idle]);
    expect(kinds(during)).toEqual(["turn_start", "toolUse", "turn_end"]);
    const late = run(events, [tool("completed"), assistant({ error: { name: "MessageAbortedError" } }), idle]);
    expect(kinds(late)).toEqual(["toolResult"]);
  });

  it("fails the turn on a session error, with an error event", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const out = run(events, [
      user(),
      ["session.status", { sessionID: SES, status: { type: "retry", attempt: 1, message: "Mock error 500", next: 1 } }],
      ["session.error", { sessionID: SES, error: { name: "APIError", data: { message: "Mock error 400", statusCode: 400 } } }],
      idle,
    ]);
    expect(kinds(out)).toEqual(["turn_start", "error", "error", "turn_end"]);
    expect(out[1]).toMatchObject({ payload: { value: { code: "api_retry", message: "attempt 1: Mock error 500" } } });
    expect(out[2]).toMatchObject({ payload: { value: { code: "APIError", message: "Mock error 400" } } });
    expect(ends(out)[0]).toMatchObject({ outcome: TurnOutcome.FAILED, errorMessage: "APIError: Mock error 400", providerSubtype: "APIError" });
  });

  it("fails a turn the server refused before it stored the message", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const out = run(events, [["session.error", { sessionID: SES, error: { name: "ProviderModelNotFoundError", data: { message: "no model" } } }], idle]);
    expect(ends(out)[0]).toMatchObject({ outcome: TurnOutcome.FAILED, errorMessage: "ProviderModelNotFoundError: no model" });
    expect(events.fail("again")).toEqual([]);
  });

  it("keeps what it does not know as raw events, and survives hostile values", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const hostile: (readonly [string, unknown])[] = [
      ["message.updated", null],
      ["message.updated", "nope"],
      ["message.updated", { info: { id: { toString: 1 }, role: "user" } }],
      ["message.updated", { info: { id: "../../x y", role: "user" } }],
      ["message.part.updated", { part: [] }],
      ["message.part.updated", { part: { id: "prt_1", messageID: ASSISTANT, type: "tool", state: { status: "exploded" } } }],
      ["message.part.delta", { messageID: ASSISTANT, partID: "prt_unknown", delta: 5 }],
      ["session.status", { status: "busy" }],
      ["session.brand-new", { sessionID: SES }],
      ["permission.asked", { id: 42 }],
    ];
    const out = run(events, hostile);
    expect(out.every((o) => o.type === "event" && o.payload.case === "raw")).toBe(true);
    expect(out).toHaveLength(hostile.length);
    // Before the server shows our message, parts are no turn's.
    const early = run(events, [part({ id: "prt_x", type: "text", text: "stray" })]);
    expect(kinds(early)).toEqual(["raw"]);
    // Still working afterwards.
    const ok = run(events, [user(), assistant(), part({ id: "prt_t", type: "text", text: "ok" }), ["message.part.delta", { messageID: ASSISTANT, partID: "prt_t", field: "text", delta: "!" }], finished(), idle]);
    expect(texts(ok)).toBe("ok!");
    expect(ends(ok)[0]?.outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("turns a permission request into an agent request: the permission and its metadata, the call's id and description", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const tool = (state: Record<string, unknown>) => part({ id: "prt_tool", type: "tool", tool: "bash", callID: "toolu_mock_1", state });
    run(events, [user(), assistant(), tool({ status: "pending", input: {}, raw: "" }), tool({ status: "running", input: { command: "echo hi > x.txt", description: "Write x" } })]);
    const asked = events.map("permission.asked", {
      id: "per_234db3db6001JQz5dte65JiTRd",
      sessionID: SES,
      permission: "bash",
      patterns: ["echo hi > x.txt"],
      metadata: { command: "echo hi > x.txt" },
      always: ["echo *"],
      tool: { messageID: ASSISTANT, callID: "toolu_mock_1" },
    });
    expect(asked).toEqual([
      {
        type: "agent_request",
        request: {
          requestId: "per_234db3db6001JQz5dte65JiTRd",
          kind: "permission",
          toolName: "bash",
          toolUseId: "toolu_mock_1",
          inputJson: '{"command":"echo hi > x.txt"}',
          description: "Write x",
          path: "",
          command: "echo hi > x.txt",
          suggestionsJson: ['{"permission":"bash","pattern":"echo *"}'],
          questions: [],
        },
      },
    ]);
    // Asked again (the server repeats itself): one request, one answer.
    expect(events.map("permission.asked", { id: "per_234db3db6001JQz5dte65JiTRd", permission: "bash" })).toEqual([]);
    // The same call before its input arrived asks the same (the session matches identical calls).
    const early = new OpenCodeEvents(SES);
    early.begin(USER);
    run(early, [user(), assistant(), tool({ status: "pending", input: {}, raw: "" })]);
    const same = early.map("permission.asked", { id: "per_3", permission: "bash", patterns: ["echo hi > x.txt"], metadata: { command: "echo hi > x.txt" }, tool: { callID: "toolu_mock_1" } });
    expect(same[0]).toMatchObject({ request: { toolName: "bash", inputJson: '{"command":"echo hi > x.txt"}', toolUseId: "toolu_mock_1" } });
    // An edit of a call the turn has not shown; without metadata the patterns say what is at stake.
    const edit = events.map("permission.asked", { id: "per_2", permission: "edit", patterns: ["a.txt"], metadata: { filepath: "/w/a.txt", diff: "+x" }, always: ["*"] });
    expect(edit[0]).toMatchObject({ type: "agent_request", request: { toolName: "edit", path: "/w/a.txt", inputJson: '{"filepath":"/w/a.txt","diff":"+x"}', toolUseId: "", description: "edit: a.txt" } });
    expect(events.map("permission.asked", { id: "per_4", permission: "webfetch", patterns: ["https://x"] })[0]).toMatchObject({ request: { inputJson: '{"patterns":["https://x"]}' } });
    events.answered("per_4");
    // Answered by hotplex: forgotten, so its permission.replied is no withdrawal.
    expect(events.answered("per_234db3db6001JQz5dte65JiTRd")?.kind).toBe("permission");
    expect(events.map("permission.replied", { sessionID: SES, requestID: "per_234db3db6001JQz5dte65JiTRd", reply: "once" })).toEqual([]);
    // Settled by someone else: withdrawn.
    expect(events.map("permission.replied", { sessionID: SES, requestID: "per_2", reply: "reject" })).toEqual([{ type: "agent_request_cancelled", requestId: "per_2" }]);
    expect(events.answered("per_2")).toBeUndefined();
  });

  it("turns a question into an agent request keyed by position; a rejection by someone else withdraws it", () => {
    const events = new OpenCodeEvents(SES);
    const out = events.map("question.asked", {
      id: "que_234db4145001UrIGoypVXSB66J",
      sessionID: SES,
      questions: [
        { question: "Pick a color?", header: "Color", options: [{ label: "red", description: "warm" }, { label: "blue", description: "cool" }] },
        { question: "Which files?", header: "Files", options: [], multiple: true },
        "not a question",
      ],
      tool: { messageID: ASSISTANT, callID: "toolu_mock_3" },
    });
    expect(out).toEqual([
      {
        type: "agent_request",
        request: expect.objectContaining({
          requestId: "que_234db4145001UrIGoypVXSB66J",
          kind: "question",
          toolName: "question",
          toolUseId: "toolu_mock_3",
          description: "Pick a color?",
          questions: [
            { id: "0", question: "Pick a color?", header: "Color", options: [{ label: "red", description: "warm" }, { label: "blue", description: "cool" }], multiSelect: false },
            { id: "1", question: "Which files?", header: "Files", options: [], multiSelect: true },
            { id: "2", question: "", header: "", options: [], multiSelect: false },
          ],
        }),
      },
    ]);
    expect(events.map("question.rejected", { sessionID: SES, requestID: "que_234db4145001UrIGoypVXSB66J" })).toEqual([
      { type: "agent_request_cancelled", requestId: "que_234db4145001UrIGoypVXSB66J" },
    ]);
  });

  it("withdraws the requests still waiting when the turn ends (an abort leaves them behind), before its end", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    run(events, [user(), assistant()]);
    events.map("permission.asked", { id: "per_waiting1", permission: "bash", patterns: ["sleep 1"] });
    const out = run(events, [["session.error", { sessionID: SES, error: { name: "MessageAbortedError" } }], idle]);
    expect(out.map((o) => o.type)).toEqual(["agent_request_cancelled", "turn_end"]);
    expect(out[0]).toEqual({ type: "agent_request_cancelled", requestId: "per_waiting1" });
    expect(ends(out)[0]?.outcome).toBe(TurnOutcome.INTERRUPTED);
    // A refused prompt withdraws them as well.
    events.begin("msg_23448d489001bbbbbbbbbbbbbb");
    events.map("question.asked", { id: "que_waiting2", questions: [] });
    expect(events.fail("refused").map((o) => o.type)).toEqual(["agent_request_cancelled", "turn_end"]);
  });

  it("names the turn's last assistant message as its reference (a fork at the turn cuts after it)", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const later = "msg_23448d48a001cccccccccccccc";
    const out = run(events, [user(), assistant({ finish: "tool-calls", time: { created: 1, completed: 2 } }), assistant({ finish: "stop", time: { created: 3, completed: 4 } }, later), idle]);
    expect(ends(out)[0]?.providerTurnRef).toBe(later);
  });

  it("ignores our own prompt's parts, assistant messages of other prompts and idles before a finished step", () => {
    const events = new OpenCodeEvents(SES);
    events.begin(USER);
    const out = run(events, [
      user(),
      part({ id: "prt_u", type: "text", text: "my prompt" }, USER),
      assistant({ error: { name: "APIError" } }, "msg_23448d499001zzzzzzzzzzzzzz", "msg_other_parent_1"),
      // Not this turn's end: none of its steps finished (an idle left by an abort).
      idle,
    ]);
    expect(kinds(out)).toEqual(["turn_start"]);
    expect(events.running).toBe(true);
  });
});
