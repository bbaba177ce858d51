// Colors only where they help: on a terminal, unless NO_COLOR (https://no-color.org) or
// --no-color says otherwise, or TERM=dumb. FORCE_COLOR turns them on for a pipe.
import picocolors from "picocolors";
import type { CliOutput } from "./io.js";

export type Colors = ReturnType<typeof picocolors.createColors>;

export function colorsFor(output: CliOutput, env: Readonly<Record<string, string | undefined>>, flag: boolean | undefined): Colors {
  return picocolors.createColors(colorEnabled(output, env, flag));
}

export function colorEnabled(output: CliOutput, env: Readonly<Record<string, string | undefined>>, flag: boolean | undefined): boolean {
  if (flag === false) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "" && env.FORCE_COLOR !== "0") return true;
  if (env.TERM === "dumb") return false;
  return output.isTTY;
}
