/**
 * The plain lane: most of a long command line is ordinary work (`npm ci && npm run build
 * && git status | head`) that no rule can care about, and parsing and analyzing all of it
 * costs far more than the rules' budget (issue #13: ≤ 20 µs for 4 KiB). So a command line
 * written in plain shell — words, quotes, `;` `&&` `||` `|` `&` and newlines, nothing that
 * expands, nests or carries state from one statement to the next — is cut into pipelines,
 * and only the pipelines that might matter are handed to the full analyzer (analyze.ts):
 * each once, in their order, into the same facts.
 *
 * A pipeline is skipped only when every program in it is on the inert list and every word
 * is plain: no absolute, home, parent or dot path, no glob, no URL or host, nothing a hot
 * rule looks for, nothing key- or secret-like, no assignment, no redirection other than a
 * descriptor copy or /dev/null. Those words resolve to files inside the (safe) working
 * directory, which no built-in path rule matches, and inert programs run nothing else.
 * Anything the lane does not fully understand — `$`, backquotes, backslashes, parentheses,
 * braces, `<`, `!`, shell keywords, aliases, an unclosed quote — sends the whole input to
 * the full analyzer, so the lane can make judging faster but never different (the case
 * table is judged both ways in lane.test.ts).
 */

/**
 * Programs whose run, given only plain words, does nothing any built-in rule looks at:
 * they read or write files named by their arguments (inside the working directory, for
 * plain words) and run no other program. Interpreters, shells, wrappers, downloaders,
 * decoders, deleters, editors, sed/awk/tr, chmod, tee and ln are deliberately absent.
 */
export const INERT_PROGRAMS: ReadonlySet<string> = new Set([
  "npm", "npx", "pnpm", "yarn", "git", "make", "cargo", "go", "tsc", "vitest", "jest", "eslint", "prettier", "ls", "cat", "head",
  "tail", "grep", "rg", "wc", "sort", "uniq", "jq", "diff", "echo", "printf", "true", "false", "pwd", "date", "mkdir", "touch",
  "cp", "mv", "which", "basename", "dirname", "stat", "du", "df", "file", "uname", "whoami", "id", "hostname", "ps", "sleep", "cut",
]);

/** Words that change how later statements are read: the whole input goes to the full analyzer. */
const STATEFUL = new Set(["alias", "unalias", "if", "then", "elif", "else", "fi", "while", "until", "do", "done", "for", "case", "esac", "select", "function", "coproc", "time", "[[", "]]", "!"]);

/**
 * Lower-case fragments that make a pipeline worth the full analyzer wherever they stand:
 * key- and secret-like names, and everything the hot rules scan all arguments for (HOT in
 * facts.ts; lane.test.ts checks each of its alternatives is covered here).
 */
export const KEYWORDS: readonly string[] = [
  "id_", "key", ".pem", "authorized", "credential", "secret", "token", "passw", ".env", "ssh", "aws", "gnupg", "kube", "docker", "npmrc", "netrc",
  "history", "/dev/", "/proc", "169.254", "100.100.100.200", "fd00", "metadata", "0xa9fea9fe", "2852039166", "danger", "yolo", "bypass",
  ".sock", "mode", "sandbox", "approval",
];

/**
 * The keywords as one automaton (Aho-Corasick, case-folded): SYMBOL maps an ASCII
 * character to its letter of the keywords' alphabet (0: none), DELTA[state * SYMBOLS +
 * symbol] is the next state and FOUND[state] says a keyword ends there. Finding every
 * keyword costs one lookup in a table small enough for the first-level cache per
 * byte of the scan that runs anyway.
 */
const { SYMBOL, SYMBOLS, DELTA, FOUND } = buildAutomaton(KEYWORDS);
const SHIFT = Math.log2(SYMBOLS);

