/**
 * Constant folding: the output of the few commands whose output follows from their
 * literal arguments alone (echo, printf, cat of a here-document, base64 -d, xxd -r -p,
 * rev). This is how `$(echo cm0= | base64 -d) -rf /` and `echo … | base64 -d | sh` are
 * seen for what they run. Anything else is unknown (undefined), never guessed.
 */
import type { Command, Pipeline, Script } from "./tokenizer.js";
import { ansiC } from "./tokenizer.js";

const MAX_OUTPUT = 64 * 1024;

export function foldScript(script: Script): string | undefined {
  if (script.pipelines.length === 0 || script.pipelines.length > 8) return undefined;
  let out = "";
  for (const pipeline of script.pipelines) {
    const part = foldPipeline(pipeline.stages);
    if (part === undefined) return undefined;
    out += part;
    if (out.length > MAX_OUTPUT) return undefined;
  }
  return out;
}

/** The output of `stages` run as a pipeline, or undefined. */
export function foldPipeline(stages: readonly Command[]): string | undefined {
  let data: string | undefined;
  for (const stage of stages) {
    data = foldCommand(stage, data);
    if (data === undefined) return undefined;
  }
  return data;
}

export function foldPipelineOf(pipeline: Pipeline, upTo: number): string | undefined {
  return upTo <= 0 ? undefined : foldPipeline(pipeline.stages.slice(0, upTo));
}

function foldCommand(command: Command, stdin: string | undefined): string | undefined {
  for (const r of command.redirects) if (r.body !== undefined) stdin = r.body;
  const words = command.words;
  if (words.length === 0 || words.some((w) => w.dynamic)) return undefined;
  const program = basename(words[0]!.text);
  const args = words.slice(1).map((w) => w.text);
  switch (program) {
    case "echo": {
      let newline = true;
      let escapes = false;
      while (args[0] !== undefined && /^-[neE]+$/.test(args[0])) {
        const flags = args.shift()!;
        if (flags.includes("n")) newline = false;
        if (flags.includes("e")) escapes = true;
        if (flags.includes("E")) escapes = false;
      }
      const text = args.join(" ");
      return (escapes ? ansiC(text) : text) + (newline ? "\n" : "");
    }
    case "printf": {
      const format = args.shift();
      if (format === undefined) return undefined;
      let k = 0;
      return ansiC(format).replace(/%([%sbcdq])/g, (_, spec: string) => {
        if (spec === "%") return "%";
        const arg = args[k++] ?? "";
        return spec === "b" ? ansiC(arg) : arg;
      }) + (k < args.length ? args.slice(k).join("") : "");
    }
    case "cat":
      return args.length === 0 || (args.length === 1 && args[0] === "-") ? stdin : undefined;
    case "base64":
    case "base32":
      if (!args.some((a) => /^-(d|D|-decode|[a-zA-Z]*d[a-zA-Z]*)$/.test(a))) return undefined;
      return stdin === undefined || program === "base32" ? undefined : decodeBase64(stdin);
    case "openssl":
      return args.includes("-d") && args.some((a) => a === "base64" || a === "-base64" || a === "-a") && stdin !== undefined ? decodeBase64(stdin) : undefined;
    case "xxd":
      return args.includes("-r") && args.includes("-p") && stdin !== undefined ? decodeHex(stdin) : undefined;
    case "rev":
      return stdin === undefined ? undefined : stdin.replace(/\n$/, "").split("\n").map((l) => [...l].reverse().join("")).join("\n") + "\n";
    case "tr":
      return stdin !== undefined && args[0] === "-d" && args[1] !== undefined ? [...stdin].filter((ch) => !args[1]!.includes(ch)).join("") : undefined;
    default:
      return undefined;
  }
}

export function basename(program: string): string {
  const slash = program.lastIndexOf("/");
  return (slash >= 0 ? program.slice(slash + 1) : program).toLowerCase();
}

/** Text of base64 `input`, or undefined when it is not base64 of (mostly) text. */
export function decodeBase64(input: string): string | undefined {
  const compact = input.replace(/\s+/g, "");
  if (compact.length === 0 || compact.length > MAX_OUTPUT || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) return undefined;
  return textOrUndefined(Buffer.from(compact, "base64").toString("utf8"));
}

function decodeHex(input: string): string | undefined {
  const compact = input.replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})+$/.test(compact)) return undefined;
  return textOrUndefined(Buffer.from(compact, "hex").toString("utf8"));
}

function textOrUndefined(text: string): string | undefined {
  let control = 0;
  for (let k = 0; k < text.length; k += 1) {
    const c = text.charCodeAt(k);
    if ((c < 32 && c !== 9 && c !== 10 && c !== 13) || c === 0xfffd) control += 1;
  }
  return control * 10 > text.length ? undefined : text;
}
