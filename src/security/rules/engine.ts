/**
 * The rule engine: built-in sets and operators' rules over the facts of an input.
 * Commands are analyzed (tokenized, unwrapped, decoded); a file tool's input is one file
 * access; a prompt yields commands from its fences, inline code and prose, each framed as
 * an instruction or as discussion (prompt.ts). Every match is reported, strongest first;
 * a safe part never hides a dangerous one, because rules look at every program and every
 * file access and nothing ever allows.
 */
import { analyzeCommand, analyzeInterpreterCode, analyzePipelines } from "./analyze.js";
import { compileCustom, type CompiledCustom } from "./custom.js";
import { type Facts, newFacts } from "./facts.js";
import { plainPipelines } from "./lane.js";
import { clip } from "./matchers.js";
import { isUnder, normalizePath } from "./normalize.js";
import { LONG_CODE, normalizePrompt, promptSegments } from "./prompt.js";
import { isCriticalDir, isSystemPath, type JudgeContext, type Rule } from "./rule.js";
import { SETS } from "./sets/index.js";
import { type Budget, newBudget } from "./tokenizer.js";
import { LIMITS, RuleConfigError, type RuleEngineOptions, type RuleInput, type RuleMatch, SEVERITY_RANK, type Severity } from "./types.js";

export const BUILTIN_SETS: readonly string[] = Object.freeze(Object.keys(SETS));
/**
 * Every built-in set. Each rule is precise (the case table holds it to no false
 * positives), blocks only what is clearly dangerous and asks where a legitimate use
 * exists (sudo, token files, shell rc files), so a tenant the config says nothing about
 * gets the full protection; an operator who wants less names the sets.
 */
export const DEFAULT_SETS: readonly string[] = BUILTIN_SETS;

/** Where a prompt's commands are imagined to run: a prompt has no cwd or home of its own. */
export const PROMPT_HOME = "/home/user";
export const PROMPT_CWD = "/home/user/work/session";

const SHELL_LANGUAGES = new Set(["", "sh", "bash", "shell", "zsh", "console", "terminal", "shell-session", "shellsession", "fish", "ksh", "cmd", "bat", "text", "txt", "plaintext", "dockerfile", "makefile", "yaml", "yml"]);
const CODE_LANGUAGES: Record<string, string> = { python: "python", py: "python", python3: "python", perl: "perl", pl: "perl", ruby: "ruby", rb: "ruby", js: "node", javascript: "node", node: "node", ts: "node", typescript: "node", php: "php", lua: "lua", powershell: "pwsh", ps1: "pwsh", pwsh: "pwsh" };

