import { DEFAULT_NAMESPACE } from "../engine/config.js";

/** A configuration mistake; the message names the option (and, from a file, its line). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** One option: its flag (the name), its environment variable, its default and a line of help. */
export interface OptionSpec {
  env: string;
  default: string;
  help: string;
  /** A secret: never printed, and a warning when given on the command line. */
  secret?: boolean;
}

/**
 * Every option the daemon takes. The same name is the flag (`--work-root`), the key in the
 * config file (`work-root:`), and, upper-cased, the environment variable after HOTPLEX_.
 * Flags override the environment, which overrides the file, which overrides the defaults.
 */
export const OPTIONS = {
  config: { env: "HOTPLEX_CONFIG", default: "", help: "YAML config file (credentials, tenants, TLS and every option below)" },
  listen: { env: "HOTPLEX_LISTEN", default: "127.0.0.1:7070", help: "address to listen on, HOST:PORT" },
  token: {
    env: "HOTPLEX_TOKEN",
    default: "",
    help: "bearer token of the tenant 'default' (client role); prefer --token-file or the environment: argv is world-readable",
    secret: true,
  },
  "token-file": { env: "HOTPLEX_TOKEN_FILE", default: "", help: "file holding the bearer token of the tenant 'default' (client role)" },
  "tls-cert": { env: "HOTPLEX_TLS_CERT", default: "", help: "TLS certificate file (PEM); with --tls-key, serve TLS (h2 and HTTP/1.1 by ALPN)" },
  "tls-key": { env: "HOTPLEX_TLS_KEY", default: "", help: "TLS private key file (PEM)" },
  "tls-client-ca": { env: "HOTPLEX_TLS_CLIENT_CA", default: "", help: "CA file (PEM) that client certificates must be signed by" },
  providers: { env: "HOTPLEX_PROVIDERS", default: "claude-code", help: "agent providers sessions may use (comma-separated; the first is the default)" },
  "provider-paths": {
    env: "HOTPLEX_PROVIDER_PATHS",
    default: "",
    help: "agent executables, NAME=PATH comma-separated (default: the CLI installed with hotplex, else its name on PATH)",
  },
  "acp-agents": {
    env: "HOTPLEX_ACP_AGENTS",
    default: "",
    help: "agents that speak ACP, run by the generic provider and enabled: NAME=COMMAND [ARG ...], comma-separated",
  },
  "claude-path": { env: "HOTPLEX_CLAUDE_PATH", default: "", help: "Claude Code executable (the same as --provider-paths claude-code=PATH)" },
  "work-root": { env: "HOTPLEX_WORK_ROOT", default: "~/.hotplex/work", help: "directory every session work dir lies in (one directory per tenant)" },
  "state-dir": { env: "HOTPLEX_STATE_DIR", default: "~/.hotplex/sessions", help: "the daemon's private per-session files" },
  namespace: { env: "HOTPLEX_NAMESPACE", default: DEFAULT_NAMESPACE, help: "UUID namespace of provider session ids" },
  "max-sessions": { env: "HOTPLEX_MAX_SESSIONS", default: "64", help: "most agent processes at once" },
  "max-stored-sessions": { env: "HOTPLEX_MAX_STORED_SESSIONS", default: "10000", help: "most sessions in the registry (0 = no limit)" },
  "queue-limit": { env: "HOTPLEX_QUEUE_LIMIT", default: "16", help: "most turns queued behind a running one, per session" },
  "turn-timeout": { env: "HOTPLEX_TURN_TIMEOUT", default: "10m", help: "longest a turn may run (0 = no limit)" },
  "idle-timeout": { env: "HOTPLEX_IDLE_TIMEOUT", default: "30m", help: "idle agent processes are ended after this (0 = never)" },
  "stop-grace": { env: "HOTPLEX_STOP_GRACE", default: "5s", help: "time between SIGTERM and SIGKILL" },
  "drain-grace": {
    env: "HOTPLEX_DRAIN_GRACE",
    default: "30s",
    help: "on SIGTERM or SIGINT, how long running turns may finish before every session is stopped (a second signal cuts it short)",
  },
  approvals: {
    env: "HOTPLEX_APPROVALS",
    default: "agent",
    help: "default approval mode of sessions: agent (the agent's settings decide) or client (tool calls needing approval ask the client)",
  },
  "approval-timeout": { env: "HOTPLEX_APPROVAL_TIMEOUT", default: "10m", help: "a permission request with no answer after this is denied (0 = wait for ever)" },
  "max-prompt-bytes": { env: "HOTPLEX_MAX_PROMPT_BYTES", default: "1048576", help: "largest prompt accepted (at most 1 MiB)" },
  "max-line-bytes": { env: "HOTPLEX_MAX_LINE_BYTES", default: "67108864", help: "longest line of agent output; a longer one fails the turn" },
  "session-log-bytes": {
    env: "HOTPLEX_SESSION_LOG_BYTES",
    default: "65536",
    help: "bytes of each session's agent log (stderr and lifecycle, in memory, for AdminService.GetSessionLogs; 0 = none)",
  },
  "max-request-bytes": { env: "HOTPLEX_MAX_REQUEST_BYTES", default: "4194304", help: "largest request message, compressed or inflated" },
  "max-connections": { env: "HOTPLEX_MAX_CONNECTIONS", default: "1024", help: "most client connections open at once" },
  "max-streams-per-connection": { env: "HOTPLEX_MAX_STREAMS_PER_CONNECTION", default: "100", help: "most concurrent HTTP/2 streams per connection" },
  "handshake-timeout": { env: "HOTPLEX_HANDSHAKE_TIMEOUT", default: "10s", help: "a new connection's first bytes (or TLS handshake) must arrive within this" },
  "headers-timeout": { env: "HOTPLEX_HEADERS_TIMEOUT", default: "10s", help: "an HTTP/1.1 request's headers must arrive within this" },
  "request-timeout": { env: "HOTPLEX_REQUEST_TIMEOUT", default: "30s", help: "a whole request (not its response) must arrive within this" },
  "connection-idle-timeout": { env: "HOTPLEX_CONNECTION_IDLE_TIMEOUT", default: "60s", help: "a connection with no request in flight is closed after this" },
  sandbox: { env: "HOTPLEX_SANDBOX", default: "auto", help: "run agents in bubblewrap: auto (where it works), required (refuse sessions otherwise) or off" },
  "sandbox-network": {
    env: "HOTPLEX_SANDBOX_NETWORK",
    default: "on",
    help: "agents' network: on, off (their own loopback only) or allow (only --sandbox-allowed-hosts, through the daemon's proxy)",
  },
  "sandbox-allowed-hosts": { env: "HOTPLEX_SANDBOX_ALLOWED_HOSTS", default: "", help: "with --sandbox-network allow: host[:port] destinations (comma-separated; port 443 by default)" },
  "sandbox-uid": { env: "HOTPLEX_SANDBOX_UID", default: "", help: "run agents as this uid (with --sandbox-gid; the daemon must run as root)" },
  "sandbox-gid": { env: "HOTPLEX_SANDBOX_GID", default: "", help: "run agents as this gid" },
  "sandbox-memory": { env: "HOTPLEX_SANDBOX_MEMORY", default: "4294967296", help: "bytes of memory per agent, all it starts included (0 = no limit)" },
  "sandbox-processes": { env: "HOTPLEX_SANDBOX_PROCESSES", default: "1024", help: "processes per agent, all it starts included (0 = no limit)" },
  "sandbox-open-files": { env: "HOTPLEX_SANDBOX_OPEN_FILES", default: "4096", help: "open files per agent process (0 = no limit)" },
  "sandbox-read-only": { env: "HOTPLEX_SANDBOX_READ_ONLY", default: "", help: "more host paths agents may read (comma-separated)" },
  "sandbox-cgroup": { env: "HOTPLEX_SANDBOX_CGROUP", default: "", help: "a cgroup v2 directory delegated to hotplex for the agents' limits" },
  "bwrap-path": { env: "HOTPLEX_BWRAP_PATH", default: "bwrap", help: "the bubblewrap executable" },
  "agent-home": { env: "HOTPLEX_AGENT_HOME", default: "", help: "directory copied into every new session HOME (agent settings, credentials)" },
  store: { env: "HOTPLEX_STORE", default: "sqlite", help: "where sessions and events live: sqlite (durable), memory or redis (shared by many nodes)" },
  "redis-url": { env: "HOTPLEX_REDIS_URL", default: "redis://127.0.0.1:6379", help: "with --store redis: redis://[user:password@]host:port[/db], rediss:// for TLS" },
  "redis-tls-ca": { env: "HOTPLEX_REDIS_TLS_CA", default: "", help: "with a rediss:// URL: PEM file of the CA certificates to trust (the system's when unset)" },
  "redis-prefix": { env: "HOTPLEX_REDIS_PREFIX", default: "hp:", help: "with --store redis: put before every key (deployments sharing one Redis)" },
  "node-id": { env: "HOTPLEX_NODE_ID", default: "", help: "with --store redis: this node's id, unique per node and stable across restarts (the host name when unset)" },
  "lease-ttl": { env: "HOTPLEX_LEASE_TTL", default: "10s", help: "with --store redis: how long a node's hold on a session lives unless renewed" },
  "lease-margin": { env: "HOTPLEX_LEASE_MARGIN", default: "2s", help: "with --store redis: how long before its hold could expire a node stops the session's agent" },
  "node-secret-file": {
    env: "HOTPLEX_NODE_SECRET_FILE",
    default: "",
    help: "with --store redis: file holding the secret every node shares (at least 32 bytes): commands on a session another node runs are forwarded to it",
  },
  "advertise-url": {
    env: "HOTPLEX_ADVERTISE_URL",
    default: "",
    help: "with --node-secret-file: where the other nodes reach this node's API (http://host:port; the listen address when unset)",
  },
  "data-dir": { env: "HOTPLEX_DATA_DIR", default: "~/.hotplex/data", help: "directory of the sqlite store" },
  durability: { env: "HOTPLEX_DURABILITY", default: "normal", help: "sqlite commits: normal (survive a daemon crash) or full (fsync, survive power loss)" },
  "retain-events": { env: "HOTPLEX_RETAIN_EVENTS", default: "100000", help: "events kept per session (0 = no limit)" },
  "retain-bytes": { env: "HOTPLEX_RETAIN_BYTES", default: "67108864", help: "bytes of events kept per session (0 = no limit)" },
  "retain-age": { env: "HOTPLEX_RETAIN_AGE", default: "0", help: "events older than this are dropped (0 = no limit)" },
  "retain-total-bytes": { env: "HOTPLEX_RETAIN_TOTAL_BYTES", default: "0", help: "bytes of events kept over all sessions, oldest dropped first (0 = no limit)" },
  "compact-interval": { env: "HOTPLEX_COMPACT_INTERVAL", default: "60s", help: "how often retention limits are enforced" },
  "agent-env": { env: "HOTPLEX_AGENT_ENV", default: "", help: "extra environment variables agents may inherit (comma-separated; NAME or PREFIX*)" },
  "log-level": { env: "HOTPLEX_LOG_LEVEL", default: "info", help: "pino log level" },
  metrics: { env: "HOTPLEX_METRICS", default: "on", help: "Prometheus metrics at /metrics on the API's port: on or off" },
  "metrics-access": {
    env: "HOTPLEX_METRICS_ACCESS",
    default: "admin",
    help: "who may read /metrics: admin (a credential with the admin role; anyone when the daemon has no credentials) or anyone",
  },
  "trace-exporter": { env: "HOTPLEX_TRACE_EXPORTER", default: "none", help: "spans per RPC and per turn: none or otlp (OTLP/HTTP to --trace-endpoint)" },
  "trace-endpoint": {
    env: "HOTPLEX_TRACE_ENDPOINT",
    default: "http://127.0.0.1:4318",
    help: "the OTLP/HTTP collector (a URL without a path gets /v1/traces)",
  },
  "release-memory-after": {
    env: "HOTPLEX_RELEASE_MEMORY_AFTER",
    default: "10s",
    help: "after this long quiet, compact the heap and return unused memory to the OS (0 = never)",
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

/** "HOST:PORT", "[::1]:PORT" or ":PORT" (loopback). */
export function parseListen(value: string, where = "--listen"): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new ConfigError(`${where} "${value}" must look like HOST:PORT, e.g. 127.0.0.1:7070`);
  return { host: match[1] ?? (match[2] || "127.0.0.1"), port };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A whole number of at least `min`, from digits only. */
export function wholeNumber(where: string, value: string, min = 0): number {
  const number = Number(value);
  // Digits only: Number("") and Number(" ") are 0, which must not pass as a limit of 0.
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(number) || number < min) {
    throw new ConfigError(`${where} "${value}" must be a whole number of at least ${min}`);
  }
  return number;
}

/** "250ms", "30s", "5m", "1h"; a bare number is seconds. */
export function durationMs(where: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new ConfigError(`${where} "${value}" must be a duration such as 250ms, 30s, 5m or 1h`);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  const ms = Math.round(Number(match[1]) * factor);
  if (!Number.isSafeInteger(ms)) throw new ConfigError(`${where} "${value}" is too long`);
  return ms;
}
