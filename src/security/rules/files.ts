/**
 * Which files a program touches, by program: rm deletes its operands, cp writes its
 * destination and reads its sources, dd reads if= and writes of=, curl reads @files it
 * sends and writes -o, chmod modifies (writes) what follows the mode… Programs not listed
 * read their operands (so `tar czf - ~/.ssh` and `base64 ~/.aws/credentials` are reads);
 * a few that only name paths (ls, echo, stat, ssh -i) touch nothing.
 */
import type { AccessOp, FileAccess, Invocation } from "./facts.js";
import { type Args, hasFlag, type OptionSpec, optionValue, parseArgs } from "./matchers.js";
import { isGlob, normalizePath } from "./normalize.js";
import type { Word } from "./tokenizer.js";

export const SPECS: Record<string, OptionSpec> = {
  mv: { shortValue: "tS", longValue: ["target-directory", "suffix", "backup"] },
  cp: { shortValue: "tS", longValue: ["target-directory", "suffix", "backup", "reflink", "sparse"] },
  install: { shortValue: "mogtS", longValue: ["mode", "owner", "group", "target-directory", "suffix"] },
  ln: { shortValue: "tS", longValue: ["target-directory", "suffix"] },
  rsync: { shortValue: "eTf", longValue: ["rsh", "exclude", "include", "filter", "temp-dir", "rsync-path", "files-from", "chmod", "chown"] },
  scp: { shortValue: "iPoFcJlSD" },
  truncate: { shortValue: "sr", longValue: ["size", "reference"] },
  mkdir: { shortValue: "m", longValue: ["mode"] },
  sed: { shortValue: "ef", longValue: ["expression", "file"] },
  tar: { shortValue: "fCbTXK", longValue: ["file", "directory", "exclude", "files-from", "use-compress-program"] },
  curl: {
    shortValue: "oTdFKHXuAeEbcrxyzwmYy",
    longValue: ["output", "upload-file", "data", "data-binary", "data-raw", "data-ascii", "data-urlencode", "form", "form-string", "config", "header", "request", "user", "user-agent", "referer", "cookie", "cookie-jar", "proxy", "unix-socket", "abstract-unix-socket", "resolve", "connect-to", "max-time", "connect-timeout", "retry", "cacert", "cert", "key", "output-dir", "json", "url", "write-out", "dump-header", "trace", "trace-ascii", "stderr", "interface", "limit-rate", "range"],
  },
  wget: { shortValue: "OoaiPeUTtwYlADRQ", longValue: ["output-document", "output-file", "append-output", "input-file", "directory-prefix", "execute", "user-agent", "timeout", "tries", "wait", "post-file", "post-data", "body-file", "header", "user", "password", "level", "accept", "reject", "domains"] },
  ssh: { shortValue: "bcDEeFIiJLlmOopQRSWw" },
  chmod: { longValue: ["reference"] },
  chown: { longValue: ["reference", "from"] },
  zip: { shortValue: "bnPt" },
  grep: { shortValue: "efmABCd", longValue: ["regexp", "file", "max-count", "after-context", "before-context", "context", "include", "exclude"] },
};

/** Programs that name paths without reading them, or use keys as keys (ssh -i). */
const NO_ACCESS = new Set([
  "echo", "printf", "ls", "cd", "pushd", "popd", "pwd", "test", "[", "stat", "which", "type", "command", "realpath", "readlink",
  "dirname", "basename", "du", "df", "true", "false", "sleep", "kill", "pkill", "killall", "export", "unset", "alias", "read",
  "wait", "jobs", "ssh", "ssh-add", "ssh-keygen", "ssh-copy-id", "sftp", "git", "file", "exit", "return", "set", "shift",
  "local", "declare", "typeset", "readonly", "for", "select", "case", "in", "exec", "eval", "sh", "bash", "dash", "zsh",
  "ksh", "ash", "mksh", "fish", "xargs", "find", "env", "sudo", "doas", "nice", "nohup", "timeout", "time", "crontab",
  "getfacl", "id", "whoami", "date", "uname", "hostname", "ps", "man", "help", "npm", "npx", "node", "yarn", "pnpm", "pip",
  "pip3", "apt", "apt-get", "brew", "docker", "podman", "kubectl", "make", "cargo", "go", "systemctl", "service", "mount", "umount",
]);

