// Where the daemon is and which token to present: from flags, else the environment,
// else the config file, else the default address (and no token).
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { LineCounter, parseDocument, isMap, isScalar } from "yaml";
import { UsageError } from "./errors.js";

export const DEFAULT_ADDR = "http://127.0.0.1:7070";

const MAX_FILE_BYTES = 64 * 1024;
const MAX_TOKEN_CHARS = 4_096;
const CONFIG_KEYS = ["addr", "token", "token-file"] as const;

/** The global options as commander parsed them. */
export interface GlobalFlags {
  addr?: string;
  token?: string;
  tokenFile?: string;
  config?: string;
}

export type Source = "flag" | "env" | "config file" | "default";

export interface Settings {
  /** The daemon's base URL. */
  addr: string;
  token?: string;
  /** Where each came from (for messages). */
  addrSource: Source;
  tokenSource?: Source;
  /** The config file read, if one was. */
  configFile?: string;
  /** Things worth telling the user (a token in a file others can read). */
  warnings: string[];
}

interface FileSettings {
  addr?: string;
  token?: string;
  tokenFile?: string;
  path: string;
}

/** Resolves the settings: flag > env > config file > default, for the address and the token alike. */
export function resolveSettings(flags: GlobalFlags, env: Readonly<Record<string, string | undefined>>, homeDir: string): Settings {
  const warnings: string[] = [];
  const file = readConfigFile(flags, env, homeDir, warnings);
  const nonEmpty = (value: string | undefined) => (value === undefined || value === "" ? undefined : value);

  let addr = DEFAULT_ADDR;
  let addrSource: Source = "default";
  for (const [value, source] of [
    [flags.addr, "flag"],
    [nonEmpty(env.HOTPLEX_ADDR), "env"],
    [file?.addr, "config file"],
  ] as const) {
    if (value !== undefined) {
      addr = value;
      addrSource = source;
      break;
    }
  }

  if (flags.token !== undefined && flags.tokenFile !== undefined) throw new UsageError("give --token or --token-file, not both");
  let token: string | undefined;
  let tokenSource: Source | undefined;
  const candidates: [() => string | undefined, Source, string][] = [
    [() => flags.token, "flag", "--token"],
    [() => flags.tokenFile !== undefined ? readTokenFile(flags.tokenFile) : undefined, "flag", "--token-file"],
    [() => nonEmpty(env.HOTPLEX_TOKEN), "env", "HOTPLEX_TOKEN"],
    [() => nonEmpty(env.HOTPLEX_TOKEN_FILE) !== undefined ? readTokenFile(env.HOTPLEX_TOKEN_FILE!) : undefined, "env", "HOTPLEX_TOKEN_FILE"],
    [() => file?.token, "config file", `token in ${file?.path}`],
    [() => file?.tokenFile !== undefined ? readTokenFile(path.resolve(path.dirname(file.path), file.tokenFile)) : undefined, "config file", `token-file in ${file?.path}`],
  ];
  for (const [read, source, name] of candidates) {
    const value = read();
    if (value === undefined) continue;
    token = checkToken(value, name);
    tokenSource = source;
    break;
  }
  return { addr: normalizeAddr(addr, addrSource), token, addrSource, tokenSource, configFile: file?.path, warnings };
}

// "host:port" is taken as http://host:port; anything else must be an http(s) URL.
export function normalizeAddr(value: string, source: Source = "flag"): string {
  const raw = value.trim();
  if (raw.length === 0 || raw.length > 2_048) throw new UsageError(`the address (from ${source}) must be 1 to 2048 characters`);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`the address ${JSON.stringify(raw)} (from ${source}) is not a URL; use e.g. ${DEFAULT_ADDR}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`the address ${JSON.stringify(raw)} (from ${source}) must use http:// or https://`);
  }
  if (url.username || url.password) throw new UsageError(`the address (from ${source}) must not hold credentials: use --token-file`);
  if (url.search || url.hash) throw new UsageError(`the address ${JSON.stringify(raw)} (from ${source}) must not have a query or fragment`);
  return url.href.replace(/\/+$/, "");
}

function checkToken(token: string, from: string): string {
  if (token.length === 0) throw new UsageError(`the token from ${from} is empty`);
  if (token.length > MAX_TOKEN_CHARS) throw new UsageError(`the token from ${from} is longer than ${MAX_TOKEN_CHARS} characters`);
  // It goes into an HTTP header: whitespace or control characters would break it or smuggle another header.
  if (/[\s\u0000-\u001f\u007f]/.test(token)) throw new UsageError(`the token from ${from} contains whitespace or control characters`);
  return token;
}

function readBounded(file: string, what: string): string {
  let size: number;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new UsageError(`${what} ${file} is not a file`);
    size = stat.size;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (size > MAX_FILE_BYTES) throw new UsageError(`${what} ${file} is larger than ${MAX_FILE_BYTES} bytes`);
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function readTokenFile(file: string): string {
  // One token, its trailing newline dropped.
  return readBounded(file, "token file").trim();
}

// HOTPLEX_CLI_CONFIG (or --config) names a file that must exist; the default one may be absent.
function readConfigFile(flags: GlobalFlags, env: Readonly<Record<string, string | undefined>>, homeDir: string, warnings: string[]): FileSettings | undefined {
  const explicit = flags.config ?? (env.HOTPLEX_CLI_CONFIG || undefined);
  const configHome = env.XDG_CONFIG_HOME || path.join(homeDir, ".config");
  const file = explicit ?? path.join(configHome, "hotplex", "cli.yaml");
  if (!explicit) {
    try {
      statSync(file);
    } catch {
      return undefined;
    }
  }
  const text = readBounded(file, "config file");
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? "?" : String(lines.linePos(offset).line));
  const first = doc.errors[0];
  if (first) throw new UsageError(`config file ${file}, line ${lineOf(first.pos[0])}: ${first.message.split("\n")[0]}`);
  if (doc.contents === null) return { path: file };
  if (!isMap(doc.contents)) throw new UsageError(`config file ${file}: expected a mapping of ${CONFIG_KEYS.join(", ")}`);
  const settings: FileSettings = { path: file };
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : "";
    const line = lineOf(isScalar(pair.key) ? pair.key.range?.[0] : undefined);
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new UsageError(`config file ${file}, line ${line}: unknown key ${JSON.stringify(key)} (known: ${CONFIG_KEYS.join(", ")})`);
    }
    const value = isScalar(pair.value) ? pair.value.value : undefined;
    if (typeof value !== "string" || value === "") throw new UsageError(`config file ${file}, line ${line}: ${key} must be a non-empty string`);
    if (key === "addr") settings.addr = value;
    else if (key === "token") settings.token = value;
    else settings.tokenFile = value;
  }
  if (settings.token !== undefined && settings.tokenFile !== undefined) throw new UsageError(`config file ${file}: give token or token-file, not both`);
  if (settings.token !== undefined) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) warnings.push(`config file ${file} holds a token and others may read it (chmod 600 it, or use token-file)`);
    } catch {
      // gone meanwhile: it was read already
    }
  }
  return settings;
}
