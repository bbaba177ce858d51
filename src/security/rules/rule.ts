/**
 * A built-in rule: an id, a severity, a description, the set it belongs to, and matchers
 * over Facts, never over raw input. Each matcher returns evidence when it matches.
 */
import type { Facts, FileAccess, Invocation } from "./facts.js";
import { globBase, isUnder } from "./normalize.js";
import type { Severity } from "./types.js";

export interface JudgeContext {
  cwd: string;
  home: string;
  workRoot: string | undefined;
  /** The cwd is an ordinary directory (a session's): files plainly inside it match no built-in path rule. */
  cwdSafe: boolean;
  /** A write or delete there is exempt from built-in path rules (allowPaths). */
  allowed(path: string): boolean;
}

export interface Rule {
  id: string;
  severity: Severity;
  description: string;
  set: string;
  invocation?(inv: Invocation, ctx: JudgeContext): string | undefined;
  file?(file: FileAccess, ctx: JudgeContext): string | undefined;
  facts?(facts: Facts, ctx: JudgeContext): string | undefined;
}

export type RuleDef = Omit<Rule, "set">;

export function ruleSet(set: string, rules: readonly RuleDef[]): Rule[] {
  return rules.map((rule) => ({ ...rule, set, id: `${set}.${rule.id}` }));
}

/** Where a file access lands, for path rules: a glob counts as the directory it reaches into. */
export function target(file: FileAccess): { path: string; contents: boolean } {
  if (!file.glob) return { path: file.path, contents: false };
  // `dir/*` (or .*, *.*, ?*) is everything in dir; `dir/build-*` is some entries of it.
  const base = globBase(file.path);
  const rest = file.path.slice(base === "/" ? 1 : base.length + 1);
  return /^(\.?\*|\*\.\*|\?\*|\.\?\*|\*\*)(\/.*)?$/.test(rest) ? { path: base, contents: true } : { path: file.path, contents: false };
}

export function describe(file: FileAccess): string {
  return `${file.program || "redirect"} ${file.op} ${file.path}`;
}

/** Paths whose loss or change breaks the machine: top-level system directories and everything in them. */
const SYSTEM_DIRS = ["/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc", "/root", "/sbin", "/srv", "/sys", "/usr", "/var", "/snap", "/System", "/Library", "/Applications", "/private/etc", "/private/var", "/nix", "/efi"];
/** Directories only whose top is protected: their children are users' and mounts' own. */
const SHALLOW_DIRS = ["/home", "/Users", "/mnt", "/media", "/run", "/private", "/Volumes"];
/** Scratch and pseudo-files inside system directories that anyone may write. */
const EXEMPT = ["/tmp", "/var/tmp", "/dev/null", "/dev/zero", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/fd", "/dev/shm", "/dev/random", "/dev/urandom", "/proc/self/fd", "/var/folders", "/private/tmp", "/private/var/folders", "/run/user"];

export function isExempt(p: string): boolean {
  return EXEMPT.some((d) => isUnder(p, d));
}

/** `p` is a system path (in a system directory, or the top of a shallow one), not scratch. */
export function isSystemPath(p: string): boolean {
  if (p === "/") return true;
  if (isExempt(p)) return false;
  if (SYSTEM_DIRS.some((d) => isUnder(p, d))) return true;
  return SHALLOW_DIRS.some((d) => p === d || (p.startsWith(d + "/") && !p.slice(d.length + 1).includes("/") && d !== "/run"));
}

/** `p` is the root, the home, the work root, or one of their ancestors: deleting it deletes them. */
export function isCriticalDir(p: string, ctx: JudgeContext): boolean {
  if (p === "/") return true;
  if (isUnder(ctx.home, p)) return true;
  if (ctx.workRoot !== undefined && isUnder(ctx.workRoot, p)) return true;
  if (SYSTEM_DIRS.includes(p) || SHALLOW_DIRS.includes(p)) return true;
  return false;
}