const EDITORS = new Set(["vi", "vim", "nvim", "nano", "emacs", "ed", "pico", "micro", "joe", "code"]);
const WRITERS = new Set(["touch", "mknod", "mkfifo", "tee", "truncate", "mkdir", "setfacl", "chattr"]);
const DELETERS = new Set(["rm", "rmdir", "unlink", "shred", "srm", "wipe"]);

export interface AccessContext {
  cwd: string;
  home: string;
}

export function fileAccesses(inv: Invocation, ctx: AccessContext): { files: FileAccess[]; downloaded: string[] } {
  const files: FileAccess[] = [];
  const downloaded: string[] = [];
  const program = inv.program;
  const out: Out = { files, ctx, program };

  for (const r of inv.redirects) {
    const t = r.target.text;
    if (r.body !== undefined || /^\d+$/.test(t) || t === "-") continue;
    if (r.op === "<") add(out, "read", t);
    else if (r.op !== "<&" && r.op !== "<<") {
      add(out, "write", t);
      if (DOWNLOADERS.has(program)) downloaded.push(normalizePath(t, ctx.cwd, ctx.home));
    }
  }
  if (program === "") return { files, downloaded };

  if (DELETERS.has(program)) {
    const a = parsed(inv);
    const recursive = hasFlag(a, "r", "R", "recursive");
    for (const t of texts(a.operands)) add(out, "delete", t, recursive);
  } else if (program === "mv" || program === "cp" || program === "install" || program === "ln" || program === "rsync" || program === "scp") {
    const a = parsed(inv);
    const ops = texts(a.operands).filter((t) => !/^[^/]*:/.test(t) || t.startsWith("/"));
    const remote = texts(a.operands).length !== ops.length;
    const target = optionValue(a, "t", "target-directory");
    const dest = target ?? (remote && !/^[^/]*:/.test(texts(a.operands).at(-1) ?? "") ? ops.at(-1) : remote ? undefined : ops.at(-1));
    const sources = target !== undefined || dest === undefined ? ops : ops.slice(0, -1);
    const recursive = hasFlag(a, "r", "R", "a", "recursive", "archive") || program === "mv";
    for (const s of sources) add(out, program === "mv" ? "delete" : "read", s, recursive);
    if (dest !== undefined && program !== "ln") add(out, program === "rsync" && hasFlag(a, "delete", "delete-after", "delete-before", "delete-during") ? "delete" : "write", dest, recursive);
    if (dest !== undefined && program === "ln") add(out, "write", dest);
  } else if (WRITERS.has(program)) {
    for (const t of texts(parsed(inv).operands)) add(out, "write", t);
  } else if (program === "chmod" || program === "chown" || program === "chgrp") {
    const a = parsed(inv);
    const ops = texts(a.operands);
    // chmod -x file: a mode that looks like a flag.
    const modeInFlags = program === "chmod" && inv.args.some((w) => /^-[rwxXst]+$/.test(w.text));
    const targets = a.long.has("reference") || modeInFlags ? ops : ops.slice(1);
    for (const t of targets) add(out, "write", t, hasFlag(a, "R", "recursive"));
  } else if (program === "sed" || program === "perl") {
    const a = parseArgs(inv.args, SPECS.sed);
    if (hasFlag(a, "i", "in-place") || inv.args.some((w) => /^-i/.test(w.text))) {
      const ops = texts(a.operands);
      for (const t of a.values.has("-e") || a.values.has("--expression") ? ops : ops.slice(1)) add(out, "write", t);
    }
  } else if (program === "dd") {
    for (const t of texts(inv.args)) {
      if (t.startsWith("if=")) add(out, "read", t.slice(3));
      else if (t.startsWith("of=")) add(out, "write", t.slice(3));
    }
  } else if (EDITORS.has(program)) {
    for (const t of texts(parsed(inv).operands)) add(out, "write", t);
  } else if (program === "tar") {
    const a = parsed(inv);
    const archive = optionValue(a, "f", "file");
    const extract = hasFlag(a, "x", "extract", "get") || /^[a-z]*x/.test(inv.args[0]?.text ?? "");
    if (extract) add(out, "write", optionValue(a, "C", "directory") ?? ".", true);
    else {
      if (archive !== undefined) add(out, "write", archive);
      for (const t of texts(a.operands)) if (!/^[a-zA-Z]+$/.test(t) || t !== inv.args[0]?.text) add(out, "read", t, true);
    }
  } else if (program === "zip") {
    const a = parsed(inv);
    const [archive, ...rest] = texts(a.operands);
    if (archive !== undefined) add(out, "write", archive);
    for (const t of rest) add(out, "read", t, true);
  } else if (program === "curl") {
    const a = parsed(inv);
    for (const key of ["-d", "--data", "--data-binary", "--data-raw", "--data-ascii", "--data-urlencode", "-F", "--form", "--json"]) {
      for (const v of a.values.get(key) ?? []) {
        const at = v.indexOf("@");
        if (at >= 0 && key !== "--data-raw") add(out, "read", v.slice(at + 1).replace(/;.*$/, ""));
      }
    }
    for (const v of [...(a.values.get("-T") ?? []), ...(a.values.get("--upload-file") ?? []), ...(a.values.get("-K") ?? []), ...(a.values.get("--config") ?? [])]) add(out, "read", v);
    for (const v of [...(a.values.get("-o") ?? []), ...(a.values.get("--output") ?? [])]) {
      add(out, "write", v);
      if (v !== "-") downloaded.push(normalizePath(v, ctx.cwd, ctx.home));
    }
    if (hasFlag(a, "O", "remote-name", "remote-name-all")) for (const url of texts(a.operands)) downloaded.push(normalizePath(urlName(url), ctx.cwd, ctx.home));
  } else if (program === "wget") {
    const a = parsed(inv);
    const target = optionValue(a, "O", "output-document");
    for (const v of [...(a.values.get("--post-file") ?? []), ...(a.values.get("--body-file") ?? []), ...(a.values.get("-i") ?? [])]) add(out, "read", v);
    if (target !== undefined && target !== "-") {
      add(out, "write", target);
      downloaded.push(normalizePath(target, ctx.cwd, ctx.home));
    } else if (target === undefined) for (const url of texts(a.operands)) downloaded.push(normalizePath(urlName(url), ctx.cwd, ctx.home));
  } else if (!NO_ACCESS.has(program) && !DOWNLOADERS.has(program) && !NETWORK.has(program)) {
    const a = parsed(inv);
    const recursive = hasFlag(a, "r", "R", "recursive") || program === "rg";
    for (const t of texts(a.operands)) add(out, "read", t, recursive);
  }
  return { files, downloaded };
}

