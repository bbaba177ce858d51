/**
 * Reading a program's arguments the way getopt would: short flags in clusters in any
 * order (`-rf`, `-fR`, `-r -f`), long flags with or without `=value`, options anywhere
 * until `--`, and options that take a value (so the value is no operand).
 */
import type { Word } from "./tokenizer.js";

export interface Args {
  short: Set<string>;
  long: Map<string, string>;
  /** Values of value-taking options, by the option as written ("-o", "--output"). */
  values: Map<string, string[]>;
  operands: Word[];
}

export interface OptionSpec {
  /** Short options that take a value, e.g. "ouC". */
  shortValue?: string;
  /** Long options that take a value (without "--"). */
  longValue?: readonly string[];
  /** Options stop at the first operand (sudo, env, xargs: the rest is a command). */
  stopAtOperand?: boolean;
}

const NO_SPEC: OptionSpec = {};

export function parseArgs(args: readonly Word[], spec: OptionSpec = NO_SPEC): Args {
  const result: Args = { short: new Set(), long: new Map(), values: new Map(), operands: [] };
  let k = 0;
  for (; k < args.length; k += 1) {
    const word = args[k]!;
    const a = word.text;
    if (a === "--") {
      k += 1;
      break;
    }
    if (a.startsWith("--") && a.length > 2) {
      const eq = a.indexOf("=");
      const name = (eq < 0 ? a.slice(2) : a.slice(2, eq)).toLowerCase();
      let value = eq < 0 ? "" : a.slice(eq + 1);
      if (eq < 0 && spec.longValue?.includes(name) && k + 1 < args.length) value = args[++k]!.text;
      result.long.set(name, value);
      if (spec.longValue?.includes(name)) push(result.values, `--${name}`, value);
    } else if (a.startsWith("-") && a.length > 1 && !word.dynamic) {
      for (let j = 1; j < a.length; j += 1) {
        const f = a[j]!;
        result.short.add(f);
        if (spec.shortValue?.includes(f)) {
          const value = j + 1 < a.length ? a.slice(j + 1) : (args[++k]?.text ?? "");
          push(result.values, `-${f}`, value);
          break;
        }
      }
    } else {
      result.operands.push(word);
      if (spec.stopAtOperand) {
        k += 1;
        break;
      }
    }
  }
  for (; k < args.length; k += 1) result.operands.push(args[k]!);
  return result;
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/** Any of the spellings is present: single letters are short flags, longer ones long flags. */
export function hasFlag(args: Args, ...spellings: string[]): boolean {
  for (const s of spellings) {
    if (s.length === 1 ? args.short.has(s) : args.long.has(s)) return true;
  }
  return false;
}

/** The value of the first present option among the spellings ("o", "output"). */
export function optionValue(args: Args, ...spellings: string[]): string | undefined {
  for (const s of spellings) {
    const v = args.values.get(s.length === 1 ? `-${s}` : `--${s}`);
    if (v !== undefined) return v[0];
    if (s.length > 1 && args.long.has(s) && args.long.get(s) !== "") return args.long.get(s);
  }
  return undefined;
}

export function clip(text: string, max = 256): string {
  return text.length <= max ? text : text.slice(0, max - 1) + "…";
}
