/**
 * Credential and key exfiltration: reading private keys and cloud credentials, asking
 * the cloud metadata endpoint for the machine's credentials, and sending secrets out
 * (a file or the environment to curl, nc, scp…). Public keys, known_hosts and using a
 * key as a key (ssh -i, ssh-add) are fine.
 */
import type { Invocation } from "../facts.js";
import { DOWNLOADERS, NETWORK } from "../files.js";
import { homeRelative } from "../normalize.js";
import { describe, type RuleDef, ruleSet } from "../rule.js";

/** Secrets that give away an identity or a cloud account, home-relative or absolute. */
const KEYS = [
  /^~\/\.ssh$/, /^~\/\.ssh\/(?!.*\.pub$)(id_[^/]*|[^/]*_key|[^/]*\.pem|identity)$/, /\/id_(rsa|dsa|ecdsa|ed25519)(_sk)?$/,
  /^~\/\.aws(\/(credentials|sso\/cache(\/.*)?|cli\/cache(\/.*)?))?$/, /^~\/\.config\/gcloud(\/(credentials\.db|access_tokens\.db|application_default_credentials\.json|legacy_credentials(\/.*)?))?$/,
  /^~\/\.azure(\/(accessTokens\.json|msal_token_cache\.(json|bin)|.*\.pem))?$/, /^~\/\.gnupg(\/(private-keys-v1\.d(\/.*)?|secring\.gpg))?$/,
  /^\/etc\/(shadow|gshadow|master\.passwd|sudoers)(-|\.bak)?$/, /^\/etc\/ssh\/ssh_host_[^/]*_key$/, /^~\/\.password-store(\/.*)?$/,
  /^\/(var\/run|run)\/secrets(\/.*)?$/, /^\/proc\/(self|\d+|\*)\/environ$/, /^~\/\.local\/share\/keyrings(\/.*)?$/, /^~\/Library\/Keychains(\/.*)?$/,
];
/** Tokens a developer machine has: reading one may be legitimate, so a human decides. */
const TOKENS = [
  /^~\/\.netrc$/, /^~\/\.git-credentials$/, /^~\/\.npmrc$/, /^~\/\.pypirc$/, /^~\/\.docker\/config\.json$/, /^~\/\.kube\/config$/,
  /^~\/\.config\/gh\/hosts\.yml$/, /^~\/\.vault-token$/, /^~\/\.terraform\.d\/credentials\.tfrc\.json$/, /^~\/\.cargo\/credentials(\.toml)?$/,
  /^~\/\.config\/hub$/, /^~\/\.gem\/credentials$/, /^~\/\.config\/rclone\/rclone\.conf$/, /^~\/\.boto$/, /^~\/\.s3cfg$/,
];
const METADATA = /169\.254\.169\.254|169\.254\.170\.2|fd00:ec2::254|metadata\.google\.internal|100\.100\.100\.200|metadata\.azure\.com|\b0xa9fea9fe\b|\b2852039166\b/i;
const SENDERS = new Set([...DOWNLOADERS, ...NETWORK, "scp", "sftp", "rsync", "ftp", "mail", "mailx", "sendmail", "mutt", "openssl", "ssh"]);
const ENV_DUMPS = new Set(["env", "printenv", "set", "export", "declare", "compgen"]);

export function isKeyPath(path: string, home: string): boolean {
  const p = homeRelative(path, home);
  return KEYS.some((re) => re.test(p));
}

export function isTokenPath(path: string, home: string): boolean {
  const p = homeRelative(path, home);
  return TOKENS.some((re) => re.test(p));
}

function readsSecret(inv: Invocation, home: string): boolean {
  return ENV_DUMPS.has(inv.program) && inv.args.length === 0 || (inv.program === "env" && inv.args.every((w) => w.text.startsWith("-"))) || inv.args.some((w) => isKeyPath(w.text, home) || isTokenPath(w.text, home));
}

export const CREDENTIALS = ruleSet("credentials", [
  {
    id: "read-key",
    severity: "block",
    description: "reads a private key, cloud credentials or the password database",
    file(file, ctx) {
      if (file.op !== "read") return undefined;
      if (file.path.endsWith("/.ssh") || file.path.endsWith("/.aws") || file.path.endsWith("/.gnupg")) return file.recursive && isKeyPath(file.path, ctx.home) ? describe(file) : undefined;
      return isKeyPath(file.path, ctx.home) ? describe(file) : undefined;
    },
  },
  {
    id: "read-token",
    severity: "ask",
    description: "reads a stored access token (netrc, git credentials, registry, cluster or CLI login)",
    file(file, ctx) {
      return file.op === "read" && isTokenPath(file.path, ctx.home) ? describe(file) : undefined;
    },
  },
  {
    id: "tamper-key",
    severity: "block",
    description: "overwrites or deletes private keys or credentials",
    file(file, ctx) {
      if (file.op === "read" || ctx.allowed(file.path)) return undefined;
      return isKeyPath(file.path, ctx.home) && !file.path.startsWith("/etc/") ? describe(file) : undefined;
    },
  },
  {
    id: "metadata-endpoint",
    severity: "block",
    description: "contacts the cloud metadata endpoint (instance credentials)",
    invocation(inv) {
      if (!inv.hot) return undefined;
      if (inv.args.some((w) => METADATA.test(w.text)) || inv.redirects.some((r) => METADATA.test(r.target.text))) return inv.line;
      return undefined;
    },
    facts(facts) {
      for (const { code } of facts.codes) if (METADATA.test(code)) return code.slice(0, 256);
      return undefined;
    },
  },
  {
    id: "exfiltrate",
    severity: "block",
    description: "sends secrets (keys, tokens, the environment) over the network",
    invocation(inv, ctx) {
      if (!SENDERS.has(inv.program)) return undefined;
      if (inv.upstream.some((u) => readsSecret(u, ctx.home))) return `… | ${inv.line}`;
      if (inv.inner.some((u) => readsSecret(u, ctx.home))) return inv.line;
      if (inv.args.some((w) => /(^|=)@/.test(w.text) && isKeyOrToken(w.text.slice(w.text.indexOf("@") + 1), ctx.home))) return inv.line;
      return undefined;
    },
  },
] satisfies RuleDef[]);

function isKeyOrToken(raw: string, home: string): boolean {
  const p = raw.startsWith("~") ? home + raw.slice(1) : raw;
  return isKeyPath(p, home) || isTokenPath(p, home);
}
