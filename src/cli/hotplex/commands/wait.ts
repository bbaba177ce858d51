// `hotplex wait <session> --status ready`: returns once the session has one of the given
// statuses, riding out disconnects and daemon restarts (for scripts: wait for a turn to end,
// for an approval to be asked, for the agent to be gone).
import { SessionStatus } from "../../../../gen/hotplex/v1/session_pb.js";
import { waitForStatus } from "../../../client/event-helpers.js";
import type { CommandContext } from "../context.js";
import { ExitCode, UsageError } from "../errors.js";
import { statusName } from "../format.js";

export interface WaitOptions {
  status: string[];
  timeout?: number;
  retries?: number;
}

/** The statuses a user may name, by their lower-case name. */
export const WAITABLE: Readonly<Record<string, SessionStatus>> = {
  starting: SessionStatus.STARTING,
  ready: SessionStatus.READY,
  busy: SessionStatus.BUSY,
  waiting: SessionStatus.WAITING,
  stopping: SessionStatus.STOPPING,
  dead: SessionStatus.DEAD,
};

export async function waitCommand(ctx: CommandContext, sessionId: string, o: WaitOptions): Promise<number> {
  const wanted = o.status.flatMap((names) => names.split(",")).map((name) => {
    const status = WAITABLE[name.trim().toLowerCase()];
    if (status === undefined) throw new UsageError(`--status ${JSON.stringify(name.slice(0, 40))} is not a status: use ${Object.keys(WAITABLE).join(", ")}`);
    return status;
  });
  if (wanted.length === 0) throw new UsageError("name at least one --status");
  const abort = new AbortController();
  const dispose = ctx.io.onInterrupt(() => abort.abort());
  try {
    const reached = await waitForStatus(ctx.clients.session, sessionId, wanted, {
      signal: abort.signal,
      ...(o.timeout !== undefined ? { timeoutMs: o.timeout * 1000 } : {}),
      ...(o.retries !== undefined ? { retry: { maxAttempts: o.retries } } : {}),
    });
    ctx.print(`${statusName(reached)}\n`);
    return ExitCode.Ok;
  } finally {
    dispose();
  }
}
