/**
 * A shell lexer/parser, just enough of POSIX sh and bash to see what a command line
 * would run: quoting and escapes ('…', "…", $'…', \x), chains (&& || ; & newline),
 * pipes, subshells and groups, redirections and here-documents, $(…) and `…`, process
 * substitution, ${…} parameter expansion with the variables the script itself assigned,
 * and word splitting of unquoted expansions (`X="rm -rf"; $X /` runs rm).
 *
 * It never executes anything. What it cannot know (an unset variable, the output of a
 * command it cannot fold) makes a word `dynamic`; the rules treat dynamic parts
 * conservatively. Every loop consumes input, and a shared budget bounds words and nested
 * scripts over the whole input, so hostile input cannot make it run away.
 */
import { LIMITS } from "./types.js";
import { foldScript } from "./fold.js";

export interface Word {
  /** The word after quote removal and the expansions the lexer could resolve. */
  text: string;
  /** Contains an expansion the lexer could not resolve (its text is then partial). */
  dynamic: boolean;
  /** Any part was quoted (so it is no glob and no assignment name). */
  quoted: boolean;
  /** The literal unquoted text the word started with (assignment names live there). */
  head: string;
  /** Scripts of $(…), `…` and <(…) inside the word: they run too. */
  subs?: Script[];
  /** The word is a process substitution <(…) / >(…). */
  procSub?: boolean;
}

export interface Redirect {
  /** ">", ">>", ">|", "&>", "&>>", "<", "<>", ">&", "<&", "<<", "<<<". */
  op: string;
  target: Word;
  /** A here-document's or here-string's text. */
  body?: string;
}

export interface Command {
  words: Word[];
  redirects: Redirect[];
  /** NAME=value words before the program. */
  assignments: { name: string; value: Word }[];
}

export interface Pipeline {
  stages: Command[];
}

export interface Script {
  source: string;
  pipelines: Pipeline[];
  depth: number;
}

/** What the lexer knows while reading: variables and aliases the script set, and the budget. */
export interface ShellState {
  vars: Map<string, string>;
  aliases: Map<string, string>;
  home: string;
  cwd: string;
  budget: Budget;
}

export interface Budget {
  words: number;
  scripts: number;
  /** Why judging stopped short, if it did ("depth", "words", "scripts"). */
  exceeded: Set<string>;
}

export function newBudget(): Budget {
  return { words: LIMITS.words, scripts: LIMITS.scripts, exceeded: new Set() };
}

export function newState(home: string, cwd: string, budget = newBudget()): ShellState {
  return { vars: new Map(), aliases: new Map(), home, cwd, budget };
}

