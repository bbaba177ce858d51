// A fast reader for the one line kind a streaming turn is made of: a text or thinking
// `content_block_delta` stream event, as the CLI prints it (compact JSON, fixed key order):
//
//   {"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}},"session_id":"…","parent_tool_use_id":null,"uuid":"…"}
//
// JSON.parse builds three objects and eight strings for such a line to yield one string;
// at tens of thousands of deltas a second it was the largest single cost of ingesting a
// turn. This reader matches the whole line against that shape and returns exactly what
// JSON.parse and the parser's general path would make of it, or undefined for anything
// it is not sure of (other spacing, key order, nested or escaped top-level values, a key
// that could change the meaning); the general path then reads the line as before.
// streamed-delta.test.ts checks it against JSON.parse on generated and mutated lines.

/** A streamed text or thinking delta, as the parser's general path would read it. */
export interface StreamedDelta {
  index: number;
  kind: "text" | "thinking";
  text: string;
  /** `parent_tool_use_id`, "" for the main agent (null, absent or not a string). */
  parent: string;
}

const PREFIX = '{"type":"stream_event","event":{"type":"content_block_delta","index":';
const TEXT_DELTA = ',"delta":{"type":"text_delta","text":"';
const THINKING_DELTA = ',"delta":{"type":"thinking_delta","thinking":"';
// One top-level field after the event: a plain name and a value without nesting or
// escapes (a JSON number exactly as JSON.parse accepts it).
const FIELD = /,"([A-Za-z_]+)":(null|true|false|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|"[^"\\\u0000-\u001f]*")/y;
// JSON strings may not hold raw control characters: such a line is not JSON.
const CONTROL = /[\u0000-\u001f]/;
const BACKSLASH = 92;
const ZERO = 48;
const NINE = 57;

/** The delta a line holds, or undefined when the line is not (surely) one. */
export function readStreamedDelta(line: string): StreamedDelta | undefined {
  if (!line.startsWith(PREFIX)) return undefined;
  let at = PREFIX.length;

  // "index": a non-negative integer, as JSON writes it.
  const digitsStart = at;
  let index = 0;
  for (let c = line.charCodeAt(at); c >= ZERO && c <= NINE; c = line.charCodeAt(++at)) index = index * 10 + (c - ZERO);
  const digits = at - digitsStart;
  if (digits === 0 || digits > 9 || (digits > 1 && line.charCodeAt(digitsStart) === ZERO)) return undefined;

  let kind: StreamedDelta["kind"];
  if (line.startsWith(TEXT_DELTA, at)) {
    kind = "text";
    at += TEXT_DELTA.length;
  } else if (line.startsWith(THINKING_DELTA, at)) {
    kind = "thinking";
    at += THINKING_DELTA.length;
  } else {
    return undefined;
  }

  // The string value: it ends at the first quote preceded by an even number of backslashes.
  const textStart = at;
  let end = line.indexOf('"', at);
  for (;;) {
    if (end === -1) return undefined;
    let backslashes = 0;
    while (end - 1 - backslashes >= textStart && line.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) break;
    end = line.indexOf('"', end + 1);
  }
  const body = line.slice(textStart, end);
  let text: string;
  if (body.indexOf("\\") === -1) {
    if (CONTROL.test(body)) return undefined;
    text = body;
  } else {
    try {
      text = JSON.parse(line.slice(textStart - 1, end + 1)) as string;
    } catch {
      return undefined;
    }
  }

  // The delta and the event end; then plain top-level fields, then the line's end.
  if (!line.startsWith("}}", end + 1)) return undefined;
  let parent = "";
  FIELD.lastIndex = end + 3;
  for (;;) {
    const from = FIELD.lastIndex;
    const field = FIELD.exec(line);
    if (!field) {
      if (from !== line.length - 1 || line.charCodeAt(from) !== 0x7d /* } */) return undefined;
      break;
    }
    const [, name, value = ""] = field;
    // A second "type" or "event" would replace the first (JSON.parse keeps the last).
    if (name === "type" || name === "event") return undefined;
    if (name === "parent_tool_use_id") parent = value.startsWith('"') ? value.slice(1, -1) : "";
  }
  return { index, kind, text, parent };
}
