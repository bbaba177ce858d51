import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/**
 * The native OpenCode binary of the npm package `opencode-ai`. The package's own
 * `bin/opencode` is a shell stub until its postinstall script replaces it (and stays one
 * where install scripts do not run); the real binary sits in the platform package beside
 * it (`opencode-<os>-<arch>[-baseline][-musl]/bin/opencode`), which works either way.
 * `executable` may name the package's bin (or a link to it); without one, the package
 * installed with hotplex is used. Anything else (a binary, a command on PATH) is returned
 * as given.
 */
export function nativeOpenCode(executable?: string): string {
  let packageDir: string | undefined;
  if (executable) {
    let real: string;
    try {
      real = realpathSync(executable);
    } catch {
      return executable;
    }
    const bin = path.dirname(real);
    if (path.basename(bin) !== "bin" || path.basename(path.dirname(bin)) !== "opencode-ai") return executable;
    packageDir = path.dirname(bin);
  } else {
    try {
      packageDir = path.dirname(createRequire(import.meta.url).resolve("opencode-ai/package.json"));
    } catch {
      return "opencode";
    }
  }
  const nodeModules = path.dirname(packageDir);
  for (const name of platformPackages()) {
    const binary = path.join(nodeModules, name, "bin", "opencode");
    if (existsSync(binary)) return binary;
  }
  return executable ?? "opencode";
}

// The platform packages that can run here, best first (as the package's postinstall picks).
function platformPackages(): string[] {
  const os = process.platform === "win32" ? "windows" : process.platform;
  const base = `opencode-${os}-${process.arch}`;
  let avx2 = true;
  let musl = false;
  if (process.platform === "linux") {
    try {
      avx2 = process.arch !== "x64" || /\bavx2\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
    } catch {
      avx2 = false;
    }
    musl = existsSync("/lib/ld-musl-x86_64.so.1") || existsSync("/lib/ld-musl-aarch64.so.1");
  }
  if (process.arch !== "x64") return musl ? [`${base}-musl`, base] : [base, `${base}-musl`];
  const glibc = avx2 ? [base, `${base}-baseline`] : [`${base}-baseline`, base];
  const muslOnes = glibc.map((name) => `${name}-musl`);
  return musl ? [...muslOnes, ...glibc] : [...glibc, ...muslOnes];
}
