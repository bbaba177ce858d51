import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { homedir, hostname } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { validate as isUuid } from "uuid";
import { type ApprovalDefault, DEFAULT_TAIL_BOUNDS, type EngineConfig, MAX_PROMPT_BYTES, type RedisStoreConfig, type StoreConfig } from "../engine/config.js";
import { create } from "@bufbuild/protobuf";
import { ApprovalMode, SessionConfigSchema } from "../../gen/hotplex/v1/session_pb.js";
import type { PrewarmSpec } from "../engine/prewarm.js";
import { parseEgressRule } from "../process/egress-proxy.js";
import { ACP_QUIRKS } from "../providers/acp/quirks.js";
import { PERMISSION_MODES } from "../providers/claude-code/provider.js";
import {
  ACP_AGENT_NAME,
  DEFAULT_PROVIDER,
  defaultExecutable,
  knownProviders,
  type ProviderSettings,
  providersEnvAllowList,
} from "../providers/registry.js";
import { type CredentialSpec, hashToken, MIN_TOKEN_LENGTH } from "../security/credentials.js";
import { agentEnvironment, DEFAULT_AGENT_ENV_ALLOW } from "../security/env.js";
import { MIN_NODE_SECRET_BYTES } from "../security/forwarded.js";
import { DEFAULT_TENANT } from "../security/principal.js";
import { MAX_SESSION_LOG_BYTES } from "../session/agent-log.js";
import { type CustomRuleSpec, customRuleSchema, RuleEngine } from "../security/rules/index.js";
import {
  DEFAULT_PERMISSION_MODES,
  defaultPolicy,
  NO_TENANT_LIMITS,
  type SessionPolicy,
  TenantDirectory,
  type TenantLimits,
  type TenantSettings,
  DEFAULT_RULES,
  type RuleSettings,
} from "../security/tenant-policy.js";
import type { ConnectionLimits, TlsFiles } from "../server/listener.js";
import type { RequestLimits } from "../server/server.js";
import { METRICS_ACCESS, type MetricsAccess } from "../observability/metrics-route.js";
import { otlpTracesUrl, TRACE_EXPORTERS, type TraceExporterKind } from "../observability/trace-exporter.js";
import { type ConfigFile, type LimitsSpec, type PolicySpec, readConfigFile, type RulesSpec, type TenantSpec } from "./config-file.js";
import { ConfigError, durationMs, isLoopback, OPTIONS, type OptionName, parseListen, wholeNumber } from "./options.js";

export { ConfigError, durationMs, OPTIONS, parseListen } from "./options.js";

/** The daemon's whole configuration, validated. */
export interface DaemonConfig {
  host: string;
  port: number;
  /** The config file, when one was given (SIGHUP reloads it). */
  configFile: string | undefined;
  credentials: CredentialSpec[];
  tls: TlsFiles | undefined;
  logLevel: string;
  /** Quiet time after which the heap is compacted and unused memory returned (0 = never). */
  releaseMemoryAfterMs: number;
  /** Metrics and tracing (--metrics, --metrics-access, --trace-exporter, --trace-endpoint). */
  observability: ObservabilitySettings;
  /** How long a SIGTERM or SIGINT lets running turns finish before it stops every session. */
  drainGraceMs: number;
  requestLimits: RequestLimits;
  connectionLimits: ConnectionLimits;
  engine: EngineConfig;
  /** Forwarding between the nodes of a store many nodes share (--node-secret-file, --advertise-url). */
  cluster: ClusterSettings | undefined;
  /** Things the operator should fix, for the log (never a secret). */
  warnings: string[];
}

/** How the nodes of one deployment reach each other. */
export interface ClusterSettings {
  /** The secret every node shares; it signs the calls one node forwards to another. */
  nodeSecret: Buffer;
  /** Where the other nodes reach this node's API; the listen address when undefined. */
  advertiseUrl: string | undefined;
}

/** What a reload (SIGHUP) changes without a restart. */
export interface ReloadableConfig {
  credentials: CredentialSpec[];
  tenants: TenantDirectory;
  prewarm: readonly PrewarmSpec[];
}

/** Where an option's value came from. */
export type OptionSource = "flag" | "env" | "file" | "default";

