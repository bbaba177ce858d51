// A CliIo for running the CLI in-process: captured output, a terminal or not, scripted
// answers to prompts, and Ctrl-C on demand.
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import type { CliIo } from "../../src/cli/hotplex/io.js";
import { run } from "../../src/cli/hotplex/run.js";
import { repoRoot } from "../harness.js";

export interface FakeIoOptions {
  /** stdout, stderr and stdin are terminals. */
  tty?: boolean;
  env?: Record<string, string>;
  /** Answers to prompts, in order; a function decides per question. Undefined = end of input. */
  answers?: (string | undefined)[] | ((question: string, signal?: AbortSignal) => Promise<string | undefined>);
  stdin?: string;
}

export interface FakeIo extends CliIo {
  out(): string;
  err(): string;
  /** The questions asked, in order. */
  questions: string[];
  /** Resolves once stdout+stderr match (checked on every write). */
  waitFor(pattern: RegExp, stream?: "out" | "err"): Promise<RegExpMatchArray>;
  /** Presses Ctrl-C. */
  ctrlC(): void;
}

export function fakeIo(options: FakeIoOptions = {}): FakeIo {
  let out = "";
  let err = "";
  const waiters: { pattern: RegExp; stream: "out" | "err"; resolve: (m: RegExpMatchArray) => void }[] = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      const match = (waiter.stream === "out" ? out : err).match(waiter.pattern);
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  };
  const interrupts = new Set<() => void>();
  const questions: string[] = [];
  const answers = options.answers ?? [];
  const tty = options.tty === true;
  return {
    stdout: { write: (t) => ((out += t), check()), isTTY: tty, columns: 100 },
    stderr: { write: (t) => ((err += t), check()), isTTY: tty, columns: 100 },
    // Only what a test gives: never the developer's own HOTPLEX_* or config.
    env: { ...options.env },
    homeDir: path.join(tmpdir(), "hotplex-cli-no-home"),
    interactive: tty,
    questions,
    async ask(question, signal) {
      questions.push(question);
      err += question;
      check();
      if (typeof answers === "function") return answers(question, signal);
      return answers.shift();
    },
    async readStdin() {
      return options.stdin ?? "";
    },
    onInterrupt(handler) {
      interrupts.add(handler);
      return () => interrupts.delete(handler);
    },
    out: () => out,
    err: () => err,
    waitFor(pattern, stream = "out") {
      return new Promise((resolve) => {
        waiters.push({ pattern, stream, resolve });
        check();
      });
    },
    ctrlC() {
      for (const handler of [...interrupts]) handler();
    },
  };
}

/** Runs the CLI in-process; resolves to its exit code and output. */
export async function cli(argv: string[], options: FakeIoOptions = {}, io = fakeIo(options)) {
  const code = await run(argv, io);
  return { code, out: io.out(), err: io.err(), io };
}

/** Runs the CLI as its own process, as a shell would. */
export function cliProcess(argv: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/hotplex.ts"), ...argv], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", HOME: path.join(tmpdir(), "hotplex-cli-no-home"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) if (w.pattern.test(out + err)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
  };
  child.stdout.on("data", (chunk: Buffer) => ((out += chunk.toString()), check()));
  child.stderr.on("data", (chunk: Buffer) => ((err += chunk.toString()), check()));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return {
    child,
    exit,
    out: () => out,
    err: () => err,
    waitFor: (pattern: RegExp) =>
      new Promise<void>((resolve, reject) => {
        waiters.push({ pattern, resolve });
        check();
        void exit.then(() => setImmediate(() => reject(new Error(`the CLI exited before printing ${pattern}: ${out}${err}`))));
      }),
  };
}