const PLAIN = /[^\s|&;()<>'"\\$`]+/y;
const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=/;
// Reserved words that only introduce the command after them (`for`, `select` stay: their
// words are read by declare()).
const KEYWORDS = new Set(["if", "then", "else", "elif", "fi", "do", "done", "while", "until", "esac", "!", "{", "}", "[[", "]]", "function", "coproc"]);
const DECLARERS = new Set(["export", "declare", "typeset", "local", "readonly"]);

/** Parses `source` as a script at nesting `depth`; never throws. */
export function parseScript(source: string, state: ShellState, depth: number): Script {
  const script: Script = { source, pipelines: [], depth };
  if (depth > LIMITS.depth) {
    state.budget.exceeded.add("depth");
    return script;
  }
  if (--state.budget.scripts < 0) {
    state.budget.exceeded.add("scripts");
    return script;
  }
  new Lexer(source, state, depth, script).run();
  return script;
}

class Lexer {
  private i = 0;
  private word: Word | undefined;
  private command: Command = emptyCommand();
  private pipeline: Pipeline = { stages: [] };
  /** Here-documents whose bodies start after the current line. */
  private pendingHeredocs: { redirect: Redirect; delimiter: string; stripTabs: boolean }[] = [];
  /** The word being read is a redirect target. */
  private redirectOp: string | undefined;

  constructor(
    private readonly src: string,
    private readonly state: ShellState,
    private readonly depth: number,
    private readonly script: Script,
  ) {}

  run(): void {
    const src = this.src;
    const n = src.length;
    while (this.i < n) {
      if (this.state.budget.words < 0) {
        this.state.budget.exceeded.add("words");
        break;
      }
      const c = src[this.i]!;
      if (c === " " || c === "\t" || c === "\r") {
        this.endWord();
        this.i += 1;
      } else if (c === "\n") {
        this.endWord();
        this.i += 1;
        this.readHeredocBodies();
        this.endCommand(true);
      } else if (c === "#" && this.word === undefined) {
        const end = src.indexOf("\n", this.i);
        this.i = end < 0 ? n : end;
      } else if (c === "\\") {
        if (src[this.i + 1] === "\n") this.i += 2;
        else {
          this.literal(src[this.i + 1] ?? "", true);
          this.i += 2;
        }
      } else if (c === "'") {
        const end = src.indexOf("'", this.i + 1);
        const stop = end < 0 ? n : end;
        this.literal(src.slice(this.i + 1, stop), true);
        this.i = stop + 1;
      } else if (c === '"') {
        this.i += 1;
        this.readDoubleQuoted();
      } else if (c === "$") {
        this.readDollar(false);
      } else if (c === "`") {
        this.readBacktick(false);
      } else if ((c === "<" || c === ">") && src[this.i + 1] === "(") {
        this.endWord();
        const body = this.balanced(this.i + 2, "(", ")");
        const sub = parseScript(body.text, this.state, this.depth + 1);
        this.ensureWord().procSub = true;
        this.addSub(sub);
        this.word!.dynamic = true;
        this.word!.text += "/dev/fd/63";
        this.i = body.end;
      } else if (c === "<" || c === ">") {
        this.readRedirect();
      } else if (c === "&") {
        if (src[this.i + 1] === "&") {
          this.endWord();
          this.endCommand(true);
          this.i += 2;
        } else if (src[this.i + 1] === ">") {
          this.endWord();
          const append = src[this.i + 2] === ">";
          this.i += append ? 3 : 2;
          this.startRedirect(append ? "&>>" : "&>");
        } else {
          this.endWord();
          this.endCommand(true);
          this.i += 1;
        }
      } else if (c === "|") {
        this.endWord();
        if (src[this.i + 1] === "|") {
          this.endCommand(true);
          this.i += 2;
        } else {
          this.endCommand(false);
          this.i += src[this.i + 1] === "&" ? 2 : 1;
        }
      } else if (c === ";" || c === "(" || c === ")") {
        // Subshells and groups run their commands like any other: a separator is enough.
        this.endWord();
        this.endCommand(true);
        this.i += src[this.i + 1] === ";" ? 2 : 1;
      } else {
        PLAIN.lastIndex = this.i;
        const m = PLAIN.exec(src);
        if (m === null) {
          this.literal(c, false);
          this.i += 1;
        } else {
          this.literal(m[0], false);
          this.i = PLAIN.lastIndex;
        }
      }
    }
    this.endWord();
    this.readHeredocBodies();
    this.endCommand(true);
  }

  private ensureWord(): Word {
    if (this.word === undefined) this.word = { text: "", dynamic: false, quoted: false, head: "" };
    return this.word;
  }

  private literal(text: string, quoted: boolean): void {
    const word = this.ensureWord();
    if (!quoted && !word.quoted && !word.dynamic && word.head.length === word.text.length) word.head += text;
    if (quoted) word.quoted = true;
    // A tilde at the start of an unquoted word is the home directory.
    if (!quoted && word.text === "" && text.startsWith("~") && (text.length === 1 || text[1] === "/")) text = this.state.home + text.slice(1);
    word.text += text;
  }

  /** Appends an expansion's value; unquoted, it is split into words on whitespace. */
  private expansion(value: string | undefined, quoted: boolean): void {
    const word = this.ensureWord();
    if (value === undefined) {
      word.dynamic = true;
      if (quoted) word.quoted = true;
      return;
    }
    // Assignment values are not split: `X=$(echo rm -rf)` sets X to "rm -rf".
    if (quoted || (this.command.words.length === 0 && this.redirectOp === undefined && ASSIGNMENT.test(word.head))) {
      if (quoted) word.quoted = true;
      word.text += value;
      return;
    }
    const parts = value.split(/[ \t\n]+/);
    for (let k = 0; k < parts.length; k += 1) {
      if (k > 0) {
        this.endWord();
        this.ensureWord();
      }
      this.word!.text += parts[k]!;
      this.word!.quoted = this.word!.quoted || k > 0;
    }
  }

  private addSub(sub: Script): void {
    const word = this.ensureWord();
    (word.subs ??= []).push(sub);
  }

  private endWord(): void {
    const word = this.word;
    if (word === undefined) return;
    this.word = undefined;
    this.state.budget.words -= 1;
    if (this.redirectOp !== undefined) {
      const op = this.redirectOp;
      this.redirectOp = undefined;
      const redirect: Redirect = { op, target: word };
      if (op === "<<" || op === "<<-") {
        redirect.op = "<<";
        this.pendingHeredocs.push({ redirect, delimiter: word.text, stripTabs: op === "<<-" });
      } else if (op === "<<<") redirect.body = word.text + "\n";
      this.command.redirects.push(redirect);
      return;
    }
    const command = this.command;
    if (command.words.length === 0) {
      const m = ASSIGNMENT.exec(word.head);
      if (m !== null) {
        const value = { ...word, text: word.text.slice(m[0].length), head: "" };
        command.assignments.push({ name: m[1]!, value });
        this.state.vars.set(m[1]!, value.text);
        return;
      }
      if (!word.quoted && KEYWORDS.has(word.text)) return;
      const alias = !word.quoted ? this.state.aliases.get(word.text) : undefined;
      if (alias !== undefined && this.depth < LIMITS.depth) {
        const expanded = parseScript(alias, { ...this.state, aliases: new Map() }, this.depth + 1);
        const first = expanded.pipelines[0]?.stages[0];
        if (first !== undefined && first.words.length > 0) {
          command.words.push(...first.words);
          return;
        }
      }
    }
    command.words.push(word);
  }

  private endCommand(endsPipeline: boolean): void {
    const command = this.command;
    if (command.words.length > 0 || command.redirects.length > 0 || command.assignments.length > 0) {
      this.declare(command);
      this.pipeline.stages.push(command);
    }
    this.command = emptyCommand();
    this.redirectOp = undefined;
    if (endsPipeline && this.pipeline.stages.length > 0) {
      this.script.pipelines.push(this.pipeline);
      this.pipeline = { stages: [] };
    }
  }

  /** export/declare/alias/for: what later words will expand to. */
  private declare(command: Command): void {
    const first = command.words[0];
    if (first === undefined) return;
    const name = first.text;
    if (DECLARERS.has(name)) {
      for (const word of command.words.slice(1)) {
        const m = ASSIGNMENT.exec(word.text);
        if (m !== null) this.state.vars.set(m[1]!, word.text.slice(m[0].length));
      }
    } else if (name === "alias") {
      for (const word of command.words.slice(1)) {
        const eq = word.text.indexOf("=");
        if (eq > 0) this.state.aliases.set(word.text.slice(0, eq), word.text.slice(eq + 1));
      }
    } else if (name === "for" || name === "select") {
      // `for f in / /etc; do rm -rf $f; done`: $f stands for every listed word.
      const words = command.words.map((w) => w.text);
      const at = words.indexOf("in");
      if (words[1] !== undefined && at === 2) this.state.vars.set(words[1], words.slice(3).join(" "));
    } else if (name === "read" && command.redirects.some((r) => r.body !== undefined)) {
      const target = command.words.at(-1)?.text;
      const body = command.redirects.find((r) => r.body !== undefined)!.body!;
      if (target !== undefined && /^[A-Za-z_]\w*$/.test(target)) this.state.vars.set(target, body.trim());
    }
  }

  private startRedirect(op: string): void {
    this.redirectOp = op;
    while (this.src[this.i] === " " || this.src[this.i] === "\t") this.i += 1;
  }

  private readRedirect(): void {
    const src = this.src;
    // A word of digits right before the operator is its file descriptor.
    if (this.word !== undefined && !this.word.quoted && !this.word.dynamic && /^\d+$/.test(this.word.text)) this.word = undefined;
    else this.endWord();
    const c = src[this.i]!;
    let op: string = c;
    const next = src[this.i + 1];
    if (c === ">") {
      if (next === ">" || next === "|" || next === "&") op += next;
    } else if (next === "<") {
      op = src[this.i + 2] === "<" ? "<<<" : src[this.i + 2] === "-" ? "<<-" : "<<";
    } else if (next === ">" || next === "&") op += next;
    this.i += op.length;
    this.startRedirect(op);
  }

  private readHeredocBodies(): void {
    const src = this.src;
    while (this.pendingHeredocs.length > 0) {
      const { redirect, delimiter, stripTabs } = this.pendingHeredocs.shift()!;
      const lines: string[] = [];
      while (this.i < src.length) {
        let end = src.indexOf("\n", this.i);
        if (end < 0) end = src.length;
        let line = src.slice(this.i, end);
        this.i = end + 1;
        if (stripTabs) line = line.replace(/^\t+/, "");
        if (line === delimiter) break;
        lines.push(line);
      }
      redirect.body = lines.length > 0 ? lines.join("\n") + "\n" : "";
      if (this.i > src.length) this.i = src.length;
    }
  }

  private readDoubleQuoted(): void {
    const src = this.src;
    this.ensureWord().quoted = true;
    let run = "";
    while (this.i < src.length) {
      const c = src[this.i]!;
      if (c === '"') {
        this.i += 1;
        break;
      }
      if (c === "\\" && '$`"\\\n'.includes(src[this.i + 1] ?? "")) {
        if (src[this.i + 1] !== "\n") run += src[this.i + 1];
        this.i += 2;
      } else if (c === "$" || c === "`") {
        this.literal(run, true);
        run = "";
        if (c === "$") this.readDollar(true);
        else this.readBacktick(true);
      } else {
        run += c;
        this.i += 1;
      }
    }
    this.literal(run, true);
  }

  private readDollar(quoted: boolean): void {
    const src = this.src;
    const next = src[this.i + 1];
    if (next === "'" && !quoted) {
      let end = this.i + 2;
      while (end < src.length && src[end] !== "'") end += src[end] === "\\" ? 2 : 1;
      this.literal(ansiC(src.slice(this.i + 2, Math.min(end, src.length))), true);
      this.i = end + 1;
    } else if (next === "(" && src[this.i + 2] === "(") {
      // $((…)) is arithmetic, but `$((cmd) …)` is a subshell in a substitution: parse it as both.
      const body = this.balanced(this.i + 3, "(", ")");
      this.i = src[body.end] === ")" ? body.end + 1 : body.end;
      if (/[A-Za-z]{2}/.test(body.text)) this.addSub(parseScript(body.text, this.state, this.depth + 1));
      this.expansion(undefined, quoted);
    } else if (next === "(") {
      const body = this.balanced(this.i + 2, "(", ")");
      this.i = body.end;
      this.substitution(body.text, quoted);
    } else if (next === "{") {
      const body = this.balanced(this.i + 2, "{", "}");
      this.i = body.end;
      this.expansion(this.parameter(body.text), quoted);
    } else if (next !== undefined && /[A-Za-z_]/.test(next)) {
      NAME.lastIndex = this.i + 1;
      const name = NAME.exec(src)![0];
      this.i += 1 + name.length;
      this.expansion(this.variable(name), quoted);
    } else if (next !== undefined && /[0-9@*#?$!-]/.test(next)) {
      this.i += 2;
      this.expansion(undefined, quoted);
    } else {
      this.literal("$", quoted);
      this.i += 1;
    }
  }

  private readBacktick(quoted: boolean): void {
    const src = this.src;
    let text = "";
    let k = this.i + 1;
    while (k < src.length && src[k] !== "`") {
      if (src[k] === "\\" && "`$\\".includes(src[k + 1] ?? "")) {
        text += src[k + 1];
        k += 2;
      } else text += src[k++];
    }
    this.i = k + 1;
    this.substitution(text, quoted);
  }

  /** $(…) / `…`: parsed as a script (its commands run too); folded when its output is knowable. */
  private substitution(text: string, quoted: boolean): void {
    const sub = parseScript(text, this.state, this.depth + 1);
    const output = foldScript(sub);
    this.addSub(sub);
    this.expansion(output === undefined ? undefined : output.replace(/\n+$/, ""), quoted);
  }

  private variable(name: string): string | undefined {
    const value = this.state.vars.get(name);
    if (value !== undefined) return value;
    if (name === "HOME") return this.state.home;
    if (name === "PWD") return this.state.cwd;
    if (name === "IFS") return " ";
    return undefined;
  }

  /** ${NAME}, ${NAME:-default}, ${NAME:off:len}, ${NAME/a/b}, ${NAME^^}, ${!NAME}. */
  private parameter(body: string): string | undefined {
    const m = /^(!?)([A-Za-z_][A-Za-z0-9_]*)(.*)$/s.exec(body);
    if (m === null) return undefined;
    let value = this.variable(m[2]!);
    if (m[1] === "!") value = value === undefined ? undefined : this.variable(value);
    const rest = m[3]!;
    if (rest === "") return value;
    let op: RegExpExecArray | null;
    if ((op = /^:?[-=]([\s\S]*)$/.exec(rest)) !== null) return value === undefined || (value === "" && rest.startsWith(":")) ? this.expandLiteral(op[1]!) : value;
    if ((op = /^:?\+([\s\S]*)$/.exec(rest)) !== null) return value === undefined ? "" : this.expandLiteral(op[1]!);
    if (value === undefined) return undefined;
    if ((op = /^:\s*(-?\d+)(?::\s*(-?\d+))?$/.exec(rest)) !== null) {
      const from = Number(op[1]);
      const start = from < 0 ? Math.max(0, value.length + from) : from;
      if (op[2] === undefined) return value.slice(start);
      const len = Number(op[2]);
      return len < 0 ? value.slice(start, value.length + len) : value.slice(start, start + len);
    }
    if ((op = /^\/(\/?)([^/]*)\/?(.*)$/s.exec(rest)) !== null) {
      const pattern = op[2]!;
      if (/[*?[]/.test(pattern)) return undefined;
      return op[1] === "/" ? value.split(pattern).join(op[3]!) : value.replace(pattern, op[3]!);
    }
    if (rest === "^^") return value.toUpperCase();
    if (rest === ",,") return value.toLowerCase();
    if (rest === "^") return value.charAt(0).toUpperCase() + value.slice(1);
    if (rest === ",") return value.charAt(0).toLowerCase() + value.slice(1);
    if ((op = /^(#{1,2}|%{1,2})(.*)$/s.exec(rest)) !== null && !/[*?[]/.test(op[2]!)) {
      const p = op[2]!;
      if (op[1]!.startsWith("#")) return value.startsWith(p) ? value.slice(p.length) : value;
      return value.endsWith(p) ? value.slice(0, value.length - p.length) : value;
    }
    return undefined;
  }

  /** A default value in ${X:-…}: its $VARs expanded, quotes dropped. */
  private expandLiteral(text: string): string | undefined {
    let dynamic = false;
    const out = text.replace(/\$\{?([A-Za-z_]\w*)\}?/g, (_, name: string) => {
      const v = this.variable(name);
      if (v === undefined) dynamic = true;
      return v ?? "";
    });
    return dynamic ? undefined : out.replace(/["']/g, "");
  }

  /** The text up to the matching close, skipping quotes and nested pairs; `end` is past it. */
  private balanced(start: number, open: string, close: string): { text: string; end: number } {
    const src = this.src;
    let depth = 1;
    let k = start;
    while (k < src.length) {
      const c = src[k]!;
      if (c === "\\") k += 2;
      else if (c === "'") {
        const e = src.indexOf("'", k + 1);
        k = e < 0 ? src.length : e + 1;
      } else if (c === '"') {
        k += 1;
        while (k < src.length && src[k] !== '"') k += src[k] === "\\" ? 2 : 1;
        k += 1;
      } else if (c === open) {
        depth += 1;
        k += 1;
      } else if (c === close) {
        depth -= 1;
        if (depth === 0) return { text: src.slice(start, k), end: k + 1 };
        k += 1;
      } else k += 1;
    }
    return { text: src.slice(start), end: src.length };
  }
}

function emptyCommand(): Command {
  return { words: [], redirects: [], assignments: [] };
}

/** Decodes bash's $'…' and echo -e / printf escapes: \n \t \xHH \NNN \uHHHH. */
export function ansiC(text: string): string {
  return text.replace(/\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|0?[0-7]{1,3}|c.|.)/gs, (_, e: string) => {
    const k = e[0]!;
    if (k === "x" || k === "u" || k === "U") {
      const code = parseInt(e.slice(1), 16);
      return code <= 0x10ffff ? String.fromCodePoint(code) : "";
    }
    if (k >= "0" && k <= "7") return String.fromCharCode(parseInt(e, 8) & 0xff);
    const simple: Record<string, string> = { n: "\n", t: "\t", r: "\r", a: "\x07", b: "\b", e: "\x1b", E: "\x1b", f: "\f", v: "\v", "\\": "\\", "'": "'", '"': '"', "?": "?" };
    return simple[k] ?? `\\${e}`;
  });
}
