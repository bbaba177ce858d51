import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, hostname, tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_NAMESPACE } from "../engine/config.js";
import { hashToken } from "../security/credentials.js";
import { ConfigError, durationMs, loadConfig, OPTIONS, parseListen } from "./config.js";

const ENV_TOKEN = "env-token-0123456789abcdef";
const FLAG_TOKEN = "flag-token-0123456789abcdef";

/** The credential the single token configures, by its hash. */
const tokenCredential = (token: string) => [{ name: "token", tenant: "default", roles: ["client"], tokenSha256: hashToken(token) }];

let tmp: string;
let workRoot: string;

beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), "hotplex-config-"));
  workRoot = path.join(tmp, "work");
});

afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** loadConfig with a temp work root, so no test touches the real home. */
function load(argv: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return loadConfig(["--work-root", workRoot, ...argv], env);
}

/** loadConfig with `text` as the config file. */
function fromFile(text: string) {
  const file = path.join(tmp, "hotplex.yaml");
  writeFileSync(file, text);
  return load(["--config", file]);
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("uses the defaults when neither flags nor environment say otherwise", () => {
    const config = load();
    expect(config).toMatchObject({ host: "127.0.0.1", port: 7070, credentials: [], logLevel: "info", releaseMemoryAfterMs: 10_000 });
    expect(config.engine).toMatchObject({
      namespace: DEFAULT_NAMESPACE,
      workRoot,
      maxLiveSessions: 64,
      limits: { queueLimit: 16, turnTimeoutMs: 10 * 60_000, idleTimeoutMs: 30 * 60_000, stopGraceMs: 5_000 },
      store: { kind: "sqlite", dataDir: path.join(homedir(), ".hotplex", "data"), durability: "normal" },
      retention: { maxEvents: 100_000, maxBytes: 64 * 1024 * 1024, maxAgeMs: 0, totalMaxBytes: 0 },
      compactIntervalMs: 60_000,
    });
    expect(config.engine.providers.executables["claude-code"]).toMatch(/claude$/);
  });

  it("creates the work root, resolved to an absolute path", () => {
    const relative = path.relative(process.cwd(), path.join(tmp, "a", "b"));
    const config = loadConfig(["--work-root", relative], {});
    expect(config.engine.workRoot).toBe(path.join(tmp, "a", "b"));
    expect(existsSync(config.engine.workRoot)).toBe(true);
  });

  it("expands a work root starting with ~/ from the home directory", () => {
    const saved = process.env["HOME"];
    process.env["HOME"] = tmp;
    try {
      expect(loadConfig(["--work-root", "~/hp"], {}).engine.workRoot).toBe(path.join(tmp, "hp"));
    } finally {
      if (saved === undefined) delete process.env["HOME"];
      else process.env["HOME"] = saved;
    }
  });

  it("takes environment variables over the defaults", () => {
    const config = load([], {
      HOTPLEX_LISTEN: "127.0.0.2:9000",
      HOTPLEX_TOKEN: ENV_TOKEN,
      HOTPLEX_MAX_SESSIONS: "3",
      HOTPLEX_QUEUE_LIMIT: "0",
      HOTPLEX_TURN_TIMEOUT: "90s",
      HOTPLEX_IDLE_TIMEOUT: "0",
      HOTPLEX_STOP_GRACE: "250ms",
      HOTPLEX_RETAIN_EVENTS: "10",
      HOTPLEX_RETAIN_BYTES: "2048",
      HOTPLEX_RETAIN_AGE: "168h",
      HOTPLEX_RETAIN_TOTAL_BYTES: "4096",
      HOTPLEX_STORE: "memory",
      HOTPLEX_LOG_LEVEL: "debug",
      HOTPLEX_RELEASE_MEMORY_AFTER: "0",
      HOTPLEX_CLAUDE_PATH: "/opt/claude",
      HOTPLEX_NAMESPACE: "0b5e4c4a-1f8e-4d3b-9a6c-2e7f8d9c0b1a",
    });
    expect(config).toMatchObject({ host: "127.0.0.2", port: 9000, credentials: tokenCredential(ENV_TOKEN), logLevel: "debug", releaseMemoryAfterMs: 0 });
    expect(config.engine).toMatchObject({
      providers: { enabled: ["claude-code"], executables: { "claude-code": "/opt/claude" }, defaultProvider: "claude-code" },
      namespace: "0b5e4c4a-1f8e-4d3b-9a6c-2e7f8d9c0b1a",
      maxLiveSessions: 3,
      limits: { queueLimit: 0, turnTimeoutMs: 90_000, idleTimeoutMs: 0, stopGraceMs: 250 },
      store: { kind: "memory" },
      retention: { maxEvents: 10, maxBytes: 2048, maxAgeMs: 168 * 3_600_000, totalMaxBytes: 4096 },
    });
  });

  it("takes flags over environment variables", () => {
    const env = { HOTPLEX_LISTEN: "127.0.0.2:9000", HOTPLEX_MAX_SESSIONS: "3", HOTPLEX_TURN_TIMEOUT: "90s", HOTPLEX_TOKEN: ENV_TOKEN };
    const config = load(["--listen", "127.0.0.3:9001", "--max-sessions=5", "--turn-timeout", "2m", "--token", FLAG_TOKEN], env);
    expect(config).toMatchObject({ host: "127.0.0.3", port: 9001, credentials: tokenCredential(FLAG_TOKEN) });
    expect(config.engine.maxLiveSessions).toBe(5);
    expect(config.engine.limits.turnTimeoutMs).toBe(120_000);
  });

  it("takes the work root from HOTPLEX_WORK_ROOT when no flag is given", () => {
    expect(loadConfig([], { HOTPLEX_WORK_ROOT: workRoot }).engine.workRoot).toBe(workRoot);
  });

  it("refuses a non-loopback address without a token", () => {
    const error = configError(() => load(["--listen", "0.0.0.0:7070"]));
    expect(error.message).toContain("--listen");
    expect(error.message).toContain("0.0.0.0:7070");
    expect(error.message).toContain("--token-file");
    expect(() => load([], { HOTPLEX_LISTEN: "192.168.1.5:80", HOTPLEX_TOKEN: "" })).toThrow(ConfigError);
  });

  it("listens on a non-loopback address with a token, from a flag or the environment", () => {
    expect(load(["--listen", "0.0.0.0:7070", "--token", FLAG_TOKEN])).toMatchObject({ host: "0.0.0.0", port: 7070, credentials: tokenCredential(FLAG_TOKEN) });
    expect(load(["--listen", "[::]:7070"], { HOTPLEX_TOKEN: ENV_TOKEN })).toMatchObject({ host: "::", credentials: tokenCredential(ENV_TOKEN) });
  });

  it("listens on any loopback address without a token", () => {
    for (const listen of ["127.0.0.1:1", "127.9.9.9:1", "localhost:1", "[::1]:1", ":1"]) {
      expect(load(["--listen", listen]).credentials).toEqual([]);
    }
  });

  it("does not leak HOTPLEX_TOKEN (or any HOTPLEX_*) into the agents' environment", () => {
    const secret = "secret-0123456789abcdef";
    const config = load(["--agent-env", "HOTPLEX_*,HOTPLEX_TOKEN"], { HOTPLEX_TOKEN: secret, HOTPLEX_LOG_LEVEL: "info", PATH: "/bin" });
    expect(config.credentials).toEqual(tokenCredential(secret));
    expect(config.engine.agentEnv).toEqual({ PATH: "/bin" });
    expect(JSON.stringify(config)).not.toContain(secret);
  });

  it("adds --agent-env names and prefixes to the allow-list", () => {
    const env = { PATH: "/bin", FOO: "1", BAR_X: "2", BAR_Y: "3", BAZ: "4", SECRET: "5" };
    expect(load(["--agent-env", "FOO,BAR_*"], env).engine.agentEnv).toEqual({ PATH: "/bin", FOO: "1", BAR_X: "2", BAR_Y: "3" });
    expect(load(["--agent-env", " FOO , BAR_* ,"], env).engine.agentEnv).toEqual({ PATH: "/bin", FOO: "1", BAR_X: "2", BAR_Y: "3" });
    expect(load([], { ...env, HOTPLEX_AGENT_ENV: "BAZ" }).engine.agentEnv).toEqual({ PATH: "/bin", BAZ: "4" });
    expect(load([], env).engine.agentEnv).toEqual({ PATH: "/bin" });
  });

  it.each([
    ["--listen", "nonsense"],
    ["--turn-timeout", "ten minutes"],
    ["--idle-timeout", "-5s"],
    ["--stop-grace", ""],
    ["--max-sessions", "many"],
    ["--max-sessions", "0"],
    ["--max-sessions", "1.5"],
    ["--queue-limit", "-1"],
    ["--queue-limit", ""],
    ["--retain-events", "12abc"],
    ["--retain-bytes", "1e400"],
    ["--store", "postgres"],
    ["--durability", "maximal"],
    ["--namespace", "not-a-uuid"],
  ])("rejects %s %j with a ConfigError naming the option and showing the value", (flag, value) => {
    const error = configError(() => load([`${flag}=${value}`]));
    expect(error.message).toContain(flag);
    expect(error.message).toContain(`"${value}"`);
  });

  it.each([
    [["--redis-url", "http://redis.example:6379"], "--redis-url", "must start with redis:// or rediss://"],
    [["--redis-url", "not a url"], "--redis-url", "is not a URL"],
    [["--redis-tls-ca", "/etc/ssl/ca.pem"], "--redis-tls-ca", "needs a rediss:// URL"],
    [["--redis-url", "rediss://r.example:6380", "--redis-tls-ca", "/nonexistent/ca.pem"], "/nonexistent/ca.pem", "cannot read the Redis CA file"],
    [["--redis-prefix", "a{b}"], "--redis-prefix", "[A-Za-z0-9._:-]"],
    [["--node-id", "a b/c"], "--node-id", "must be 1 to 64 of"],
    [["--node-id", "n".repeat(65)], "--node-id", "must be 1 to 64 of"],
    [["--lease-ttl", "200ms"], "--lease-ttl", "between 1s and 10m"],
    [["--lease-ttl", "2s", "--lease-margin", "1s"], "--lease-margin", "less than half of the lease ttl"],
  ])("rejects a Redis store setting %j, naming %s", (args, named, message) => {
    const error = configError(() => load(["--store", "redis", ...args]));
    expect(error.message).toContain(named);
    expect(error.message).toContain(message);
  });

  it("takes a Redis store's settings, the host name as the node id by default", () => {
    const config = load(["--store", "redis", "--redis-url", "redis://:pw@10.0.0.5:6380/2", "--lease-ttl", "6s", "--lease-margin", "1500ms"]);
    expect(config.engine.store).toEqual({
      kind: "redis",
      url: "redis://:pw@10.0.0.5:6380/2",
      prefix: "hp:",
      nodeId: hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64),
      leaseTtlMs: 6000,
      leaseMarginMs: 1500,
    });
  });

  it("takes the node secret and the advertised URL of a node that forwards to the others, and refuses what cannot work", () => {
    const secret = path.join(tmp, "node-secret");
    writeFileSync(secret, `${"s".repeat(40)}\n`);
    const config = load(["--store", "redis", "--node-secret-file", secret, "--advertise-url", "http://10.0.0.7:7070/"]);
    expect(config.cluster).toEqual({ nodeSecret: Buffer.from("s".repeat(40)), advertiseUrl: "http://10.0.0.7:7070" });
    expect(load(["--store", "redis", "--node-secret-file", secret]).cluster?.advertiseUrl).toBeUndefined();
    expect(load(["--store", "redis"]).cluster).toBeUndefined();
    const empty = path.join(tmp, "empty-secret");
    writeFileSync(empty, "\n");
    const huge = path.join(tmp, "huge-secret");
    writeFileSync(huge, "x".repeat(1 << 20));
    const short = path.join(tmp, "short-secret");
    writeFileSync(short, "tooshort");
    const refusals: [string[], string][] = [
      [["--node-secret-file", secret], "--node-secret-file needs --store redis"],
      [["--store", "redis", "--advertise-url", "http://10.0.0.7:7070"], "--advertise-url needs --node-secret-file"],
      [["--store", "redis", "--node-secret-file", short], "the node secret is 8 bytes, too short: use at least 32"],
      [["--store", "redis", "--node-secret-file", path.join(tmp, "missing")], "cannot read"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", "10.0.0.7:7070"], "http://host:port or https://host:port"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", "ftp://10.0.0.7:21"], "must be http://host:port or https://host:port"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", "http://10.0.0.7"], "must be http://host:port or https://host:port"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", "http://10.0.0.7:7070/api?x=1"], "with nothing after the port"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", "http://user:pw@10.0.0.7:7070"], "with nothing after the port"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", "not a url"], "is not a URL"],
      [["--store", "redis", "--node-secret-file", secret, "--listen", "0.0.0.0:7070", "--token", "t".repeat(20)], "set --advertise-url"],
      [["--store", "redis", "--node-secret-file", huge], "bytes, not a node secret (at most 4096)"],
      [["--store", "redis", "--node-secret-file", empty], "the node secret is 0 bytes, too short"],
      [["--store", "redis", "--node-secret-file=--advertise-url=http://x:1"], "cannot read --advertise-url=http://x:1"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", "http://10.0.0.7:99999"], "is not a URL"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url", `http://${"h".repeat(100_000)}:1/x`], "with nothing after the port"],
      [["--store", "redis", "--node-secret-file", secret, "--advertise-url=--help"], "is not a URL"],
    ];
    for (const [args, message] of refusals) expect(configError(() => load(args)).message).toContain(message);
  });

  it("rejects a bad value from the environment under the option's name", () => {
    const error = configError(() => load([], { HOTPLEX_MAX_SESSIONS: "lots" }));
    expect(error.message).toContain("--max-sessions");
    expect(error.message).toContain('"lots"');
  });

  it("rejects unknown flags, positional arguments and flags without their value", () => {
    expect(configError(() => load(["--bogus", "1"])).message).toContain("--bogus");
    expect(configError(() => load(["stray"])).message).toContain("stray");
    expect(configError(() => load(["--listen"])).message).toContain("--listen");
  });
});

