import { Document, isMap, isScalar, type Node, type Pair, type Scalar, type YAMLMap } from "yaml";
import { DEFAULT_RULES, type TenantSettings } from "../security/tenant-policy.js";
import { loadConfig, type ResolvedOption, resolveOptions } from "./config.js";
import { OPTIONS, type OptionName, type OptionSpec } from "./options.js";

/** What a masked secret prints as. */
export const MASKED = "<masked>";

// Names of options whose value is a secret by their name alone, whatever OPTIONS says: a
// password, a token, a key given as a value (a key *file* is a path, and is shown).
const SECRET_NAME = /(password|secret|(^|-)token$|-key-data$|credential)/;
// A password in a URL: scheme://user:password@host.
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@/\s]+@/gi;

/** An option's value as --print-config shows it: a secret masked, a URL's password too. */
export function maskedValue(name: OptionName, value: string): string {
  const spec: OptionSpec = OPTIONS[name];
  if (value && (spec.secret || SECRET_NAME.test(name))) return MASKED;
  return value.replace(URL_PASSWORD, `$1${MASKED}@`);
}

/**
 * The effective configuration as YAML, the way a config file would hold it: every option
 * (flags over the environment over the config file over the defaults), with a comment
 * saying where each value came from, then the credentials and the tenants as they are in
 * force. Secrets are masked: tokens and their hashes, passwords in URLs; files holding
 * secrets are shown by their path only. Checks the config first: a mistake throws the
 * ConfigError the daemon would stop with.
 */
export function printConfig(argv: string[], env: NodeJS.ProcessEnv): string {
  const config = loadConfig(argv, env, { createDirectories: false });
  const resolved = resolveOptions(argv, env);
  const { file } = resolved;
  const doc = new Document({});
  const root = doc.contents as YAMLMap;
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    let option: ResolvedOption = resolved.get(name);
    // TLS files may come from the file's tls section instead of the options.
    const fromTls = tlsFromSection(name, file?.tls);
    if (option.source === "default" && fromTls && file) option = { value: fromTls.value, where: file.where(["tls", fromTls.key]), source: "file" };
    // The file itself is named in the header: a config file holds no `config` key.
    if (name === "config") continue;
    const value = maskedValue(name, option.value);
    const node = doc.createNode(scalarOf(value)) as Scalar;
    node.comment = ` ${describeSource(option)}`;
    root.add(doc.createPair(name, node));
  }
  if (file && file.credentials.length > 0) {
    root.add(
      doc.createPair(
        "credentials",
        file.credentials.map((entry) => ({
          ...entry,
          ...(entry["token-sha256"] ? { "token-sha256": MASKED } : {}),
        })),
      ),
    );
  }
  const defaults = config.engine.tenants.settingsOf("");
  root.add(doc.createPair("tenant-defaults", tenantSpec(defaults)));
  const tenants = Object.fromEntries(config.engine.tenants.names.map((name) => [name, tenantSpec(config.engine.tenants.settingsOf(name))]));
  if (Object.keys(tenants).length > 0) root.add(doc.createPair("tenants", tenants));
  doc.commentBefore =
    " The effective configuration of hotplexd: flags over the environment over the config file\n" +
    " over the defaults. Secrets are masked. Each option's comment says where its value came from.\n" +
    (file ? ` Config file: ${file.path}` : " No config file (--config, HOTPLEX_CONFIG).");
  compactFlowLists(doc.contents);
  return doc.toString({ lineWidth: 0 });
}

function tlsFromSection(name: OptionName, tls: { cert: string; key: string; clientCa?: string } | undefined): { key: string; value: string } | undefined {
  if (!tls) return undefined;
  if (name === "tls-cert") return { key: "cert", value: tls.cert };
  if (name === "tls-key") return { key: "key", value: tls.key };
  if (name === "tls-client-ca" && tls.clientCa) return { key: "client-ca", value: tls.clientCa };
  return undefined;
}

function describeSource(option: ResolvedOption): string {
  switch (option.source) {
    case "flag":
      return "flag";
    case "env":
      return `environment ${option.where.split(" ")[0]}`;
    case "file":
      return `file ${option.where.replace(/: [^:]*$/, "")}`;
    case "default":
      return "default";
  }
}

// A whole number prints as a number, everything else as a string (the file reads both).
function scalarOf(value: string): string | number {
  return /^(0|[1-9]\d{0,14})$/.test(value) ? Number(value) : value;
}

// A tenant's settings in force, under the file's keys.
function tenantSpec(settings: TenantSettings): Record<string, unknown> {
  const { policy, limits } = settings;
  const rules = settings.rules ?? DEFAULT_RULES;
  return {
    policy: {
      "permission-modes": [...policy.permissionModes],
      "allowed-tools": [...policy.allowedTools],
      "disallowed-tools": [...policy.disallowedTools],
      models: [...policy.models],
      "allow-system-prompt": policy.allowSystemPrompt,
      "allow-append-system-prompt": policy.allowAppendSystemPrompt,
      "max-idle-timeout": duration(policy.maxIdleTimeoutMs),
      "share-work-dirs": policy.shareWorkDirs,
    },
    limits: {
      "stored-sessions": limits.storedSessions,
      "live-agents": limits.liveAgents,
      "queued-turns": limits.queuedTurns,
      "prompt-bytes": limits.promptBytes,
      "turns-per-minute": limits.turnsPerMinute,
      "retained-event-bytes": limits.retainedEventBytes,
    },
    rules: { sets: [...rules.sets], custom: rules.custom.map((rule) => ({ ...rule })), "allow-paths": [...rules.allowPaths] },
  };
}

// Milliseconds as the largest unit that divides them ("30m", "90s", "250ms").
export function duration(ms: number): string {
  if (ms === 0) return "0";
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

// Lists of scalars print on one line ([a, b]), like the examples in the docs.
function compactFlowLists(node: Node | null): void {
  if (!node) return;
  if (isMap(node)) {
    for (const pair of node.items as Pair<unknown, Node>[]) compactFlowLists(pair.value);
    return;
  }
  if ("items" in node && Array.isArray((node as { items: unknown[] }).items)) {
    const seq = node as unknown as { items: Node[]; flow?: boolean };
    if (seq.items.every((item) => isScalar(item))) seq.flow = true;
    else for (const item of seq.items) compactFlowLists(item);
  }
}
