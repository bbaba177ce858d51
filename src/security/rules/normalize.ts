/**
 * Paths as the file system would see them: `~`, `$HOME` (already expanded by the
 * lexer), relative to the cwd, `//`, `/./` and `..` collapsed, a trailing slash dropped.
 * Globs keep their wildcards; `globBase` is the directory a glob can reach into.
 */
import path from "node:path";

export function normalizePath(raw: string, cwd: string, home: string): string {
  let p = raw.includes("\0") ? raw.replace(/\0/g, "") : raw;
  // The common case, a plain name under an absolute cwd, needs no collapsing.
  if (/^[\w@%+,-][\w.@%+,-]*(?:\/[\w@%+,-][\w.@%+,-]*)*$/.test(p) && cwd.startsWith("/") && !cwd.endsWith("/") && !/\/\.|\/\/|\/$/.test(cwd)) return `${cwd}/${p}`;
  if (p === "~" || p.startsWith("~/")) p = home + p.slice(1);
  else if (/^~[a-z_][a-z0-9_-]*(\/|$)/i.test(p)) {
    // ~user: root's home is /root, everyone else's is under /home.
    const slash = p.indexOf("/");
    const user = p.slice(1, slash < 0 ? undefined : slash);
    p = (user === "root" ? "/root" : `/home/${user}`) + (slash < 0 ? "" : p.slice(slash));
  }
  if (!p.startsWith("/")) p = `${cwd.startsWith("/") ? cwd : "/" + cwd}/${p}`;
  const normalized = path.posix.normalize(p);
  return normalized.length > 1 && normalized.endsWith("/") ? normalized.slice(0, -1) : normalized;
}

const GLOB = /[*?[]/;

export function isGlob(p: string): boolean {
  return GLOB.test(p);
}

/** The deepest directory without wildcards: `/etc/*.conf` → `/etc`, `/*` → `/`. */
export function globBase(p: string): string {
  const at = p.search(GLOB);
  if (at < 0) return p;
  const slash = p.lastIndexOf("/", at);
  return slash <= 0 ? "/" : p.slice(0, slash);
}

/** `p` is `dir` or inside it. */
export function isUnder(p: string, dir: string): boolean {
  if (dir === "/") return true;
  return p === dir || (p.startsWith(dir) && p.charCodeAt(dir.length) === 47);
}

/** Home-relative form (`~/.ssh/id_rsa`) when `p` is under `home`, else `p`. */
export function homeRelative(p: string, home: string): string {
  if (home.length > 1 && isUnder(p, home)) return "~" + p.slice(home.length);
  return p;
}

/** Compiles a path glob: `*` one segment, `**` any depth, `~/` the home. */
export function pathGlob(glob: string, home: string): (p: string) => boolean {
  const full = glob.startsWith("~") ? home + glob.slice(1) : glob;
  const re = new RegExp("^" + globSource(full, true) + "$");
  return (p) => re.test(p);
}

export function globSource(glob: string, segments: boolean): string {
  let out = "";
  for (let k = 0; k < glob.length; k += 1) {
    const c = glob[k]!;
    if (c === "*" && glob[k + 1] === "*") {
      // "/**/" also matches "/" so that a/**/b matches a/b.
      if (glob[k + 2] === "/") {
        out += "(?:.*/)?";
        k += 2;
      } else {
        out += ".*";
        k += 1;
      }
    } else if (c === "*") out += segments ? "[^/]*" : ".*";
    else if (c === "?") out += segments ? "[^/]" : ".";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return out;
}
