import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { hashToken } from "../security/credentials.js";
import { ConfigError, type DaemonConfig, loadConfig } from "./config.js";
import { OPTIONS, type OptionName } from "./options.js";
import { MASKED, maskedValue, printConfig } from "./print-config.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
let tmp: string;
let files: { token: string; cert: string; key: string; ca: string; nodeSecret: string };

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), "hotplex-print-config-"));
  const write = (name: string, text: string) => {
    const file = path.join(tmp, name);
    writeFileSync(file, text);
    return file;
  };
  files = {
    token: write("token", "file-token-0123456789abcdef\n"),
    cert: write("tls.crt", "-----BEGIN CERTIFICATE-----\nCERTIFICATE-BYTES\n-----END CERTIFICATE-----\n"),
    key: write("tls.key", "-----BEGIN PRIVATE KEY-----\nSECRET-KEY-MATERIAL\n-----END PRIVATE KEY-----\n"),
    ca: write("ca.crt", "-----BEGIN CERTIFICATE-----\nCA-BYTES\n-----END CERTIFICATE-----\n"),
    nodeSecret: write("node-secret", "a-node-secret-of-forty-bytes-0123456789\n"),
  };
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// Nothing is created (createDirectories: false), so the default work root is never touched.
const base = (): string[] => [];
// Variables the agents' allow-list (--agent-env) can pick up.
const AMBIENT = { FOO: "1", BAR_X: "2" };
const writeFile = (text: string) => {
  const file = path.join(tmp, `hotplex-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  return file;
};

/**
 * A value for an option that is not its default, and what else it needs (as flags). The
 * options that need a particular shape are here; any other option (one added later) gets
 * the first candidate value the config accepts, so it is covered without a change here.
 */
const SAMPLES: Partial<Record<OptionName, { value: () => string; with?: () => string[] }>> = {
  listen: { value: () => "127.0.0.5:7171" },
  token: { value: () => "flag-token-0123456789abcdef" },
  "token-file": { value: () => files.token },
  "tls-cert": { value: () => files.cert, with: () => ["--tls-key", files.key] },
  "tls-key": { value: () => files.key, with: () => ["--tls-cert", files.cert] },
  "tls-client-ca": { value: () => files.ca, with: () => ["--tls-cert", files.cert, "--tls-key", files.key] },
  providers: { value: () => "claude-code,codex" },
  "provider-paths": { value: () => "claude-code=/opt/claude" },
  "acp-agents": { value: () => "my-agent=/opt/my-agent --acp" },
  "claude-path": { value: () => "/opt/claude-old" },
  "work-root": { value: () => path.join(tmp, "work-2") },
  "state-dir": { value: () => path.join(tmp, "state") },
  namespace: { value: () => "0b5e4c4a-1f8e-4d3b-9a6c-2e7f8d9c0b1a" },
  approvals: { value: () => "client" },
  sandbox: { value: () => "off" },
  "sandbox-network": { value: () => "allow", with: () => ["--sandbox-allowed-hosts", "api.anthropic.com"] },
  "sandbox-allowed-hosts": { value: () => "api.anthropic.com,127.0.0.1:8080", with: () => ["--sandbox-network", "allow"] },
  "sandbox-uid": { value: () => "1000" },
  "sandbox-gid": { value: () => "1001", with: () => ["--sandbox-uid", "1000"] },
  "sandbox-read-only": { value: () => "/srv/a,/srv/b" },
  "sandbox-cgroup": { value: () => "/sys/fs/cgroup/hotplex" },
  "bwrap-path": { value: () => "/opt/bwrap" },
  "agent-home": { value: () => path.join(tmp, "agent-home") },
  store: { value: () => "memory" },
  "data-dir": { value: () => path.join(tmp, "data") },
  durability: { value: () => "full" },
  "redis-url": { value: () => "rediss://:pw@redis.example:6380/1", with: () => ["--store", "redis"] },
  "redis-tls-ca": { value: () => files.ca, with: () => ["--store", "redis", "--redis-url", "rediss://redis.example:6380"] },
  "redis-prefix": { value: () => "team-a:", with: () => ["--store", "redis"] },
  "node-id": { value: () => "node-7", with: () => ["--store", "redis"] },
  "lease-ttl": { value: () => "20s", with: () => ["--store", "redis"] },
  "lease-margin": { value: () => "3s", with: () => ["--store", "redis"] },
  "node-secret-file": { value: () => files.nodeSecret, with: () => ["--store", "redis"] },
  "advertise-url": { value: () => "http://10.0.0.7:7070", with: () => ["--store", "redis", "--node-secret-file", files.nodeSecret] },
  "agent-env": { value: () => "FOO,BAR_*" },
  "log-level": { value: () => "warn" },
  "max-prompt-bytes": { value: () => "1000" },
  // Used only with the OTLP exporter.
  "trace-endpoint": { value: () => "http://collector.example:4318", with: () => ["--trace-exporter", "otlp"] },
};

// Candidates for an option with no sample: by the shape of its default, then generic ones.
function candidates(name: OptionName): string[] {
  const fallback = OPTIONS[name].default;
  const found: string[] = [];
  if (/^\d+$/.test(fallback)) found.push(String(Number(fallback) + 1), String(Math.max(0, Number(fallback) - 1)), "1");
  if (/^\d+(\.\d+)?(ms|s|m|h)$/.test(fallback)) found.push("7s", "250ms", "3m");
  const flip: Record<string, string> = { on: "off", off: "on", true: "false", false: "true", yes: "no", no: "yes" };
  if (flip[fallback]) found.push(flip[fallback]);
  found.push("7", "7s", "on", "true", "127.0.0.1:9464", "http://127.0.0.1:4318", "sample-value");
  return found.filter((value) => value !== fallback);
}

// The option's sample and companions; for an option with none, the first candidate the config takes
// (or one the "must be one of" message of a refused candidate names).
function sampleFor(name: OptionName): { value: string; with: string[] } {
  const sample = SAMPLES[name];
  if (sample) return { value: sample.value(), with: sample.with?.() ?? [] };
  const tried: string[] = [];
  for (const value of candidates(name)) {
    try {
      loadConfig([...base(), `--${name}=${value}`], {}, { createDirectories: false });
      return { value, with: [] };
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      tried.push(`${value}: ${error.message}`);
      const named = /must be (?:one of )?([\w-]+(?:, [\w-]+)*(?:,? or [\w-]+)?)/.exec(error.message)?.[1];
      const choice = named?.split(/, | or |,/).map((entry) => entry.trim()).find((entry) => entry && entry !== OPTIONS[name].default);
      if (choice) {
        try {
          loadConfig([...base(), `--${name}=${choice}`], {}, { createDirectories: false });
          return { value: choice, with: [] };
        } catch {
          // Not a real choice after all: go on with the next candidate.
        }
      }
    }
  }
  throw new Error(`no sample value for --${name}: add one to SAMPLES in print-config.test.ts (tried ${tried.join("; ")})`);
}

// The config as the daemon would run with it, minus what only says where it came from.
function comparable(config: DaemonConfig) {
  return {
    ...config,
    configFile: undefined,
    warnings: [],
    engine: {
      ...config.engine,
      tenants: undefined,
      sandbox: { ...config.engine.sandbox, hiddenPaths: config.engine.sandbox.hiddenPaths.filter((p) => !p.endsWith(".yaml")) },
    },
  };
}

const printed = (argv: string[], env: NodeJS.ProcessEnv = {}) => printConfig([...base(), ...argv], env);
const sourceOf = (yaml: string, name: string) => new RegExp(`^${name}: .* # (.*)$`, "m").exec(yaml)?.[1];

describe("hotplexd --print-config", () => {
  const names = (Object.keys(OPTIONS) as OptionName[]).filter((name) => name !== "config");

  it.each(names)("round-trips --%s by flag, environment and file, into the config and the printout", (name) => {
    const { value, with: companions } = sampleFor(name);
    expect(value).not.toBe(OPTIONS[name].default);
    const env = OPTIONS[name].env;
    const file = writeFile(`${name}: ${JSON.stringify(value)}\n`);
    const ways = {
      flag: { argv: [...companions, `--${name}`, value], env: AMBIENT, source: "flag" },
      env: { argv: companions, env: { ...AMBIENT, [env]: value }, source: `environment ${env}` },
      file: { argv: [...companions, "--config", file], env: AMBIENT, source: `file ${file}:1` },
    };
    const configs = Object.entries(ways).map(([way, { argv, env: vars, source }]) => {
      const yaml = printed(argv, vars);
      const shown = parse(yaml) as Record<string, unknown>;
      expect(String(shown[name]), `--${name} by ${way}`).toBe(maskedValue(name, value));
      expect(sourceOf(yaml, name), `--${name} by ${way}`).toBe(source);
      return comparable(loadConfig([...base(), ...argv], vars, { createDirectories: false }));
    });
    expect(configs[1]).toEqual(configs[0]);
    expect(configs[2]).toEqual(configs[0]);
    // The value is used: the config differs from the one without it (or needs it: TLS needs both files).
    let without: ReturnType<typeof comparable> | undefined;
    try {
      without = comparable(loadConfig([...base(), ...companions], AMBIENT, { createDirectories: false }));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
    }
    if (without) expect(configs[0], `--${name}=${value} changes nothing in the config`).not.toEqual(without);
  });

  it("takes flags over the environment over the file over the defaults, and says which", () => {
    const file = writeFile("max-sessions: 3\nqueue-limit: 5\nturn-timeout: 2m\n");
    const yaml = printed(["--config", file, "--max-sessions", "9"], { HOTPLEX_MAX_SESSIONS: "4", HOTPLEX_QUEUE_LIMIT: "6" });
    const shown = parse(yaml) as Record<string, unknown>;
    expect(shown).toMatchObject({ "max-sessions": 9, "queue-limit": 6, "turn-timeout": "2m", "stop-grace": "5s" });
    expect(sourceOf(yaml, "max-sessions")).toBe("flag");
    expect(sourceOf(yaml, "queue-limit")).toBe("environment HOTPLEX_QUEUE_LIMIT");
    expect(sourceOf(yaml, "turn-timeout")).toBe(`file ${file}:3`);
    expect(sourceOf(yaml, "stop-grace")).toBe("default");
    expect(yaml).toContain(`# Config file: ${file}`);
  });

  it("masks secrets: tokens, token hashes, passwords in URLs; never prints what a key or token file holds", () => {
    const hash = hashToken("hash-token-0123456789abcdef");
    const file = writeFile(
      `tls: { cert: ${files.cert}, key: ${files.key} }\n` +
        `credentials:\n  - { name: app, tenant: acme, roles: [client], token-sha256: ${hash} }\n` +
        `  - { name: ci, tenant: acme, roles: [reader], token-file: ${files.token} }\n`,
    );
    const yaml = printed(["--config", file], { HOTPLEX_TOKEN: "env-token-0123456789abcdef" });
    for (const secret of ["env-token-0123456789abcdef", hash, "file-token-0123456789abcdef", "SECRET-KEY-MATERIAL", "CERTIFICATE-BYTES"]) {
      expect(yaml).not.toContain(secret);
    }
    const shown = parse(yaml) as Record<string, unknown>;
    expect(shown).toMatchObject({ token: MASKED, "tls-key": files.key, "tls-cert": files.cert });
    expect(shown.credentials).toEqual([
      { name: "app", tenant: "acme", roles: ["client"], "token-sha256": MASKED },
      { name: "ci", tenant: "acme", roles: ["reader"], "token-file": files.token },
    ]);
    expect(sourceOf(yaml, "tls-key")).toBe(`file ${file}:1`);
    // A password in a URL-valued option (a store address, an exporter endpoint) is masked too.
    expect(maskedValue("agent-home", "redis://user:hunter2@cache:6379/0")).toBe(`redis://user:${MASKED}@cache:6379/0`);
    expect(maskedValue("agent-home", "http://127.0.0.1:4318")).toBe("http://127.0.0.1:4318");
  });

  it("prints the tenants' policies, limits and rules as they are in force, in the file's keys", () => {
    const file = writeFile(
      "idle-timeout: 20m\ntenant-defaults:\n  limits: { live-agents: 4 }\ntenants:\n  acme:\n    policy: { models: [claude-sonnet-*], max-idle-timeout: 90s }\n    rules: { sets: [destructive] }\n",
    );
    const shown = parse(printed(["--config", file])) as { "tenant-defaults": Record<string, Record<string, unknown>>; tenants: Record<string, Record<string, Record<string, unknown>>> };
    expect(shown["tenant-defaults"].limits).toMatchObject({ "live-agents": 4 });
    expect(shown["tenant-defaults"].policy).toMatchObject({ "max-idle-timeout": "20m", models: ["*"] });
    expect(shown.tenants.acme?.policy).toMatchObject({ models: ["claude-sonnet-*"], "max-idle-timeout": "90s" });
    expect(shown.tenants.acme?.limits).toMatchObject({ "live-agents": 4 });
    expect(shown.tenants.acme?.rules).toMatchObject({ sets: ["destructive"] });
  });

  it("prints what a config file can hold again: the printout, secrets aside, loads to the same config", () => {
    const file = writeFile("max-sessions: 3\nproviders: [claude-code, codex]\ntenants:\n  acme:\n    limits: { live-agents: 2 }\n");
    const again = writeFile(printed(["--config", file]));
    expect(comparable(loadConfig([...base(), "--config", again], {}, { createDirectories: false }))).toEqual(
      comparable(loadConfig([...base(), "--config", file], {}, { createDirectories: false })),
    );
  });

  it("runs as `hotplexd --print-config`: exits 0 with the YAML, or 2 naming the file, line and key of a mistake", async () => {
    const run = promisify(execFile);
    const hotplexd = path.join(repoRoot, "src", "cli", "hotplexd.ts");
    const env = { PATH: process.env.PATH ?? "", HOME: tmp, HOTPLEX_WORK_ROOT: path.join(tmp, "work") };
    const good = writeFile("max-sessions: 3\n");
    const { stdout } = await run(process.execPath, ["--import", "tsx", hotplexd, "--print-config", "--config", good], { cwd: repoRoot, env });
    expect(parse(stdout)).toMatchObject({ "max-sessions": 3, listen: "127.0.0.1:7070" });
    const bad = writeFile("max-sessions: 3\ntenants:\n  acme:\n    limits:\n      live-agent: 3\n");
    const failed = await run(process.execPath, ["--import", "tsx", hotplexd, "--print-config", "--config", bad], { cwd: repoRoot, env }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 2 });
    expect((failed as { stderr: string }).stderr).toContain(`${bad}:5: tenants.acme.limits.live-agent: unknown key "live-agent"`);
  });
});

describe("the config file's mistakes", () => {
  const fails = (text: string) => {
    try {
      loadConfig([...base(), "--config", writeFile(text)], {}, { createDirectories: false });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("expected a ConfigError");
  };

  it("names an unknown key nested in a tenant, with its line", () => {
    expect(fails("store: memory\ntenants:\n  acme:\n    policy:\n      model: [x]\n")).toMatch(/\.yaml:5: tenants\.acme\.policy\.model: unknown key "model"/);
  });

  it("names a bad value nested in a tenant, with its line", () => {
    expect(fails("tenants:\n  acme:\n    limits:\n      live-agents: many\n")).toMatch(/\.yaml:4: tenants\.acme\.limits\.live-agents: /);
    expect(fails("tenants:\n  acme:\n    policy:\n      max-idle-timeout: soon\n")).toMatch(/\.yaml:4: tenants\.acme\.policy\.max-idle-timeout "soon" must be a duration/);
  });

  it("names a bad session-log-bytes", () => {
    expect(fails("session-log-bytes: 10\n")).toMatch(/\.yaml:1: session-log-bytes 10 must be 0 \(no log\) or from 1024 to/);
  });
});

describe("providers in the config file", () => {
  it("takes providers, executables and ACP agents as YAML lists and mappings, the same as the flags", () => {
    const file = writeFile(
      "providers: [my-agent, claude-code, codex]\n" +
        "provider-paths: { claude-code: /opt/claude, codex: /opt/codex }\n" +
        "acp-agents:\n  my-agent: [/opt/my-agent, --acp]\n  other: /opt/other --stdio\n" +
        "agent-env: [FOO, BAR_*]\nsandbox-read-only: [/srv/a, /srv/b]\n",
    );
    const viaFile = loadConfig([...base(), "--config", file], {}, { createDirectories: false });
    const viaFlags = loadConfig(
      [
        ...base(),
        "--providers=my-agent,claude-code,codex",
        "--provider-paths=claude-code=/opt/claude,codex=/opt/codex",
        "--acp-agents=my-agent=/opt/my-agent --acp,other=/opt/other --stdio",
        "--agent-env=FOO,BAR_*",
        "--sandbox-read-only=/srv/a,/srv/b",
      ],
      {},
      { createDirectories: false },
    );
    expect(comparable(viaFile)).toEqual(comparable(viaFlags));
    expect(viaFile.engine.providers).toMatchObject({
      enabled: ["my-agent", "claude-code", "codex"],
      defaultProvider: "my-agent",
      executables: { "claude-code": "/opt/claude", codex: "/opt/codex" },
      acpAgents: { "my-agent": ["/opt/my-agent", "--acp"], other: ["/opt/other", "--stdio"] },
    });
  });

  it("refuses list entries the flag form could not hold, naming the key and line", () => {
    const fails = (text: string) => {
      try {
        loadConfig([...base(), "--config", writeFile(text)], {}, { createDirectories: false });
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("expected a ConfigError");
    };
    expect(fails("providers: [claude-code, 'codex,opencode']\n")).toMatch(/\.yaml:1: providers/);
    expect(fails("acp-agents:\n  my-agent: ['/opt/my agent', --acp]\n")).toMatch(/\.yaml:2: acp-agents\.my-agent/);
    expect(fails("provider-paths: { claude-code: { path: /opt/x } }\n")).toMatch(/\.yaml:1: provider-paths/);
  });
});

describe("docs/ops.md", () => {
  it("lists every option under ## Config file", () => {
    const ops = readFileSync(path.join(repoRoot, "docs", "ops.md"), "utf8");
    const start = ops.indexOf("\n## Config file");
    expect(start, "docs/ops.md has a ## Config file section").toBeGreaterThanOrEqual(0);
    const next = ops.indexOf("\n## ", start + 1);
    const section = ops.slice(start, next === -1 ? undefined : next);
    const missing = Object.keys(OPTIONS).filter((name) => !section.includes(`\`${name}\``));
    expect(missing, "options missing from the Config file section of docs/ops.md").toEqual([]);
  });
});
