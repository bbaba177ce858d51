import { homedir } from "node:os";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_NAMESPACE } from "../engine/config.js";
import { hashToken } from "../security/credentials.js";
import { ConfigError, durationMs, loadConfig, parseListen } from "./config.js";

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
    expect(config.engine.claudePath).toMatch(/claude$/);
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
      claudePath: "/opt/claude",
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