function buildAutomaton(words: readonly string[]): { SYMBOL: Uint8Array; SYMBOLS: number; DELTA: Uint16Array; FOUND: Uint8Array } {
  // Every byte has an entry (0 above ASCII), so the scan needs no range check.
  const symbol = new Uint8Array(256);
  let used = 1;
  for (const word of words) for (const ch of word.toLowerCase()) if (symbol[ch.charCodeAt(0)] === 0) symbol[ch.charCodeAt(0)] = used++;
  // A power of two, so that a state's row is a shift away.
  const symbols = 1 << Math.ceil(Math.log2(used));
  for (let code = 65; code <= 90; code += 1) symbol[code] = symbol[code + 32]!;
  const edges: Map<number, number>[] = [new Map()];
  const found: boolean[] = [false];
  for (const word of words) {
    let state = 0;
    for (const ch of word.toLowerCase()) {
      const sym = symbol[ch.charCodeAt(0)]!;
      let next = edges[state]!.get(sym);
      if (next === undefined) {
        next = edges.length;
        edges.push(new Map());
        found.push(false);
        edges[state]!.set(sym, next);
      }
      state = next;
    }
    found[state] = true;
  }
  const delta = new Uint16Array(edges.length * symbols);
  const fail = new Uint16Array(edges.length);
  const foundOut = new Uint8Array(edges.length);
  const queue: number[] = [];
  for (let sym = 1; sym < symbols; sym += 1) {
    const next = edges[0]!.get(sym) ?? 0;
    delta[sym] = next;
    if (next !== 0) queue.push(next);
  }
  for (let head = 0; head < queue.length; head += 1) {
    const state = queue[head]!;
    foundOut[state] = found[state] || foundOut[fail[state]!] === 1 ? 1 : 0;
    for (let sym = 1; sym < symbols; sym += 1) {
      const next = edges[state]!.get(sym);
      if (next !== undefined) {
        fail[next] = delta[fail[state]! * symbols + sym]!;
        delta[state * symbols + sym] = next;
        queue.push(next);
      } else delta[state * symbols + sym] = delta[fail[state]! * symbols + sym]!;
    }
  }
  return { SYMBOL: symbol, SYMBOLS: symbols, DELTA: delta, FOUND: foundOut };
}

export interface LaneOptions {
  /** A program a rule of this engine names (a custom command rule): never skipped. */
  named?: (program: string) => boolean;
  /** Most words the lane reads before it gives up (the full analyzer's own bound). */
  maxWords: number;
}

/**
 * The pipelines of `src` that need the full analyzer, each once and in order, or
 * undefined when the input is not plain shell and must be analyzed whole.
 */
export function plainPipelines(src: string, options: LaneOptions): string[] | undefined {
  const n = encode(src);
  if (n < 0) return undefined;
  return new Scan(src, SCRATCH.subarray(0, n), n === src.length, options).run();
}

/**
 * The scan reads UTF-8 bytes from one reusable buffer rather than the string: a byte
 * from a typed array costs a third of a charCodeAt here, and the scan reads every one.
 * Every byte of a non-ASCII character is ≥ 0x80 (ODD, like the character itself), and
 * every byte the scan acts on is ASCII, so the cuts are the same.
 */
let SCRATCH = new Uint8Array(16 * 1024);
let SCRATCH_TEXT = Buffer.from(SCRATCH.buffer, SCRATCH.byteOffset, SCRATCH.byteLength);
const ENCODER = new TextEncoder();

/** Encodes `src` into SCRATCH; its byte length, or -1 when it holds a lone surrogate (no exact UTF-8). */
function encode(src: string): number {
  if (src.length * 3 > SCRATCH.length) {
    SCRATCH = new Uint8Array(src.length * 3);
    SCRATCH_TEXT = Buffer.from(SCRATCH.buffer, SCRATCH.byteOffset, SCRATCH.byteLength);
  }
  const { written } = ENCODER.encodeInto(src, SCRATCH);
  if (written !== src.length && !src.isWellFormed()) return -1;
  return written;
}

/** Names by length and first byte, so a word is looked up without being copied. */
function indexNames(names: Iterable<string>): Map<number, string[]> {
  const index = new Map<number, string[]>();
  for (const name of names) {
    const key = name.length * 256 + name.charCodeAt(0);
    index.set(key, [...(index.get(key) ?? []), name]);
  }
  return index;
}
const INERT_INDEX = indexNames(INERT_PROGRAMS);
const STATEFUL_INDEX = indexNames(STATEFUL);

function isListed(index: Map<number, string[]>, bytes: Uint8Array, start: number, end: number): boolean {
  const names = index.get((end - start) * 256 + bytes[start]!);
  if (names === undefined) return false;
  for (const name of names) if (sameBytes(bytes, start, name)) return true;
  return false;
}

/** bytes[start…] begins with the ASCII string `text`. */
function sameBytes(bytes: Uint8Array, start: number, text: string): boolean {
  if (start + text.length > bytes.length) return false;
  for (let k = 0; k < text.length; k += 1) if (bytes[start + k] !== text.charCodeAt(k)) return false;
  return true;
}

// Character classes of the scan (ASCII; every byte above is ODD).
const WORD = 0;
const LOOK = 1;
const ODD = 2;
const BLANK = 3;
const END = 4;
const AMP = 5;
const PIPE = 6;
const GT = 7;
const HASH = 8;
const QUOTE = 9;
const BAIL = 10;
const CLASS = new Uint8Array(256).fill(ODD);
CLASS.fill(WORD, 32, 127);
for (const c of "/.=~:*?[]") CLASS[c.charCodeAt(0)] = LOOK;
for (const c of " \t\r") CLASS[c.charCodeAt(0)] = BLANK;
for (const c of "\n;") CLASS[c.charCodeAt(0)] = END;
CLASS[38] = AMP;
CLASS[124] = PIPE;
CLASS[62] = GT;
CLASS[35] = HASH;
CLASS[39] = QUOTE;
CLASS[34] = QUOTE;
for (const c of "$`\\(){}<!") CLASS[c.charCodeAt(0)] = BAIL;

