/**
 * Code in a prompt: fences and inline spans, each found by a scanner rather than a regular
 * expression.
 *
 * Code fences, found by a scanner rather than a regular expression: the
 * expression (FENCE_PATTERN, kept for the tests that hold the two to the same results)
 * tries its lazy body at every character after an opener, which costs more than all
 * the rest of reading a 4 KiB script; this looks only at line starts and newlines.
 *
 * A fence (CommonMark, as prompts use it): at a line start, at most three blanks, a run of
 * three or more backticks or tildes, the rest of the line (its info string: no backtick)
 * and a newline; the body runs to the first line that is, after at most three blanks, the
 * same run (then any more backticks or tildes and blanks) to its end, or to the end of the
 * text when no such line comes.
 */

/** The expression the scanner stands for (with flags gm: `^` and `$` at line terminators). */
export const FENCE_PATTERN = /^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([^\n`]*)\n([\s\S]*?)(?:\n[ \t]{0,3}\1[`~]*[ \t]*(?=\n|$)|$(?![\s\S]))/gm;

/** What a fence is replaced with, given its info string (the rest of its opening line) and body. */
export type FenceReplacer = (info: string, body: string) => string;

/** `text.replace(FENCE_PATTERN, (_, run, info, body) => replace(info, body))`, in one pass. */
export function replaceFences(text: string, replace: FenceReplacer): string {
  let out = "";
  let copied = 0;
  let from = 0;
  let nextTicks = text.indexOf("```");
  let nextTildes = text.indexOf("~~~");
  while (nextTicks >= 0 || nextTildes >= 0) {
    const q = nextTicks < 0 ? nextTildes : nextTildes < 0 ? nextTicks : Math.min(nextTicks, nextTildes);
    const fence = text.charCodeAt(q);
    let r = q;
    while (text.charCodeAt(r) === fence) r += 1;
    const match = q >= from ? fenceAt(text, q, r) : undefined;
    if (match !== undefined) {
      out += text.slice(copied, match.start) + replace(match.info, match.body);
      copied = match.end;
      from = match.end;
    }
    // Past this run (or this fence): a run's inner positions open nothing.
    const resume = Math.max(r, from);
    if (nextTicks >= 0 && nextTicks < resume) nextTicks = text.indexOf("```", resume);
    if (nextTildes >= 0 && nextTildes < resume) nextTildes = text.indexOf("~~~", resume);
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** The fence whose run is text[q, r), or undefined when that run opens none. */
function fenceAt(text: string, q: number, r: number): { start: number; end: number; info: string; body: string } | undefined {
  // At most three blanks between the line start and the run.
  let start = q;
  while (start > 0 && (text.charCodeAt(start - 1) === 32 || text.charCodeAt(start - 1) === 9)) start -= 1;
  if (q - start > 3) return undefined;
  if (start > 0 && !isLineTerminator(text.charCodeAt(start - 1))) return undefined;
  const newline = text.indexOf("\n", r);
  if (newline < 0) return undefined;
  const tick = text.indexOf("`", r);
  if (tick >= 0 && tick < newline) return undefined;
  const run = text.slice(q, r);
  // The info string, after the blanks that follow the run.
  let infoStart = r;
  while (text.charCodeAt(infoStart) === 32 || text.charCodeAt(infoStart) === 9) infoStart += 1;
  const info = text.slice(infoStart, newline);
  const bodyStart = newline + 1;
  for (let j = text.indexOf("\n", bodyStart); j >= 0; j = text.indexOf("\n", j + 1)) {
    const end = closingEnd(text, j + 1, run);
    if (end >= 0) return { start, end, info, body: text.slice(bodyStart, j) };
  }
  return { start, end: text.length, info, body: text.slice(bodyStart) };
}

/** Where a closing line starting at `at` ends (before its terminator), or -1 when it is none. */
function closingEnd(text: string, at: number, run: string): number {
  let k = at;
  while (k - at < 4 && (text.charCodeAt(k) === 32 || text.charCodeAt(k) === 9)) k += 1;
  if (k - at > 3 || !text.startsWith(run, k)) return -1;
  k += run.length;
  while (text.charCodeAt(k) === 96 || text.charCodeAt(k) === 126) k += 1;
  while (text.charCodeAt(k) === 32 || text.charCodeAt(k) === 9) k += 1;
  return k >= text.length || isLineTerminator(text.charCodeAt(k)) ? k : -1;
}

// What ends a line for `^` and `$` in a multiline expression.
function isLineTerminator(c: number): boolean {
  return c === 10 || c === 13 || c === 0x2028 || c === 0x2029;
}

/** The expression inline code spans were found with (flag g): a run of 1–3 backticks, a body without backticks, the same run. */
export const INLINE_PATTERN = /(`{1,3})([^`]{1,4000}?)\1(?!`)/g;

/**
 * `text.replace(INLINE_PATTERN, (_, run, body) => replace(body))`, by backtick runs: a span
 * opens at the end of a run (its last 1–3 backticks) and closes at the next run when that
 * run is exactly as long, at most as long as the opening run, and 1 to 4000 characters
 * away; a run that closes nothing may open the next span.
 */
export function replaceInlineCode(text: string, replace: (body: string) => string): string {
  let out = "";
  let copied = 0;
  let a = text.indexOf("`");
  while (a >= 0) {
    let b = a;
    while (text.charCodeAt(b) === 96) b += 1;
    const q = text.indexOf("`", b);
    if (q < 0) break;
    let r = q;
    while (text.charCodeAt(r) === 96) r += 1;
    const length = r - q;
    if (length <= 3 && length <= b - a && q - b <= 4000) {
      out += text.slice(copied, b - length) + replace(text.slice(b, q));
      copied = r;
      a = text.indexOf("`", r);
    } else a = q;
  }
  return copied === 0 ? text : out + text.slice(copied);
}
