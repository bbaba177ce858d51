import { describe, it, expect } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { EventSchema, TurnEndedSchema, TurnOutcome } from "../../events/event.js";
import type { EventPayload, TurnEnded } from "../../events/event.js";
import type { ParsedOutput } from "../provider.js";
import { ClaudeStreamParser } from "./parser.js";

// Line shapes below are copied from the CLI 2.1.197 transcripts in the stream-json
// reference (docs: claude-code-stream-json.md), with the elided parts filled in.

const SESSION = "4438f68f-2b1c-4c55-9d0e-7a1f3c9e8b21";
const MODEL = "claude-opus-4-8[1m]";

type Json = Record<string, unknown>;

const init: Json = {
  type: "system",
  subtype: "init",
  cwd: "/srv/work/s1",
  session_id: SESSION,
  tools: ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write"],
  mcp_servers: [],
  model: MODEL,
  permissionMode: "default",
  slash_commands: ["compact", "context", "cost"],
  apiKeySource: "ANTHROPIC_API_KEY",
  claude_code_version: "2.1.197",
  output_style: "default",
  agents: ["general-purpose"],
  skills: [],
  plugins: [],
  analytics_disabled: true,
  product_feedback_disabled: true,
  uuid: "0b6a3c3e-1111-4a2b-8c3d-000000000001",
  memory_paths: [],
  fast_mode_state: "off",
};

function assistant(content: unknown[], extra: Json = {}, messageExtra: Json = {}): Json {
  return {
    type: "assistant",
    message: {
      id: "msg_mock_1",
      type: "message",
      role: "assistant",
      model: "claude-opus-4-8",
      content,
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 9 },
      ...messageExtra,
    },
    parent_tool_use_id: null,
    session_id: SESSION,
    uuid: "0b6a3c3e-1111-4a2b-8c3d-000000000002",
    request_id: "req_mock_1",
    ...extra,
  };
}

function user(content: unknown, extra: Json = {}): Json {
  return {
    type: "user",
    message: { role: "user", content },
    parent_tool_use_id: null,
    session_id: SESSION,
    uuid: "0b6a3c3e-1111-4a2b-8c3d-000000000003",
    ...extra,
  };
}

function streamEvent(event: Json, parent: string | null = null): Json {
  return { type: "stream_event", event, session_id: SESSION, parent_tool_use_id: parent, uuid: "0b6a3c3e-1111-4a2b-8c3d-000000000004" };
}

const messageStart = streamEvent({
  type: "message_start",
  message: { id: "msg_mock_1", type: "message", role: "assistant", model: "claude-opus-4-8", content: [], stop_reason: null, usage: { input_tokens: 12, output_tokens: 1 } },
});
const blockStart = (index: number, block: Json, parent: string | null = null) =>
  streamEvent({ type: "content_block_start", index, content_block: block }, parent);
const blockDelta = (index: number, delta: Json, parent: string | null = null) =>
  streamEvent({ type: "content_block_delta", index, delta }, parent);
const blockStop = (index: number, parent: string | null = null) => streamEvent({ type: "content_block_stop", index }, parent);
const messageDelta = streamEvent({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 9 } });
const messageStop = streamEvent({ type: "message_stop" });
const statusRequesting: Json = { type: "system", subtype: "status", status: "requesting", session_id: SESSION, uuid: "u-status" };

function result(fields: Json = {}): Json {
  return {
    type: "result",
    subtype: "success",
    is_error: false,
    api_error_status: null,
    duration_ms: 125,
    duration_api_ms: 41,
    ttft_ms: 118,
    num_turns: 1,
    result: 'Hello from mock. You said: "hello there"',
    stop_reason: "end_turn",
    session_id: SESSION,
    total_cost_usd: 0.00035,
    usage: {
      input_tokens: 12,
      cache_creation_input_tokens: 100,
      cache_read_input_tokens: 2000,
      output_tokens: 9,
      server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 },
      service_tier: "standard",
    },
    modelUsage: { [MODEL]: { inputTokens: 12, outputTokens: 9, cacheReadInputTokens: 2000, cacheCreationInputTokens: 100, costUSD: 0.00035 } },
    permission_denials: [],
    terminal_reason: "completed",
    fast_mode_state: "off",
    uuid: "0b6a3c3e-1111-4a2b-8c3d-000000000005",
    ...fields,
  };
}

/** Feeds lines (objects are stringified) at the given times; returns every output in order. */
function feed(parser: ClaudeStreamParser, steps: Array<Json | string | [Json | string, number]>): ParsedOutput[] {
  const out: ParsedOutput[] = [];
  for (const step of steps) {
    const [line, at] = Array.isArray(step) ? step : [step, 0];
    out.push(...parser.parse(typeof line === "string" ? line : JSON.stringify(line), at));
  }
  return out;
}

/** A parser that has seen the turn's system/init. */
function started(): ClaudeStreamParser {
  const parser = new ClaudeStreamParser();
  parser.parse(JSON.stringify(init), 0);
  return parser;
}

function payloads(out: ParsedOutput[]): EventPayload[] {
  return out.flatMap((o) => (o.type === "event" ? [o.payload] : []));
}

