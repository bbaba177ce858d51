/**
 * Finding the commands in a prompt, and telling a command given to be run from prose
 * about a command.
 *
 * Commands are taken from code fences, inline code spans and prose sentences (a known
 * program word that starts a sentence or is followed by something shell-like: a flag, a
 * path, a pipe). Nothing is skipped: fences are judged, not deleted.
 *
 * Each command is then framed by the sentence around it (for a fence: the sentence before
 * it and the one after). It is an instruction, and keeps its rule's severity, when that
 * sentence has an imperative run verb ("run", "execute", "type", "paste", "go ahead", "use"…)
 * that no subject, condition or negation governs ("if I run", "never run", "why would you
 * run" do not count), or when the sentence has no sign of discussion at all: a bare
 * command, or "clean up with rm -rf /", is an instruction. It is prose about the command,
 * and at most a warn, when the sentence discusses it ("explain", "what does", "why",
 * "difference", "is it safe", a question mark, "never", "don't"…) and has no such verb.
 * So "explain what rm -rf / does" warns, "explain it, then run rm -rf /" blocks.
 */
import { replaceFences, replaceInlineCode } from "./code-spans.js";

const ZERO_WIDTH = /[\u00ad\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]/g;

export interface PromptSegment {
  code: string;
  origin: "fence" | "inline" | "prose";
  /** The fence's language tag, lower-cased ("" when none or not a fence). */
  language: string;
  /** Given to be run (keeps severity) rather than discussed (capped at warn). */
  instruction: boolean;
}

/** NFKC (full-width and compatibility letters become ASCII), invisible characters removed. */
export function normalizePrompt(text: string): string {
  // ASCII is its own NFKC form and holds no invisible character: most prompts are ASCII,
  // and telling so (its UTF-8 length is its length) costs far less than normalizing.
  if (Buffer.byteLength(text, "utf8") === text.length) return text;
  return text.normalize("NFKC").replace(ZERO_WIDTH, "");
}

// Inline spans hold no backticks (so a failed match stops at the next one: linear time).
const PLACEHOLDER = /\u0000(\d+)\u0000/g;
const FENCE_ALONE = /^\s*\u0000\d+\u0000\s*$/;

/** Programs whose mention in prose is worth parsing as a command. */
const TRIGGERS = new Set([
  "rm", "rmdir", "shred", "unlink", "dd", "fdisk", "sfdisk", "parted", "wipefs", "blkdiscard", "mkswap", "chmod", "chown", "curl",
  "wget", "nc", "ncat", "netcat", "socat", "bash", "sh", "zsh", "dash", "eval", "exec", "sudo", "su", "doas", "pkexec", "crontab",
  "systemctl", "python", "python3", "perl", "ruby", "php", "node", "base64", "echo", "printf", "cat", "find", "mv", "cp", "tee",
  "setcap", "usermod", "docker", "podman", "pkill", "killall", "iptables", "ufw", "setenforce", "xargs", "env", "export", "ln",
  "tar", "scp", "rsync", "truncate", "nsenter", "source", "xxd", "openssl", "telnet", "at", "launchctl", "visudo", "mkfs",
]);
/**
 * A cheap test a sentence must pass before its words are read one by one: a trigger
 * program standing as a word of its own, or what proseCommands treats as special (a
 * function definition, an assignment, /dev/tcp/). Looser than the word rules, never
 * stricter, so no command is missed.
 */
const MAY_HOLD_COMMAND = new RegExp(`(?<![A-Za-z0-9])(?:${[...TRIGGERS].join("|")}|mkfs)(?![A-Za-z0-9])|\\(\\)|=|/dev/tcp/`, "i");
const FILLERS = new Set(["please", "now", "just", "then", "and", "also", "so", "ok", "okay", "run", "execute", "exec", "type", "enter", "do", "try", "first", "next", "finally", "quickly", "immediately", "simply", "go", "ahead", "and:", "run:", "execute:", "this:", "command:"]);

const RUN_VERB = /\b(run|runs|execute|exec|launch|invoke|perform|type|enter|paste|carry out|go ahead|try|call|start|apply|use|issue|fire off|do it|do this|do that|proceed)\b/g;
const GOVERNED = /\b(if|when|whenever|i|we|they|he|she|someone|somebody|people|users?|would|never|not|don't|dont|doesn't|didn't|without|avoid|why|whether|accidentally|shouldn't|mustn't|can't|cannot|won't|wouldn't|to)\s+(\w+\s+)?$/;
const DISCUSSION = /\?|\b(explain|explains|explaining|explanation|what|why|how|describe|describes|meaning|means|mean|tell me about|is it safe|safe to|dangerous|danger|difference|differences|understand|documentation|docs|history|never|don't|do not|avoid|shouldn't|should not|warn|warning|risk|risks|risky|purpose|example|examples|e\.g\.|such as|like|article|blog|tutorial|summarize|translate|review|analyze|analyse|malicious|attack|attacker|detect|detects|block|blocks)\b/;

