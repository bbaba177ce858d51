// The session commands that make one call: sessions, snapshot, stats, stop, interrupt,
// delete, providers, approve and deny.
import { toJsonString } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { TurnOutcome } from "../../../../gen/hotplex/v1/event_pb.js";
import type { SessionInfo, SessionStats } from "../../../../gen/hotplex/v1/session_pb.js";
import {
  DeleteSessionResponseSchema,
  GetSessionStatsResponseSchema,
  GetSnapshotResponseSchema,
  InterruptResponseSchema,
  ListProvidersResponseSchema,
  ListSessionsResponseSchema,
  RespondPermissionResponseSchema,
  StopSessionResponseSchema,
} from "../../../../gen/hotplex/v1/session_service_pb.js";
import { type CommandContext, UNARY } from "../context.js";
import { ExitCode } from "../errors.js";
import { formatAgo, formatCost, formatCount, formatDuration, formatTime, outcomeName, statusName } from "../format.js";
import { describeRequest } from "../render.js";
import { clip } from "../sanitize.js";
import { renderFields, renderTable } from "../table.js";

export interface JsonOption {
  json?: boolean;
}

/** Prints a response as protobuf JSON (one line). */
export function printJson<D extends DescMessage>(ctx: CommandContext, schema: D, message: MessageShape<D>): void {
  ctx.print(`${toJsonString(schema, message)}\n`);
}

export async function sessionsCommand(ctx: CommandContext, o: JsonOption & { limit?: number }): Promise<number> {
  const response = await ctx.clients.session.listSessions({}, UNARY);
  if (o.json) {
    printJson(ctx, ListSessionsResponseSchema, response);
    return ExitCode.Ok;
  }
  const now = Date.now();
  // One call: the summaries carry the provider and the turn count.
  const shown = response.sessions.slice(0, o.limit ?? 100);
  const rows = shown.map((s) => [s.sessionId, statusName(s.status), s.provider || "-", s.title || "-", String(s.turns), formatAgo(s.lastActiveAt, now)]);
  if (rows.length === 0) {
    ctx.print("no sessions\n");
    return ExitCode.Ok;
  }
  ctx.print(renderTable(["SESSION", "STATUS", "PROVIDER", "TITLE", "TURNS", "LAST ACTIVE"], rows, ctx.colors));
  if (response.sessions.length > shown.length) ctx.warn(`(${response.sessions.length - shown.length} more; raise --limit or use --json)`);
  return ExitCode.Ok;
}

export async function snapshotCommand(ctx: CommandContext, sessionId: string, o: JsonOption): Promise<number> {
  const response = await ctx.clients.session.getSnapshot({ sessionId }, UNARY);
  if (o.json) {
    printJson(ctx, GetSnapshotResponseSchema, response);
    return ExitCode.Ok;
  }
  const s = response.session;
  if (!s) return ExitCode.Ok;
  const c = ctx.colors;
  const fields: [string, string][] = [
    ["session", clip(s.sessionId, 128)],
    ["status", statusName(s.status)],
    ["provider", clip(s.provider, 64) || "-"],
    ["title", clip(s.title, 256) || "-"],
    ["last seq", String(response.lastSeq)],
    ["incarnation", clip(s.incarnation, 128)],
    ["work dir", clip(s.workDir, 1024)],
    ["pid", s.pid ? String(s.pid) : "-"],
    ["model", clip(s.config?.model ?? "", 256) || "default"],
    ["created", formatTime(s.createdAt)],
    ["last active", formatTime(s.lastActiveAt)],
    ["turns", String(s.stats?.turns ?? 0)],
  ];
  if (s.currentTurn) fields.push(["current turn", `${clip(s.currentTurn.turnId, 64)}: ${clip(s.currentTurn.prompt, 80)}`]);
  if (s.queuedTurns) fields.push(["queued turns", String(s.queuedTurns)]);
  if (s.forkedFrom) fields.push(["forked from", clip(s.forkedFrom.sessionId, 128)]);
  ctx.print(renderFields(fields, c));
  for (const pending of s.pendingRequests) {
    if (pending.request) ctx.print(`${describeRequest(pending.request, c, ctx.width)}\n`);
  }
  return ExitCode.Ok;
}

