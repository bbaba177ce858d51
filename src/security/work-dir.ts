import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";
import { HotplexError } from "../errors.js";

/**
 * Resolves a session's work dir inside the work root. Relative paths are taken from the
 * root; the result, after following every symlink that exists, must lie inside the
 * root's own real path. Directories that do not exist yet are checked through their
 * deepest existing ancestor, so a symlink can never lead a later `mkdir` outside.
 */
export function resolveWorkDir(workRoot: string, requested: string, sessionId: string): string {
  const root = realpathSync(workRoot);
  const target = path.resolve(root, requested || sessionId);
  const real = realpathOfDeepestExisting(target);
  if (!isInside(root, real)) {
    throw new HotplexError(
      "invalid_argument",
      `config.work_dir "${requested || sessionId}" resolves to ${real}, outside the work root ${root}`,
    );
  }
  return real;
}

function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  // "..x" is a child named "..x"; only ".." itself or "../…" leaves the root.
  return relative !== ".." && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

// realpath of the deepest existing ancestor, with the missing tail appended. A dangling
// symlink on the way is followed to where its target would be.
function realpathOfDeepestExisting(target: string): string {
  const missing: string[] = [];
  let current = target;
  for (let links = 0; ; ) {
    try {
      return path.join(realpathSync(current), ...missing.reverse());
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      if (isSymlink(current)) {
        if (++links > 40) throw Object.assign(new Error(`too many symbolic links: ${target}`), { code: "ELOOP" });
        current = path.resolve(path.dirname(current), readlinkSync(current));
        continue;
      }
      const parent = path.dirname(current);
      if (parent === current) throw error;
      missing.push(path.basename(current));
      current = parent;
    }
  }
}

function isSymlink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}
