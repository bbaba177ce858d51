import { execa } from "execa";

// How long an agent's `--version` may take (a cold npm-installed CLI needs a moment).
const VERSION_TIMEOUT_MS = 10_000;

/**
 * What `<executable> --version` prints, first line, trimmed and bounded; "" when it
 * cannot run. The executable comes from the server config, never from a client.
 */
export async function agentVersion(
  executable: string,
  args: readonly string[] = ["--version"],
  env: Readonly<Record<string, string>> = {},
): Promise<string> {
  const result = await execa(executable, args, {
    reject: false,
    timeout: VERSION_TIMEOUT_MS,
    stdin: "ignore",
    extendEnv: false,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/", ...env },
  });
  if (result.exitCode !== 0) return "";
  return String(result.stdout).split("\n")[0]?.trim().slice(0, 200) ?? "";
}
