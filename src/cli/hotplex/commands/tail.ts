// `hotplex tail <session>`: prints a session's events, and with --follow keeps printing
// them across disconnects and daemon restarts, resuming after the last seq printed.
import { toJsonString } from "@bufbuild/protobuf";
import { EventSchema } from "../../../../gen/hotplex/v1/event_pb.js";
import { resumingSubscribe } from "../../../client/resuming-subscribe.js";
import type { CommandContext } from "../context.js";
import { codeName, ExitCode } from "../errors.js";
import { formatDuration } from "../format.js";
import { EventRenderer } from "../render.js";
import { clip } from "../sanitize.js";

export interface TailOptions {
  after?: bigint;
  follow?: boolean;
  json?: boolean;
  retries?: number;
  thinking?: boolean;
}

export async function tailCommand(ctx: CommandContext, sessionId: string, o: TailOptions): Promise<number> {
  const abort = new AbortController();
  const dispose = ctx.io.onInterrupt(() => abort.abort());
  const renderer = new EventRenderer(ctx.print, { colors: ctx.colors, width: ctx.width, verbose: true, thinking: o.thinking === true });
  const warn = (line: string) => {
    if (!o.json) renderer.endLine();
    ctx.warn(ctx.errColors.yellow(line));
  };
  const events = resumingSubscribe(ctx.clients.session, {
    sessionId,
    afterSeq: o.after ?? 0n,
    follow: o.follow === true,
    signal: abort.signal,
    retry: o.retries !== undefined ? { maxAttempts: o.retries } : undefined,
    onRetry: ({ attempt, maxAttempts, delayMs, error, afterSeq }) =>
      warn(`connection lost (${codeName(error.code)}: ${clip(error.rawMessage, 200)}); retrying after seq ${afterSeq} in ${formatDuration(delayMs)} (${attempt}/${maxAttempts})`),
    onHeader: (_header, { reconnect }) => {
      if (reconnect) warn(`reconnected to ${ctx.settings.addr}; resuming after seq ${events.lastSeq}`);
    },
  });
  try {
    for await (const event of events) {
      if (o.json) ctx.print(`${toJsonString(EventSchema, event)}\n`);
      else renderer.render(event);
    }
  } finally {
    dispose();
    if (!o.json) renderer.endLine();
  }
  return abort.signal.aborted ? ExitCode.Interrupted : ExitCode.Ok;
}
