/**
 * Destructive file-system operations: deleting or overwriting system paths, the home
 * directory, the work root or another session's directory. Whatever spells it: rm with
 * flags in any order, find -delete, mv, rsync --delete, shred, a redirection, chmod -R.
 * Deleting inside the session's own directory (`rm -rf ./build`) is its business.
 */
import { isCriticalDir, isSystemPath, type JudgeContext, type RuleDef, ruleSet, target, describe } from "../rule.js";
import { isUnder } from "../normalize.js";
import type { FileAccess } from "../facts.js";

function onWorkRoot(file: FileAccess, ctx: JudgeContext): boolean {
  const root = ctx.workRoot;
  if (root === undefined) return false;
  const { path, contents } = target(file);
  if (path === root) return true;
  // A direct child of the work root is a session's whole directory.
  if (!path.startsWith(root + "/")) return false;
  return contents ? path === root : !path.slice(root.length + 1).includes("/");
}

export const DESTRUCTIVE = ruleSet("destructive", [
  {
    id: "delete-system",
    severity: "block",
    description: "deletes a system path, the root, the home directory or its parents",
    file(file, ctx) {
      if (file.op !== "delete" || ctx.allowed(file.path)) return undefined;
      const { path, contents } = target(file);
      if (isSystemPath(path) || isCriticalDir(path, ctx) || (contents && isCriticalDir(path, ctx))) return describe(file);
      return undefined;
    },
  },
  {
    id: "delete-work-root",
    severity: "block",
    description: "deletes the work root or a session's whole directory",
    file(file, ctx) {
      if (file.op !== "delete" || ctx.allowed(file.path)) return undefined;
      return onWorkRoot(file, ctx) ? describe(file) : undefined;
    },
  },
  {
    id: "write-system",
    severity: "block",
    description: "writes, truncates or changes the mode of a file in a system directory",
    file(file, ctx) {
      if (file.op !== "write" || ctx.allowed(file.path)) return undefined;
      const { path } = target(file);
      // Devices are the disk set's; the tops of shallow dirs (/home/x) may be written into.
      if (path.startsWith("/dev/") || !isSystemPath(path)) return undefined;
      if (/^\/(home|Users|mnt|media|Volumes|private)\/[^/]+$/.test(path) && !file.recursive) return undefined;
      return describe(file);
    },
  },
  {
    id: "recursive-chmod-home",
    severity: "block",
    description: "recursively changes modes or owners of the home directory, the work root or the root",
    invocation(inv, ctx) {
      if (!["chmod", "chown", "chgrp"].includes(inv.program)) return undefined;
      if (!inv.args.some((w) => /^-[a-zA-Z]*R|^--recursive$/.test(w.text))) return undefined;
      return inv.args.some((w) => w.text.startsWith("/") && isCriticalDir(w.text.replace(/\/+$/, "") || "/", ctx)) ? inv.line : undefined;
    },
  },
  {
    id: "unresolved-program",
    severity: "block",
    description: "runs a program the command hides in an unset variable or unknown output, on a protected path",
    invocation(inv, ctx) {
      if (!inv.dynamicProgram) return undefined;
      return inv.args.some((w) => w.text.startsWith("/") && !ctx.allowed(w.text) && isCriticalDir(w.text.replace(/\/\*?$/, "") || "/", ctx)) ? inv.line : undefined;
    },
  },
] satisfies RuleDef[]);
