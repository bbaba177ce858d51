import { readFileSync } from "node:fs";
import path from "node:path";
import { isMap, isScalar, LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { ROLES } from "../security/principal.js";
import { ConfigError, OPTIONS, type OptionName } from "./options.js";

// What the file may hold, key by key: every option by its flag name, plus sections. Keys
// are strict: a misspelt key is an error naming it, never silently ignored.
const scalar = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const stringList = z.array(z.string());

const policySchema = z
  .object({
    "permission-modes": stringList.optional(),
    "allowed-tools": stringList.optional(),
    "disallowed-tools": stringList.optional(),
    models: stringList.optional(),
    "allow-system-prompt": z.boolean().optional(),
    "allow-append-system-prompt": z.boolean().optional(),
    "max-idle-timeout": scalar.optional(),
    "share-work-dirs": z.boolean().optional(),
  })
  .strict();

const limitsSchema = z
  .object({
    "stored-sessions": z.number().int().min(0).optional(),
    "live-agents": z.number().int().min(0).optional(),
    "queued-turns": z.number().int().min(0).optional(),
    "prompt-bytes": z.number().int().min(0).optional(),
    "turns-per-minute": z.number().int().min(0).optional(),
    "retained-event-bytes": z.number().int().min(0).optional(),
  })
  .strict();

// The tenant's rules: built-in sets by name, the operator's own rules (checked by the rule
// engine when the settings are built, so a bad one names its key), paths file tools may write.
const rulesSchema = z
  .object({
    sets: stringList.optional(),
    custom: z.array(z.record(z.string(), z.unknown())).optional(),
    "allow-paths": stringList.optional(),
  })
  .strict();

const tenantSchema = z.object({ policy: policySchema.optional(), limits: limitsSchema.optional(), rules: rulesSchema.optional() }).strict();

const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const credentialSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._:@-]{1,64}$/, "a name of 1-64 characters of [A-Za-z0-9._:@-]"),
    tenant: z.string().regex(TENANT_NAME, "a tenant name: 1-63 of [a-z0-9_-]").optional(),
    roles: z.array(z.enum(ROLES)).min(1),
    "token-sha256": z.string().regex(/^[0-9a-fA-F]{64}$/, "the hex SHA-256 of the token (64 hex digits)").optional(),
    "token-file": z.string().min(1).optional(),
    "client-cert-sha256": z
      .string()
      .regex(/^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/, "the hex SHA-256 fingerprint of the certificate")
      .optional(),
  })
  .strict()
  .superRefine((credential, ctx) => {
    const secrets = ["token-sha256", "token-file", "client-cert-sha256"].filter((key) => credential[key as keyof typeof credential]);
    if (secrets.length !== 1) {
      ctx.addIssue({ code: "custom", message: "needs exactly one of token-sha256, token-file or client-cert-sha256" });
    }
    const admin = credential.roles.includes("admin");
    if (admin && credential.roles.length > 1) {
      ctx.addIssue({ code: "custom", path: ["roles"], message: "admin is never combined with another role: an admin credential is not a client credential" });
    }
    if (admin && credential.tenant) {
      ctx.addIssue({ code: "custom", path: ["tenant"], message: "an admin credential acts on every tenant and names none" });
    }
    if (!admin && !credential.tenant) {
      ctx.addIssue({ code: "custom", path: ["tenant"], message: "a client or reader credential must name its tenant" });
    }
  });

// Options that are comma-separated lists on the command line may be YAML lists in the file,
// and the NAME=VALUE lists (an executable per provider, a command per ACP agent) mappings:
//   providers: [claude-code, codex]
//   provider-paths: { claude-code: /opt/claude/bin/claude }
//   acp-agents: { my-agent: [/usr/local/bin/my-agent, --acp] }
// Each becomes the string the flag would be, so it is checked the same way.
const LIST_OPTIONS: ReadonlySet<string> = new Set(["providers", "agent-env", "sandbox-allowed-hosts", "sandbox-read-only"]);
const MAP_OPTIONS: ReadonlySet<string> = new Set(["provider-paths", "acp-agents"]);
const noComma = (value: string) => !value.includes(",");
const listItem = z.union([z.string(), z.number()]).transform(String).refine(noComma, "an entry may not contain a comma");
const listValue = z.union([scalar, z.array(listItem).transform((items) => items.join(","))]);
// A command as a list: its words (arguments are split at spaces, as on the command line).
const word = z.string().min(1).regex(/^[^\s,]+$/, "a word of the command may not contain spaces or commas");
const mapValue = z.union([
  scalar,
  z
    .record(
      z.string().regex(/^[^=,\s]+$/, "a name without =, commas or spaces"),
      z.union([listItem, z.array(word).min(1).transform((words) => words.join(" "))]),
    )
    .transform((entries) =>
      Object.entries(entries)
        .map(([name, value]) => `${name}=${value}`)
        .join(","),
    ),
]);
const optionShape = Object.fromEntries(
  Object.keys(OPTIONS)
    .filter((name) => name !== "config")
    .map((name) => [name, (LIST_OPTIONS.has(name) ? listValue : MAP_OPTIONS.has(name) ? mapValue : scalar).optional()]),
);

