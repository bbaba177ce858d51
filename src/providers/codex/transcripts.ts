import { type Dirent, lstatSync, readdirSync } from "node:fs";
import path from "node:path";

// Codex keeps each thread as a rollout, `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`
// (plus SQLite indexes it rebuilds). A thread is found by the id in the file name, in any
// date directory: a rollout copied into another HOME is resumed or forked there by id.

// A thread id as Codex makes them (a UUID); anything else names no file.
const THREAD_ID = /^[A-Za-z0-9-]{1,128}$/;
// Enough for years of daily directories; a HOME with more is not searched further.
const MAX_DIRS = 20_000;

/**
 * The rollout of `threadId` in `home` (the session HOME, CODEX_HOME is its `.codex`): the
 * file Codex wrote, or, when there is none, the place where a copy of it is found.
 */
export function rolloutFiles(threadId: string, home: string): string[] {
  if (!home || !THREAD_ID.test(threadId)) return [];
  const sessions = path.join(home, ".codex", "sessions");
  return [findRollout(sessions, threadId) ?? path.join(sessions, ...placeFor(threadId))];
}

// Only real directories and files: the agent owns its HOME and could plant links there
// that would make the daemon copy a file from outside it.
function findRollout(sessions: string, threadId: string): string | undefined {
  if (!isRealDir(path.join(sessions, "..")) || !isRealDir(sessions)) return undefined;
  const suffix = `-${threadId}.jsonl`;
  let dirs = 0;
  const walk = (dir: string, depth: number): string | undefined => {
    if (++dirs > MAX_DIRS) return undefined;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return undefined;
    }
    for (const entry of entries) {
      if (depth === 3) {
        if (entry.isFile() && entry.name.startsWith("rollout-") && entry.name.endsWith(suffix)) return path.join(dir, entry.name);
      } else if (entry.isDirectory()) {
        const found = walk(path.join(dir, entry.name), depth + 1);
        if (found) return found;
      }
    }
    return undefined;
  };
  return walk(sessions, 0);
}

function isRealDir(dir: string): boolean {
  try {
    return lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

// Where Codex itself would have put it: the time a UUID v7 id carries (Codex's ids are
// v7), in UTC; the epoch for any other id.
function placeFor(threadId: string): string[] {
  const hex = threadId.replace(/-/g, "");
  const stamp = hex.length === 32 && hex[12] === "7" ? Number.parseInt(hex.slice(0, 12), 16) : 0;
  // Years past 9999 would print in another format.
  const ms = stamp < Date.UTC(10000, 0, 1) ? stamp : 0;
  const iso = new Date(ms).toISOString(); // 2026-12-02T03:45:01.123Z
  const [year, month, day] = [iso.slice(0, 4), iso.slice(5, 7), iso.slice(8, 10)];
  const time = iso.slice(0, 19).replace(/:/g, "-");
  return [year, month, day, `rollout-${time}-${threadId}.jsonl`];
}