/** One pass over the input's bytes; fields rather than closures, so the loop stays fast. */
class Scan {
  private readonly units: string[] = [];
  /** Where the pipelines kept so far start, by their length in bytes. */
  private readonly kept = new Map<number, number[]>();
  private unitStart = 0;
  private needs = false;
  private hasProgram = false;
  private inWord = false;
  private wordStart = 0;
  private quoted = false;
  private suspicious = false;
  private fdCandidate = false;
  private words = 0;

  constructor(
    private readonly src: string,
    private readonly bytes: Uint8Array,
    /** Byte offsets are string offsets (the input is ASCII). */
    private readonly ascii: boolean,
    private readonly options: LaneOptions,
  ) {}

  /** The byte at `j`, or -1 past the end. */
  private at(j: number): number {
    return j < this.bytes.length ? this.bytes[j]! : -1;
  }

  /** The input's text between two byte offsets. */
  private text(start: number, end: number): string {
    return this.ascii ? this.src.slice(start, end) : SCRATCH_TEXT.toString("utf8", start, end);
  }

  run(): string[] | undefined {
    const bytes = this.bytes;
    const n = bytes.length;
    // Module bindings as locals: the loop below reads them for every byte.
    const delta = DELTA;
    const symbol = SYMBOL;
    const found = FOUND;
    const classOf = CLASS;
    let i = 0;
    let state = 0;
    while (i < n) {
      let c = bytes[i]!;
      let kind = classOf[c]!;
      if (kind <= ODD) {
        // A run of word characters, in one tight loop: most of any input.
        if (!this.inWord) this.startWord(i);
        let hit = 0;
        for (;;) {
          state = delta[(state << SHIFT) | symbol[c]!]!;
          hit |= found[state]!;
          if (kind === LOOK) this.look(i, c);
          else if (kind === ODD) this.suspicious = true;
          i += 1;
          if (i >= n) break;
          c = bytes[i]!;
          kind = classOf[c]!;
          if (kind > ODD) break;
        }
        if (hit === 1) this.needs = true;
        continue;
      }
      state = delta[(state << SHIFT) | symbol[c]!]!;
      if (found[state] === 1) this.needs = true;
      switch (kind) {
        case BLANK:
          if (!this.endWord(i)) return undefined;
          i += 1;
          break;
        case END:
          // newline, ; (;; belongs to case, which is not plain)
          if (c === 59 && this.at(i + 1) === 59) return undefined;
          if (!this.endWord(i)) return undefined;
          this.endPipeline(i, i + 1);
          i += 1;
          break;
        case AMP: {
          // &: && ends a pipeline, &> redirects, & alone runs in the background.
          if (!this.endWord(i)) return undefined;
          const next = this.at(i + 1);
          if (next === 38) {
            this.endPipeline(i, i + 2);
            i += 2;
          } else if (next === 62) {
            this.needs = true;
            i += 2;
          } else {
            this.endPipeline(i, i + 1);
            i += 1;
          }
          break;
        }
        case PIPE: {
          // |: || ends a pipeline; | and |& join the next stage.
          if (!this.endWord(i)) return undefined;
          const next = this.at(i + 1);
          if (next === 124) {
            this.endPipeline(i, i + 2);
            i += 2;
          } else {
            this.hasProgram = false;
            i += next === 38 ? 2 : 1;
          }
          break;
        }
        case GT:
          i = this.redirect(i);
          if (i < 0) return undefined;
          state = 0;
          break;
        case HASH:
          if (this.inWord) {
            this.look(i, c);
            i += 1;
          } else {
            // A comment runs to the end of the line.
            const end = bytes.indexOf(10, i);
            i = end < 0 ? n : end;
            state = 0;
          }
          break;
        case QUOTE: {
          // '…' is literal; "…" is too when nothing in it expands or escapes.
          const end = bytes.indexOf(c, i + 1);
          if (end < 0) return undefined;
          if (!this.inWord) this.startWord(i);
          this.quoted = true;
          for (let j = i + 1; j < end; j += 1) {
            const d = bytes[j]!;
            if (c === 34 && (d === 36 || d === 96 || d === 92)) return undefined;
            state = delta[(state << SHIFT) | symbol[d]!]!;
            if (found[state] === 1) this.needs = true;
            if (d > 126 || (d < 32 && d !== 9 && d !== 10)) this.suspicious = true;
            else if (classOf[d] === LOOK) this.look(j, d);
          }
          i = end + 1;
          break;
        }
        default:
          // $ ` \ ( ) { } < !: expansion, nesting, input or history: not plain.
          return undefined;
      }
    }
    if (!this.endWord(n)) return undefined;
    this.endPipeline(n, n);
    return this.units;
  }

