// `hotplex exec <session> <prompt>`: runs one turn and streams it.
import { randomUUID } from "node:crypto";
import { type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Event, EventSchema, type TurnEnded, TurnOutcome } from "../../../../gen/hotplex/v1/event_pb.js";
import { ApprovalMode, type SessionConfigSchema } from "../../../../gen/hotplex/v1/session_pb.js";
import { DEFAULT_RETRY_POLICY, resumingSubscribe } from "../../../client/resuming-subscribe.js";
import { type ApprovalPolicy, Approvals } from "../approvals.js";
import { type CommandContext, UNARY } from "../context.js";
import { ExitCode, UsageError } from "../errors.js";
import { EventRenderer } from "../render.js";
import { clip } from "../sanitize.js";
import { Spinner } from "../spinner.js";

export interface ExecOptions {
  json?: boolean;
  provider?: string;
  model?: string;
  workDir?: string;
  permissionMode?: string;
  approvals?: string;
  allowTool?: string[];
  denyTool?: string[];
  appendSystemPrompt?: string;
  idleTimeout?: number;
  queue?: boolean;
  requestId?: string;
  approve?: boolean;
  denyAll?: boolean;
  spinner?: boolean;
  thinking?: boolean;
}

const MAX_STDIN_PROMPT = 16 * 1024 * 1024;

// Only what was given: an unset config lets a running session keep its own.
type ConfigInit = Exclude<MessageInitShape<typeof SessionConfigSchema>, { $typeName: string }>;

function configOf(o: ExecOptions): ConfigInit | undefined {
  const config: ConfigInit = {};
  if (o.provider !== undefined) config.provider = o.provider;
  if (o.model !== undefined) config.model = o.model;
  if (o.workDir !== undefined) config.workDir = o.workDir;
  if (o.permissionMode !== undefined) config.permissionMode = o.permissionMode;
  if (o.allowTool?.length) config.allowedTools = o.allowTool;
  if (o.denyTool?.length) config.disallowedTools = o.denyTool;
  if (o.appendSystemPrompt !== undefined) config.appendSystemPrompt = o.appendSystemPrompt;
  if (o.idleTimeout !== undefined) config.idleTimeoutSeconds = o.idleTimeout;
  if (o.approvals !== undefined) {
    if (o.approvals !== "client" && o.approvals !== "agent") throw new UsageError(`--approvals must be "client" or "agent", not ${JSON.stringify(o.approvals)}`);
    config.approvalMode = o.approvals === "client" ? ApprovalMode.CLIENT : ApprovalMode.AGENT;
  }
  return Object.keys(config).length ? config : undefined;
}

export async function execCommand(ctx: CommandContext, sessionId: string, promptArg: string, o: ExecOptions): Promise<number> {
  if (o.approve && o.denyAll) throw new UsageError("give --approve or --deny-all, not both");
  const prompt = promptArg === "-" ? await ctx.io.readStdin(MAX_STDIN_PROMPT) : promptArg;
  if (prompt.trim() === "") throw new UsageError("the prompt is empty");
  const config = configOf(o);
  const policy: ApprovalPolicy = o.approve ? "approve" : o.denyAll ? "deny" : ctx.io.interactive ? "ask" : "wait";
  const session = ctx.clients.session;

  const spinner = new Spinner(ctx.io.stdout, !o.json && o.spinner !== false);
  const renderer = new EventRenderer(ctx.print, { colors: ctx.colors, width: ctx.width, verbose: false, thinking: o.thinking === true });
  // Our own notes go where the turn's output goes when a person reads it, else to stderr.
  const note = (line: string) => {
    spinner.stop();
    if (o.json) ctx.warn(line);
    else renderer.note(line);
  };

  const stream = new AbortController();
  let turnId = "";
  let queued = false;
  let interrupts = 0;
  let end: TurnEnded | undefined;
  let lastSeq = 0n;

  const approvals = new Approvals(ctx, sessionId, policy, { beforeAsk: () => spinner.hold(), afterAsk: () => spinner.release(), note, interrupted: () => interrupts > 0 });

  // The first Ctrl-C ends the turn (the agent stays warm), the second stops waiting for it.
  const sendInterrupt = () => {
    const call = queued ? session.cancelTurn({ sessionId, turnId }, UNARY) : session.interrupt({ sessionId, turnId }, { timeoutMs: 120_000 });
    call.catch((e: unknown) => note(`interrupt failed: ${clip(ConnectError.from(e).message, 300)}`));
  };
  const disposeInterrupt = ctx.io.onInterrupt(() => {
    interrupts += 1;
    if (interrupts > 1) return stream.abort();
    note(ctx.errColors.yellow("interrupting the turn… (Ctrl-C again to stop waiting)"));
    // Before the turn has an id there is nothing to name; it is sent when the turn starts.
    if (turnId) sendInterrupt();
  });

  const handle = (event: Event) => {
    lastSeq = event.seq;
    if (!turnId && event.turnId) {
      turnId = event.turnId;
      if (interrupts === 1) sendInterrupt();
    }
    const p = event.payload;
    if (p.case === "turnQueued") queued = true;
    if (p.case === "turnStarted") queued = false;
    if (o.json) ctx.print(`${toJsonString(EventSchema, event)}\n`);
    else {
      spinner.stop();
      renderer.render(event);
    }
    if (p.case === "permissionRequested") approvals.requested(p.value);
    if (p.case === "permissionResolved") approvals.resolved(p.value.requestId);
    if (p.case === "turnEnded") end = p.value;
    else if (!o.json && renderer.atLineStart) spinner.start(p.case === "permissionRequested" ? "waiting for an answer" : p.case === "toolUse" ? `running ${clip(p.value.name, 40)}` : "working");
  };

  try {
    if (!o.json) spinner.start("starting");
    try {
      const request = { sessionId, prompt, requestId: o.requestId ?? randomUUID(), config, queue: o.queue === true };
      for await (const { events } of session.execute(request, { signal: stream.signal })) {
        for (const event of events) handle(event);
      }
    } catch (reason) {
      if (stream.signal.aborted) return ExitCode.Interrupted;
      const error = ConnectError.from(reason);
      // Cut off mid-turn (a network blip, a proxy): the turn runs on in the daemon, so read
      // the rest of it from the log.
      if (!turnId || end || !DEFAULT_RETRY_POLICY.retryable(error)) throw error;
      note(ctx.errColors.yellow(`the stream broke (${clip(error.rawMessage, 200)}); following the turn in the session's log`));
      for await (const event of resumingSubscribe(session, { sessionId, afterSeq: lastSeq, signal: stream.signal })) {
        if (event.turnId !== turnId) continue;
        handle(event);
        if (end) break;
      }
      if (stream.signal.aborted) return ExitCode.Interrupted;
    }
    await approvals.settled();
  } finally {
    spinner.stop();
    disposeInterrupt();
  }
  if (!end) throw new ConnectError("the stream ended before the turn did", Code.Unavailable);
  if (end.outcome === TurnOutcome.COMPLETED) return ExitCode.Ok;
  if (interrupts > 0 && (end.outcome === TurnOutcome.INTERRUPTED || end.outcome === TurnOutcome.CANCELLED)) return ExitCode.Interrupted;
  return ExitCode.Failed;
}
