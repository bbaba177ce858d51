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

// The top-level fields as the CLI writes them after a delta event; other field sets go
// through readTopLevelFields. No escapes, no control characters in these strings.
const CLI_SUFFIX = /"\}\},"session_id":"[^"\\\u0000-\u001f]*","parent_tool_use_id":(?:null|"([^"\\\u0000-\u001f]*)"),"uuid":"[^"\\\u0000-\u001f]*"\}$/y;
// JSON strings may not hold raw control characters: such a line is not JSON.
const CONTROL = /[\u0000-\u001f]/;

// Character codes. The scans below use native string searches (indexOf, lastIndexOf)
// where they can: on this path startsWith and char-by-char loops cost as much as the
// JSON.parse they replace.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const CLOSE_BRACE = 0x7d;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

const isDigit = (c: number) => c >= ZERO && c <= NINE;
const isNameChar = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;
// line.startsWith(part, at), without startsWith's cost.
const hasAt = (line: string, part: string, at: number) => line.lastIndexOf(part, at) === at;

/** The delta a line holds, or undefined when the line is not (surely) one. */
export function readStreamedDelta(line: string): StreamedDelta | undefined {
  if (!hasAt(line, PREFIX, 0)) return undefined;
  let at = PREFIX.length;

  // "index": a non-negative integer, as JSON writes it.
  const digitsStart = at;
  let index = 0;
  for (let c = line.charCodeAt(at); isDigit(c); c = line.charCodeAt(++at)) index = index * 10 + (c - ZERO);
  const digits = at - digitsStart;
  if (digits === 0 || digits > 9 || (digits > 1 && line.charCodeAt(digitsStart) === ZERO)) return undefined;

  let kind: StreamedDelta["kind"];
  if (hasAt(line, TEXT_DELTA, at)) {
    kind = "text";
    at += TEXT_DELTA.length;
  } else if (hasAt(line, THINKING_DELTA, at)) {
    kind = "thinking";
    at += THINKING_DELTA.length;
  } else {
    return undefined;
  }

  // The string value, up to its closing quote: the first quote when nothing is escaped.
  const textStart = at;
  const backslash = line.indexOf("\\", textStart);
  let end = line.indexOf('"', textStart);
  let text: string;
  if (backslash === -1 || backslash > end) {
    if (end === -1) return undefined;
    text = line.slice(textStart, end);
    // A raw control character makes the line invalid JSON (the general path keeps it as
    // raw output). The fixed parts have none, and the top-level fields are checked below.
    if (CONTROL.test(text)) return undefined;
  } else {
    // Escapes: the closing quote is the first one not escaped; JSON.parse decodes (and
    // refuses raw control characters).
    for (end = textStart; ; end += 1) {
      const c = line.charCodeAt(end);
      if (c === QUOTE) break;
      if (c === BACKSLASH) end += 1;
      else if (Number.isNaN(c)) return undefined;
    }
    try {
      text = JSON.parse(line.slice(textStart - 1, end + 1)) as string;
    } catch {
      return undefined;
    }
  }
  // The delta and the event end; then the top-level fields, then the line's end.
  CLI_SUFFIX.lastIndex = end;
  const cli = CLI_SUFFIX.exec(line);
  if (cli) return { index, kind, text, parent: cli[1] ?? "" };
  if (line.charCodeAt(end + 1) !== CLOSE_BRACE || line.charCodeAt(end + 2) !== CLOSE_BRACE) return undefined;
  const parent = readTopLevelFields(line, end + 3);
  return parent === undefined ? undefined : { index, kind, text, parent };
}

/**
 * Reads `,"name":value` fields up to the closing brace that ends the line, where each
 * value is null, true, false, a number or a string without escapes. Returns the
 * parent_tool_use_id ("" unless it is a string), or undefined for anything else,
 * including a repeated "type" or "event" (JSON.parse keeps the last of a repeated key).
 */
function readTopLevelFields(line: string, at: number): string | undefined {
  let parent = "";
  for (;;) {
    const c = line.charCodeAt(at);
    if (c === CLOSE_BRACE) return at === line.length - 1 ? parent : undefined;
    if (c !== COMMA || line.charCodeAt(at + 1) !== QUOTE) return undefined;
    const nameStart = at + 2;
    at = nameStart;
    while (isNameChar(line.charCodeAt(at))) at += 1;
    const nameEnd = at;
    if (nameEnd === nameStart || line.charCodeAt(at) !== QUOTE || line.charCodeAt(at + 1) !== COLON) return undefined;
    const name = line.slice(nameStart, nameEnd);
    if (name === "type" || name === "event") return undefined;
    at += 2;
    const valueStart = at;
    if (line.charCodeAt(at) === QUOTE) {
      at += 1;
      for (let v = line.charCodeAt(at); v !== QUOTE; v = line.charCodeAt(++at)) {
        if (!(v >= 0x20) || v === BACKSLASH) return undefined;
      }
      at += 1;
      if (name === "parent_tool_use_id") parent = line.slice(valueStart + 1, at - 1);
      continue;
    }
    if (line.startsWith("null", at)) at += 4;
    else if (line.startsWith("true", at)) at += 4;
    else if (line.startsWith("false", at)) at += 5;
    else at = numberEnd(line, at);
    if (at < 0) return undefined;
    if (name === "parent_tool_use_id") parent = "";
  }
}

// The end of a JSON number starting at `at` (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?), or -1.
function numberEnd(line: string, at: number): number {
  if (line.charCodeAt(at) === MINUS) at += 1;
  if (line.charCodeAt(at) === ZERO) at += 1;
  else if (isDigit(line.charCodeAt(at))) while (isDigit(line.charCodeAt(at))) at += 1;
  else return -1;
  if (line.charCodeAt(at) === DOT) {
    at += 1;
    if (!isDigit(line.charCodeAt(at))) return -1;
    while (isDigit(line.charCodeAt(at))) at += 1;
  }
  const e = line.charCodeAt(at);
  if (e === 0x65 || e === 0x45) {
    at += 1;
    const sign = line.charCodeAt(at);
    if (sign === 0x2b || sign === MINUS) at += 1;
    if (!isDigit(line.charCodeAt(at))) return -1;
    while (isDigit(line.charCodeAt(at))) at += 1;
  }
  return at;
}
