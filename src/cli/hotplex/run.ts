// Runs the CLI once: parses argv, runs the command, and turns every failure into a
// message on stderr and an exit code. Never throws.
import { ConnectError } from "@connectrpc/connect";
import { CommanderError } from "commander";
import { SequenceError } from "../../client/resuming-subscribe.js";
import { colorsFor } from "./colors.js";
import { describeConnectError, ExitCode, exitCodeOf, ReportedFailure, UsageError } from "./errors.js";
import type { CliIo } from "./io.js";
import { buildProgram, type RunState } from "./program.js";
import { DEFAULT_ADDR } from "./settings.js";
import { terminalSafeLine } from "./sanitize.js";

/** Runs `hotplex` with these arguments (without the node and script paths); resolves to the exit code. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const state: RunState = { code: ExitCode.Ok };
  try {
    await buildProgram(io, state).parseAsync([...argv], { from: "user" });
    return state.code;
  } catch (error) {
    const c = colorsFor(io.stderr, io.env, argv.includes("--no-color") ? false : undefined);
    const fail = (message: string, hint?: string) => io.stderr.write(`${c.red("error:")} ${message}\n${hint ? `${c.dim("hint:")} ${hint}\n` : ""}`);
    if (error instanceof CommanderError) {
      // Commander printed the message (or the help) already.
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    if (error instanceof ReportedFailure) return error.exitCode;
    if (error instanceof UsageError) {
      fail(error.message, "see hotplex --help");
      return ExitCode.Usage;
    }
    if (error instanceof SequenceError) {
      fail(`${error.message}; the daemon broke its ordering promise`, "report it with the daemon's version (hotplex admin info)");
      return ExitCode.Failed;
    }
    if (error instanceof ConnectError) {
      const [first, hint] = describeConnectError(error, state.addr ?? DEFAULT_ADDR).trimEnd().split("\n");
      fail((first ?? "").replace(/^error: /, ""), hint?.replace(/^hint: /, ""));
      return exitCodeOf(error);
    }
    fail(`internal: ${terminalSafeLine(error instanceof Error ? error.message : String(error))}`);
    return ExitCode.Failed;
  }
}
