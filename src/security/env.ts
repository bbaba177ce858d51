/**
 * The variables an agent process may inherit from the daemon. Everything else (API keys
 * of other services, the daemon's own token) stays out: an earlier system passed its
 * whole environment, admin token included, to every agent.
 * Entries ending in "*" match a prefix. These are the common ones; each provider adds
 * its own (its API keys and settings) for its sessions only.
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
];

/**
 * A session's environment: the daemon's agent environment without what only other
 * providers may see (one agent's API key never reaches another agent), `own` and the
 * common variables kept.
 */
export function environmentFor(
  env: Readonly<Record<string, string>>,
  own: readonly string[],
  others: readonly string[],
): Record<string, string> {
  const mine = matcher([...DEFAULT_AGENT_ENV_ALLOW, ...own]);
  const theirs = matcher(others);
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (theirs(name) && !mine(name)) continue;
    result[name] = value;
  }
  return result;
}

function matcher(allow: readonly string[]): (name: string) => boolean {
  const exact = new Set(allow.filter((name) => !name.endsWith("*")));
  const prefixes = allow.filter((name) => name.endsWith("*")).map((name) => name.slice(0, -1));
  return (name) => exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix));
}

/** Copies the allowed variables of `source`; `HOTPLEX_*` never passes. */
export function agentEnvironment(
  source: NodeJS.ProcessEnv,
  allow: readonly string[] = DEFAULT_AGENT_ENV_ALLOW,
): Record<string, string> {
  const allowed = matcher(allow);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || name.startsWith("HOTPLEX_")) continue;
    if (allowed(name)) env[name] = value;
  }
  return env;
}