interface Out {
  files: FileAccess[];
  ctx: AccessContext;
  program: string;
}

// Module-level helpers, not closures: this runs for every program of every command.
function add(out: Out, op: AccessOp, raw: string, recursive = false): void {
  if (raw === "" || raw === "-" || raw.includes("://") || raw.length > 4096) return;
  out.files.push({ op, path: normalizePath(raw, out.ctx.cwd, out.ctx.home), glob: isGlob(raw), recursive, program: out.program });
}

function texts(words: readonly Word[]): string[] {
  return words.map((w) => w.text);
}

function parsed(inv: Invocation): Args {
  return parseArgs(inv.args, SPECS[inv.program]);
}

function urlName(url: string): string {
  const noQuery = url.replace(/[?#].*$/, "");
  const name = noQuery.slice(noQuery.lastIndexOf("/") + 1);
  return name === "" ? "index.html" : name;
}

export const DOWNLOADERS = new Set(["curl", "wget", "fetch", "aria2c", "http", "https", "xh", "lwp-download", "lwp-request", "axel", "iwr", "invoke-webrequest", "invoke-restmethod"]);
export const NETWORK = new Set(["nc", "ncat", "netcat", "nc.traditional", "nc.openbsd", "socat", "telnet", "cryptcat", "pwncat", "sbd"]);