/** An option's value as given (a string, parsed later) and where it came from. */
export interface ResolvedOption {
  value: string;
  /** For error messages: the flag, the variable or the file and line. */
  where: string;
  source: OptionSource;
}

/** The options as given: flags over the environment over the config file over the defaults. */
export interface ResolvedOptions {
  file: ConfigFile | undefined;
  /** True when the flag was on the command line (not merely its value). */
  flagGiven(name: OptionName): boolean;
  get(name: OptionName): ResolvedOption;
}

/** Reads the flags, the environment and the config file, without judging the values yet. */
export function resolveOptions(argv: string[], env: NodeJS.ProcessEnv): ResolvedOptions {
  const flags = parseFlags(argv);
  const configPath = flags.config ?? env[OPTIONS.config.env] ?? "";
  const file = configPath ? readConfigFile(configPath) : undefined;
  return {
    file,
    flagGiven: (name) => flags[name] !== undefined,
    get(name) {
      const flag = flags[name];
      if (flag !== undefined) return { value: flag, where: `--${name}`, source: "flag" };
      const fromEnv = env[OPTIONS[name].env];
      if (fromEnv !== undefined) return { value: fromEnv, where: `${OPTIONS[name].env} (--${name})`, source: "env" };
      const fromFile = file?.options[name];
      if (fromFile !== undefined && file) return { value: fromFile, where: `${file.where(name)}: ${name}`, source: "file" };
      return { value: OPTIONS[name].default, where: `--${name}`, source: "default" };
    },
  };
}

/** How loadConfig may touch the machine. */
export interface LoadOptions {
  /** Create the work root and state dir (false to only check the config, as --print-config does). */
  createDirectories?: boolean;
}