/** One launch config to keep agents started ahead of demand for (hotplex.yaml `prewarm`). */
const prewarmSchema = z
  .object({
    tenant: z.string().regex(TENANT_NAME, "a tenant name: 1-63 of [a-z0-9_-]").optional(),
    provider: z.string().min(1).optional(),
    model: z.string().optional(),
    "permission-mode": z.string().optional(),
    "allowed-tools": stringList.optional(),
    "disallowed-tools": stringList.optional(),
    "system-prompt": z.string().optional(),
    "append-system-prompt": z.string().optional(),
    approvals: z.enum(["agent", "client"]).optional(),
    size: z.number().int().min(1).max(64),
    idle: z.string().min(1).optional(),
  })
  .strict();

const fileSchema = z
  .object({
    ...optionShape,
    tls: z.object({ cert: z.string().min(1), key: z.string().min(1), "client-ca": z.string().min(1).optional() }).strict().optional(),
    credentials: z.array(credentialSchema).optional(),
    "tenant-defaults": tenantSchema.optional(),
    tenants: z.record(z.string().regex(TENANT_NAME, "a tenant name: 1-63 of [a-z0-9_-]"), tenantSchema).optional(),
    prewarm: z.array(prewarmSchema).max(64).optional(),
  })
  .strict();

export type PolicySpec = z.infer<typeof policySchema>;
export type LimitsSpec = z.infer<typeof limitsSchema>;
export type TenantSpec = z.infer<typeof tenantSchema>;
export type RulesSpec = z.infer<typeof rulesSchema>;
export type CredentialEntry = z.infer<typeof credentialSchema>;
export type PrewarmEntry = z.infer<typeof prewarmSchema>;

/** The config file, validated but not yet merged with flags and environment. */
export interface ConfigFile {
  path: string;
  /** Options by flag name, as strings (parsed like flags, so errors read the same). */
  options: Partial<Record<OptionName, string>>;
  /** `<file>:<line>` of each option given, for error messages. */
  where: (key: string | readonly (string | number)[]) => string;
  tls?: { cert: string; key: string; clientCa?: string };
  credentials: CredentialEntry[];
  tenantDefaults: TenantSpec | undefined;
  tenants: Map<string, TenantSpec>;
  prewarm: PrewarmEntry[];
}

// A value that fits no form of a union (a list option given a list with a bad entry) is
// reported by the form that got furthest, at its key, not as "Invalid input".
function specificIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union" || issue.errors.length === 0) return issue;
  const nested = issue.errors.flatMap((alternative) => (alternative[0] ? [specificIssue(alternative[0])] : []));
  const furthest = nested.reduce<z.core.$ZodIssue | undefined>((best, next) => (!best || next.path.length > best.path.length ? next : best), undefined);
  // An alternative that failed at the value itself (a string where a list was given) says less than "Invalid input".
  if (!furthest || furthest.path.length === 0) return issue;
  return { ...furthest, path: [...issue.path, ...furthest.path] };
}

/**
 * Reads and validates a YAML config file. Errors name the file, the line and the key
 * (`hotplex.yaml:12: credentials.0.roles: ...`), never quote a secret.
 */
export function readConfigFile(file: string): ConfigFile {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read the config file ${absolute}: ${(error as Error).message}`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? 1 : lineCounter.linePos(offset).line);
  if (doc.errors.length > 0) {
    const error = doc.errors[0];
    throw new ConfigError(`${absolute}:${lineOf(error?.pos[0])}: ${error?.message.split("\n")[0]}`);
  }
  const where = (key: string | readonly (string | number)[]) => {
    const keys = typeof key === "string" ? [key] : [...key];
    // The deepest node of the path that exists: a missing key is reported at its parent.
    for (let depth = keys.length; depth >= 0; depth -= 1) {
      const node = depth === 0 ? doc.contents : doc.getIn(keys.slice(0, depth), true);
      if (node && typeof node === "object" && "range" in node && node.range) {
        return `${absolute}:${lineOf((node.range as [number, number, number])[0])}`;
      }
    }
    return absolute;
  };
  const value = doc.toJS() ?? {};
  if (!isMap(doc.contents) && !(doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null))) {
    throw new ConfigError(`${absolute}:1: the config file must be a mapping of option names to values`);
  }
  const parsed = fileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0] && specificIssue(parsed.error.issues[0]);
    const keys = (issue?.path ?? []).map((part) => (typeof part === "number" ? part : String(part)));
    const unknown = issue?.code === "unrecognized_keys" ? issue.keys : undefined;
    const at = unknown ? [...keys, unknown[0] ?? ""] : keys;
    const name = at.join(".") || "(top level)";
    const message = unknown ? `unknown key "${unknown.join('", "')}" (see hotplexd --help for the options)` : issue?.message;
    throw new ConfigError(`${where(at)}: ${name}: ${message}`);
  }
  const data = parsed.data;
  const options: Partial<Record<OptionName, string>> = {};
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    const given = (data as Record<string, unknown>)[name];
    if (typeof given === "string") options[name] = given;
  }
  const tls = data.tls ? { cert: data.tls.cert, key: data.tls.key, clientCa: data.tls["client-ca"] } : undefined;
  return {
    path: absolute,
    options,
    where,
    tls,
    credentials: data.credentials ?? [],
    tenantDefaults: data["tenant-defaults"],
    tenants: new Map(Object.entries(data.tenants ?? {})),
    prewarm: data.prewarm ?? [],
  };
}
