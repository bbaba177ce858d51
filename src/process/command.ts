/**
 * The command line of an agent process, run without a shell. No client value may ever be
 * an argv entry of its own, where an agent that scans its whole argv could read it as a
 * flag: values go in `--flag=value` form, or into `files`.
 */
export interface Command {
  file: string;
  args: string[];
  /** Files to write (mode 0600) before the process starts: absolute path → content. */
  files?: Record<string, string>;
  /** Variables the command needs on top of the session's environment (never client values). */
  env?: Record<string, string>;
}