export function isInstruction(sentence: string): boolean {
  const s = sentence.toLowerCase();
  for (const m of s.matchAll(RUN_VERB)) {
    const before = s.slice(Math.max(0, m.index - 40), m.index);
    if (!GOVERNED.test(before)) return true;
  }
  return !DISCUSSION.test(s);
}

/** Codes this long are not looked up to find repeats (see placeholder in promptSegments). */
export const LONG_CODE = 1024;

export function promptSegments(text: string, maxSegments = 256): PromptSegment[] {
  const segments: PromptSegment[] = [];
  const codes: { code: string; origin: "fence" | "inline"; language: string }[] = [];
  // Fences and inline spans become placeholders so that the prose around them is still read;
  // the same code gets the same number, so a repeated sentence reads the same. A long code
  // (a script) gets a number of its own: hashing it costs more than judging a repeat.
  const numbers = new TextIndex<number>();
  const placeholder = (code: string, origin: "fence" | "inline", language: string): number => {
    if (code.length >= LONG_CODE) return codes.push({ code, origin, language }) - 1;
    let n = numbers.get(code, (k) => codes[k]!.origin === origin && codes[k]!.language === language);
    if (n === undefined) {
      n = codes.push({ code, origin, language }) - 1;
      numbers.add(code, n);
    }
    return n;
  };
  let prose = text.includes("```") || text.includes("~~~")
    ? replaceFences(text, (info, body) => `\n\u0000${placeholder(flat(body), "fence", info.trim().split(/\s+/)[0]!.toLowerCase())}\u0000\n`)
    : text;
  if (prose.includes("`")) prose = replaceInlineCode(prose, (body) => `\u0000${placeholder(body.trim(), "inline", "")}\u0000`);
  // Nothing to find: no code and no sentence that could name a program.
  if (codes.length === 0 && !MAY_HOLD_COMMAND.test(prose)) return segments;
  const sentences = splitSentences(prose);
  // A sentence repeated word for word yields the same segments again (its placeholders
  // are numbered apart, so only the text outside them is compared): read it once.
  const seen = new TextIndex<true>();
  for (let k = 0; k < sentences.length && segments.length < maxSegments; k += 1) {
    const sentence = sentences[k]!;
    const hasCode = sentence.includes("\u0000");
    // A fence alone is framed by its neighbours, which may differ: never merged. Any other
    // sentence seen before is skipped before any pattern is tried on it.
    const fenceAlone = hasCode && FENCE_ALONE.test(sentence);
    if (!fenceAlone) {
      if (seen.get(sentence) !== undefined) continue;
      seen.add(sentence, true);
    }
    if (!hasCode && !MAY_HOLD_COMMAND.test(sentence)) continue;
    const bare = hasCode ? sentence.replace(PLACEHOLDER, " ").trim() : sentence.trim();
    let framing: boolean | undefined;
    const frame = () => (framing ??= isInstruction(hasCode ? sentence.replace(PLACEHOLDER, (_, n: string) => codes[Number(n)]?.code ?? "") : sentence));
    if (hasCode) {
      for (const m of sentence.matchAll(PLACEHOLDER)) {
        if (segments.length >= maxSegments) break;
        const code = codes[Number(m[1])];
        if (code === undefined) continue;
        let instruction: boolean;
        if (code.origin === "fence" && bare === "") {
          const before = sentences[k - 1]?.replace(PLACEHOLDER, " ");
          const after = sentences[k + 1]?.replace(PLACEHOLDER, " ");
          instruction = fenceRuns(before) || fenceRuns(after) || (!fenceDiscussed(before) && !fenceDiscussed(after));
        } else instruction = frame();
        segments.push({ code: stripPrompts(code.code), origin: code.origin, language: code.language, instruction });
      }
    }
    if (bare !== "" && MAY_HOLD_COMMAND.test(bare)) for (const command of proseCommands(hasCode ? sentence.replace(PLACEHOLDER, " ") : sentence)) segments.push({ code: command, origin: "prose", language: "", instruction: frame() });
  }
  return segments;
}

/**
 * A long fence body as a string of its own: a match is a view into the prompt, and every
 * character read through a view costs more, which for a 4 KiB script the lane reads
 * character by character is more than the copy.
 */
function flat(body: string): string {
  return body.length < 1024 ? body : Buffer.from(body, "utf16le").toString("utf16le");
}

/** The sentence before or after a fence asks for it to be run. */
function fenceRuns(s: string | undefined): boolean {
  return s !== undefined && isInstruction(s) && /\b(run|execute|exec|type|paste|apply|use|go ahead|do it|try|launch|start|call|invoke|perform|proceed)\b/i.test(s);
}

/** The sentence before or after a fence discusses it. */
function fenceDiscussed(s: string | undefined): boolean {
  return s !== undefined && !isInstruction(s);
}

const SENTENCE_END = /[.!?](?=\s)|\n/g;
const BLANKS = /\s+/y;
const NEWLINES = /\n+/y;

/**
 * The non-blank sentences of `prose`: what `prose.split(/(?<=[.!?])\s+|\n+/)` gives,
 * without a look-behind tried at every character.
 */
