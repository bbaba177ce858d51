// The command line: commands, their options and help. Each action only parses and
// hands over to its command module.
import { Command, InvalidArgumentError } from "commander";
import { hotplexVersion } from "../version.js";
import { adminAuditCommand, adminDrainCommand, adminInfoCommand, adminSessionsCommand } from "./commands/admin.js";
import { execCommand, type ExecOptions } from "./commands/exec.js";
import {
  approveCommand,
  deleteCommand,
  denyCommand,
  interruptCommand,
  providersCommand,
  sessionsCommand,
  snapshotCommand,
  statsCommand,
  stopCommand,
} from "./commands/sessions.js";
import { tailCommand, type TailOptions } from "./commands/tail.js";
import { waitCommand, WAITABLE, type WaitOptions } from "./commands/wait.js";
import { type CommandContext, type ContextFlags, createContext } from "./context.js";
import { EXIT_CODES_HELP } from "./errors.js";
import type { CliIo } from "./io.js";

/** What a run left behind: its exit code, and the address it talked to (for error hints). */
export interface RunState {
  code: number;
  addr?: string;
}

const MAX_U64 = 2n ** 64n - 1n;

const HELP_AFTER = `
Address and token (the first that is set wins):
  --addr / --token / --token-file    flags
  HOTPLEX_ADDR / HOTPLEX_TOKEN / HOTPLEX_TOKEN_FILE    environment
  addr / token / token-file in the config file: $HOTPLEX_CLI_CONFIG, else
    ~/.config/hotplex/cli.yaml ($XDG_CONFIG_HOME/hotplex/cli.yaml)
  default address http://127.0.0.1:7070, no token
Colors only on a terminal; NO_COLOR or --no-color turn them off.

${EXIT_CODES_HELP}
`;

function uint(name: string, max: number) {
  return (value: string): number => {
    if (!/^\d{1,10}$/.test(value) || Number(value) > max) throw new InvalidArgumentError(`${name} must be a whole number from 0 to ${max}`);
    return Number(value);
  };
}

function seq(value: string): bigint {
  if (!/^\d{1,20}$/.test(value) || BigInt(value) > MAX_U64) throw new InvalidArgumentError("must be a whole number (a sequence number) from 0");
  return BigInt(value);
}

