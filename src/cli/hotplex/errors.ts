// What a failed command prints and how it exits. Each Connect code gets a one-line hint
// that says what to do about it; the exit code tells a script what kind of failure it was.
import { Code, ConnectError } from "@connectrpc/connect";
import { terminalSafeLine } from "./sanitize.js";

/** The exit codes of `hotplex` (documented in `hotplex --help` and docs/ops.md). */
export const ExitCode = {
  Ok: 0,
  /** The turn did not complete, or the daemon refused or failed the call. */
  Failed: 1,
  /** Bad usage: an unknown command or option, a bad value, an unreadable token or config file. */
  Usage: 2,
  /** The daemon could not be reached, or the connection broke. */
  Unavailable: 3,
  /** The credential is missing or wrong, or may not do this. */
  Denied: 4,
  /** No such session (or request). */
  NotFound: 5,
  /** Ended by Ctrl-C. */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `Exit codes:
  0    ok
  1    the turn failed, was stopped or timed out; or the daemon refused the call
  2    usage: unknown command or option, bad value, unreadable token or config file
  3    the daemon is unreachable or the connection broke
  4    unauthenticated or permission denied
  5    not found (session or request)
  130  interrupted by Ctrl-C`;

/** A mistake in how the CLI was called, found before any call is made. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A failure the command already reported; only its exit code is left to return. */
export class ReportedFailure extends Error {
  override readonly name = "ReportedFailure";
  constructor(readonly exitCode: ExitCode) {
    super(`exit ${exitCode}`);
  }
}

/** The exit code for a Connect error. */
export function exitCodeOf(error: ConnectError): ExitCode {
  switch (error.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return ExitCode.Unavailable;
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return ExitCode.Denied;
    case Code.NotFound:
      return ExitCode.NotFound;
    case Code.InvalidArgument:
      return ExitCode.Usage;
    case Code.Canceled:
      return ExitCode.Interrupted;
    default:
      return ExitCode.Failed;
  }
}

// The Connect code as the protocol spells it ("not_found").
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** The hint for a Connect error: what to try next. */
export function hintFor(error: ConnectError, addr: string): string {
  switch (error.code) {
    case Code.Unauthenticated:
      return "pass --token or --token-file, or set HOTPLEX_TOKEN";
    case Code.Unavailable:
      return /drain|shutting down/i.test(error.rawMessage)
        ? `hotplexd at ${addr} is draining or shutting down; retry against a running daemon`
        : `is hotplexd running at ${addr}? (set --addr or HOTPLEX_ADDR)`;
    case Code.DeadlineExceeded:
      return `hotplexd at ${addr} did not answer in time`;
    case Code.NotFound:
      return "check the id: `hotplex sessions` lists your sessions (another tenant's are not found either)";
    case Code.PermissionDenied:
      return "this credential's role or its tenant's policy does not allow it (see the message)";
    case Code.InvalidArgument:
      return "fix the value the message names";
    case Code.FailedPrecondition:
      return "the session is not in a state for this (`hotplex snapshot <session>` shows it)";
    case Code.ResourceExhausted:
      return "a limit is reached (the message names it); retry later or free resources";
    case Code.OutOfRange:
      return "those events are no longer retained; resume from the first retained seq";
    case Code.AlreadyExists:
      return "pick another id";
    default:
      return "see hotplexd's log for details";
  }
}

/** Two lines for stderr: the code and the daemon's message, then the hint. */
export function describeConnectError(error: ConnectError, addr: string): string {
  const message = terminalSafeLine(error.rawMessage).slice(0, 2_000);
  return `error: ${codeName(error.code)}: ${message}\nhint: ${hintFor(error, addr)}\n`;
}