/** Reads flags, then the environment, then the config file, then defaults. Throws ConfigError on bad values. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv, load: LoadOptions = {}): DaemonConfig {
  const resolved = resolveOptions(argv, env);
  const { file } = resolved;
  const warnings: string[] = [];
  // The value of an option and where it came from, for error messages.
  const get = (name: OptionName): { value: string; where: string } => resolved.get(name);
  const str = (name: OptionName) => get(name).value;
  const num = (name: OptionName, min = 0) => {
    const { value, where } = get(name);
    return wholeNumber(where, value, min);
  };
  const ms = (name: OptionName) => {
    const { value, where } = get(name);
    return durationMs(where, value);
  };

  const { host, port } = parseListen(str("listen"), get("listen").where);
  if (resolved.flagGiven("token")) {
    warnings.push("--token is readable by every local user in /proc/<pid>/cmdline; use --token-file or HOTPLEX_TOKEN instead");
  }
  const credentials = resolveCredentials(file, tokenOf(get("token"), get("token-file")));
  if (credentials.length === 0 && !isLoopback(host)) {
    throw new ConfigError(
      `${get("listen").where} ${str("listen")} is not a loopback address: set --token-file (or HOTPLEX_TOKEN, or credentials in a config file) to listen there`,
    );
  }
  const namespace = str("namespace");
  if (!isUuid(namespace)) throw new ConfigError(`${get("namespace").where} "${namespace}" is not a UUID`);
  const workRoot = path.resolve(expandHome(str("work-root")));
  if (load.createDirectories !== false) mkdirSync(workRoot, { recursive: true });
  const stateRoot = path.resolve(expandHome(str("state-dir")));
  if (load.createDirectories !== false) mkdirSync(stateRoot, { recursive: true, mode: 0o711 });
  const extraEnv = list(str("agent-env"));
  const idleTimeoutMs = ms("idle-timeout");
  const maxPromptBytes = num("max-prompt-bytes", 1);
  if (maxPromptBytes > MAX_PROMPT_BYTES) {
    throw new ConfigError(`${get("max-prompt-bytes").where} ${maxPromptBytes} is more than the most hotplex accepts (${MAX_PROMPT_BYTES})`);
  }
  const tls = tlsFiles(file, str("tls-cert"), str("tls-key"), str("tls-client-ca"));
  const cluster = clusterSettings(get);
  if (cluster && !cluster.advertiseUrl && (host === "0.0.0.0" || host === "::")) {
    throw new ConfigError(`${get("listen").where} ${str("listen")} listens on every address: set --advertise-url to where the other nodes reach this one`);
  }

  return {
    cluster,
    host,
    port,
    configFile: file?.path,
    credentials,
    tls,
    logLevel: str("log-level"),
    releaseMemoryAfterMs: ms("release-memory-after"),
    observability: observabilitySettings(get("metrics"), get("metrics-access"), get("trace-exporter"), get("trace-endpoint")),
    drainGraceMs: ms("drain-grace"),
    requestLimits: { maxRequestBytes: num("max-request-bytes", 1024), maxTimeoutMs: 24 * 60 * 60 * 1000 },
    connectionLimits: {
      handshakeTimeoutMs: Math.max(1, ms("handshake-timeout")),
      headersTimeoutMs: Math.max(1, ms("headers-timeout")),
      requestTimeoutMs: Math.max(1, ms("request-timeout")),
      idleTimeoutMs: Math.max(1, ms("connection-idle-timeout")),
      maxConnections: num("max-connections", 1),
      maxStreamsPerConnection: num("max-streams-per-connection", 1),
    },
    engine: {
      providers: resolveProviders(
        list(str("providers")),
        list(str("provider-paths")),
        str("claude-path"),
        resolveAcpAgents(list(str("acp-agents")), get("acp-agents").where),
        get("providers").where,
        get("provider-paths").where,
      ),
      namespace,
      workRoot,
      stateRoot,
      maxLiveSessions: num("max-sessions", 1),
      maxStoredSessions: num("max-stored-sessions"),
      maxPromptBytes,
      limits: {
        queueLimit: num("queue-limit"),
        turnTimeoutMs: ms("turn-timeout"),
        idleTimeoutMs,
        stopGraceMs: ms("stop-grace"),
        maxLineBytes: num("max-line-bytes", 1024),
        sessionLogBytes: sessionLogBytes(get("session-log-bytes")),
      },
      approvals: { defaultMode: approvalMode(get("approvals")), timeoutMs: ms("approval-timeout") },
      tenants: resolveTenants(file, idleTimeoutMs),
      prewarm: prewarmSpecs(file),
      logBounds: DEFAULT_TAIL_BOUNDS,
      store: storeConfig(get, str("data-dir"), get("durability")),
      retention: {
        maxEvents: num("retain-events"),
        maxBytes: num("retain-bytes"),
        maxAgeMs: ms("retain-age"),
        totalMaxBytes: num("retain-total-bytes"),
      },
      compactIntervalMs: Math.max(1000, ms("compact-interval")),
      agentEnv: agentEnvironment(env, [...DEFAULT_AGENT_ENV_ALLOW, ...providersEnvAllowList(list(str("providers"))), ...extraEnv]),
      agentHomeTemplate: str("agent-home") ? path.resolve(expandHome(str("agent-home"))) : undefined,
      sandbox: {
        mode: oneOf(get("sandbox"), ["auto", "required", "off"] as const),
        bwrap: str("bwrap-path"),
        network: oneOf(get("sandbox-network"), ["on", "off", "allow"] as const),
        allowedHosts: allowedHosts(get("sandbox-allowed-hosts")),
        ...sandboxUser(get("sandbox-uid"), get("sandbox-gid")),
        memoryBytes: num("sandbox-memory"),
        processes: num("sandbox-processes"),
        openFiles: num("sandbox-open-files"),
        readOnlyPaths: list(str("sandbox-read-only")).map((dir) => path.resolve(expandHome(dir))),
        // The daemon's own files stay invisible to agents, wherever an operator put them.
        hiddenPaths: [
          file?.path,
          ...[get("token-file").value, str("tls-key"), str("tls-cert"), file?.tls?.key, file?.tls?.cert].filter(Boolean),
          ...(file?.credentials ?? []).map((entry) => entry["token-file"]),
          str("data-dir"),
          str("state-dir"),
        ]
          .filter((entry): entry is string => Boolean(entry))
          .map((entry) => path.resolve(expandHome(entry))),
        cgroupRoot: str("sandbox-cgroup") || undefined,
        agentPaths: [workRoot, stateRoot],
      },
    },
    warnings,
  };
}

/**
 * Reads the config file again for what changes without a restart: credentials and the
 * tenants' policies and limits. Throws ConfigError (the running config stays in force).
 */
