import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";
import { HotplexError } from "../errors.js";

// Linux's limits: PATH_MAX for the whole path, NAME_MAX for each part.
const MAX_PATH_BYTES = 4096;
const MAX_NAME_BYTES = 255;

function invalid(requested: string, why: string): HotplexError {
  return new HotplexError("invalid_argument", `config.work_dir ${JSON.stringify(requested.slice(0, 200))} ${why}`);
}

/**
 * Resolves a session's work dir inside its tenant's work root. Relative paths are taken
 * from the root; the result, after following every symlink that exists, must lie strictly
 * inside the root's own real path (the root itself is every session's parent, never one
 * session's dir). Directories that do not exist yet are checked through their deepest
 * existing ancestor, so a symlink can never lead a later `mkdir` outside. Every way a
 * path can be unusable (a NUL byte, too long, a symlink loop, a file on the way) is an
 * INVALID_ARGUMENT naming the field.
 */
export function resolveWorkDir(tenantRoot: string, requested: string, sessionId: string): string {
  const shown = requested || sessionId;
  if (shown.includes("\u0000")) throw invalid(shown, "contains a NUL byte");
  if (Buffer.byteLength(shown) > MAX_PATH_BYTES) throw invalid(shown, `is longer than ${MAX_PATH_BYTES} bytes`);
  if (shown.split("/").some((part) => Buffer.byteLength(part) > MAX_NAME_BYTES)) {
    throw invalid(shown, `has a part longer than ${MAX_NAME_BYTES} bytes`);
  }
  const root = realpathSync(tenantRoot);
  const target = path.resolve(root, shown);
  let real: string;
  try {
    real = realpathOfDeepestExisting(target);
  } catch (error) {
    throw invalid(shown, describeFsError(error));
  }
  if (Buffer.byteLength(real) > MAX_PATH_BYTES) throw invalid(shown, `resolves to a path longer than ${MAX_PATH_BYTES} bytes`);
  if (real === root) {
    throw invalid(shown, `resolves to the work root ${root} itself: a session needs a directory of its own inside it`);
  }
  if (!isInside(root, real)) throw invalid(shown, `resolves to ${real}, outside the work root ${root}`);
  return real;
}

/**
 * Checks, right before an agent starts in it, that a work dir resolved earlier still is
 * what it was: a real directory at the same path (no symlink swapped in on the way since),
 * inside the work root. Returns a reason when it is not.
 */
export function workDirChanged(workRoot: string, workDir: string): string | undefined {
  let real: string;
  try {
    real = realpathSync(workDir);
  } catch (error) {
    return `the work dir ${workDir} cannot be used: ${describeFsError(error)}`;
  }
  if (real !== workDir) return `the work dir ${workDir} now resolves to ${real} (a symlink was put in its place or on its path)`;
  let root: string;
  try {
    root = realpathSync(workRoot);
  } catch (error) {
    return `the work root ${workRoot} cannot be used: ${describeFsError(error)}`;
  }
  if (!isInside(root, real)) return `the work dir ${workDir} is no longer inside the work root ${root}`;
  try {
    if (!lstatSync(real).isDirectory()) return `the work dir ${workDir} is not a directory`;
  } catch (error) {
    return `the work dir ${workDir} cannot be used: ${describeFsError(error)}`;
  }
  return undefined;
}

/** Whether `candidate` lies strictly inside `root` (both real, absolute paths). */
export function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  // "..x" is a child named "..x"; only ".." itself or "../…" leaves the root.
  return relative !== "" && relative !== ".." && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative);
}

function describeFsError(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case "ELOOP":
      return "runs into a loop of symbolic links";
    case "ENOTDIR":
      return "has a file where a directory is needed";
    case "ENAMETOOLONG":
      return "is too long";
    case "EACCES":
    case "EPERM":
      return "cannot be read by the daemon (permission denied)";
    default:
      return `cannot be resolved (${(error as Error).message})`;
  }
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
