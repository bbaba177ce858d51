import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";

/**
 * The native Codex binary behind an npm-installed `codex`. The npm package's `codex` is a
 * Node launcher that, on Node 20, stays as a parent process of the binary (one more
 * process and ~50 ms per start, and signals relayed); the binary sits in the platform
 * package beside it (`@openai/codex-<os>-<arch>/vendor/<target>/`). Anything else (a
 * binary already, or a command on PATH) is returned as given.
 */
export function nativeCodex(executable: string): string {
  let real: string;
  try {
    real = realpathSync(executable);
  } catch {
    return executable;
  }
  if (!real.endsWith(path.join("@openai", "codex", "bin", "codex.js"))) return executable;
  const scope = path.dirname(path.dirname(path.dirname(real)));
  const platformPackage = path.join(scope, `codex-${process.platform}-${process.arch}`, "vendor");
  if (!existsSync(platformPackage)) return executable;
  for (const target of readdirSync(platformPackage)) {
    const manifest = path.join(platformPackage, target, "codex-package.json");
    if (!existsSync(manifest)) continue;
    try {
      const { entrypoint } = JSON.parse(readFileSync(manifest, "utf8")) as { entrypoint?: unknown };
      if (typeof entrypoint !== "string") continue;
      const binary = path.join(platformPackage, target, entrypoint);
      if (existsSync(binary)) return binary;
    } catch {
      continue;
    }
  }
  return executable;
}