export function reloadConfig(argv: string[], env: NodeJS.ProcessEnv): ReloadableConfig {
  const fresh = loadConfig(argv, env);
  return { credentials: fresh.credentials, tenants: fresh.engine.tenants, prewarm: fresh.engine.prewarm ?? [] };
}

// The file's `prewarm` entries as the engine takes them (it checks each config as a session's).
function prewarmSpecs(file: ConfigFile | undefined): PrewarmSpec[] {
  return (file?.prewarm ?? []).map((entry, i) => ({
    tenant: entry.tenant ?? "default",
    config: create(SessionConfigSchema, {
      provider: entry.provider ?? "",
      model: entry.model ?? "",
      permissionMode: entry["permission-mode"] ?? "",
      allowedTools: entry["allowed-tools"] ?? [],
      disallowedTools: entry["disallowed-tools"] ?? [],
      systemPrompt: entry["system-prompt"] ?? "",
      appendSystemPrompt: entry["append-system-prompt"] ?? "",
      approvalMode: entry.approvals === "client" ? ApprovalMode.CLIENT : entry.approvals === "agent" ? ApprovalMode.AGENT : ApprovalMode.UNSPECIFIED,
    }),
    size: entry.size,
    idleMs: entry.idle === undefined ? 0 : durationMs(`${file!.where(["prewarm", i, "idle"])}: prewarm.${i}.idle`, entry.idle),
  }));
}

// The per-session agent log: none (0), or at least a few entries' worth, at most MAX_SESSION_LOG_BYTES.
function sessionLogBytes(option: { value: string; where: string }): number {
  const bytes = wholeNumber(option.where, option.value);
  if (bytes !== 0 && (bytes < 1024 || bytes > MAX_SESSION_LOG_BYTES)) {
    throw new ConfigError(`${option.where} ${bytes} must be 0 (no log) or from 1024 to ${MAX_SESSION_LOG_BYTES}`);
  }
  return bytes;
}

/** Metrics and tracing, as configured. */
export interface ObservabilitySettings {
  metrics: boolean;
  metricsAccess: MetricsAccess;
  traceExporter: TraceExporterKind;
  /** The collector's traces URL (with --trace-exporter otlp). */
  traceEndpoint: string;
}

function observabilitySettings(
  metrics: { value: string; where: string },
  access: { value: string; where: string },
  exporter: { value: string; where: string },
  endpoint: { value: string; where: string },
): ObservabilitySettings {
  const traceExporter = oneOf(exporter, TRACE_EXPORTERS);
  let traceEndpoint = "";
  if (traceExporter === "otlp") {
    try {
      traceEndpoint = otlpTracesUrl(endpoint.value);
    } catch (error) {
      throw new ConfigError(`${endpoint.where}: ${(error as Error).message}`);
    }
  }
  return { metrics: oneOf(metrics, ["on", "off"] as const) === "on", metricsAccess: oneOf(access, METRICS_ACCESS), traceExporter, traceEndpoint };
}

function list(value: string): string[] {
  return value.split(",").map((entry) => entry.trim()).filter(Boolean);
}

function allowedHosts(option: { value: string; where: string }): string[] {
  const hosts = list(option.value);
  for (const host of hosts) {
    try {
      parseEgressRule(host);
    } catch (error) {
      throw new ConfigError(`${option.where}: ${(error as Error).message}`);
    }
  }
  return hosts;
}

function oneOf<T extends string>(option: { value: string; where: string }, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(option.value)) {
    throw new ConfigError(`${option.where} "${option.value}" must be one of ${allowed.join(", ")}`);
  }
  return option.value as T;
}

function sandboxUser(uid: { value: string; where: string }, gid: { value: string; where: string }): { uid?: number; gid?: number } {
  if (!uid.value && !gid.value) return {};
  if (!uid.value) throw new ConfigError(`${gid.where} needs --sandbox-uid as well`);
  const id = wholeNumber(uid.where, uid.value);
  return { uid: id, gid: gid.value ? wholeNumber(gid.where, gid.value) : id };
}

