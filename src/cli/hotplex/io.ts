// Everything the CLI touches outside itself, behind one interface, so that tests run it
// in-process with captured output, a fake terminal and scripted answers.
import { homedir } from "node:os";
import { createInterface } from "node:readline";

/** Where output goes. */
export interface CliOutput {
  write(text: string): void;
  /** A terminal: colors, a spinner and prompts are allowed. */
  readonly isTTY: boolean;
  readonly columns?: number;
}

export interface CliIo {
  stdout: CliOutput;
  stderr: CliOutput;
  env: Readonly<Record<string, string | undefined>>;
  /** Where ~ is (the default config file lives under it). */
  homeDir: string;
  /** Whether questions can be asked: stdin is a terminal. */
  interactive: boolean;
  /** Asks one question on the terminal; undefined at end of input or when the signal aborts. */
  ask(question: string, signal?: AbortSignal): Promise<string | undefined>;
  /** Reads all of stdin (a prompt given as "-"), at most maxBytes. */
  readStdin(maxBytes: number): Promise<string>;
  /**
   * Calls the handler on Ctrl-C instead of ending the process, until the returned
   * function is called.
   */
  onInterrupt(handler: () => void): () => void;
}

/** The real process: its streams, environment and SIGINT. */
export function nodeIo(): CliIo {
  const output = (stream: NodeJS.WriteStream): CliOutput => ({
    write: (text) => void stream.write(text),
    get isTTY() {
      return stream.isTTY === true;
    },
    get columns() {
      return stream.columns;
    },
  });
  // A reader that went away (`hotplex tail -f | head`) is not an error of ours.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
      throw error;
    });
  }
  const interrupts = new Set<() => void>();
  const onSigint = () => {
    for (const handler of [...interrupts]) handler();
  };
  return {
    stdout: output(process.stdout),
    stderr: output(process.stderr),
    env: process.env,
    homeDir: homedir(),
    interactive: process.stdin.isTTY === true,
    ask(question, signal) {
      return new Promise((resolve) => {
        const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
        let settled = false;
        const finish = (answer: string | undefined) => {
          if (settled) return;
          settled = true;
          signal?.removeEventListener("abort", onAbort);
          rl.close();
          resolve(answer);
        };
        const onAbort = () => {
          process.stderr.write("\n");
          finish(undefined);
        };
        if (signal?.aborted) return finish(undefined);
        signal?.addEventListener("abort", onAbort, { once: true });
        // In raw mode Ctrl-C reaches readline, not the process: pass it on.
        rl.on("SIGINT", () => {
          process.stderr.write("\n");
          onSigint();
          finish(undefined);
        });
        rl.on("close", () => finish(undefined));
        rl.question(question, finish);
      });
    },
    async readStdin(maxBytes) {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBytes) throw new RangeError(`stdin holds more than ${maxBytes} bytes`);
        chunks.push(chunk);
      }
      return Buffer.concat(chunks).toString("utf8");
    },
    onInterrupt(handler) {
      interrupts.add(handler);
      if (interrupts.size === 1) process.on("SIGINT", onSigint);
      return () => {
        interrupts.delete(handler);
        if (interrupts.size === 0) process.off("SIGINT", onSigint);
      };
    },
  };
}