  private startWord(i: number): void {
    this.inWord = true;
    this.wordStart = i;
    this.quoted = false;
    this.suspicious = false;
    const c = this.bytes[i]!;
    // An absolute or home path, or a dot entry other than ./name, names something outside
    // the working directory or the directory itself.
    if (c === 47 || c === 126) this.suspicious = true;
    else if (c === 46) {
      const next = this.at(i + 1);
      const after = this.at(i + 2);
      if (next !== 47 || after === -1 || after === 46 || after === 47 || isBreak(after)) this.suspicious = true;
    }
  }

  /** Marks the word for characters that make any word worth a look. */
  private look(j: number, d: number): void {
    if (d === 126 || d === 58 || d === 42 || d === 63 || d === 91 || d === 93) this.suspicious = true; // ~ : * ? [ ]
    else if (d === 46) {
      const prev = this.at(j - 1);
      if (prev === 46 || prev === 47) this.suspicious = true; // .. /.
    } else if (d === 47) {
      if (this.at(j - 1) === 61 || this.bytes[this.wordStart] === 45) this.suspicious = true; // =/ and -x/path
    } else if (d === 61) {
      const next = this.at(j + 1);
      if (next === 126 || next === 46) this.suspicious = true; // =~ =.
    }
  }

  private redirect(i: number): number {
    const bytes = this.bytes;
    // A descriptor copy (2>&1, >&2) or /dev/null changes no file; any other target is a write.
    if (this.inWord) {
      let digits = this.wordStart < i;
      for (let k = this.wordStart; k < i && digits; k += 1) digits = bytes[k]! >= 48 && bytes[k]! <= 57;
      this.fdCandidate = digits && !this.quoted;
      if (!this.fdCandidate) this.needs = true;
      if (!this.endWord(i)) return -1;
    }
    let j = i + 1;
    if (this.at(j) === 62 || this.at(j) === 124) j += 1;
    if (this.at(j) === 38) {
      j += 1;
      const start = j;
      while (j < bytes.length && ((bytes[j]! >= 48 && bytes[j]! <= 57) || bytes[j] === 45)) j += 1;
      return j === start ? -1 : j;
    }
    while (this.at(j) === 32 || this.at(j) === 9) j += 1;
    if (sameBytes(bytes, j, "/dev/null") && isBreak(this.at(j + 9))) return j + 9;
    this.needs = true;
    return j;
  }

  /** Ends the current word; false when the input is not plain. */
  private endWord(end: number): boolean {
    if (!this.inWord) return true;
    this.inWord = false;
    if (++this.words > this.options.maxWords) return false;
    if (this.fdCandidate) {
      this.fdCandidate = false;
      return true;
    }
    if (this.hasProgram) {
      if (this.suspicious) this.needs = true;
      return true;
    }
    this.hasProgram = true;
    if (this.quoted || this.suspicious) {
      this.needs = true;
      return true;
    }
    if (isListed(INERT_INDEX, this.bytes, this.wordStart, end)) {
      if (this.options.named === undefined || !this.options.named(this.text(this.wordStart, end))) return true;
    } else if (isListed(STATEFUL_INDEX, this.bytes, this.wordStart, end)) return false;
    // Not inert, an assignment (A=1 cmd), a path (./x), or named by a rule: analyze it.
    this.needs = true;
    return true;
  }

  private endPipeline(end: number, next: number): void {
    if (this.needs) {
      const bytes = this.bytes;
      let start = this.unitStart;
      while (start < end && isBlank(bytes[start]!)) start += 1;
      while (end > start && isBlank(bytes[end - 1]!)) end -= 1;
      // A pipeline seen before is analyzed once: compared in place, without a copy.
      if (start < end) {
        const same = this.kept.get(end - start);
        if (same === undefined || !same.some((at) => equalRuns(bytes, at, start, end - start))) {
          if (same === undefined) this.kept.set(end - start, [start]);
          else same.push(start);
          this.units.push(this.text(start, end));
        }
      }
    }
    this.needs = false;
    this.hasProgram = false;
    this.unitStart = next;
  }
}

/** bytes[a…a+length) equals bytes[b…b+length). */
function equalRuns(bytes: Uint8Array, a: number, b: number, length: number): boolean {
  for (let k = 0; k < length; k += 1) if (bytes[a + k] !== bytes[b + k]) return false;
  return true;
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** The end of a word: end of input (-1), a blank or an operator. */
function isBreak(c: number): boolean {
  return c === -1 || c === 32 || c === 9 || c === 10 || c === 13 || c === 59 || c === 38 || c === 124 || c === 41 || c === 60 || c === 62;
}