function parseFlags(argv: string[]): Partial<Record<OptionName, string>> {
  try {
    return parseArgs({
      args: argv,
      options: Object.fromEntries(Object.keys(OPTIONS).map((name) => [name, { type: "string" }])),
      strict: true,
      allowPositionals: false,
    }).values as Partial<Record<OptionName, string>>;
  } catch (error) {
    throw new ConfigError(`${(error as Error).message} (see --help)`);
  }
}

// The single bearer token of the tenant "default" (--token, HOTPLEX_TOKEN or a token file).
function tokenOf(token: { value: string; where: string }, tokenFile: { value: string; where: string }): string | undefined {
  if (token.value && tokenFile.value) throw new ConfigError(`${token.where} and ${tokenFile.where} are both set: use one`);
  const value = tokenFile.value ? readSecretFile(tokenFile.value, tokenFile.where) : token.value;
  if (!value) return undefined;
  checkToken(value, tokenFile.value ? tokenFile.where : token.where);
  return value;
}

function checkToken(token: string, where: string): void {
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new ConfigError(
      `${where}: the token is ${token.length} characters, too short to withstand guessing: use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`,
    );
  }
  if (/\s/.test(token)) throw new ConfigError(`${where}: the token must not contain whitespace`);
}

function readSecretFile(file: string, where: string): string {
  try {
    return readFileSync(path.resolve(expandHome(file)), "utf8").trim();
  } catch (error) {
    throw new ConfigError(`${where}: cannot read ${file}: ${(error as Error).message}`);
  }
}

function resolveCredentials(file: ConfigFile | undefined, token: string | undefined): CredentialSpec[] {
  const credentials: CredentialSpec[] = [];
  if (token) credentials.push({ name: "token", tenant: DEFAULT_TENANT, roles: ["client"], tokenSha256: hashToken(token) });
  for (const [index, entry] of (file?.credentials ?? []).entries()) {
    const where = file ? `${file.where(["credentials", index])}: credentials.${index}` : `credentials.${index}`;
    let tokenSha256 = entry["token-sha256"]?.toLowerCase();
    if (entry["token-file"]) {
      const secret = readSecretFile(entry["token-file"], `${where}.token-file`);
      checkToken(secret, `${where}.token-file`);
      tokenSha256 = hashToken(secret);
    }
    credentials.push({
      name: entry.name,
      tenant: entry.tenant ?? "",
      roles: entry.roles,
      tokenSha256,
      clientCertSha256: entry["client-cert-sha256"],
    });
  }
  const names = new Set<string>();
  const hashes = new Set<string>();
  for (const credential of credentials) {
    if (names.has(credential.name)) throw new ConfigError(`credentials: the name "${credential.name}" is used twice`);
    names.add(credential.name);
    if (credential.tokenSha256) {
      if (hashes.has(credential.tokenSha256)) throw new ConfigError(`credentials: "${credential.name}" has the same token as another credential`);
      hashes.add(credential.tokenSha256);
    }
  }
  return credentials;
}

function resolveTenants(file: ConfigFile | undefined, idleTimeoutMs: number): TenantDirectory {
  const base: TenantSettings = { policy: defaultPolicy(idleTimeoutMs), limits: NO_TENANT_LIMITS };
  const defaults = file?.tenantDefaults ? mergeTenant(base, file.tenantDefaults, file, ["tenant-defaults"]) : base;
  const tenants = new Map<string, TenantSettings>();
  for (const [name, spec] of file?.tenants ?? []) tenants.set(name, mergeTenant(defaults, spec, file as ConfigFile, ["tenants", name]));
  return new TenantDirectory(defaults, tenants);
}

function mergeTenant(base: TenantSettings, spec: TenantSpec, file: ConfigFile, at: string[]): TenantSettings {
  return {
    policy: spec.policy ? mergePolicy(base.policy, spec.policy, file, [...at, "policy"]) : base.policy,
    limits: spec.limits ? mergeLimits(base.limits, spec.limits) : base.limits,
    rules: spec.rules ? mergeRules(base.rules ?? DEFAULT_RULES, spec.rules, file, [...at, "rules"]) : base.rules,
  };
}