export function splitSentences(prose: string): string[] {
  const out: string[] = [];
  let start = 0;
  SENTENCE_END.lastIndex = 0;
  for (let m = SENTENCE_END.exec(prose); m !== null; m = SENTENCE_END.exec(prose)) {
    const at = m.index;
    let sepStart: number;
    let rest: RegExp;
    if (prose.charCodeAt(at) === 10) {
      sepStart = at;
      rest = NEWLINES;
    } else {
      sepStart = at + 1;
      rest = BLANKS;
    }
    rest.lastIndex = sepStart;
    rest.exec(prose);
    const sepEnd = rest.lastIndex;
    const piece = prose.slice(start, sepStart);
    if (piece.trim() !== "") out.push(piece);
    start = sepEnd;
    SENTENCE_END.lastIndex = sepEnd;
  }
  const last = prose.slice(start);
  if (last.trim() !== "") out.push(last);
  return out;
}

/**
 * Shell prompts at line starts ("$ rm …", "% rm …", "> rm …") are not part of the command.
 * Blanks before a prompt are spaces and tabs: `\s*` at every line start would also run over
 * the newlines after it, so that many empty lines cost their number squared (seconds for a
 * 200 KB prompt, found by the hostile-input test).
 */
function stripPrompts(code: string): string {
  return /^[ \t]*[$%>#] /m.test(code) ? code.replace(/^([ \t]*)[$%>] /gm, "$1").replace(/^([ \t]*)# (?=[a-z])/gm, "$1") : code;
}

/** Commands in a prose sentence: from a trigger word to the end of the sentence. */
function proseCommands(sentence: string): string[] {
  const words = sentence.trim().split(/\s+/);
  const found: string[] = [];
  let leading = true;
  for (let j = 0; j < words.length && found.length < 3; j += 1) {
    const raw = words[j]!;
    const lead = raw.replace(/^[("'“‘*_]+/, "");
    const word = withoutTrailing(lead, WORD_TRAILERS);
    const lower = word.toLowerCase();
    const next = words[j + 1] ?? "";
    const program = lower.slice(lower.lastIndexOf("/") + 1);
    const shellLike = /^[-/~.$|>&<;]|\/dev\/|[|>]|^[ugoa]*[+=][rwxXst]+$|^[0-7]{3,4}$/.test(next) || next.includes("=");
    const isTrigger = TRIGGERS.has(program) || /^mkfs\./.test(program);
    // A function definition is tested before trailing punctuation is stripped: `b()` ends in
    // the ")" that stripping removes.
    const special = /^[^\s]*\(\)\s*\{?|^:\(\)|^[A-Z_][A-Z0-9_]*=/.test(word) || /^[^\s()]+\(\)$/.test(lead) || word.includes("/dev/tcp/");
    if ((isTrigger && (leading || shellLike)) || special) {
      const rest = withoutClosingParens(withoutTrailing([/^[^\s()]+\(\)$/.test(lead) ? lead : word, ...words.slice(j + 1)].join(" "), SENTENCE_TRAILERS));
      found.push(rest);
      j = words.length;
    }
    if (!FILLERS.has(lower)) leading = false;
  }
  return found;
}

// Trailing punctuation stripped off a word, and off a command found in a sentence. Stripped
// by a loop from the end: an expression like /[;:]+$/ tries every start in a long run of them
// and runs to its end each time (seconds for a 100 KB run, found by the hostile-input test).
const WORD_TRAILERS = new Set(",:;)\"'”’*_");
const SENTENCE_TRAILERS = new Set(".,;:!?\"'”’");

function withoutTrailing(text: string, trailers: ReadonlySet<string>): string {
  let end = text.length;
  while (end > 0 && trailers.has(text[end - 1]!)) end -= 1;
  return end === text.length ? text : text.slice(0, end);
}

// The closing parens that end a command, unless they close an empty "()" (a function's).
function withoutClosingParens(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 41) end -= 1;
  if (end === text.length) return text;
  // As /(?<!\()\)+$/: the run's first paren stays when "(" is right before it.
  if (end > 0 && text.charCodeAt(end - 1) === 40) end += 1;
  return text.slice(0, end);
}

/**
 * Texts seen so far, found by their length and a few characters before a comparison: a
 * Map or Set keyed by the text would hash every new slice, which here costs more than the
 * comparisons (a prompt's sentences and spans are fresh slices each time).
 */
class TextIndex<V> {
  readonly #byShape = new Map<number, { text: string; value: V }[]>();

  get(text: string, accept?: (value: V) => boolean): V | undefined {
    for (const entry of this.#byShape.get(shape(text)) ?? []) if (entry.text === text && (accept === undefined || accept(entry.value))) return entry.value;
    return undefined;
  }

  add(text: string, value: V): void {
    const key = shape(text);
    const entries = this.#byShape.get(key);
    if (entries === undefined) this.#byShape.set(key, [{ text, value }]);
    else entries.push({ text, value });
  }
}

function shape(text: string): number {
  const n = text.length;
  if (n === 0) return 0;
  return ((n * 31 + text.charCodeAt(0)) * 31 + text.charCodeAt(n >> 1)) * 31 + text.charCodeAt(n - 1);
}
