import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { validate as isUuid } from "uuid";
import { DEFAULT_NAMESPACE, DEFAULT_TAIL_BOUNDS, type EngineConfig, type StoreConfig } from "../engine/config.js";
import { agentEnvironment, DEFAULT_AGENT_ENV_ALLOW } from "../security/env.js";

/** The daemon's whole configuration, validated. */
export interface DaemonConfig {
  host: string;
  port: number;
  token: string | undefined;
  logLevel: string;
  /** Quiet time after which the heap is compacted and unused memory returned (0 = never). */
  releaseMemoryAfterMs: number;
  engine: EngineConfig;
}

/** A configuration mistake; the message names the option and shows the value. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

// Each option: its flag, its environment variable, its default and a one-line help.
export const OPTIONS = {
  listen: { env: "HOTPLEX_LISTEN", default: "127.0.0.1:7070", help: "address to listen on, HOST:PORT" },
  token: { env: "HOTPLEX_TOKEN", default: "", help: "bearer token every call must send (required off loopback)" },
  "claude-path": { env: "HOTPLEX_CLAUDE_PATH", default: "", help: "Claude Code executable (default: the bundled one, else `claude` on PATH)" },
  "work-root": { env: "HOTPLEX_WORK_ROOT", default: "~/.hotplex/work", help: "directory every session work dir lies in" },
  namespace: { env: "HOTPLEX_NAMESPACE", default: DEFAULT_NAMESPACE, help: "UUID namespace of provider session ids" },
  "max-sessions": { env: "HOTPLEX_MAX_SESSIONS", default: "64", help: "most agent processes at once" },
  "queue-limit": { env: "HOTPLEX_QUEUE_LIMIT", default: "16", help: "most turns queued behind a running one, per session" },
  "turn-timeout": { env: "HOTPLEX_TURN_TIMEOUT", default: "10m", help: "longest a turn may run (0 = no limit)" },
  "idle-timeout": { env: "HOTPLEX_IDLE_TIMEOUT", default: "30m", help: "idle agent processes are ended after this (0 = never)" },
  "stop-grace": { env: "HOTPLEX_STOP_GRACE", default: "5s", help: "time between SIGTERM and SIGKILL" },
  store: { env: "HOTPLEX_STORE", default: "sqlite", help: "where sessions and events live: sqlite (durable) or memory" },
  "data-dir": { env: "HOTPLEX_DATA_DIR", default: "~/.hotplex/data", help: "directory of the sqlite store" },
  durability: { env: "HOTPLEX_DURABILITY", default: "normal", help: "sqlite commits: normal (survive a daemon crash) or full (fsync, survive power loss)" },
  "retain-events": { env: "HOTPLEX_RETAIN_EVENTS", default: "100000", help: "events kept per session (0 = no limit)" },
  "retain-bytes": { env: "HOTPLEX_RETAIN_BYTES", default: "67108864", help: "bytes of events kept per session (0 = no limit)" },
  "retain-age": { env: "HOTPLEX_RETAIN_AGE", default: "0", help: "events older than this are dropped (0 = no limit)" },
  "retain-total-bytes": { env: "HOTPLEX_RETAIN_TOTAL_BYTES", default: "0", help: "bytes of events kept over all sessions, oldest dropped first (0 = no limit)" },
  "compact-interval": { env: "HOTPLEX_COMPACT_INTERVAL", default: "60s", help: "how often retention limits are enforced" },
  "agent-env": { env: "HOTPLEX_AGENT_ENV", default: "", help: "extra environment variables agents may inherit (comma-separated; NAME or PREFIX*)" },
  "log-level": { env: "HOTPLEX_LOG_LEVEL", default: "info", help: "pino log level" },
  "release-memory-after": {
    env: "HOTPLEX_RELEASE_MEMORY_AFTER",
    default: "10s",
    help: "after this long quiet, compact the heap and return unused memory to the OS (0 = never)",
  },
} as const;

type OptionName = keyof typeof OPTIONS;

/** Reads flags, then environment, then defaults. Throws ConfigError on bad values. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): DaemonConfig {
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.keys(OPTIONS).map((name) => [name, { type: "string" }])),
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new ConfigError(`${(error as Error).message} (see --help)`);
  }
  const get = (name: OptionName): string => {
    const flag = parsed[name];
    if (typeof flag === "string") return flag;
    return env[OPTIONS[name].env] ?? OPTIONS[name].default;
  };

  const { host, port } = parseListen(get("listen"));
  const token = get("token") || undefined;
  if (!token && !isLoopback(host)) {
    throw new ConfigError(`--listen ${get("listen")} is not a loopback address: set --token (or HOTPLEX_TOKEN) to listen there`);
  }
  const namespace = get("namespace");
  if (!isUuid(namespace)) throw new ConfigError(`--namespace "${namespace}" is not a UUID`);
  const workRoot = path.resolve(expandHome(get("work-root")));
  mkdirSync(workRoot, { recursive: true });
  const extraEnv = get("agent-env").split(",").map((name) => name.trim()).filter(Boolean);

  return {
    host,
    port,
    token,
    logLevel: get("log-level"),
    releaseMemoryAfterMs: durationMs("release-memory-after", get("release-memory-after")),
    engine: {
      claudePath: get("claude-path") || defaultClaudePath(),
      namespace,
      workRoot,
      maxLiveSessions: positiveInt("max-sessions", get("max-sessions")),
      limits: {
        queueLimit: positiveInt("queue-limit", get("queue-limit"), 0),
        turnTimeoutMs: durationMs("turn-timeout", get("turn-timeout")),
        idleTimeoutMs: durationMs("idle-timeout", get("idle-timeout")),
        stopGraceMs: durationMs("stop-grace", get("stop-grace")),
      },
      logBounds: DEFAULT_TAIL_BOUNDS,
      store: storeConfig(get("store"), get("data-dir"), get("durability")),
      retention: {
        maxEvents: positiveInt("retain-events", get("retain-events"), 0),
        maxBytes: positiveInt("retain-bytes", get("retain-bytes"), 0),
        maxAgeMs: durationMs("retain-age", get("retain-age")),
        totalMaxBytes: positiveInt("retain-total-bytes", get("retain-total-bytes"), 0),
      },
      compactIntervalMs: Math.max(1000, durationMs("compact-interval", get("compact-interval"))),
      agentEnv: agentEnvironment(env, [...DEFAULT_AGENT_ENV_ALLOW, ...extraEnv]),
    },
  };
}

function storeConfig(kind: string, dataDir: string, durability: string): StoreConfig {
  if (kind === "memory") return { kind };
  if (kind !== "sqlite") throw new ConfigError(`--store "${kind}" must be sqlite or memory`);
  if (durability !== "normal" && durability !== "full") {
    throw new ConfigError(`--durability "${durability}" must be normal or full`);
  }
  return { kind, dataDir: path.resolve(expandHome(dataDir)), durability };
}

/** "HOST:PORT", "[::1]:PORT" or ":PORT" (loopback). */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new ConfigError(`--listen "${value}" must look like HOST:PORT, e.g. 127.0.0.1:7070`);
  return { host: match[1] ?? (match[2] || "127.0.0.1"), port };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function positiveInt(name: OptionName, value: string, min = 1): number {
  const number = Number(value);
  // Digits only: Number("") and Number(" ") are 0, which must not pass as a limit of 0.
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(number) || number < min) {
    throw new ConfigError(`--${name} "${value}" must be a whole number of at least ${min}`);
  }
  return number;
}

/** "250ms", "30s", "5m", "1h"; a bare number is seconds. */
export function durationMs(name: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new ConfigError(`--${name} "${value}" must be a duration such as 250ms, 30s, 5m or 1h`);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  return Math.round(Number(match[1]) * factor);
}

function expandHome(value: string): string {
  return value === "~" || value.startsWith("~/") ? path.join(homedir(), value.slice(1)) : value;
}

// The Claude Code CLI installed with hotplex's own dependencies, if any.
function defaultClaudePath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i += 1) {
    const candidate = path.join(dir, "node_modules", ".bin", "claude");
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return "claude";
}