// A tenant's rules, checked now by building them: a bad set name or rule fails the load (or
// the reload, which then keeps the rules in force), naming its key and line.
function mergeRules(base: RuleSettings, spec: RulesSpec, file: ConfigFile, at: string[]): RuleSettings {
  const custom: CustomRuleSpec[] = [];
  for (const [index, rule] of (spec.custom ?? []).entries()) {
    const parsed = customRuleSchema.safeParse(rule);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const key = [...at, "custom", String(index), ...(issue?.path ?? []).map(String)];
      throw new ConfigError(`${file.where(key)}: ${key.join(".")}: ${issue?.message ?? "not a rule"}`);
    }
    custom.push(parsed.data as CustomRuleSpec);
  }
  const rules: RuleSettings = {
    sets: spec.sets ?? base.sets,
    custom: spec.custom ? custom : base.custom,
    allowPaths: (spec["allow-paths"] ?? base.allowPaths).map((entry) => path.resolve(expandHome(entry))),
  };
  try {
    RuleEngine.create(rules);
  } catch (error) {
    throw new ConfigError(`${file.where(at)}: ${at.join(".")}: ${(error as Error).message}`);
  }
  return rules;
}

// The modes a policy may list: every provider's (the default ceiling holds Gemini's autoEdit).
const KNOWN_PERMISSION_MODES: readonly string[] = [
  ...new Set([...PERMISSION_MODES, ...DEFAULT_PERMISSION_MODES, ...Object.values(ACP_QUIRKS).flatMap((quirks) => quirks.modes ?? [])]),
];

function mergePolicy(base: SessionPolicy, spec: PolicySpec, file: ConfigFile, at: string[]): SessionPolicy {
  const modes = spec["permission-modes"];
  for (const [index, mode] of (modes ?? []).entries()) {
    if (!KNOWN_PERMISSION_MODES.includes(mode)) {
      const key = [...at, "permission-modes", String(index)];
      throw new ConfigError(`${file.where(key)}: ${key.join(".")}: "${mode}" is not one of ${KNOWN_PERMISSION_MODES.join(", ")}`);
    }
  }
  const idle = spec["max-idle-timeout"];
  const key = [...at, "max-idle-timeout"];
  return {
    permissionModes: modes ?? base.permissionModes,
    allowedTools: spec["allowed-tools"] ?? base.allowedTools,
    disallowedTools: spec["disallowed-tools"] ?? base.disallowedTools,
    models: spec.models ?? base.models,
    allowSystemPrompt: spec["allow-system-prompt"] ?? base.allowSystemPrompt,
    allowAppendSystemPrompt: spec["allow-append-system-prompt"] ?? base.allowAppendSystemPrompt,
    maxIdleTimeoutMs: idle === undefined ? base.maxIdleTimeoutMs : durationMs(`${file.where(key)}: ${key.join(".")}`, idle),
    shareWorkDirs: spec["share-work-dirs"] ?? base.shareWorkDirs,
  };
}

function mergeLimits(base: TenantLimits, spec: LimitsSpec): TenantLimits {
  return {
    storedSessions: spec["stored-sessions"] ?? base.storedSessions,
    liveAgents: spec["live-agents"] ?? base.liveAgents,
    queuedTurns: spec["queued-turns"] ?? base.queuedTurns,
    promptBytes: spec["prompt-bytes"] ?? base.promptBytes,
    turnsPerMinute: spec["turns-per-minute"] ?? base.turnsPerMinute,
    retainedEventBytes: spec["retained-event-bytes"] ?? base.retainedEventBytes,
  };
}

function tlsFiles(file: ConfigFile | undefined, cert: string, key: string, clientCa: string): TlsFiles | undefined {
  const paths = { cert: cert || file?.tls?.cert || "", key: key || file?.tls?.key || "", clientCa: clientCa || file?.tls?.clientCa || "" };
  if (!paths.cert && !paths.key) {
    if (paths.clientCa) throw new ConfigError("--tls-client-ca needs --tls-cert and --tls-key");
    return undefined;
  }
  if (!paths.cert || !paths.key) throw new ConfigError("TLS needs both a certificate (--tls-cert) and a key (--tls-key)");
  const read = (what: string, file: string) => {
    try {
      return readFileSync(path.resolve(expandHome(file)));
    } catch (error) {
      throw new ConfigError(`cannot read the TLS ${what} ${file}: ${(error as Error).message}`);
    }
  };
  return {
    cert: read("certificate", paths.cert),
    key: read("key", paths.key),
    ...(paths.clientCa ? { clientCa: read("client CA", paths.clientCa) } : {}),
  };
}

