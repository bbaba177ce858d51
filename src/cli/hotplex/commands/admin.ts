// `hotplex admin ...`: the AdminService, for an admin credential.
import {
  DrainResponseSchema,
  GetServerInfoResponseSchema,
  ListAllSessionsResponseSchema,
  ListAuditEventsResponseSchema,
} from "../../../../gen/hotplex/v1/admin_service_pb.js";
import { type CommandContext, UNARY } from "../context.js";
import { ExitCode } from "../errors.js";
import { formatAgo, formatDuration, formatTime, statusName } from "../format.js";
import { clip } from "../sanitize.js";
import { renderFields, renderTable } from "../table.js";
import { type JsonOption, printJson } from "./sessions.js";

export async function adminSessionsCommand(ctx: CommandContext, o: JsonOption & { tenant?: string }): Promise<number> {
  const response = await ctx.clients.admin.listAllSessions({ tenant: o.tenant ?? "" }, UNARY);
  if (o.json) {
    printJson(ctx, ListAllSessionsResponseSchema, response);
    return ExitCode.Ok;
  }
  const now = Date.now();
  const rows = response.sessions.map(({ tenant, session: s }) => [
    tenant,
    s?.sessionId ?? "",
    statusName(s?.status ?? 0),
    s?.title || "-",
    String(s?.lastSeq ?? 0n),
    formatAgo(s?.lastActiveAt, now),
  ]);
  ctx.print(rows.length ? renderTable(["TENANT", "SESSION", "STATUS", "TITLE", "LAST SEQ", "LAST ACTIVE"], rows, ctx.colors) : "no sessions\n");
  return ExitCode.Ok;
}

export async function adminDrainCommand(ctx: CommandContext, o: JsonOption & { grace?: number }): Promise<number> {
  const grace = o.grace ?? 0;
  // Drain returns once every session has stopped: allow for the grace period and the stops.
  const response = await ctx.clients.admin.drain({ graceSeconds: grace }, { timeoutMs: (grace + 120) * 1_000 });
  if (o.json) printJson(ctx, DrainResponseSchema, response);
  else ctx.print(`drained: ${response.turnsFinished} turn(s) finished, ${response.sessionsStopped} session(s) stopped\n`);
  return ExitCode.Ok;
}

export async function adminAuditCommand(ctx: CommandContext, o: JsonOption & { after?: bigint; limit?: number }): Promise<number> {
  const response = await ctx.clients.admin.listAuditEvents({ afterId: o.after ?? 0n, limit: o.limit ?? 0 }, UNARY);
  if (o.json) {
    printJson(ctx, ListAuditEventsResponseSchema, response);
    return ExitCode.Ok;
  }
  const rows = response.events.map((e) => [String(e.id), formatTime(e.time), e.kind, e.principal, e.tenant || "-", e.sessionId || "-", e.method.replace(/^hotplex\.v1\./, ""), e.detail]);
  ctx.print(rows.length ? renderTable(["ID", "TIME", "KIND", "PRINCIPAL", "TENANT", "SESSION", "METHOD", "DETAIL"], rows, ctx.colors, 80) : "no audit events\n");
  return ExitCode.Ok;
}

export async function adminInfoCommand(ctx: CommandContext, o: JsonOption): Promise<number> {
  const info = await ctx.clients.admin.getServerInfo({}, UNARY);
  if (o.json) {
    printJson(ctx, GetServerInfoResponseSchema, info);
    return ExitCode.Ok;
  }
  const l = info.limits;
  const limit = (n: number | bigint | undefined) => (n ? String(n) : "none");
  const ms = (n: bigint | undefined) => (n ? formatDuration(Number(n)) : "none");
  const sandbox = info.sandbox;
  ctx.print(
    renderFields(
      [
        ["version", clip(info.version, 64)],
        ["started", `${formatTime(info.startedAt)} (up ${formatDuration(Number(info.uptimeSeconds) * 1_000)})`],
        ["providers", info.providers.map((p) => clip(p, 64)).join(", ") || "-"],
        ["sessions", `${info.liveSessions} live, ${info.storedSessions} stored`],
        ["draining", info.draining ? "yes" : "no"],
        ["tenants", info.tenants.map((t) => clip(t, 64)).join(", ") || "-"],
        ["sandbox", sandbox ? `${sandbox.enabled ? "on" : "off"} (mode ${clip(sandbox.mode, 16)}${sandbox.reason ? `: ${clip(sandbox.reason, 120)}` : ""}; network ${clip(sandbox.network, 16)})` : "-"],
        ["limits", `live ${limit(l?.maxLiveSessions)}, stored ${limit(l?.maxStoredSessions)}, queue ${limit(l?.queueLimit)}, turn timeout ${ms(l?.turnTimeoutMs)}, idle timeout ${ms(l?.idleTimeoutMs)}`],
      ],
      ctx.colors,
    ),
  );
  return ExitCode.Ok;
}
