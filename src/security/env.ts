/**
 * The variables an agent process may inherit from the daemon. Everything else (API keys
 * of other services, the daemon's own token) stays out: an earlier system passed its
 * whole environment, admin token included, to every agent.
 * Entries ending in "*" match a prefix.
 */
export const DEFAULT_AGENT_ENV_ALLOW: readonly string[] = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LC_*",
  "TERM",
  "TZ",
  "TMPDIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "NODE_EXTRA_CA_CERTS",
  "ANTHROPIC_*",
  "CLAUDE_*",
  "DISABLE_AUTOUPDATER",
  "DISABLE_TELEMETRY",
  "IS_SANDBOX",
];

/** Copies the allowed variables of `source`; `HOTPLEX_*` never passes. */
export function agentEnvironment(
  source: NodeJS.ProcessEnv,
  allow: readonly string[] = DEFAULT_AGENT_ENV_ALLOW,
): Record<string, string> {
  const exact = new Set(allow.filter((name) => !name.endsWith("*")));
  const prefixes = allow.filter((name) => name.endsWith("*")).map((name) => name.slice(0, -1));
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || name.startsWith("HOTPLEX_")) continue;
    if (exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix))) env[name] = value;
  }
  return env;
}