function approvalMode(mode: { value: string; where: string }): ApprovalDefault {
  if (mode.value !== "agent" && mode.value !== "client") throw new ConfigError(`${mode.where} "${mode.value}" must be agent or client`);
  return mode.value;
}

function storeConfig(get: (name: OptionName) => { value: string; where: string }, dataDir: string, durability: { value: string; where: string }): StoreConfig {
  const kind = get("store");
  if (kind.value === "memory") return { kind: "memory" };
  if (kind.value === "redis") return redisStoreConfig(get);
  if (kind.value !== "sqlite") throw new ConfigError(`${kind.where} "${kind.value}" must be sqlite, memory or redis`);
  if (durability.value !== "normal" && durability.value !== "full") {
    throw new ConfigError(`${durability.where} "${durability.value}" must be normal or full`);
  }
  return { kind: "sqlite", dataDir: path.resolve(expandHome(dataDir)), durability: durability.value };
}

// The largest node secret file read (a secret is 32 bytes or a few more; anything far larger is the wrong file).
const MAX_NODE_SECRET_FILE_BYTES = 4096;

function clusterSettings(get: (name: OptionName) => { value: string; where: string }): ClusterSettings | undefined {
  const secretFile = get("node-secret-file");
  const advertise = get("advertise-url");
  if (!secretFile.value) {
    if (advertise.value) throw new ConfigError(`${advertise.where} needs --node-secret-file (the nodes forward to each other only with a shared secret)`);
    return undefined;
  }
  if (get("store").value !== "redis") throw new ConfigError(`${secretFile.where} needs --store redis (the nodes share sessions through Redis)`);
  let size = 0;
  try {
    size = statSync(path.resolve(expandHome(secretFile.value))).size;
  } catch {
    // readSecretFile names what is wrong with it.
  }
  if (size > MAX_NODE_SECRET_FILE_BYTES) throw new ConfigError(`${secretFile.where}: ${secretFile.value} is ${size} bytes, not a node secret (at most ${MAX_NODE_SECRET_FILE_BYTES})`);
  const nodeSecret = Buffer.from(readSecretFile(secretFile.value, secretFile.where), "utf8");
  if (nodeSecret.length < MIN_NODE_SECRET_BYTES) {
    throw new ConfigError(`${secretFile.where}: the node secret is ${nodeSecret.length} bytes, too short: use at least ${MIN_NODE_SECRET_BYTES} (e.g. openssl rand -hex 32)`);
  }
  let advertiseUrl: string | undefined;
  if (advertise.value) {
    let parsed: URL;
    try {
      parsed = new URL(advertise.value);
    } catch {
      throw new ConfigError(`${advertise.where} "${advertise.value.slice(0, 200)}" is not a URL: use http://host:port or https://host:port`);
    }
    if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.pathname !== "/" || parsed.search || parsed.username || parsed.password || !parsed.port) {
      throw new ConfigError(`${advertise.where} "${advertise.value.slice(0, 200)}" must be http://host:port or https://host:port, with nothing after the port`);
    }
    advertiseUrl = `${parsed.protocol}//${parsed.host}`;
  }
  return { nodeSecret, advertiseUrl };
}

// A node id as leases carry it (see store/redis/lease.ts).
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;

