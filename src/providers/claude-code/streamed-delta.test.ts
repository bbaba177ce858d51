import { describe, expect, it } from "vitest";
import { isObject, num, parentToolUseId, str } from "./content.js";
import { readStreamedDelta, type StreamedDelta } from "./streamed-delta.js";

// What the parser's general path (JSON.parse, then the stream event handler) reads from a
// line: the delta, or undefined when the line is not a text/thinking delta at all.
function reference(line: string): StreamedDelta | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(value) || value.type !== "stream_event" || !isObject(value.event)) return undefined;
  const event = value.event;
  if (event.type !== "content_block_delta" || !isObject(event.delta)) return undefined;
  const index = num(event.index);
  if (index === undefined) return undefined;
  const delta = event.delta;
  const parent = parentToolUseId(value);
  if (delta.type === "text_delta") {
    const text = str(delta.text);
    return text === undefined ? undefined : { index, kind: "text", text, parent };
  }
  if (delta.type === "thinking_delta") {
    const text = str(delta.thinking) ?? str(delta.text);
    return text === undefined ? undefined : { index, kind: "thinking", text, parent };
  }
  return undefined;
}

// A deterministic generator, so a failure can be replayed.
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ["a", "Hello", " ", '"', "\\", "\n", "\t", "\r", "\u0000", "\u001f", "é", "日本", "😀", "\ud800", "\udc00", "\u2028", "}", "{", ",", ":", "\\n", '\\"', "null"];

function text(rand: () => number): string {
  let out = "";
  const n = Math.floor(rand() * 6);
  for (let i = 0; i < n; i += 1) out += PIECES[Math.floor(rand() * PIECES.length)];
  return out;
}

// A line in the CLI's own shape: the delta, then the top-level fields in its order.
function cliLine(rand: () => number): string {
  const thinking = rand() < 0.3;
  const delta = thinking ? { type: "thinking_delta", thinking: text(rand) } : { type: "text_delta", text: text(rand) };
  const parent = rand() < 0.7 ? null : `toolu_${Math.floor(rand() * 1e6)}`;
  const line: Record<string, unknown> = {
    type: "stream_event",
    event: { type: "content_block_delta", index: Math.floor(rand() * 20), delta },
    session_id: "8f0b8f2e-6f1c-4c55-9b43-0d8c4c1c2a11",
    parent_tool_use_id: parent,
    uuid: "d2f4c1aa-5c55-4f0e-8f0b-2e6f1c4c5590",
  };
  if (rand() < 0.2) line.ttft_ms = Math.floor(rand() * 500);
  return JSON.stringify(line);
}

const MUTATIONS = ['"', "\\", "}", "{", ",", ":", " ", "0", "1", "-", "a", "\n", "\u0001", "e", "."];

function mutate(line: string, rand: () => number): string {
  const at = Math.floor(rand() * line.length);
  const char = MUTATIONS[Math.floor(rand() * MUTATIONS.length)] ?? "";
  const kind = rand();
  if (kind < 0.33) return line.slice(0, at) + line.slice(at + 1);
  if (kind < 0.66) return line.slice(0, at) + char + line.slice(at);
  return line.slice(0, at) + char + line.slice(at + 1);
}

describe("readStreamedDelta", () => {
  it("reads a text delta of the main agent as the CLI prints it", () => {
    const line =
      '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from mock. You"}},"session_id":"s","parent_tool_use_id":null,"uuid":"u"}';
    expect(readStreamedDelta(line)).toEqual({ index: 0, kind: "text", text: "Hello from mock. You", parent: "" });
  });

  it("reads escapes, a thinking delta and a sub-agent's parent id", () => {
    const line = JSON.stringify({
      type: "stream_event",
      event: { type: "content_block_delta", index: 12, delta: { type: "thinking_delta", thinking: 'a "quoted"\nline \\ 😀' } },
      session_id: "s",
      parent_tool_use_id: "toolu_01",
      uuid: "u",
    });
    expect(readStreamedDelta(line)).toEqual({ index: 12, kind: "thinking", text: 'a "quoted"\nline \\ 😀', parent: "toolu_01" });
  });

  it("leaves lines it is not sure of to the general path", () => {
    const base = '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}';
    for (const line of [
      `${base},"parent_tool_use_id":null}   `, // trailing spaces: valid JSON, not the CLI's shape
      `${base},"type":"assistant"}`, // a later "type" wins in JSON.parse
      `${base},"meta":{"a":1}}`, // a nested value
      `${base},"parent_tool_use_id":"a\\"b"}`, // an escaped top-level string
      '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","extra":1}},"uuid":"u"}',
      '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}},"uuid":"u"}',
      '{"type":"stream_event","event":{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"x"}},"uuid":"u"}',
      '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\u0001b"}},"uuid":"u"}',
      '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\\x"}},"uuid":"u"}',
    ]) {
      expect(readStreamedDelta(line), line).toBeUndefined();
    }
  });

  it("reads every line in the CLI's shape, exactly as JSON.parse does", () => {
    const rand = random(1);
    for (let i = 0; i < 5_000; i += 1) {
      const line = cliLine(rand);
      const fast = readStreamedDelta(line);
      expect(fast, line).toBeDefined();
      expect(fast, line).toEqual(reference(line));
    }
  });

  it("never reads a damaged line differently from JSON.parse", () => {
    const rand = random(2);
    let read = 0;
    for (let i = 0; i < 40_000; i += 1) {
      let line = cliLine(rand);
      const mutations = 1 + Math.floor(rand() * 3);
      for (let m = 0; m < mutations; m += 1) line = mutate(line, rand);
      const fast = readStreamedDelta(line);
      if (fast === undefined) continue;
      read += 1;
      expect(fast, line).toEqual(reference(line));
    }
    // Many mutations land inside the text or a top-level value and keep a readable line.
    expect(read).toBeGreaterThan(1_000);
  });
});
