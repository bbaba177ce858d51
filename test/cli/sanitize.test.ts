// The terminal filter: nothing an agent printed may act on the terminal.
import { describe, expect, it } from "vitest";
import { clip, TerminalFilter, terminalSafe } from "../../src/cli/hotplex/sanitize.js";

describe("terminalSafe", () => {
  it("keeps text, newlines, tabs and non-ASCII letters", () => {
    expect(terminalSafe("a\tb\nc — ünïcødé 漢字 🎉\n")).toBe("a\tb\nc — ünïcødé 漢字 🎉\n");
  });

  it.each([
    ["CSI colors and cursor moves", "\u001b[31mred\u001b[0m \u001b[2J\u001b[10;20Hx", "red x"],
    ["OSC title ended by BEL", "\u001b]0;owned\u0007after", "after"],
    ["OSC 8 hyperlink ended by ST", "\u001b]8;;http://evil\u001b\\link\u001b]8;;\u001b\\", "link"],
    ["DCS string", "\u001bPq#0;2;0;0;0\u001b\\ok", "ok"],
    ["8-bit CSI and OSC", "\u009b31mred \u009d0;t\u009cdone", "red done"],
    ["two-byte and charset escapes", "\u001bc\u001b(Bx\u001b7y", "xy"],
    ["carriage returns and backspaces", "secret\rshown\u0008!", "secretshown!"],
    ["CRLF as a line end", "one\r\ntwo", "one\ntwo"],
    ["bell, NUL, DEL and C1", "a\u0007b\u0000c\u007fd\u0085e", "abcde"],
    ["bidi overrides and isolates", "abc\u202eevil\u2066x\u2069", "abcevilx"],
    ["a CSI cut short by a newline", "\u001b[31\nnext", "\nnext"],
  ])("removes %s", (_name, input, expected) => {
    expect(terminalSafe(input)).toBe(expected);
  });

  it("catches a sequence split between two pieces of streamed text", () => {
    const filter = new TerminalFilter();
    const pieces = ["red\u001b", "[0", "m after \u001b]0;ti", "tle\u0007 end"];
    expect(pieces.map((p) => filter.push(p)).join("")).toBe("red after  end");
  });

  it("gives up on a string that is never terminated instead of swallowing everything after it", () => {
    const filter = new TerminalFilter();
    const swallowed = filter.push(`\u001b]0;${"x".repeat(5_000)}`);
    expect(swallowed.length).toBeGreaterThan(0);
    expect(swallowed.length).toBeLessThan(1_000);
    expect(filter.push(" after")).toBe(" after");
  });

  it("clips to one line with an ellipsis", () => {
    expect(clip("a\nb\tc \u001b[1mbold\u001b[0m", 100)).toBe("a b c bold");
    expect(clip("x".repeat(50), 10)).toBe(`${"x".repeat(9)}…`);
  });
});
