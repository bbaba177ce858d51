/**
 * Operators' own rules: the zod schema config is checked against, and compiling a rule
 * into matchers. A rule matches commands (program and argument globs, flags), paths
 * (globs) or prompts (a regular expression); invalid rules are refused naming the field.
 */
import { z } from "zod";
import type { FileAccess, Invocation } from "./facts.js";
import { parseArgs } from "./matchers.js";
import { globSource, homeRelative } from "./normalize.js";
import type { JudgeContext } from "./rule.js";
import { type CustomRuleSpec, RuleConfigError, type Severity } from "./types.js";

const glob = z.string().min(1).max(512);

export const customRuleSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "an id is 1-64 of a-z 0-9 . _ - starting with a letter or digit"),
    severity: z.enum(["block", "ask", "warn"]),
    description: z.string().min(1).max(500),
    match: z.discriminatedUnion("kind", [
      z
        .object({
          kind: z.literal("command"),
          program: z.union([glob, z.array(glob).min(1).max(64)]),
          args: z.array(glob).max(64).optional(),
          flags: z.array(z.string().regex(/^(-[A-Za-z0-9]|--[A-Za-z0-9][A-Za-z0-9-]*)$/, 'a flag is "-x" or "--long"')).max(64).optional(),
        })
        .strict(),
      z
        .object({
          kind: z.literal("path"),
          paths: z.array(glob).min(1).max(256),
          operations: z.array(z.enum(["read", "write", "delete"])).min(1).optional(),
        })
        .strict(),
      z
        .object({
          kind: z.literal("prompt"),
          pattern: z.string().min(1).max(1000),
          flags: z.string().regex(/^[imsu]*$/, "flags are some of i, m, s, u").optional(),
        })
        .strict(),
    ]),
  })
  .strict();

export interface CompiledCustom {
  id: string;
  severity: Severity;
  description: string;
  invocation?(inv: Invocation): string | undefined;
  /** A command rule's program patterns (the plain lane never skips what they name). */
  programs?: readonly RegExp[];
  file?(file: FileAccess, ctx: JudgeContext): string | undefined;
  prompt?(text: string): string | undefined;
}

/** Validates and compiles; throws RuleConfigError naming the rule and field. */
export function compileCustom(spec: unknown, index: number, taken: ReadonlySet<string>): CompiledCustom {
  const parsed = customRuleSchema.safeParse(spec);
  const name = typeof (spec as { id?: unknown })?.id === "string" ? (spec as { id: string }).id : `#${index}`;
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join(".") || "(rule)";
    throw new RuleConfigError(`custom rule ${JSON.stringify(name)}: ${field}: ${issue.message}`, name, field);
  }
  const rule = parsed.data as CustomRuleSpec;
  if (taken.has(rule.id)) throw new RuleConfigError(`custom rule ${JSON.stringify(rule.id)}: id: already taken by another rule`, rule.id, "id");
  const base = { id: rule.id, severity: rule.severity, description: rule.description };
  const m = rule.match;
  if (m.kind === "command") {
    const programs = (typeof m.program === "string" ? [m.program] : m.program).map((p) => new RegExp(`^${globSource(p.toLowerCase(), false)}$`));
    const args = (m.args ?? []).map((a) => new RegExp(`^${globSource(a, false)}$`));
    const flags = m.flags ?? [];
    return {
      ...base,
      programs,
      invocation(inv) {
        if (!programs.some((re) => re.test(inv.program))) return undefined;
        if (!args.every((re) => inv.args.some((w) => re.test(w.text)))) return undefined;
        if (flags.length > 0) {
          const a = parseArgs(inv.args);
          if (!flags.every((f) => (f.startsWith("--") ? a.long.has(f.slice(2).toLowerCase()) : a.short.has(f.slice(1))))) return undefined;
        }
        return inv.line;
      },
    };
  }
  if (m.kind === "path") {
    const operations = new Set(m.operations ?? ["read", "write", "delete"]);
    const globs = m.paths.map((p) => ({ home: p.startsWith("~/") || p === "~", base: !p.includes("/"), re: new RegExp(`^${globSource(p, true)}$`) }));
    return {
      ...base,
      file(file, ctx) {
        if (!operations.has(file.op)) return undefined;
        const name = file.path.slice(file.path.lastIndexOf("/") + 1);
        const rel = homeRelative(file.path, ctx.home);
        return globs.some((g) => g.re.test(g.base ? name : g.home ? rel : file.path)) ? `${file.program || "redirect"} ${file.op} ${file.path}` : undefined;
      },
    };
  }
  let re: RegExp;
  try {
    re = new RegExp(m.pattern, m.flags ?? "i");
  } catch (error) {
    throw new RuleConfigError(`custom rule ${JSON.stringify(rule.id)}: match.pattern: ${(error as Error).message}`, rule.id, "match.pattern");
  }
  return {
    ...base,
    prompt(text) {
      const hit = re.exec(text);
      return hit === null ? undefined : hit[0];
    },
  };
}
