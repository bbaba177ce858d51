import path from "node:path";
import { HotplexError } from "../errors.js";
import { isInside } from "./work-dir.js";

interface Claim {
  tenant: string;
  sessionId: string;
  dir: string;
}

/**
 * Which session owns which work dir. A session's dir is its own: no other session may use
 * the same dir, one inside it or one around it (that would see its files), unless both
 * belong to a tenant whose policy shares work dirs.
 */
export class WorkDirClaims {
  readonly #claims = new Map<string, Claim>();

  /** Throws INVALID_ARGUMENT when `dir` overlaps another session's dir it may not share. */
  check(key: string, tenant: string, sessionId: string, dir: string, shareWithinTenant: boolean): void {
    for (const [otherKey, other] of this.#claims) {
      if (otherKey === key || !overlaps(dir, other.dir)) continue;
      if (shareWithinTenant && other.tenant === tenant) continue;
      // Another tenant's sessions must stay invisible: name the session only within a tenant.
      const owner = other.tenant === tenant ? `session "${other.sessionId}"` : "another session";
      const relation = dir === other.dir ? "is the work dir of" : isInside(dir, other.dir) ? "contains the work dir of" : "lies inside the work dir of";
      throw new HotplexError(
        "invalid_argument",
        `config.work_dir ${dir} ${relation} ${owner}: each session needs a directory of its own`,
      );
    }
  }

  claim(key: string, tenant: string, sessionId: string, dir: string): void {
    this.#claims.set(key, { tenant, sessionId, dir: path.resolve(dir) });
  }

  release(key: string): void {
    this.#claims.delete(key);
  }
}

function overlaps(a: string, b: string): boolean {
  return a === b || isInside(a, b) || isInside(b, a);
}