describe("parseListen", () => {
  it("reads HOST:PORT", () => {
    expect(parseListen("127.0.0.1:7070")).toEqual({ host: "127.0.0.1", port: 7070 });
    expect(parseListen("example.org:443")).toEqual({ host: "example.org", port: 443 });
  });

  it("reads :PORT as loopback 127.0.0.1", () => {
    expect(parseListen(":7070")).toEqual({ host: "127.0.0.1", port: 7070 });
  });

  it("reads a bracketed IPv6 host", () => {
    expect(parseListen("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(parseListen("[::]:0")).toEqual({ host: "::", port: 0 });
  });

  it.each(["7070", "localhost", "host:", "host:port", "host:65536", "host:123456", "::1:80", "[::1]80", "a b:1x"])(
    "rejects %j with a ConfigError naming --listen and showing the value",
    (value) => {
      const error = configError(() => parseListen(value));
      expect(error.message).toContain("--listen");
      expect(error.message).toContain(`"${value}"`);
    },
  );

  it("accepts the highest port, 65535", () => {
    expect(parseListen("h:65535").port).toBe(65535);
  });
});

describe("durationMs", () => {
  it.each([
    ["250ms", 250],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1.5s", 1500],
    ["0", 0],
    ["10", 10_000],
    [" 2m ", 120_000],
  ])("reads %j as %d ms", (value, ms) => {
    expect(durationMs("--turn-timeout", value)).toBe(ms);
  });

  it.each(["", "abc", "-1s", "5 m", "1d", "1.s", ".5s", "5M"])("rejects %j with a ConfigError naming the option", (value) => {
    const error = configError(() => durationMs("--stop-grace", value));
    expect(error.message).toContain("--stop-grace");
    expect(error.message).toContain(`"${value}"`);
  });
});

describe("secrets", () => {
  it("reads the token from --token-file or HOTPLEX_TOKEN_FILE, trimmed, and keeps only its hash", () => {
    const file = path.join(tmp, "token");
    writeFileSync(file, `${FLAG_TOKEN}\n`);
    expect(load(["--token-file", file]).credentials).toEqual(tokenCredential(FLAG_TOKEN));
    const config = load([], { HOTPLEX_TOKEN_FILE: file });
    expect(config.credentials).toEqual(tokenCredential(FLAG_TOKEN));
    expect(JSON.stringify(config)).not.toContain(FLAG_TOKEN);
  });

  it("warns when the token is on the command line, where every local user can read it", () => {
    expect(load(["--token", FLAG_TOKEN]).warnings.join("\n")).toContain("/proc/<pid>/cmdline");
    expect(load([], { HOTPLEX_TOKEN: ENV_TOKEN }).warnings).toEqual([]);
  });

  it.each(["short", "x".repeat(15), "has a space in it 0123456789"])("refuses the token %j", (token) => {
    expect(configError(() => load([], { HOTPLEX_TOKEN: token })).message).toContain("HOTPLEX_TOKEN");
  });

  it("refuses a token given twice, and a token file it cannot read", () => {
    const file = path.join(tmp, "token");
    writeFileSync(file, FLAG_TOKEN);
    expect(configError(() => load(["--token-file", file], { HOTPLEX_TOKEN: ENV_TOKEN })).message).toContain("both set");
    expect(configError(() => load(["--token-file", path.join(tmp, "missing")])).message).toContain("cannot read");
  });
});

describe("the config file", () => {
  const write = (text: string) => {
    const file = path.join(tmp, "hotplex.yaml");
    writeFileSync(file, text);
    return file;
  };
  const fromFile = (text: string, argv: string[] = [], env: NodeJS.ProcessEnv = {}) => load(["--config", write(text), ...argv], env);

  it("holds every option under its flag's name, with the same result as the flag", () => {
    const values: Record<string, string> = {
      listen: "127.0.0.5:7171",
      "claude-path": "/opt/claude",
      providers: "claude-code",
      "provider-paths": "claude-code=/opt/claude-code",
      "acp-agents": "my-agent=/opt/my-agent --acp",
      "state-dir": path.join(tmp, "state"),
      namespace: "0b5e4c4a-1f8e-4d3b-9a6c-2e7f8d9c0b1a",
      "max-sessions": "7",
      "max-stored-sessions": "70",
      "queue-limit": "3",
      "turn-timeout": "2m",
      "idle-timeout": "40s",
      "stop-grace": "2s",
      approvals: "client",
      "approval-timeout": "3m",
      "max-prompt-bytes": "1000",
      "max-line-bytes": "2048",
      "max-request-bytes": "65536",
      "max-connections": "9",
      "max-streams-per-connection": "8",
      "handshake-timeout": "1s",
      "headers-timeout": "2s",
      "request-timeout": "3s",
      "connection-idle-timeout": "4s",
      store: "memory",
      "data-dir": path.join(tmp, "data"),
      durability: "full",
      "retain-events": "11",
      "retain-bytes": "12000",
      "retain-age": "1h",
      "retain-total-bytes": "13000",
      "compact-interval": "5s",
      "agent-env": "FOO",
      "log-level": "warn",
      "release-memory-after": "0",
      sandbox: "off",
      "sandbox-network": "allow",
      "sandbox-allowed-hosts": "api.anthropic.com,127.0.0.1:8080",
      "sandbox-uid": "1000",
      "sandbox-gid": "1001",
      "sandbox-memory": "1000000",
      "sandbox-processes": "50",
      "sandbox-open-files": "60",
      "sandbox-read-only": "/srv/a,/srv/b",
      "sandbox-cgroup": "/sys/fs/cgroup/hotplex",
      "bwrap-path": "/opt/bwrap",
      "agent-home": path.join(tmp, "agent-home"),
    };
    // Every option, each on its own (a new one included), is covered by print-config.test.ts; these all at once.
    expect(Object.keys(values).every((name) => Object.hasOwn(OPTIONS, name))).toBe(true);
    const yaml = Object.entries(values).map(([key, value]) => `${key}: "${value}"`).join("\n");
    const viaFile = fromFile(yaml, [], { FOO: "1" });
    const viaFlags = load(Object.entries(values).map(([key, value]) => `--${key}=${value}`), { FOO: "1" });
    // The config file itself is hidden from agents: the one difference.
    const comparable = (config: ReturnType<typeof load>) => ({
      ...config,
      configFile: undefined,
      engine: { ...config.engine, tenants: undefined, sandbox: { ...config.engine.sandbox, hiddenPaths: config.engine.sandbox.hiddenPaths.filter((p) => !p.endsWith(".yaml")) } },
    });
    expect(comparable(viaFile)).toEqual(comparable(viaFlags));
    expect(viaFile.engine.maxLiveSessions).toBe(7);
    expect(viaFile.connectionLimits.maxConnections).toBe(9);
    expect(viaFile.engine.sandbox).toMatchObject({ mode: "off", network: "allow", allowedHosts: ["api.anthropic.com", "127.0.0.1:8080"], uid: 1000, gid: 1001, processes: 50, readOnlyPaths: ["/srv/a", "/srv/b"] });
  });

  it("enables the providers named, the first the default, with their executables", () => {
    const config = load(["--providers=claude-code", "--provider-paths=claude-code=/opt/cc"]);
    expect(config.engine.providers).toEqual({ enabled: ["claude-code"], executables: { "claude-code": "/opt/cc" }, defaultProvider: "claude-code", acpAgents: {} });
    // --provider-paths wins over the older --claude-path.
    expect(load(["--claude-path=/old", "--provider-paths=claude-code=/new"]).engine.providers.executables["claude-code"]).toBe("/new");
    expect(load(["--claude-path=/old"]).engine.providers.executables["claude-code"]).toBe("/old");
  });

  it("runs the operator's ACP agents by the names given, and may make one the default", () => {
    const config = load(["--providers=my-agent,claude-code", "--acp-agents=my-agent=/opt/agent --acp  --quiet, other=/opt/other"]);
    expect(config.engine.providers.acpAgents).toEqual({ "my-agent": ["/opt/agent", "--acp", "--quiet"], other: ["/opt/other"] });
    expect(config.engine.providers.defaultProvider).toBe("my-agent");
    expect(config.engine.providers.executables).not.toHaveProperty("my-agent");
    expect(configError(() => load(["--acp-agents=codex=/opt/x"])).message).toMatch(/"codex" cannot name an ACP agent/);
    expect(configError(() => load(["--acp-agents=Bad_Name=/opt/x"])).message).toMatch(/"Bad_Name" cannot name an ACP agent/);
    expect(configError(() => load(["--acp-agents=a=/x,a=/y"])).message).toMatch(/names "a" twice/);
    expect(configError(() => load(["--acp-agents=a="])).message).toMatch(/"a=" is not NAME=COMMAND/);
  });

  it("refuses unknown providers and malformed executable entries, naming the option", () => {
    expect(configError(() => load(["--providers=claude-code,nope"])).message).toMatch(/--providers "nope" is not a provider hotplex knows/);
    expect(configError(() => load(["--providers="])).message).toMatch(/--providers names no provider/);
    expect(configError(() => load(["--provider-paths=claude-code"])).message).toMatch(/--provider-paths "claude-code" is not NAME=PATH/);
    expect(configError(() => load(["--provider-paths=x=/y"])).message).toMatch(/--provider-paths "x" is not a provider/);
  });

  it("lets the environment override the file, and flags the environment", () => {
    const yaml = "max-sessions: 3\n";
    expect(fromFile(yaml).engine.maxLiveSessions).toBe(3);
    expect(fromFile(yaml, [], { HOTPLEX_MAX_SESSIONS: "4" }).engine.maxLiveSessions).toBe(4);
    expect(fromFile(yaml, ["--max-sessions", "5"], { HOTPLEX_MAX_SESSIONS: "4" }).engine.maxLiveSessions).toBe(5);
  });

  it("names an unknown key with its file and line", () => {
    const error = configError(() => fromFile("listen: 127.0.0.1:1\n\nmax-sesions: 3\n"));
    expect(error.message).toMatch(/hotplex\.yaml:3: max-sesions: unknown key/);
  });

  it("names a bad value with its file, line and key", () => {
    expect(configError(() => fromFile("log-level: info\nturn-timeout: soon\n")).message).toMatch(/hotplex\.yaml:2: turn-timeout "soon" must be a duration/);
    expect(configError(() => fromFile("tenants:\n  acme:\n    limits:\n      live-agents: -1\n")).message).toMatch(
      /hotplex\.yaml:4: tenants\.acme\.limits\.live-agents:/,
    );
    expect(configError(() => fromFile("tenants:\n  acme:\n    policy:\n      permission-modes: [plan, sudo]\n")).message).toMatch(
      /hotplex\.yaml:4: tenants\.acme\.policy\.permission-modes\.1: "sudo" is not one of/,
    );
    // Every provider's modes may be listed: Gemini's yolo and autoEdit as well as Claude Code's.
    expect(fromFile("tenants:\n  acme:\n    policy:\n      permission-modes: [yolo, autoEdit, bypassPermissions]\n").engine.tenants.settingsOf("acme").policy.permissionModes).toEqual(["yolo", "autoEdit", "bypassPermissions"]);
    expect(configError(() => fromFile("listen: [a\n")).message).toMatch(/hotplex\.yaml:\d+:/);
  });

  it("holds credentials as hashes or token files, with tenants and roles", () => {
    const tokenFile = path.join(tmp, "ci-token");
    writeFileSync(tokenFile, "ci-token-0123456789abcdef\n");
    const config = fromFile(`
credentials:
  - name: acme-app
    tenant: acme
    roles: [client]
    token-sha256: ${hashToken(ENV_TOKEN).toUpperCase()}
  - name: acme-ci
    tenant: acme
    roles: [reader]
    token-file: ${tokenFile}
  - name: ops
    roles: [admin]
    token-sha256: ${hashToken(FLAG_TOKEN)}
`);
    expect(config.credentials).toEqual([
      { name: "acme-app", tenant: "acme", roles: ["client"], tokenSha256: hashToken(ENV_TOKEN), clientCertSha256: undefined },
      { name: "acme-ci", tenant: "acme", roles: ["reader"], tokenSha256: hashToken("ci-token-0123456789abcdef"), clientCertSha256: undefined },
      { name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken(FLAG_TOKEN), clientCertSha256: undefined },
    ]);
    // With credentials, the daemon may listen off loopback.
    expect(fromFile(`listen: 0.0.0.0:1\ncredentials:\n  - {name: a, tenant: t, roles: [client], token-sha256: ${hashToken(ENV_TOKEN)}}\n`).host).toBe("0.0.0.0");
  });

  it.each([
    ["an admin credential that is also a client", "{name: a, roles: [admin, client], token-sha256: H}", "credentials.0.roles"],
    ["an admin credential with a tenant", "{name: a, tenant: t, roles: [admin], token-sha256: H}", "credentials.0.tenant"],
    ["a client credential without a tenant", "{name: a, roles: [client], token-sha256: H}", "credentials.0.tenant"],
    ["a credential without a secret", "{name: a, tenant: t, roles: [client]}", "needs exactly one of"],
    ["a credential with a plaintext token", "{name: a, tenant: t, roles: [client], token: H}", 'unknown key "token"'],
    ["a hash that is no SHA-256", "{name: a, tenant: t, roles: [client], token-sha256: abc}", "credentials.0.token-sha256"],
    ["an unknown role", "{name: a, tenant: t, roles: [root], token-sha256: H}", "credentials.0.roles.0"],
  ])("refuses %s, naming it", (_what, entry, message) => {
    const yaml = `credentials:\n  - ${entry.replace("H", hashToken(ENV_TOKEN))}\n`;
    expect(configError(() => fromFile(yaml)).message).toContain(message);
  });

  it("refuses two credentials with one name or one token", () => {
    const entry = (name: string) => `  - {name: ${name}, tenant: t, roles: [client], token-sha256: ${hashToken(ENV_TOKEN)}}`;
    expect(configError(() => fromFile(`credentials:\n${entry("a")}\n${entry("b")}\n`)).message).toContain("same token");
    expect(configError(() => fromFile(`credentials:\n${entry("a")}\n${entry("a")}\n`)).message).toContain("used twice");
  });

  it("merges each tenant's policy and limits over the tenant defaults", () => {
    const config = fromFile(`
idle-timeout: 20m
tenant-defaults:
  policy:
    models: ["claude-sonnet-*"]
  limits:
    live-agents: 4
tenants:
  acme:
    policy:
      permission-modes: [default, plan, bypassPermissions]
      max-idle-timeout: 5m
    limits:
      stored-sessions: 10
`);
    const acme = config.engine.tenants.settingsOf("acme");
    expect(acme.policy).toMatchObject({ models: ["claude-sonnet-*"], permissionModes: ["default", "plan", "bypassPermissions"], maxIdleTimeoutMs: 300_000 });
    expect(acme.limits).toMatchObject({ liveAgents: 4, storedSessions: 10, turnsPerMinute: 0 });
    const other = config.engine.tenants.settingsOf("someone-else");
    expect(other.policy).toMatchObject({ models: ["claude-sonnet-*"], maxIdleTimeoutMs: 20 * 60_000 });
    expect(other.policy.permissionModes).not.toContain("bypassPermissions");
    expect(config.engine.tenants.names).toEqual(["acme"]);
  });
});

describe("the tenants' rules in the config file", () => {
  it("takes built-in sets, the operator's own rules and allow-paths, per tenant over the defaults", () => {
    const config = fromFile(`
tenant-defaults:
  rules:
    sets: [destructive, remote-exec]
tenants:
  acme:
    rules:
      custom:
        - id: acme.no-prod-db
          severity: block
          description: never touch the production database
          match: { kind: command, program: psql, args: ["*prod*"] }
      allow-paths: [~/scratch]
`);
    const acme = config.engine.tenants.settingsOf("acme").rules;
    expect(acme?.sets).toEqual(["destructive", "remote-exec"]);
    expect(acme?.custom.map((rule) => rule.id)).toEqual(["acme.no-prod-db"]);
    expect(acme?.allowPaths).toEqual([path.join(homedir(), "scratch")]);
    expect(config.engine.tenants.settingsOf("other").rules?.custom).toEqual([]);
  });

  it.each([
    ["sets: [destructive, no-such-set]", "no-such-set"],
    ["custom:\n        - { id: x, severity: maybe, description: d, match: { kind: command, program: rm } }", "severity"],
    ["custom:\n        - { id: x, severity: block, description: d, match: { kind: prompt, pattern: \"(\" } }", "x"],
    ["custom:\n        - { id: Bad Id, severity: block, description: d, match: { kind: command, program: rm } }", "id"],
  ])("refuses %s, naming the key", (rules, named) => {
    const error = configError(() => fromFile(`tenants:\n  acme:\n    rules:\n      ${rules}\n`));
    expect(error.message).toContain("tenants.acme.rules");
    expect(error.message).toContain(named);
  });
});

describe("the sandbox options", () => {
  it.each([
    ["--sandbox", "maybe"],
    ["--sandbox-network", "partly"],
    ["--sandbox-memory", "4G"],
    ["--sandbox-uid", "nobody"],
    ["--sandbox-allowed-hosts", "a b"],
  ])("rejects %s %j naming the option", (flag, value) => {
    const error = configError(() => load([`${flag}=${value}`]));
    expect(error.message).toContain(flag);
    expect(error.message).toContain(`"${value}"`);
  });

  it("needs a uid for a gid, and takes the uid as the gid by default", () => {
    expect(configError(() => load(["--sandbox-gid=5"])).message).toContain("--sandbox-uid");
    expect(load(["--sandbox-uid=7"]).engine.sandbox).toMatchObject({ uid: 7, gid: 7 });
  });

  it("hides the daemon's own files from agents: config, token file, TLS files, data and state dirs", () => {
    const token = path.join(tmp, "token");
    writeFileSync(token, FLAG_TOKEN);
    const { hiddenPaths } = load(["--token-file", token, "--data-dir", path.join(tmp, "d"), "--state-dir", path.join(tmp, "s")]).engine.sandbox;
    expect(hiddenPaths).toEqual(expect.arrayContaining([token, path.join(tmp, "d"), path.join(tmp, "s")]));
  });
});

describe("pre-warmed agents in the config file", () => {
  it("takes each entry as a session config, a size and an idle time", () => {
    const [spec] = fromFile("prewarm:\n  - tenant: acme\n    model: claude-x\n    permission-mode: plan\n    allowed-tools: [Read]\n    approvals: client\n    size: 3\n    idle: 10m\n").engine.prewarm ?? [];
    expect(spec).toMatchObject({ tenant: "acme", size: 3, idleMs: 600_000, config: { model: "claude-x", permissionMode: "plan", allowedTools: ["Read"], approvalMode: 2 } });
    expect(fromFile("prewarm:\n  - size: 1\n").engine.prewarm?.[0]).toMatchObject({ tenant: "default", idleMs: 0 });
  });
  it("refuses what no pool can be, naming the file, line and key", () => {
    expect(configError(() => fromFile("prewarm:\n  - size: 1\n    idle: soon\n")).message).toMatch(/hotplex\.yaml:3: prewarm\.0\.idle "soon" must be a duration/);
    expect(configError(() => fromFile("prewarm:\n  - size: 1000\n")).message).toMatch(/prewarm\.0\.size: .*64/);
    expect(configError(() => fromFile("prewarm:\n  - size: -1\n")).message).toMatch(/prewarm\.0\.size/);
    expect(configError(() => fromFile("prewarm:\n  - size: 1\n    tenant: ../etc\n")).message).toMatch(/prewarm\.0\.tenant: a tenant name/);
    expect(configError(() => fromFile("prewarm:\n  - size: 1\n    work-dir: /etc\n")).message).toMatch(/unknown key "work-dir"/);
    expect(configError(() => fromFile("prewarm:\n  - size: 1\n    approvals: maybe\n")).message).toMatch(/prewarm\.0\.approvals/);
    expect(configError(() => fromFile(`prewarm:\n${"  - size: 1\n".repeat(65)}`)).message).toMatch(/prewarm: .*64/);
  });
});