/** A path part that some built-in path rule may care about: a dot entry, a key-like name, a glob. */
const PLAIN_REJECT = /\/\.|id_|key|\.pem|authorized|credential|secret|token|[*?[]/i;

export class RuleEngine {
  private readonly builtins: Rule[];
  private readonly invocationRules: (Rule | CompiledCustom)[];
  private readonly fileRules: (Rule | CompiledCustom)[];
  private readonly factRules: Rule[];
  private readonly promptRules: CompiledCustom[];
  private readonly allowPaths: readonly string[];
  private readonly workRoot: string | undefined;
  /** Programs an operator's command rule names: the plain lane never skips them. */
  private readonly named: ((program: string) => boolean) | undefined;
  /** An operator's path rule may match any file, so the plain lane is off. */
  private readonly laneOff: boolean;

  private constructor(builtins: Rule[], custom: CompiledCustom[], allowPaths: readonly string[], workRoot: string | undefined, lane: boolean) {
    this.builtins = builtins;
    const all: (Rule | CompiledCustom)[] = [...builtins, ...custom];
    this.invocationRules = all.filter((r) => r.invocation !== undefined);
    this.fileRules = all.filter((r) => r.file !== undefined);
    this.factRules = builtins.filter((r) => r.facts !== undefined);
    this.promptRules = custom.filter((r) => r.prompt !== undefined);
    const programs = custom.flatMap((r) => r.programs ?? []);
    this.named = programs.length === 0 ? undefined : (program) => programs.some((re) => re.test(program));
    this.laneOff = !lane || custom.some((r) => r.file !== undefined);
    this.allowPaths = allowPaths;
    this.workRoot = workRoot;
  }

  /** Builds an engine; throws RuleConfigError naming the bad set, rule or field. */
  static create(options: RuleEngineOptions): RuleEngine {
    const builtins: Rule[] = [];
    for (const [k, set] of (options.sets ?? []).entries()) {
      const rules = SETS[set];
      if (rules === undefined) throw new RuleConfigError(`sets.${k}: unknown rule set ${JSON.stringify(set)}; known: ${BUILTIN_SETS.join(", ")}`, undefined, `sets.${k}`);
      builtins.push(...rules);
    }
    const taken = new Set<string>(Object.values(SETS).flatMap((rules) => rules.map((r) => r.id)));
    const custom: CompiledCustom[] = [];
    for (const [k, spec] of (options.custom ?? []).entries()) {
      const compiled = compileCustom(spec, k, taken);
      taken.add(compiled.id);
      custom.push(compiled);
    }
    const allowPaths = (options.allowPaths ?? []).map((p, k) => {
      if (typeof p !== "string" || !(p.startsWith("/") || p === "~" || p.startsWith("~/"))) throw new RuleConfigError(`allowPaths.${k}: ${JSON.stringify(p)} is neither absolute nor ~-relative`, undefined, `allowPaths.${k}`);
      return p;
    });
    if (options.workRoot !== undefined && !options.workRoot.startsWith("/")) throw new RuleConfigError(`workRoot: ${JSON.stringify(options.workRoot)} is not absolute`, undefined, "workRoot");
    return new RuleEngine(builtins, custom, allowPaths, options.workRoot === undefined ? undefined : normalizePath(options.workRoot, "/", "/"), options.plainLane !== false);
  }

  /** Every match, block first, then ask, then warn; never throws. */
  judge(input: RuleInput): RuleMatch[] {
    try {
      return sortMatches(this.judgeUnsafe(input));
    } catch (error) {
      // A bug must not let an input through unjudged: a human decides.
      return [{ ruleId: "engine.error", severity: "ask", description: "the rule engine failed on this input", set: "engine", evidence: clip(String((error as Error)?.message ?? error)) }];
    }
  }

  /** The strongest severity and every match. */
  verdict(input: RuleInput): { severity: Severity | "pass"; matches: RuleMatch[] } {
    const matches = this.judge(input);
    return { severity: matches[0]?.severity ?? "pass", matches };
  }

  private judgeUnsafe(input: RuleInput): Map<string, RuleMatch> {
    const out = new Map<string, RuleMatch>();
    if (input === null || typeof input !== "object") return limit(out, "input", "the input is not a rule input");
    if (input.kind === "command") {
      const ctx = this.context(str(input.cwd, "/"), str(input.home, "/root"));
      let command = str(input.command, "");
      if (command.length > LIMITS.commandBytes) {
        command = command.slice(0, LIMITS.commandBytes);
        limit(out, "size", `the command is longer than ${LIMITS.commandBytes / 1024} KiB; only its start was judged`);
      }
      this.run(this.analyze(command, ctx, newBudget(), newFacts()), ctx, out, false);
    } else if (input.kind === "file") {
      const ctx = this.context(str(input.cwd, "/"), str(input.home, "/root"));
      const raw = str(input.path, "");
      if (raw.length > LIMITS.commandBytes) return limit(out, "size", "the path is too long to judge");
      const facts = newFacts();
      const op = input.operation === "read" || input.operation === "write" || input.operation === "delete" ? input.operation : "write";
      facts.files.push({ op, path: normalizePath(raw, ctx.cwd, ctx.home), glob: false, recursive: op === "delete", program: "file tool" });
      this.run(facts, ctx, out, false);
    } else if (input.kind === "prompt") {
      let text = str(input.text, "");
      if (text.length > LIMITS.promptBytes) {
        text = text.slice(0, LIMITS.promptBytes);
        limit(out, "size", `the prompt is longer than ${LIMITS.promptBytes / 1024} KiB; only its start was judged`, "warn");
      }
      text = normalizePrompt(text);
      for (const rule of this.promptRules) {
        const evidence = rule.prompt!(text);
        if (evidence !== undefined) add(out, rule.id, rule.severity, rule.description, "custom", evidence);
      }
      const ctx = this.context(PROMPT_CWD, PROMPT_HOME);
      const budget = newBudget();
      const segments = promptSegments(text, LIMITS.promptSegments);
      if (segments.length >= LIMITS.promptSegments) limit(out, "segments", `the prompt holds more than ${LIMITS.promptSegments} commands; the rest were not judged`, "warn");
      // Instructions' facts and discussions' facts are gathered apart (the latter capped at
      // warn), each judged once; a command repeated in the prompt is analyzed once.
      const instructions = newFacts();
      const discussions = newFacts();
      const seen = new Set<string>();
      for (const segment of segments) {
        // A long code is judged again rather than hashed (it is rarely repeated).
        if (segment.code.length < LONG_CODE) {
          const key = `${segment.instruction ? "i" : "d"}${segment.language}\u0000${segment.code}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        if (segment.code.length > LIMITS.commandBytes) {
          segment.code = segment.code.slice(0, LIMITS.commandBytes);
          limit(out, "size", `a command in the prompt is longer than ${LIMITS.commandBytes / 1024} KiB; only its start was judged`, "warn");
        }
        const into = segment.instruction ? instructions : discussions;
        const language = CODE_LANGUAGES[segment.language];
        if (language !== undefined) analyzeInterpreterCode(language, segment.code, ctx.cwd, ctx.home, budget, into);
        else if (SHELL_LANGUAGES.has(segment.language) || segment.origin !== "fence") this.analyze(segment.code, ctx, budget, into);
        else analyzeInterpreterCode("unknown", segment.code, ctx.cwd, ctx.home, budget, into);
      }
      if (instructions.sources.length + instructions.codes.length > 0) this.run(instructions, ctx, out, false);
      if (discussions.sources.length + discussions.codes.length > 0) this.run(discussions, ctx, out, true);
    } else return limit(out, "input", "the input is not a rule input");
    return out;
  }

  /** A command's facts: through the plain lane when it applies, else the full analysis. */
  private analyze(command: string, ctx: JudgeContext, budget: Budget, facts: Facts): Facts {
    if (!this.laneOff && ctx.cwdSafe) {
      const pipelines = plainPipelines(command, { named: this.named, maxWords: budget.words });
      if (pipelines !== undefined) return analyzePipelines(command, pipelines, ctx.cwd, ctx.home, budget, facts);
    }
    return analyzeCommand(command, ctx.cwd, ctx.home, budget, facts);
  }

  /** Contexts by cwd and home: a session judges many inputs in the same directory. */
  private readonly contexts = new Map<string, JudgeContext>();

  private context(cwd: string, home: string): JudgeContext {
    const key = `${cwd}\u0000${home}`;
    const known = this.contexts.get(key);
    if (known !== undefined) return known;
    const ctx = this.newContext(cwd, home);
    if (this.contexts.size >= 256) this.contexts.clear();
    this.contexts.set(key, ctx);
    return ctx;
  }

  private newContext(cwd: string, home: string): JudgeContext {
    const normalizedHome = normalizePath(home, "/", "/");
    const allow = this.allowPaths.map((p) => normalizePath(p, "/", normalizedHome));
    const ctx: JudgeContext = {
      cwd: normalizePath(cwd, "/", normalizedHome),
      home: normalizedHome,
      workRoot: this.workRoot,
      cwdSafe: false,
      allowed: (path) => allow.some((dir) => isUnder(path, dir)),
    };
    const root = this.workRoot;
    ctx.cwdSafe = root !== undefined && ctx.cwd.startsWith(root + "/") ? !PLAIN_REJECT.test(ctx.cwd.slice(root.length)) : !isSystemPath(ctx.cwd) && !isCriticalDir(ctx.cwd, ctx) && !PLAIN_REJECT.test(ctx.cwd);
    return ctx;
  }

  /** Runs every rule over the facts; `prose` caps severities at warn. */
  private run(facts: Facts, ctx: JudgeContext, out: Map<string, RuleMatch>, prose: boolean): void {
    const cap = (s: Severity): Severity => (prose ? "warn" : s);
    for (const rule of this.invocationRules) {
      for (const inv of facts.invocations) {
        const evidence = rule.invocation!(inv, ctx);
        if (evidence !== undefined) {
          add(out, rule.id, cap(rule.severity), rule.description, setOf(rule), evidence);
          break;
        }
      }
    }
    // Files plainly inside a safe cwd (a session's directory) can match no built-in path
    // rule: skip them for those, which is most of what an ordinary command touches.
    const plain = facts.files.map((f) => ctx.cwdSafe && f.path.startsWith(ctx.cwd + "/") && !PLAIN_REJECT.test(f.path.slice(ctx.cwd.length)));
    for (const rule of this.fileRules) {
      const builtin = "set" in rule;
      for (let k = 0; k < facts.files.length; k += 1) {
        if (builtin && plain[k]) continue;
        const file = facts.files[k]!;
        const evidence = rule.file!(file, ctx);
        if (evidence !== undefined) {
          add(out, rule.id, cap(rule.severity), rule.description, setOf(rule), evidence);
          break;
        }
      }
    }
    for (const rule of this.factRules) {
      const evidence = rule.facts!(facts, ctx);
      if (evidence !== undefined) add(out, rule.id, cap(rule.severity), rule.description, rule.set, evidence);
    }
    for (const reason of facts.exceeded) {
      limit(out, reason, `the input nests or expands beyond the engine's ${reason} limit; the rest was not judged`, prose ? "warn" : "ask");
    }
  }

  /** The built-in rules this engine runs (for documentation and tests). */
  rules(): readonly { id: string; severity: Severity; description: string; set: string }[] {
    return this.builtins.map(({ id, severity, description, set }) => ({ id, severity, description, set }));
  }
}

function setOf(rule: Rule | CompiledCustom): string {
  return "set" in rule ? rule.set : "custom";
}

function str(value: unknown, fallback: string): string {
  return typeof value === "string" ? value : fallback;
}

function add(out: Map<string, RuleMatch>, ruleId: string, severity: Severity, description: string, set: string, evidence: string): void {
  const prior = out.get(ruleId);
  if (prior !== undefined && SEVERITY_RANK[prior.severity] >= SEVERITY_RANK[severity]) return;
  out.set(ruleId, { ruleId, severity, description, set, evidence: clip(evidence.replace(/\s+/g, " ").trim(), LIMITS.evidence) });
}

function limit(out: Map<string, RuleMatch>, reason: string, description: string, severity: Severity = "ask"): Map<string, RuleMatch> {
  add(out, `limits.${reason}`, severity, description, "limits", reason);
  return out;
}

function sortMatches(out: Map<string, RuleMatch>): RuleMatch[] {
  return [...out.values()].sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity]);
}