function texts(out: ParsedOutput[], kind: "textDelta" | "thinkingDelta" = "textDelta"): string[] {
  return payloads(out).flatMap((p) => (p.case === kind ? [p.value.text] : []));
}

function turnEnd(out: ParsedOutput[]): TurnEnded {
  const ends = out.flatMap((o) => (o.type === "turn_end" ? [o.turnEnded] : []));
  expect(ends).toHaveLength(1);
  return ends[0]!;
}

function rawOf(out: ParsedOutput[]): Array<{ line: string; reason: string }> {
  return payloads(out).flatMap((p) => (p.case === "raw" ? [{ line: p.value.line, reason: p.value.reason }] : []));
}

describe("ClaudeStreamParser", () => {
  describe("turn start", () => {
    it("turns system/init into a turn start with the session id and model", () => {
      const out = new ClaudeStreamParser().parse(JSON.stringify(init), 0);
      expect(out).toEqual([{ type: "turn_start", providerSessionId: SESSION, model: MODEL }]);
    });

    it("emits nothing for status, compaction and hook system lines", () => {
      const out = feed(started(), [
        statusRequesting,
        { type: "system", subtype: "status", status: null, permissionMode: "acceptEdits", session_id: SESSION },
        { type: "system", subtype: "compact_boundary", compact_metadata: { trigger: "auto", pre_tokens: 150000 }, session_id: SESSION },
        { type: "system", subtype: "hook_response", hook_name: "SessionStart:startup", stdout: "", stderr: "", exit_code: 0 },
      ]);
      expect(out).toEqual([]);
    });

    it("keeps an unknown system subtype as raw output", () => {
      const line = JSON.stringify({ type: "system", subtype: "brand_new_thing", session_id: SESSION });
      expect(rawOf(started().parse(line, 0))).toEqual([{ line, reason: "unknown_type" }]);
    });

    it("reports an API retry as an error event", () => {
      const out = started().parse(
        JSON.stringify({
          type: "system",
          subtype: "api_retry",
          attempt: 1,
          max_retries: 1,
          retry_delay_ms: 598.8,
          error_status: 529,
          error: "overloaded",
          session_id: SESSION,
          uuid: "u-retry",
        }),
        0,
      );
      expect(payloads(out)).toHaveLength(1);
      const payload = payloads(out)[0]!;
      expect(payload.case).toBe("error");
      if (payload.case !== "error") return;
      expect(payload.value.code).toBe("api_retry");
      expect(payload.value.message).toBe("model API error 529 (overloaded); retry 1 of 1 in 599 ms");
    });
  });

  describe("assistant lines without partial messages", () => {
    it("emits a text block whole as one text delta", () => {
      const out = started().parse(JSON.stringify(assistant([{ type: "text", text: 'Hello from mock. You said: "hi"' }])), 0);
      expect(texts(out)).toEqual(['Hello from mock. You said: "hi"']);
      expect(payloads(out)[0]).toMatchObject({ case: "textDelta", value: { parentToolUseId: "" } });
    });

    it("emits a thinking block whole as one thinking delta", () => {
      const block = { type: "thinking", thinking: "The user greets me.", signature: "EqQBCkgIBxABGAIiQL..." };
      const out = started().parse(JSON.stringify(assistant([block])), 0);
      expect(texts(out, "thinkingDelta")).toEqual(["The user greets me."]);
      expect(texts(out)).toEqual([]);
    });

    it("emits a tool_use block as a tool use with its input as JSON", () => {
      const block = { type: "tool_use", id: "toolu_mock_1", name: "Bash", input: { command: "echo hi", description: "Print hi" } };
      const out = started().parse(JSON.stringify(assistant([block])), 0);
      expect(payloads(out)).toHaveLength(1);
      expect(payloads(out)[0]).toMatchObject({
        case: "toolUse",
        value: { toolUseId: "toolu_mock_1", name: "Bash", parentToolUseId: "" },
      });
      const p = payloads(out)[0]!;
      if (p.case === "toolUse") expect(JSON.parse(p.value.inputJson)).toEqual(block.input);
    });

    it("handles several blocks in one assistant line in order", () => {
      const out = started().parse(
        JSON.stringify(
          assistant([
            { type: "thinking", thinking: "Plan: run it.", signature: "sig" },
            { type: "text", text: "Running it." },
            { type: "tool_use", id: "toolu_mock_2", name: "Read", input: { file_path: "README.md" } },
          ]),
        ),
        0,
      );
      expect(payloads(out).map((p) => p.case)).toEqual(["thinkingDelta", "textDelta", "toolUse"]);
    });

    it("emits nothing for a redacted thinking block", () => {
      const out = started().parse(JSON.stringify(assistant([{ type: "redacted_thinking", data: "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT..." }])), 0);
      expect(out).toEqual([]);
    });

    it("keeps the line as raw output when it holds an unknown block type, after the known blocks", () => {
      const line = JSON.stringify(assistant([{ type: "text", text: "Here:" }, { type: "hologram", payload: 1 }]));
      const out = started().parse(line, 0);
      expect(texts(out)).toEqual(["Here:"]);
      expect(rawOf(out)).toEqual([{ line, reason: "unknown_type" }]);
    });

    it("emits the text of a synthetic API error message", () => {
      const line = assistant(
        [{ type: "text", text: 'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"bad"}}' }],
        { error: "unknown" },
        { id: "c0ffee00-0000-4000-8000-000000000000", model: "<synthetic>", usage: { input_tokens: 0, output_tokens: 0 } },
      );
      expect(texts(started().parse(JSON.stringify(line), 0))).toEqual([
        'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"bad"}}',
      ]);
    });

    it("carries a sub-agent's parent_tool_use_id into its events", () => {
      const out = started().parse(
        JSON.stringify(
          assistant(
            [
              { type: "text", text: "Searching." },
              { type: "tool_use", id: "toolu_sub_1", name: "Grep", input: { pattern: "TODO" } },
            ],
            { parent_tool_use_id: "toolu_task_1" },
          ),
        ),
        0,
      );
      expect(payloads(out).map((p) => (p.case === "textDelta" || p.case === "toolUse" ? p.value.parentToolUseId : "?"))).toEqual([
        "toolu_task_1",
        "toolu_task_1",
      ]);
    });
  });

  describe("partial messages", () => {
    it("emits the text of a streamed response exactly once", () => {
      const full = 'Hello from mock. You said: "hello there"';
      const out = feed(started(), [
        statusRequesting,
        messageStart,
        blockStart(0, { type: "text", text: "" }),
        blockDelta(0, { type: "text_delta", text: "Hello from mock. You" }),
        blockDelta(0, { type: "text_delta", text: ' said: "hello' }),
        blockDelta(0, { type: "text_delta", text: ' there"' }),
        assistant([{ type: "text", text: full }]),
        blockStop(0),
        messageDelta,
        messageStop,
        result(),
      ]);
      expect(texts(out)).toEqual(["Hello from mock. You", ' said: "hello', ' there"']);
      expect(texts(out).join("")).toBe(full);
      expect(out.map((o) => o.type)).toEqual(["event", "event", "event", "turn_end"]);
    });

    it("streams thinking, text and a tool call of one response without duplicates", () => {
      const tool = { type: "tool_use", id: "toolu_mock_3", name: "Bash", input: { command: "ls" } };
      const out = feed(started(), [
        messageStart,
        blockStart(0, { type: "thinking", thinking: "", signature: "" }),
        blockDelta(0, { type: "thinking_delta", thinking: "I should " }),
        blockDelta(0, { type: "thinking_delta", thinking: "list files." }),
        blockDelta(0, { type: "signature_delta", signature: "EqQBCkgIBxABGAIiQL..." }),
        assistant([{ type: "thinking", thinking: "I should list files.", signature: "EqQBCkgIBxABGAIiQL..." }]),
        blockStop(0),
        blockStart(1, { type: "text", text: "" }),
        blockDelta(1, { type: "text_delta", text: "Listing." }),
        assistant([{ type: "text", text: "Listing." }]),
        blockStop(1),
        blockStart(2, { type: "tool_use", id: "toolu_mock_3", name: "Bash", input: {} }),
        blockDelta(2, { type: "input_json_delta", partial_json: '{"command":' }),
        blockDelta(2, { type: "input_json_delta", partial_json: '"ls"}' }),
        assistant([tool]),
        blockStop(2),
        messageDelta,
        messageStop,
      ]);
      expect(payloads(out).map((p) => p.case)).toEqual(["thinkingDelta", "thinkingDelta", "textDelta", "toolUse"]);
      expect(texts(out, "thinkingDelta").join("")).toBe("I should list files.");
      expect(texts(out)).toEqual(["Listing."]);
    });

    it("emits the whole block from the assistant line when its deltas are missing", () => {
      const out = feed(started(), [messageStart, blockStart(0, { type: "text", text: "" }), assistant([{ type: "text", text: "No deltas came." }]), blockStop(0)]);
      expect(texts(out)).toEqual(["No deltas came."]);
    });

    it("emits only the missing tail when some deltas were lost", () => {
      const out = feed(started(), [
        messageStart,
        blockStart(0, { type: "text", text: "" }),
        blockDelta(0, { type: "text_delta", text: "Hello " }),
        assistant([{ type: "text", text: "Hello world" }]),
        blockStop(0),
      ]);
      expect(texts(out).join("")).toBe("Hello world");
    });

    it("does not repeat text when the assistant line comes after the whole message", () => {
      const out = feed(started(), [
        messageStart,
        blockStart(0, { type: "text", text: "" }),
        blockDelta(0, { type: "text_delta", text: "First." }),
        blockStop(0),
        blockStart(1, { type: "text", text: "" }),
        blockDelta(1, { type: "text_delta", text: "Second." }),
        blockStop(1),
        messageStop,
        assistant([{ type: "text", text: "First." }, { type: "text", text: "Second." }]),
      ]);
      expect(texts(out)).toEqual(["First.", "Second."]);
    });

    it("does not repeat the partial text printed when streaming is interrupted", () => {
      const out = feed(started(), [
        messageStart,
        blockStart(0, { type: "text", text: "" }),
        blockDelta(0, { type: "text_delta", text: "Hello from mock. You said: " }),
        blockDelta(0, { type: "text_delta", text: '"ch' }),
        { type: "control_response", response: { subtype: "success", request_id: "int-1" } },
        assistant([{ type: "text", text: 'Hello from mock. You said: "ch' }]),
        user([{ type: "text", text: "[Request interrupted by user]" }]),
        result({
          subtype: "error_during_execution",
          is_error: true,
          num_turns: 2,
          stop_reason: null,
          terminal_reason: "aborted_streaming",
          errors: ["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"],
          result: undefined,
        }),
      ]);
      expect(texts(out).join("")).toBe('Hello from mock. You said: "ch');
      expect(out.filter((o) => o.type === "control_response")).toEqual([{ type: "control_response", requestId: "int-1" }]);
      expect(turnEnd(out).outcome).toBe(TurnOutcome.INTERRUPTED);
    });

    it("starts the next response afresh after a response with no assistant line", () => {
      const out = feed(started(), [
        messageStart,
        blockStart(0, { type: "text", text: "" }),
        blockDelta(0, { type: "text_delta", text: "Lost" }),
        messageStart,
        blockStart(0, { type: "text", text: "" }),
        assistant([{ type: "text", text: "Fresh answer." }]),
        blockStop(0),
      ]);
      expect(texts(out)).toEqual(["Lost", "Fresh answer."]);
    });

    it("carries a sub-agent's parent_tool_use_id into streamed deltas", () => {
      const out = feed(started(), [
        blockStart(0, { type: "text", text: "" }, "toolu_task_1"),
        blockDelta(0, { type: "text_delta", text: "sub" }, "toolu_task_1"),
        assistant([{ type: "text", text: "sub" }], { parent_tool_use_id: "toolu_task_1" }),
      ]);
      expect(payloads(out)).toHaveLength(1);
      expect(payloads(out)[0]).toMatchObject({ case: "textDelta", value: { text: "sub", parentToolUseId: "toolu_task_1" } });
    });

    it("keeps an unknown stream event or delta type as raw output", () => {
      const parser = started();
      const event = JSON.stringify(streamEvent({ type: "content_block_teleport", index: 0 }));
      const delta = JSON.stringify(blockDelta(0, { type: "sparkle_delta", sparkle: "*" }));
      expect(rawOf(parser.parse(event, 0))).toEqual([{ line: event, reason: "unknown_type" }]);
      expect(rawOf(parser.parse(delta, 0))).toEqual([{ line: delta, reason: "unknown_type" }]);
    });
  });

  describe("user lines", () => {
    it("turns a tool_result with string content into a tool result with its structured output", () => {
      const structured = { stdout: "hi", stderr: "", interrupted: false, isImage: false };
      const out = started().parse(
        JSON.stringify(user([{ tool_use_id: "toolu_mock_1", type: "tool_result", content: "hi", is_error: false }], { tool_use_result: structured })),
        0,
      );
      expect(payloads(out)).toHaveLength(1);
      const p = payloads(out)[0]!;
      expect(p).toMatchObject({ case: "toolResult", value: { toolUseId: "toolu_mock_1", content: "hi", isError: false, parentToolUseId: "" } });
      if (p.case === "toolResult") expect(JSON.parse(p.value.structuredJson)).toEqual(structured);
    });

    it("joins array content: text blocks with newlines, placeholders for others", () => {
      const content = [
        { type: "text", text: "line one" },
        { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
        { type: "text", text: "line two" },
        { type: "document", source: { type: "text", data: "…" } },
      ];
      const out = started().parse(JSON.stringify(user([{ tool_use_id: "toolu_mock_4", type: "tool_result", content }])), 0);
      expect(payloads(out)[0]).toMatchObject({
        case: "toolResult",
        value: { content: "line one\n[image]\nline two\n[document]", isError: false, structuredJson: "" },
      });
    });

    it("keeps a string tool_use_result as a JSON string and marks a refused tool as an error", () => {
      const rejection = "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.";
      const out = started().parse(
        JSON.stringify(
          user([{ type: "tool_result", content: rejection, is_error: true, tool_use_id: "toolu_mock_5" }], {
            tool_use_result: "User rejected tool use",
          }),
        ),
        0,
      );
      expect(payloads(out)[0]).toMatchObject({
        case: "toolResult",
        value: { content: rejection, isError: true, structuredJson: '"User rejected tool use"' },
      });
    });

    it("carries a sub-agent's parent_tool_use_id into its tool results", () => {
      const out = started().parse(
        JSON.stringify(user([{ type: "tool_result", tool_use_id: "toolu_sub_1", content: "3 matches" }], { parent_tool_use_id: "toolu_task_1" })),
        0,
      );
      expect(payloads(out)[0]).toMatchObject({ case: "toolResult", value: { parentToolUseId: "toolu_task_1" } });
    });

    it("emits nothing for interrupt markers, replays and local command output", () => {
      const out = feed(started(), [
        user([{ type: "text", text: "[Request interrupted by user]" }]),
        user([{ type: "text", text: "[Request interrupted by user for tool use]" }]),
        user("[Request interrupted by user]"),
        user([{ type: "text", text: "hi" }], { isReplay: true }),
        user("<local-command-stdout>Set model to claude-sonnet-4-5</local-command-stdout>", { isReplay: true }),
      ]);
      expect(out).toEqual([]);
    });
  });

  describe("results", () => {
    it("ends a successful turn as completed with usage, cost and round trips", () => {
      const end = turnEnd(feed(started(), [result({ num_turns: 3 })]));
      expect(end.outcome).toBe(TurnOutcome.COMPLETED);
      expect(end.result).toBe('Hello from mock. You said: "hello there"');
      expect(end.usage).toMatchObject({ inputTokens: 12n, outputTokens: 9n, cacheReadTokens: 2000n, cacheWriteTokens: 100n });
      expect(end.costUsd).toBeCloseTo(0.00035, 10);
      expect(end.numTurns).toBe(3);
      expect(end.providerSubtype).toBe("success");
      expect(end.errorMessage).toBe("");
      expect(end.durationMs).toBe(0n);
    });

    it("fails a turn whose API call failed, with the API error as the message", () => {
      const apiError = 'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}';
      const end = turnEnd(
        feed(started(), [result({ is_error: true, api_error_status: 400, result: apiError, stop_reason: "stop_sequence", terminal_reason: "completed" })]),
      );
      expect(end.outcome).toBe(TurnOutcome.FAILED);
      expect(end.providerSubtype).toBe("success");
      expect(end.errorMessage).toBe(apiError);
      expect(end.result).toBe(apiError);
    });

    it("marks an interrupt while streaming as interrupted, even without a result key", () => {
      const line = result({
        subtype: "error_during_execution",
        is_error: true,
        stop_reason: null,
        terminal_reason: "aborted_streaming",
        errors: ["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"],
      });
      delete line.result;
      const end = turnEnd(feed(started(), [line]));
      expect(end.outcome).toBe(TurnOutcome.INTERRUPTED);
      expect(end.result).toBe("");
      expect(end.providerSubtype).toBe("error_during_execution");
      expect(end.errorMessage).toBe("[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null");
    });

    it("marks an interrupt during a tool as interrupted", () => {
      const end = turnEnd(
        feed(started(), [
          result({ subtype: "error_during_execution", is_error: true, stop_reason: "tool_use", terminal_reason: "aborted_tools", errors: [] }),
        ]),
      );
      expect(end.outcome).toBe(TurnOutcome.INTERRUPTED);
      expect(end.errorMessage).not.toBe("");
    });

    it("fails a turn that reached the maximum number of turns", () => {
      const end = turnEnd(
        feed(started(), [
          result({ subtype: "error_max_turns", is_error: true, terminal_reason: "max_turns", errors: ["Reached maximum number of turns (1)"], result: undefined }),
        ]),
      );
      expect(end.outcome).toBe(TurnOutcome.FAILED);
      expect(end.providerSubtype).toBe("error_max_turns");
      expect(end.errorMessage).toBe("Reached maximum number of turns (1)");
    });

    it("fails an error_during_execution that was not an interrupt, joining its errors", () => {
      const end = turnEnd(
        feed(started(), [result({ subtype: "error_during_execution", is_error: true, errors: ["e.filter is not a function", "second"], result: undefined })]),
      );
      expect(end.outcome).toBe(TurnOutcome.FAILED);
      expect(end.errorMessage).toBe("e.filter is not a function; second");
    });

    it("reports a result written before any init as a startup failure", () => {
      const out = new ClaudeStreamParser().parse(
        JSON.stringify(
          result({
            subtype: "error_during_execution",
            is_error: true,
            num_turns: 0,
            total_cost_usd: 0,
            errors: ["No conversation found with session ID: 9f1c2d3e-0000-4000-8000-000000000000"],
            result: undefined,
          }),
        ),
        0,
      );
      expect(out).toEqual([{ type: "fatal_startup", message: "No conversation found with session ID: 9f1c2d3e-0000-4000-8000-000000000000" }]);
    });

    it("reports any other result before the first init as a startup failure too", () => {
      const out = new ClaudeStreamParser().parse(JSON.stringify(result({ is_error: true, result: "API Error: 401 invalid x-api-key" })), 0);
      expect(out).toEqual([{ type: "fatal_startup", message: "API Error: 401 invalid x-api-key" }]);
    });

    it("counts missing, negative and non-numeric token counts as zero", () => {
      const end = turnEnd(
        feed(started(), [result({ usage: { input_tokens: -5, output_tokens: "9", cache_read_input_tokens: null } })]),
      );
      expect(end.usage).toMatchObject({ inputTokens: 0n, outputTokens: 0n, cacheReadTokens: 0n, cacheWriteTokens: 0n });
      expect(turnEnd(feed(started(), [result({ usage: undefined })])).usage?.inputTokens).toBe(0n);
    });

    it("derives each turn's cost from the process-cumulative total", () => {
      const parser = started();
      const first = turnEnd(feed(parser, [result({ total_cost_usd: 0.001 })]));
      const second = turnEnd(feed(parser, [init, result({ total_cost_usd: 0.003 })]));
      expect(first.costUsd).toBeCloseTo(0.001, 12);
      expect(second.costUsd).toBeCloseTo(0.002, 12);
    });

    it("never reports a negative or missing cost", () => {
      const parser = started();
      feed(parser, [result({ total_cost_usd: 0.003 })]);
      expect(turnEnd(feed(parser, [init, result({ total_cost_usd: 0.001 })])).costUsd).toBe(0);
      expect(turnEnd(feed(parser, [init, result({ total_cost_usd: "lots" })])).costUsd).toBe(0);
    });
  });

  describe("durations", () => {
    it("measures thinking, tool and generation time with the injected clock", () => {
      const out = feed(started(), [
        [messageStart, 0],
        [blockStart(0, { type: "thinking", thinking: "", signature: "" }), 0],
        [blockDelta(0, { type: "thinking_delta", thinking: "Let me look." }), 10],
        [assistant([{ type: "thinking", thinking: "Let me look.", signature: "sig" }]), 25],
        [blockStop(0), 30],
        [blockStart(1, { type: "tool_use", id: "toolu_mock_6", name: "Bash", input: {} }), 32],
        [blockDelta(1, { type: "input_json_delta", partial_json: '{"command":"ls"}' }), 35],
        [assistant([{ type: "tool_use", id: "toolu_mock_6", name: "Bash", input: { command: "ls" } }]), 40],
        [blockStop(1), 42],
        [messageStop, 43],
        [user([{ type: "tool_result", tool_use_id: "toolu_mock_6", content: "README.md" }], { tool_use_result: { stdout: "README.md" } }), 140],
        [messageStart, 145],
        [blockStart(0, { type: "text", text: "" }), 150],
        [blockDelta(0, { type: "text_delta", text: "One file." }), 160],
        [assistant([{ type: "text", text: "One file." }]), 165],
        [blockStop(0), 170],
        [messageStop, 171],
        [result(), 175],
      ]);
      const end = turnEnd(out);
      expect(end.thinkingDurationMs).toBe(30n);
      expect(end.toolDurationMs).toBe(100n);
      // The text block (150→170) plus the tool_use block (32→42).
      expect(end.generationDurationMs).toBe(30n);
    });

    it("counts a block cut short by an interrupt up to the result", () => {
      const end = turnEnd(
        feed(started(), [
          [messageStart, 0],
          [blockStart(0, { type: "text", text: "" }), 10],
          [blockDelta(0, { type: "text_delta", text: "Hel" }), 20],
          [assistant([{ type: "text", text: "Hel" }]), 25],
          [result({ subtype: "error_during_execution", is_error: true, terminal_reason: "aborted_streaming", errors: [] }), 35],
        ]),
      );
      expect(end.generationDurationMs).toBe(25n);
    });

    it("rounds fractional clock readings to whole milliseconds", () => {
      const end = turnEnd(
        feed(started(), [
          [blockStart(0, { type: "text", text: "" }), 0.2],
          [blockStop(0), 10.9],
          [result(), 11],
        ]),
      );
      expect(end.generationDurationMs).toBe(11n);
    });

    it("starts every turn's durations from zero", () => {
      const parser = started();
      feed(parser, [
        [assistant([{ type: "tool_use", id: "toolu_mock_7", name: "Bash", input: {} }]), 0],
        [user([{ type: "tool_result", tool_use_id: "toolu_mock_7", content: "" }]), 50],
        [blockStart(0, { type: "text", text: "" }), 50],
        [blockStop(0), 60],
        [result(), 61],
      ]);
      const second = turnEnd(feed(parser, [[init, 100], [result(), 130]]));
      expect([second.thinkingDurationMs, second.toolDurationMs, second.generationDurationMs]).toEqual([0n, 0n, 0n]);
    });
  });

  describe("control lines", () => {
    it("passes on a successful control response", () => {
      const out = started().parse(JSON.stringify({ type: "control_response", response: { subtype: "success", request_id: "int-1" } }), 0);
      expect(out).toEqual([{ type: "control_response", requestId: "int-1" }]);
    });

    it("passes on a control response error with its text", () => {
      const error = "Cannot set permission mode to bypassPermissions because the session was not launched with --dangerously-skip-permissions";
      const out = started().parse(JSON.stringify({ type: "control_response", response: { subtype: "error", request_id: "mode-1", error } }), 0);
      expect(out).toEqual([{ type: "control_response", requestId: "mode-1", error }]);
    });

    it("reads a can_use_tool request into a permission agent_request (reference §10)", () => {
      const suggestions = [
        { type: "addRules", rules: [{ toolName: "Bash", ruleContent: "touch made1.txt" }], behavior: "allow", destination: "localSettings" },
        { type: "setMode", mode: "acceptEdits", destination: "session" },
      ];
      const line = {
        type: "control_request",
        request_id: "fe805231-7d3a-4c2e-9b1a-2f0e6d5c4b3a",
        request: {
          subtype: "can_use_tool",
          tool_name: "Bash",
          display_name: "Bash",
          input: { command: "touch made1.txt" },
          description: "touch made1.txt",
          permission_suggestions: suggestions,
          blocked_path: "/srv/work/s1/made1.txt",
          tool_use_id: "toolu_mock_15",
        },
      };
      expect(started().parse(JSON.stringify(line), 0)).toEqual([
        {
          type: "agent_request",
          request: {
            requestId: "fe805231-7d3a-4c2e-9b1a-2f0e6d5c4b3a",
            kind: "permission",
            toolName: "Bash",
            toolUseId: "toolu_mock_15",
            inputJson: '{"command":"touch made1.txt"}',
            description: "touch made1.txt",
            path: "/srv/work/s1/made1.txt",
            command: "touch made1.txt",
            suggestionsJson: suggestions.map((s) => JSON.stringify(s)),
            questions: [],
          },
        },
      ]);
    });

    it("takes the decision reason as the description when there is none, and no command for other tools", () => {
      const out = started().parse(
        JSON.stringify({
          type: "control_request",
          request_id: "r-write",
          request: { subtype: "can_use_tool", tool_name: "Write", input: { file_path: "/w/a.txt", content: "x", command: "not a shell" }, decision_reason: "This command requires approval" },
        }),
        0,
      );
      expect(out).toMatchObject([{ type: "agent_request", request: { kind: "permission", description: "This command requires approval", command: "", path: "", toolUseId: "", suggestionsJson: [] } }]);
    });

    it("reads AskUserQuestion as a question keyed by its text", () => {
      const questions = [
        { question: "Which color?", header: "Color", options: [{ label: "Red", description: "warm" }, { label: "Blue", description: "cool" }], multiSelect: false },
        { question: "Which sizes?", header: "Size", options: [{ label: "S" }, "junk"], multiSelect: true },
      ];
      const line = {
        type: "control_request",
        request_id: "ded5d2b8-75ee-4f66-949e-67cd50751c8c",
        request: { subtype: "can_use_tool", tool_name: "AskUserQuestion", display_name: "AskUserQuestion", input: { questions }, tool_use_id: "toolu_mock_2" },
      };
      expect(started().parse(JSON.stringify(line), 0)).toMatchObject([
        {
          type: "agent_request",
          request: {
            kind: "question",
            toolName: "AskUserQuestion",
            toolUseId: "toolu_mock_2",
            questions: [
              { id: "Which color?", question: "Which color?", header: "Color", options: [{ label: "Red", description: "warm" }, { label: "Blue", description: "cool" }], multiSelect: false },
              { id: "Which sizes?", question: "Which sizes?", header: "Size", options: [{ label: "S", description: "" }], multiSelect: true },
            ],
          },
        },
      ]);
    });

    it("leaves a can_use_tool it cannot read, or another subtype, a control_request (refused by the session)", () => {
      const requests = [
        { subtype: "can_use_tool", input: { command: "ls" } },
        { subtype: "can_use_tool", tool_name: "Bash", input: "ls" },
        { subtype: "can_use_tool", tool_name: "AskUserQuestion", input: { questions: [] } },
        { subtype: "can_use_tool", tool_name: "AskUserQuestion", input: { questions: [{ header: "no text" }] } },
        { subtype: "can_use_tool", tool_name: "AskUserQuestion", input: { questions: Array.from({ length: 17 }, (_, i) => ({ question: `q${i}` })) } },
      ];
      for (const request of requests) {
        expect(started().parse(JSON.stringify({ type: "control_request", request_id: "r1", request }), 0)).toEqual([
          { type: "control_request", requestId: "r1", subtype: "can_use_tool" },
        ]);
      }
      const hook = { type: "control_request", request_id: "h1", request: { subtype: "hook_callback", callback_id: "hook_0", input: {} } };
      expect(started().parse(JSON.stringify(hook), 0)).toEqual([{ type: "control_request", requestId: "h1", subtype: "hook_callback" }]);
    });

    it("passes on the payload of a control response (the initialize reply lists models)", () => {
      const payload = { models: [{ value: "default", displayName: "Default (recommended)", description: "Opus" }], pid: 42 };
      const out = started().parse(JSON.stringify({ type: "control_response", response: { subtype: "success", request_id: "c1", response: payload } }), 0);
      expect(out).toEqual([{ type: "control_response", requestId: "c1", payload }]);
    });

    it("reads a control_cancel_request as the request withdrawn; emits nothing for a keep-alive", () => {
      const out = feed(started(), [{ type: "control_cancel_request", request_id: "fe805231-7d3a-4c2e-9b1a-2f0e6d5c4b3a" }, { type: "keep_alive" }, { type: "control_cancel_request" }]);
      expect(out).toEqual([{ type: "agent_request_cancelled", requestId: "fe805231-7d3a-4c2e-9b1a-2f0e6d5c4b3a" }]);
    });
  });

  describe("provider_turn_ref", () => {
    const uuid = (n: number) => `0b6a3c3e-1111-4a2b-8c3d-${String(n).padStart(12, "0")}`;

    it("is the uuid of the turn's last main-agent assistant line (where --resume-session-at cuts)", () => {
      const parser = new ClaudeStreamParser();
      const first = turnEnd(
        feed(parser, [
          init,
          assistant([{ type: "tool_use", id: "toolu_1", name: "Bash", input: { command: "ls" } }], { uuid: uuid(10) }),
          user([{ type: "tool_result", tool_use_id: "toolu_1", content: "a" }]),
          assistant([{ type: "text", text: "sub" }], { uuid: uuid(11), parent_tool_use_id: "toolu_1" }),
          assistant([{ type: "text", text: "done" }], { uuid: uuid(12) }),
          assistant([{ type: "text", text: "not a uuid" }], { uuid: "bogus; --settings=x" }),
          result(),
        ]),
      );
      expect(first.providerTurnRef).toBe(uuid(12));
      // A turn without an assistant message (interrupted before the model answered) has none.
      expect(turnEnd(feed(parser, [init, result()])).providerTurnRef).toBe("");
    });
  });

  describe("bad and unusual input", () => {
    it("keeps a line of an unknown type as raw output", () => {
      const line = JSON.stringify({ type: "rate_limit_event", session_id: SESSION });
      expect(started().parse(line, 0)).toHaveLength(1);
      expect(rawOf(started().parse(line, 0))).toEqual([{ line, reason: "unknown_type" }]);
    });

    it("keeps a line that is not JSON as raw output", () => {
      const line = "Error: something went wrong {";
      expect(rawOf(started().parse(line, 0))).toEqual([{ line, reason: "not_json" }]);
    });

    it("keeps JSON that is not an object as raw output", () => {
      for (const line of ["null", "[1,2,3]", "42", '"text"', "true"]) {
        expect(rawOf(started().parse(line, 0))).toEqual([{ line, reason: "not_json" }]);
      }
    });

    it("emits nothing for an empty or blank line", () => {
      const parser = started();
      expect(parser.parse("", 0)).toEqual([]);
      expect(parser.parse("  \t\r", 0)).toEqual([]);
    });

    it("handles a 5 MB text block and a 5 MB tool result", () => {
      const big = "x".repeat(5 * 1024 * 1024);
      const parser = started();
      expect(texts(parser.parse(JSON.stringify(assistant([{ type: "text", text: big }])), 0))).toEqual([big]);
      const out = parser.parse(JSON.stringify(user([{ type: "tool_result", tool_use_id: "toolu_big", content: big }], { tool_use_result: { stdout: big } })), 0);
      const p = payloads(out)[0]!;
      expect(p.case).toBe("toolResult");
      if (p.case === "toolResult") expect(p.value.content.length).toBe(big.length);
    });

    it("keeps lines with wrongly typed essential fields as raw output", () => {
      const lines = [
        { ...assistant([]), message: 42 },
        assistant([]), // replaced below: content null
        user(null),
        streamEvent({ type: "content_block_delta", index: "zero", delta: { type: "text_delta", text: "x" } }),
        { type: "control_request", request: { subtype: "can_use_tool" } },
      ];
      lines[1] = { ...assistant([]), message: { role: "assistant", content: null } };
      for (const line of lines.map((l) => JSON.stringify(l))) {
        expect(rawOf(started().parse(line, 0))).toEqual([{ line, reason: "unknown_type" }]);
      }
    });

    it("never throws on any field of any known line replaced by a value of another type", () => {
      const samples: Json[] = [
        init,
        assistant([{ type: "text", text: "hi" }, { type: "tool_use", id: "toolu_f", name: "Bash", input: { command: "ls" } }]),
        user([{ type: "tool_result", tool_use_id: "toolu_f", content: [{ type: "text", text: "a" }], is_error: false }], { tool_use_result: { stdout: "a" } }),
        blockStart(0, { type: "text", text: "" }),
        blockDelta(0, { type: "text_delta", text: "x" }),
        blockStop(0),
        result(),
        { type: "system", subtype: "api_retry", attempt: 1, max_retries: 1, retry_delay_ms: 598.8, error_status: 529, error: "overloaded" },
        { type: "control_response", response: { subtype: "error", request_id: "r1", error: "boom" } },
        { type: "control_request", request_id: "r2", request: { subtype: "can_use_tool", tool_name: "Bash" } },
        {
          type: "control_request",
          request_id: "r3",
          request: {
            subtype: "can_use_tool",
            tool_name: "AskUserQuestion",
            input: { questions: [{ question: "Q?", header: "H", options: [{ label: "A", description: "a" }], multiSelect: false }] },
            permission_suggestions: [{ type: "setMode", mode: "acceptEdits" }],
            blocked_path: "/w/x",
            tool_use_id: "toolu_q",
          },
        },
        { type: "control_cancel_request", request_id: "r3" },
      ];
      const replacements: unknown[] = [42, -1, 1e308, null, "x", true, [], [null, 42], {}, { type: 42 }];
      let checked = 0;
      for (const sample of samples) {
        for (const variant of mutate(sample, replacements)) {
          for (const parser of [new ClaudeStreamParser(), started()]) {
            let out: ParsedOutput[] = [];
            expect(() => {
              out = parser.parse(JSON.stringify(variant), 0);
            }).not.toThrow();
            // Whatever came out must serialize: e.g. no out-of-range uint64.
            for (const item of out) {
              if (item.type === "event") toBinary(EventSchema, create(EventSchema, { payload: item.payload }));
              if (item.type === "turn_end") toBinary(TurnEndedSchema, item.turnEnded);
            }
            checked++;
          }
        }
      }
      expect(checked).toBeGreaterThan(1000);
    });
  });
});

/** Every copy of `value` with one field (at any depth) replaced by one of `replacements`. */
function* mutate(value: unknown, replacements: unknown[]): Generator<unknown> {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      for (const r of replacements) yield value.map((v, j) => (j === i ? r : v));
      for (const inner of mutate(value[i], replacements)) yield value.map((v, j) => (j === i ? inner : v));
    }
  } else if (typeof value === "object" && value !== null) {
    const obj = value as Json;
    for (const key of Object.keys(obj)) {
      for (const r of replacements) yield { ...obj, [key]: r };
      for (const inner of mutate(obj[key], replacements)) yield { ...obj, [key]: inner };
    }
  }
}
