/**
 * The rule engine's public types. The engine is a policy layer on top of the sandbox: it
 * stops clearly dangerous or forbidden actions early and says which rule did, so every
 * match carries the rule's id, severity, description, set and bounded evidence.
 */

/** `block` refuses, `ask` needs a human even when the session would auto-approve, `warn` logs. */
export type Severity = "block" | "ask" | "warn";

export interface RuleMatch {
  ruleId: string;
  severity: Severity;
  description: string;
  set: string;
  /** What matched, bounded to 256 chars, e.g. the normalized command or path. */
  evidence: string;
}

export type RuleInput =
  /** A user prompt (prose, maybe with code fences / inline code). */
  | { kind: "prompt"; text: string }
  /** A shell command line a tool is about to run. */
  | { kind: "command"; command: string; cwd: string; home: string }
  /** A file tool's target. */
  | { kind: "file"; operation: "read" | "write" | "delete"; path: string; cwd: string; home: string };

/** An operator's rule; the matcher is one of three kinds (see custom.ts for the schema). */
export interface CustomRuleSpec {
  id: string;
  severity: Severity;
  description: string;
  match: CustomMatch;
}

export type CustomMatch =
  /**
   * A command a tool runs (or a prompt gives as code). `program`: names or globs matched
   * against the program's base name after unwrapping (sudo, env, sh -c, xargs…). `args`:
   * globs, each of which must match at least one argument. `flags`: each must be present,
   * spelled "-f" or "--force" (short flags are found inside clusters such as -rf).
   */
  | { kind: "command"; program: string | readonly string[]; args?: readonly string[]; flags?: readonly string[] }
  /**
   * A path a command or file tool touches. Globs: `*` within one segment, `**` across
   * segments, a leading `~/` is the home directory. `operations` defaults to all three.
   */
  | { kind: "path"; paths: readonly string[]; operations?: readonly ("read" | "write" | "delete")[] }
  /** A regular expression over the normalized prompt text (prompts only). */
  | { kind: "prompt"; pattern: string; flags?: string };

export interface RuleEngineOptions {
  sets: readonly string[];
  custom: readonly CustomRuleSpec[];
  /** Paths (absolute, or ~-relative) where file writes/deletes are allowed even if a built-in path rule would match. */
  allowPaths: readonly string[];
  /** The work root (destructive operations on it, not inside a session's own dir, are dangerous). */
  workRoot?: string;
  /**
   * The plain lane (lane.ts), on unless false: it only makes judging faster, and tests
   * turn it off to check that the verdicts are the same.
   */
  plainLane?: boolean;
}

/** A configuration the engine refuses; `rule` and `field` say what to fix. */
export class RuleConfigError extends Error {
  override readonly name = "RuleConfigError";

  constructor(
    message: string,
    readonly rule?: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export const SEVERITY_RANK: Record<Severity, number> = { block: 3, ask: 2, warn: 1 };

/**
 * Bounds. Inputs are hostile: a command line or prompt may be huge, nest `sh -c` a
 * thousand deep or expand into millions of words. Past a bound the engine stops looking
 * and reports a `limits.*` match (`ask`) instead of passing what it did not read.
 */
export const LIMITS = {
  /** Commands and paths: bytes judged; longer input is judged up to here and flagged. */
  commandBytes: 64 * 1024,
  /** Prompts: bytes judged; longer prompts are judged up to here and flagged. */
  promptBytes: 256 * 1024,
  /** Nesting of sh -c, eval, $(…), decoded payloads, interpreters' strings. */
  depth: 8,
  /** Words produced over the whole input, all nesting levels together. */
  words: 20_000,
  /** File accesses collected over the whole input. */
  files: 4_096,
  /** Nested scripts parsed over the whole input. */
  scripts: 2_000,
  /** Commands taken from one prompt (fences, inline spans, prose). */
  promptSegments: 256,
  /** Evidence length in a match. */
  evidence: 256,
} as const;
