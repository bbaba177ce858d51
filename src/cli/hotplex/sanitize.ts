// Text that an agent, a tool or another client produced is hostile when it reaches a
// terminal: escape sequences can move the cursor, rewrite what was printed, retitle the
// window, hide text or plant links (OSC 8), and a bare carriage return can overwrite a
// line. Everything such a party wrote goes through here before it is printed.
//
// A state machine rather than a regular expression, because streamed text arrives in
// pieces and a sequence may be split between two of them ("…red\u001b" + "[0m…"): the
// filter remembers where it is, so no part of a sequence leaks as text either.

enum State {
  Ground,
  /** After ESC. */
  Escape,
  /** After ESC and intermediate bytes (ESC ( B). */
  EscapeIntermediate,
  /** In a control sequence (ESC [ or CSI) before its final byte. */
  Csi,
  /** In a string (OSC, DCS, SOS, PM, APC) before its terminator (BEL or ST). */
  String,
  /** After ESC within a string: a backslash ends it (ST). */
  StringEscape,
}

// A string never terminated would swallow everything after it; give up on it past this.
const MAX_STRING = 4_096;

// What a terminal acts on besides sequences: C0 controls but tab and newline, DEL, C1
// controls, and the Unicode bidirectional overrides and isolates ("Trojan Source").
function isDropped(cp: number): boolean {
  return (cp < 0x20 && cp !== 0x09 && cp !== 0x0a) || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/** Filters a stream of text pieces: escape sequences and control characters out, newlines and tabs kept. */
export class TerminalFilter {
  #state = State.Ground;
  #stringLength = 0;

  /** The printable part of the next piece. */
  push(text: string): string {
    let out = "";
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (this.#step(cp)) out += ch;
    }
    return out;
  }

  // Whether the code point is printed; moves the state along.
  #step(cp: number): boolean {
    switch (this.#state) {
      case State.Ground:
        if (cp === 0x1b) this.#state = State.Escape;
        else if (cp === 0x9b) this.#state = State.Csi;
        else if (cp === 0x90 || cp === 0x98 || cp === 0x9d || cp === 0x9e || cp === 0x9f) this.#enterString();
        else return !isDropped(cp);
        return false;
      case State.Escape:
        if (cp === 0x5b) this.#state = State.Csi;
        else if (cp === 0x5d || cp === 0x50 || cp === 0x58 || cp === 0x5e || cp === 0x5f) this.#enterString();
        else if (cp >= 0x20 && cp <= 0x2f) this.#state = State.EscapeIntermediate;
        else if (cp >= 0x30 && cp <= 0x7e) this.#state = State.Ground;
        else return this.#abort(cp);
        return false;
      case State.EscapeIntermediate:
        if (cp >= 0x20 && cp <= 0x2f) return false;
        if (cp >= 0x30 && cp <= 0x7e) {
          this.#state = State.Ground;
          return false;
        }
        return this.#abort(cp);
      case State.Csi:
        if (cp >= 0x20 && cp <= 0x3f) return false;
        if (cp >= 0x40 && cp <= 0x7e) {
          this.#state = State.Ground;
          return false;
        }
        return this.#abort(cp);
      case State.String:
      case State.StringEscape:
        if (cp === 0x07 || cp === 0x9c || (this.#state === State.StringEscape && cp === 0x5c)) this.#state = State.Ground;
        else if (++this.#stringLength > MAX_STRING) this.#state = State.Ground;
        else this.#state = cp === 0x1b ? State.StringEscape : State.String;
        return false;
    }
  }

  #enterString(): void {
    this.#state = State.String;
    this.#stringLength = 0;
  }

  // A sequence broken off by something that cannot belong to it: the sequence is dropped
  // and the code point is read afresh.
  #abort(cp: number): boolean {
    this.#state = State.Ground;
    return this.#step(cp);
  }
}

/** `text` with every escape sequence and control character removed but newlines and tabs. */
export function terminalSafe(text: string): string {
  return new TerminalFilter().push(text);
}

/** terminalSafe on one line: newlines and tabs become spaces too. */
export function terminalSafeLine(text: string): string {
  return terminalSafe(text).replace(/[\n\t]+/g, " ");
}

/** A one-line summary at most `max` characters long (an ellipsis marks a cut). */
export function clip(text: string, max: number): string {
  const line = terminalSafeLine(text).trim();
  const chars = Array.from(line);
  return chars.length <= max ? line : `${chars.slice(0, Math.max(1, max - 1)).join("")}…`;
}
