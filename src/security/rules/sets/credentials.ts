/**
 * Credential and key exfiltration: reading private keys and cloud credentials, asking
 * the cloud metadata endpoint for the machine's credentials, and sending secrets out
 * (a file or the environment to curl, nc, scp…). Public keys, known_hosts and using a
 * key as a key (ssh -i, ssh-add) are fine.
 */
import type { Invocation } from "../facts.js";
import { DOWNLOADERS, NETWORK } from "../files.js";
import { describe, type RuleDef, ruleSet } from "../rule.js";
import { isKeyPath, isTokenPath, readsSecret } from "../secrets.js";

const METADATA = /169\.254\.169\.254|169\.254\.170\.2|fd00:ec2::254|metadata\.google\.internal|100\.100\.100\.200|metadata\.azure\.com|\b0xa9fea9fe\b|\b2852039166\b/i;
const SENDERS = new Set([...DOWNLOADERS, ...NETWORK, "scp", "sftp", "rsync", "ftp", "mail", "mailx", "sendmail", "mutt", "openssl", "ssh"]);

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
      if (inv.upstream.secretReader) return `… | ${inv.line}`;
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