function redisStoreConfig(get: (name: OptionName) => { value: string; where: string }): RedisStoreConfig {
  const url = get("redis-url");
  let parsed: URL;
  try {
    parsed = new URL(url.value);
  } catch {
    throw new ConfigError(`${url.where} is not a URL: use redis://host:port or rediss://host:port`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw new ConfigError(`${url.where} must start with redis:// or rediss:// (TLS), not ${parsed.protocol}//`);
  const ca = get("redis-tls-ca");
  if (ca.value && parsed.protocol !== "rediss:") throw new ConfigError(`${ca.where} needs a rediss:// URL (TLS)`);
  let tlsCa: Buffer | undefined;
  if (ca.value) {
    try {
      tlsCa = readFileSync(path.resolve(expandHome(ca.value)));
    } catch (error) {
      throw new ConfigError(`cannot read the Redis CA file ${ca.value}: ${(error as Error).message}`);
    }
  }
  const prefix = get("redis-prefix");
  if (!/^[A-Za-z0-9._:-]{0,64}$/.test(prefix.value)) throw new ConfigError(`${prefix.where} may hold up to 64 of [A-Za-z0-9._:-]`);
  const node = get("node-id");
  const nodeId = node.value || hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
  if (!NODE_ID.test(nodeId)) throw new ConfigError(`${node.where} "${nodeId.slice(0, 80)}" must be 1 to 64 of [A-Za-z0-9._-]`);
  const ttl = get("lease-ttl");
  const margin = get("lease-margin");
  const leaseTtlMs = durationMs(ttl.where, ttl.value);
  const leaseMarginMs = durationMs(margin.where, margin.value);
  if (leaseTtlMs < 1000 || leaseTtlMs > 600_000) throw new ConfigError(`${ttl.where} must be between 1s and 10m`);
  if (leaseMarginMs < 0 || leaseMarginMs >= leaseTtlMs / 2) throw new ConfigError(`${margin.where} must be less than half of the lease ttl (${leaseTtlMs} ms)`);
  return { kind: "redis", url: url.value, ...(tlsCa ? { tlsCa } : {}), prefix: prefix.value, nodeId, leaseTtlMs, leaseMarginMs };
}

function expandHome(value: string): string {
  return value === "~" || value.startsWith("~/") ? path.join(homedir(), value.slice(1)) : value;
}

// The enabled providers and their executables: an explicit path, else the CLI installed
// with hotplex's own dependencies, else the command on PATH.
function resolveProviders(
  enabled: string[],
  paths: string[],
  claudePath: string,
  acpAgents: Record<string, [string, ...string[]]>,
  where: string,
  pathsWhere: string,
): ProviderSettings {
  if (enabled.length === 0) throw new ConfigError(`${where} names no provider`);
  const known = [...knownProviders(), ...Object.keys(acpAgents)];
  for (const name of enabled) {
    if (!known.includes(name)) throw new ConfigError(`${where} "${name}" is not a provider hotplex knows (${known.join(", ")})`);
  }
  const executables: Record<string, string> = {};
  for (const entry of paths) {
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq);
    if (eq <= 0 || eq === entry.length - 1) throw new ConfigError(`${pathsWhere} "${entry}" is not NAME=PATH`);
    if (!known.includes(name)) throw new ConfigError(`${pathsWhere} "${name}" is not a provider hotplex knows (${known.join(", ")})`);
    executables[name] = entry.slice(eq + 1);
  }
  if (claudePath) executables["claude-code"] ??= claudePath;
  for (const name of enabled) if (!Object.hasOwn(acpAgents, name)) executables[name] ??= bundledExecutable(defaultExecutable(name));
  return { enabled: [...new Set(enabled)], executables, defaultProvider: enabled[0] ?? DEFAULT_PROVIDER, acpAgents };
}

// NAME=COMMAND [ARG ...] entries: the operator's ACP agents (arguments split at spaces).
function resolveAcpAgents(entries: string[], where: string): Record<string, [string, ...string[]]> {
  const agents: Record<string, [string, ...string[]]> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    const name = entry.slice(0, eq).trim();
    const [command, ...args] = entry.slice(eq + 1).trim().split(/\s+/).filter(Boolean);
    if (eq <= 0 || !command) throw new ConfigError(`${where} "${entry}" is not NAME=COMMAND [ARG ...]`);
    if (!ACP_AGENT_NAME.test(name) || knownProviders().includes(name)) {
      throw new ConfigError(`${where} "${name}" cannot name an ACP agent: use [a-z][a-z0-9-]{0,39}, not a built-in provider's name (${knownProviders().join(", ")})`);
    }
    if (Object.hasOwn(agents, name)) throw new ConfigError(`${where} names "${name}" twice`);
    agents[name] = [command, ...args];
  }
  return agents;
}

// An agent CLI installed with hotplex's own dependencies, if any, else its name (found on PATH).
function bundledExecutable(name: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i += 1) {
    const candidate = path.join(dir, "node_modules", ".bin", name);
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return name;
}