function repeatable(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function buildProgram(io: CliIo, state: RunState): Command {
  const program = new Command("hotplex");
  program
    .description("Operate a hotplex daemon: run turns, follow sessions, answer approvals, administer.")
    .version(hotplexVersion(), "-V, --version")
    .option("--addr <url>", "the daemon's address (default http://127.0.0.1:7070)")
    .option("--token <token>", "bearer token (prefer --token-file or HOTPLEX_TOKEN: a command line is visible to others)")
    .option("--token-file <file>", "read the bearer token from a file")
    .option("--config <file>", "the CLI config file (default ~/.config/hotplex/cli.yaml)")
    .option("--no-color", "no colors")
    .addHelpText("after", HELP_AFTER)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError("(run hotplex --help for usage)");

  // Runs a command with its context; its result is the exit code.
  const act = <A extends unknown[]>(fn: (ctx: CommandContext, ...args: A) => Promise<number>) =>
    async (...args: unknown[]) => {
      const command = args.at(-1) as Command;
      const ctx = createContext(io, command.optsWithGlobals<ContextFlags>());
      state.addr = ctx.settings.addr;
      // Positional arguments, then the command's own options.
      state.code = await fn(ctx, ...(args.slice(0, -1) as A));
    };

  program
    .command("exec")
    .description("run one turn and stream it (text as it arrives, tools one line each, approvals asked on a terminal)")
    .argument("<session>", "session id (created by its first turn)")
    .argument("<prompt>", 'the prompt; "-" reads it from stdin')
    .option("--json", "one event per line, as protobuf JSON")
    .option("--provider <name>", "the agent (see hotplex providers)")
    .option("--model <model>", "the model")
    .option("--work-dir <dir>", "the agent's working directory (relative to the tenant's work root)")
    .option("--permission-mode <mode>", "the provider's permission mode")
    .option("--approvals <mode>", '"client": the agent asks before tool calls (answered here); "agent": its own settings decide')
    .option("--allow-tool <rule>", "a tool the agent may use without asking (repeatable)", repeatable)
    .option("--deny-tool <rule>", "a tool the agent must never use (repeatable)", repeatable)
    .option("--append-system-prompt <text>", "instructions appended to the agent's system prompt")
    .option("--idle-timeout <seconds>", "end the agent after this long idle", uint("--idle-timeout", 2 ** 32 - 1))
    .option("--queue", "wait behind a running turn instead of failing")
    .option("--request-id <id>", "an id that makes a retry stream the same turn")
    .option("--approve", "allow every permission request without asking")
    .option("--deny-all", "deny every permission request without asking")
    .option("--no-spinner", "no spinner, even on a terminal")
    .option("--thinking", "show the model's thinking")
    .action(act((ctx, session: string, prompt: string, o: ExecOptions) => execCommand(ctx, session, prompt, o)));

  program
    .command("tail")
    .description("print a session's events; --follow keeps going, across daemon restarts")
    .argument("<session>", "session id")
    .option("--after <seq>", "only events after this seq (default 0: all)", seq)
    .option("-f, --follow", "keep printing new events")
    .option("--json", "one event per line, as protobuf JSON")
    .option("--retries <n>", "reconnect attempts in a row before giving up (default 10)", uint("--retries", 1_000))
    .option("--thinking", "show the model's thinking")
    .action(act((ctx, session: string, o: TailOptions) => tailCommand(ctx, session, o)));

  program
    .command("wait")
    .description("wait until a session has a status (e.g. ready: its turn ended); rides out daemon restarts")
    .argument("<session>", "session id")
    .requiredOption("--status <names>", `one or more of ${Object.keys(WAITABLE).join(", ")} (comma-separated or repeated)`, repeatable)
    .option("--timeout <seconds>", "give up after this long (exit 3)", uint("--timeout", 7 * 24 * 3600))
    .option("--retries <n>", "reconnect attempts in a row before giving up (default 10)", uint("--retries", 1_000))
    .action(act((ctx, session: string, o: WaitOptions) => waitCommand(ctx, session, o)));

  program
    .command("sessions")
    .description("list your sessions, most recently active first")
    .option("--json", "the ListSessions response as JSON")
    .option("--limit <n>", "rows to show (default 100)", uint("--limit", 100_000))
    .action(act((ctx, o: { json?: boolean; limit?: number }) => sessionsCommand(ctx, o)));

  const simple = (name: string, description: string, fn: (ctx: CommandContext, session: string, o: { json?: boolean }) => Promise<number>) =>
    program
      .command(name)
      .description(description)
      .argument("<session>", "session id")
      .option("--json", "the response as JSON")
      .action(act((ctx, session: string, o: { json?: boolean }) => fn(ctx, session, o)));
  simple("snapshot", "show a session's state (status, config, pending requests)", snapshotCommand);
  simple("stats", "show a session's cumulative statistics", statsCommand);
  simple("stop", "end a session's agent (its running turn ends stopped; the session stays)", stopCommand);
  program
    .command("interrupt")
    .description("interrupt the running turn; the agent stays warm")
    .argument("<session>", "session id")
    .option("--turn <id>", "only this turn")
    .option("--json", "the response as JSON")
    .action(act((ctx, session: string, o: { json?: boolean; turn?: string }) => interruptCommand(ctx, session, o)));
  program
    .command("delete")
    .description("delete a session, its events and its registry entry")
    .argument("<session>", "session id")
    .option("--transcript", "also delete the agent's own transcript")
    .option("--json", "the response as JSON")
    .action(act((ctx, session: string, o: { json?: boolean; transcript?: boolean }) => deleteCommand(ctx, session, o)));
  program
    .command("approve")
    .description("allow a pending permission request")
    .argument("<session>", "session id")
    .argument("<request-id>", "PermissionRequested.request_id (hotplex snapshot lists pending ones)")
    .option("--for-session", "also allow identical calls for the rest of the session")
    .option("--json", "the response as JSON")
    .action(act((ctx, session: string, request: string, o: { json?: boolean; forSession?: boolean }) => approveCommand(ctx, session, request, o)));
  program
    .command("deny")
    .description("deny a pending permission request (or decline a question)")
    .argument("<session>", "session id")
    .argument("<request-id>", "PermissionRequested.request_id")
    .option("--interrupt", "also interrupt the turn")
    .option("--message <text>", "what the agent is told")
    .option("--json", "the response as JSON")
    .action(act((ctx, session: string, request: string, o: { json?: boolean; interrupt?: boolean; message?: string }) => denyCommand(ctx, session, request, o)));
  program
    .command("providers")
    .description("list the agents the daemon runs")
    .option("--json", "the response as JSON")
    .action(act((ctx, o: { json?: boolean }) => providersCommand(ctx, o)));

  const admin = program.command("admin").description("operator commands (an admin credential)");
  admin
    .command("sessions")
    .description("every tenant's sessions")
    .option("--tenant <name>", "only this tenant's")
    .option("--json", "the response as JSON")
    .action(act((ctx, o: { json?: boolean; tenant?: string }) => adminSessionsCommand(ctx, o)));
  admin
    .command("drain")
    .description("stop starting turns, let running ones finish within the grace period, then stop the rest")
    .option("--grace <seconds>", "grace period (default: the daemon's stop grace)", uint("--grace", 86_400))
    .option("--json", "the response as JSON")
    .action(act((ctx, o: { json?: boolean; grace?: number }) => adminDrainCommand(ctx, o)));
  admin
    .command("audit")
    .description("audit log entries, oldest first")
    .option("--after <id>", "entries after this id", seq)
    .option("--limit <n>", "at most this many (1 to 1000; default 100)", uint("--limit", 1_000))
    .option("--json", "the response as JSON")
    .action(act((ctx, o: { json?: boolean; after?: bigint; limit?: number }) => adminAuditCommand(ctx, o)));
  admin
    .command("info")
    .description("the daemon's version, providers, limits and uptime")
    .option("--json", "the response as JSON")
    .action(act((ctx, o: { json?: boolean }) => adminInfoCommand(ctx, o)));
  return program;
}
