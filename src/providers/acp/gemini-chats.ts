import { chown, constants, copyFile, lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";

/** What a provider does around one session/load (see prepareGeminiLoad). */
export interface LoadGuard {
  /** No saved conversation with the id exists: a load can only fail. */
  readonly missing: boolean;
  /** Wait this long before loading (the bug could not be side-stepped otherwise); 0 mostly. */
  readonly waitMs: number;
  /** Puts the saved conversation back as it was before the load (after a failed one). */
  restore(): Promise<void>;
  /** Drops the backup (after a load that worked). */
  discard(): Promise<void>;
}

// The CLI's chat files: `session-<UTC minute of creation, YYYY-MM-DDTHH-MM>-<first 8 of the id>.jsonl`.
const STAMP = /^session-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2})-(.*)$/;
const SLUG = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_PROJECTS_BYTES = 1024 * 1024;
const MAX_DIR_ENTRIES = 10_000;
// The infix of a chat file moved out of the way of a load (see below).
const MOVED = "hx";

/** The UTC minute as the CLI stamps its chat file names. */
export function minuteStamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace(/:/g, "-");
}

/**
 * Protects a Gemini CLI conversation from the CLI's session/load bug (0.61): a load first
 * opens a fresh chat file named `session-<current UTC minute>-<id8>.jsonl` and appends a
 * header that empties its history; in the minute the conversation was created, that name
 * is the conversation's own file, so the load wipes it and fails ("Invalid session
 * identifier"). The CLI finds conversations by the id in the file, never by the name, so
 * the guard renames a file whose name the load could pick (`session-<minute>-hx-<id8>`,
 * still the CLI's pattern): the load then creates a harmless header-only file beside it
 * and resumes from the renamed one. If a rename fails, the load must wait for the minute
 * to change (`waitMs`). The matching files are copied to `stateDir` first and put back by
 * `restore()` after a failed load.
 *
 * Everything in the HOME is the agent's: no link is followed, names and sizes are bounded.
 */
export async function prepareGeminiLoad(
  paths: { home: string; workDir: string; stateDir: string },
  sessionId: string,
  nowMs: () => number = Date.now,
): Promise<LoadGuard> {
  const short = sessionId.slice(0, 8);
  const files: { dir: string; name: string; uid: number; gid: number }[] = [];
  for (const dir of await chatsDirs(paths.home, paths.workDir)) {
    for (const name of await listDir(dir)) {
      if (!name.startsWith("session-") || !(name.endsWith(`-${short}.jsonl`) || name.endsWith(`-${short}.json`))) continue;
      const info = await lstat(path.join(dir, name)).catch(() => undefined);
      if (!info?.isFile()) continue;
      if ((await firstLineSessionId(path.join(dir, name))) === sessionId) files.push({ dir, name, uid: info.uid, gid: info.gid });
    }
  }
  if (files.length === 0) return { missing: true, waitMs: 0, restore: async () => {}, discard: async () => {} };

  const backupDir = path.join(paths.stateDir, "acp-load-backup");
  await rm(backupDir, { recursive: true, force: true });
  await mkdir(backupDir, { recursive: true, mode: 0o700 });
  const saved: { file: string; backup: string; uid: number; gid: number }[] = [];
  let waitMs = 0;
  for (const [i, entry] of files.entries()) {
    let file = path.join(entry.dir, entry.name);
    const now = minuteStamp(nowMs());
    const stamp = STAMP.exec(entry.name);
    // A name stamped this minute (or later, with a clock that went back) is one the load may create.
    if (stamp && stamp[1]! >= now && stamp[2] === `${short}.jsonl`) {
      const moved = await moveAside(entry.dir, entry.name, stamp[1]!, stamp[2]!);
      if (moved) file = moved;
      else waitMs = Math.max(waitMs, msToNextMinute(nowMs()) + 1_000);
    }
    const backup = path.join(backupDir, `${i}.jsonl`);
    await copyFile(file, backup, constants.COPYFILE_EXCL);
    saved.push({ file, backup, uid: entry.uid, gid: entry.gid });
  }
  return {
    missing: false,
    waitMs,
    restore: async () => {
      for (const { file, backup, uid, gid } of saved) {
        // The agent may have replaced the file by a link meanwhile: never write through one.
        await rm(file, { force: true });
        await copyFile(backup, file, constants.COPYFILE_EXCL);
        // The agent (maybe a user of its own) appends to it again.
        await chown(file, uid, gid).catch(() => undefined);
      }
    },
    discard: () => rm(backupDir, { recursive: true, force: true }),
  };
}

/** Milliseconds until the next UTC minute begins. */
export function msToNextMinute(nowMs: number): number {
  return 60_000 - (nowMs % 60_000);
}

// Renames `session-<stamp>-<rest>` to `session-<stamp>-hx[-n]-<rest>`; the new path, or
// undefined when it cannot.
async function moveAside(dir: string, name: string, stamp: string, rest: string): Promise<string | undefined> {
  for (let n = 0; n < 10; n += 1) {
    const target = path.join(dir, `session-${stamp}-${MOVED}${n === 0 ? "" : n}-${rest}`);
    if (await exists(target)) continue;
    try {
      await rename(path.join(dir, name), target);
      return target;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

// The project's chats dirs: the one projects.json maps the work dir to, else every one.
async function chatsDirs(home: string, workDir: string): Promise<string[]> {
  const gemini = path.join(home, ".gemini");
  const tmp = path.join(gemini, "tmp");
  if (!(await isDir(gemini)) || !(await isDir(tmp))) return [];
  const slug = await projectSlug(path.join(gemini, "projects.json"), workDir);
  const slugs = slug ? [slug] : (await listDir(tmp)).filter((name) => SLUG.test(name) && name !== "." && name !== "..");
  const dirs: string[] = [];
  for (const s of slugs) {
    const project = path.join(tmp, s);
    const chats = path.join(project, "chats");
    if ((await isDir(project)) && (await isDir(chats))) dirs.push(chats);
  }
  return dirs;
}

async function projectSlug(file: string, workDir: string): Promise<string | undefined> {
  const text = await readBounded(file, MAX_PROJECTS_BYTES);
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    const projects = isRecord(parsed) && isRecord(parsed.projects) ? parsed.projects : {};
    const slug = projects[workDir];
    return typeof slug === "string" && SLUG.test(slug) && slug !== "." && slug !== ".." ? slug : undefined;
  } catch {
    return undefined;
  }
}

// The sessionId of a chat file's first line (its metadata record).
async function firstLineSessionId(file: string): Promise<string | undefined> {
  const head = await readBounded(file, 64 * 1024, true);
  if (head === undefined) return undefined;
  const line = head.split("\n", 1)[0] ?? "";
  try {
    const record: unknown = JSON.parse(line);
    return isRecord(record) && typeof record.sessionId === "string" ? record.sessionId : undefined;
  } catch {
    return undefined;
  }
}

// At most `limit` bytes of a regular file (no link followed); undefined when it is not one
// or is longer (unless `truncate`).
async function readBounded(file: string, limit: number, truncate = false): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile() || (!truncate && info.size > limit)) return undefined;
    const buffer = Buffer.alloc(Math.min(limit, info.size));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).slice(0, MAX_DIR_ENTRIES);
  } catch {
    return [];
  }
}

async function isDir(file: string): Promise<boolean> {
  return lstat(file).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

async function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