function statsFields(stats: SessionStats | undefined): [string, string][] {
  const s = stats;
  if (!s) return [];
  const tools = Object.entries(s.toolsUsed)
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => `${clip(name, 64)} ${n}`)
    .join(", ");
  return [
    ["turns", `${s.turns} (${s.failedTurns} not completed)`],
    ["time", `${formatDuration(Number(s.totalDurationMs))} (thinking ${formatDuration(Number(s.thinkingDurationMs))}, tools ${formatDuration(Number(s.toolDurationMs))}, generation ${formatDuration(Number(s.generationDurationMs))})`],
    ["tokens", `${formatCount(s.inputTokens)} in / ${formatCount(s.outputTokens)} out, ${formatCount(s.cacheReadTokens)} cache read, ${formatCount(s.cacheWriteTokens)} cache write`],
    ["cost", formatCost(s.costUsd)],
    ["tool calls", `${s.toolCalls}${tools ? ` (${tools})` : ""}`],
    ["modified files", s.modifiedFiles.length ? s.modifiedFiles.slice(0, 50).map((f) => clip(f, 256)).join(", ") + (s.modifiedFiles.length > 50 ? ", …" : "") : "-"],
  ];
}

export async function statsCommand(ctx: CommandContext, sessionId: string, o: JsonOption): Promise<number> {
  const response = await ctx.clients.session.getSessionStats({ sessionId }, UNARY);
  if (o.json) printJson(ctx, GetSessionStatsResponseSchema, response);
  else ctx.print(renderFields(statsFields(response.stats), ctx.colors));
  return ExitCode.Ok;
}

export async function stopCommand(ctx: CommandContext, sessionId: string, o: JsonOption): Promise<number> {
  const response = await ctx.clients.session.stopSession({ sessionId }, { timeoutMs: 120_000 });
  if (o.json) printJson(ctx, StopSessionResponseSchema, response);
  else ctx.print(`stopped ${clip(sessionId, 128)}: ${statusName(response.session?.status ?? 0)} (last seq ${response.lastSeq})\n`);
  return ExitCode.Ok;
}

export async function interruptCommand(ctx: CommandContext, sessionId: string, o: JsonOption & { turn?: string }): Promise<number> {
  const response = await ctx.clients.session.interrupt({ sessionId, turnId: o.turn ?? "" }, { timeoutMs: 120_000 });
  if (o.json) printJson(ctx, InterruptResponseSchema, response);
  else ctx.print(`turn ${clip(response.turnId, 64)} ended ${outcomeName(response.outcome)} (last seq ${response.lastSeq})\n`);
  return response.outcome === TurnOutcome.INTERRUPTED || response.outcome === TurnOutcome.COMPLETED ? ExitCode.Ok : ExitCode.Failed;
}

export async function deleteCommand(ctx: CommandContext, sessionId: string, o: JsonOption & { transcript?: boolean }): Promise<number> {
  const response = await ctx.clients.session.deleteSession({ sessionId, deleteTranscript: o.transcript === true }, { timeoutMs: 120_000 });
  if (o.json) printJson(ctx, DeleteSessionResponseSchema, response);
  else ctx.print(`deleted ${clip(sessionId, 128)} (it had logged ${response.lastSeq} events)\n`);
  return ExitCode.Ok;
}

export async function providersCommand(ctx: CommandContext, o: JsonOption): Promise<number> {
  const response = await ctx.clients.session.listProviders({}, UNARY);
  if (o.json) {
    printJson(ctx, ListProvidersResponseSchema, response);
    return ExitCode.Ok;
  }
  const rows = response.providers.map((p) => {
    const caps = Object.entries(p.capabilities ?? {})
      .filter(([key, on]) => on === true && key !== "$typeName")
      .map(([key]) => key.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`));
    return [p.name + (p.isDefault ? " (default)" : ""), p.version || "not runnable", caps.join(" ")];
  });
  ctx.print(renderTable(["PROVIDER", "VERSION", "CAPABILITIES"], rows, ctx.colors, 120));
  return ExitCode.Ok;
}

export async function approveCommand(ctx: CommandContext, sessionId: string, requestId: string, o: JsonOption & { forSession?: boolean }): Promise<number> {
  const response = await ctx.clients.session.respondPermission(
    { sessionId, requestId, decision: { case: "allow", value: { forSession: o.forSession === true, updatedInputJson: "" } } },
    UNARY,
  );
  if (o.json) printJson(ctx, RespondPermissionResponseSchema, response);
  else ctx.print(`allowed ${clip(requestId, 128)}${o.forSession ? " (and identical calls for the rest of the session)" : ""}\n`);
  return ExitCode.Ok;
}

export async function denyCommand(ctx: CommandContext, sessionId: string, requestId: string, o: JsonOption & { interrupt?: boolean; message?: string }): Promise<number> {
  const response = await ctx.clients.session.respondPermission(
    { sessionId, requestId, decision: { case: "deny", value: { message: o.message ?? "", interrupt: o.interrupt === true } } },
    UNARY,
  );
  if (o.json) printJson(ctx, RespondPermissionResponseSchema, response);
  else ctx.print(`denied ${clip(requestId, 128)}${o.interrupt ? " and interrupted the turn" : ""}\n`);
  return ExitCode.Ok;
}
