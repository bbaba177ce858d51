import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AdminService, type AgentLogSource } from "../../../gen/hotplex/v1/admin_service_pb.js";
import { type Engine, sandboxInfo } from "../../engine/engine.js";
import { HotplexError } from "../../errors.js";
import { isTenantName } from "../../security/principal.js";
import { methodKey } from "../authorization.js";
import { principalKey } from "../context.js";

/** What GetServerInfo reports beside the engine's own state. */
export interface ServerFacts {
  version: string;
  maxRequestBytes: number;
  maxConnections: number;
}

function tenantArgument(tenant: string): string {
  if (!isTenantName(tenant)) {
    throw new HotplexError("invalid_argument", `tenant ${JSON.stringify(tenant.slice(0, 80))} is not a tenant name: 1-63 of [a-z0-9_-]`);
  }
  return tenant;
}

/** AdminService: every call is an audited admin action. */
export function adminServiceRoutes(engine: Engine, facts: ServerFacts): (router: ConnectRouter) => void {
  const audit = (ctx: HandlerContext, detail: string, tenant = "", sessionId = "") =>
    engine.recordAudit({
      kind: "admin_action",
      principal: ctx.values.get(principalKey)?.name ?? "",
      tenant,
      sessionId,
      method: methodKey(ctx.method),
      detail,
    });
  // The engine acts on the named tenant's session on the admin's behalf.
  const admin = (ctx: HandlerContext, tenant: string) => ({ tenant, name: ctx.values.get(principalKey)?.name ?? "" });
  return (router) =>
    router.service(AdminService, {
      async listAllSessions(req, ctx) {
        if (req.tenant) tenantArgument(req.tenant);
        audit(ctx, req.tenant ? `listed the sessions of tenant ${req.tenant}` : "listed the sessions of every tenant", req.tenant);
        return {
          sessions: (await engine.listAll(req.tenant)).map(({ tenant, summary }) => ({ tenant, session: summary })),
        };
      },

      async stopTenantSession(req, ctx) {
        const tenant = tenantArgument(req.tenant);
        audit(ctx, "stopped the session", tenant, req.sessionId);
        const { session, lastSeq } = await engine.stop(admin(ctx, tenant), req.sessionId);
        return { session, lastSeq: BigInt(lastSeq) };
      },

      setRuleBypass(req, ctx) {
        const tenant = tenantArgument(req.tenant);
        const until = engine.setRuleBypass(admin(ctx, tenant), req.sessionId, req.seconds);
        audit(ctx, req.seconds > 0 ? `lifted the rules for ${req.seconds} s` : "ended the rule bypass", tenant, req.sessionId);
        return { until: until === undefined ? undefined : timestampFromMs(until) };
      },

      async deleteTenantSession(req, ctx) {
        const tenant = tenantArgument(req.tenant);
        audit(ctx, req.deleteTranscript ? "deleted the session and its transcript" : "deleted the session", tenant, req.sessionId);
        const { lastSeq } = await engine.delete(admin(ctx, tenant), req.sessionId, req.deleteTranscript);
        return { lastSeq: BigInt(lastSeq) };
      },

      getServerInfo() {
        const config = engine.config;
        return {
          version: facts.version,
          providers: engine.providers.names,
          startedAt: timestampFromMs(engine.startedAtMs),
          uptimeSeconds: BigInt(Math.floor((Date.now() - engine.startedAtMs) / 1000)),
          limits: {
            maxLiveSessions: config.maxLiveSessions,
            maxStoredSessions: config.maxStoredSessions,
            queueLimit: config.limits.queueLimit,
            turnTimeoutMs: BigInt(config.limits.turnTimeoutMs),
            idleTimeoutMs: BigInt(config.limits.idleTimeoutMs),
            maxRequestBytes: BigInt(facts.maxRequestBytes),
            maxPromptBytes: BigInt(config.maxPromptBytes),
            maxLineBytes: BigInt(config.limits.maxLineBytes),
            maxConnections: facts.maxConnections,
          },
          liveSessions: engine.pool.liveCount(),
          prewarmedAgents: engine.prewarmed.count(),
          storedSessions: engine.pool.size,
          draining: engine.draining,
          tenants: engine.tenants.names,
          sandbox: sandboxInfo(engine.sandbox.state),
        };
      },

      async drain(req, ctx) {
        const graceMs = req.graceSeconds > 0 ? req.graceSeconds * 1000 : engine.config.limits.stopGraceMs;
        audit(ctx, `drain with a grace period of ${graceMs} ms`);
        const result = await engine.drain(graceMs);
        return { turnsFinished: result.turnsFinished, sessionsStopped: result.sessionsStopped };
      },

      async *getSessionLogs(req, ctx) {
        const tenant = tenantArgument(req.tenant);
        const pages = engine.sessionLogs(tenant, req.sessionId, req.afterIndex, req.limit, req.follow, ctx.signal);
        audit(ctx, req.follow ? "followed the agent log" : "read the agent log", tenant, req.sessionId);
        for await (const page of pages) {
          yield {
            entries: page.entries.map((entry) => ({
              index: BigInt(entry.index),
              time: timestampFromMs(entry.timeMs),
              source: entry.source as number as AgentLogSource,
              text: entry.text,
              truncated: entry.truncated,
              pid: entry.pid,
            })),
            firstIndex: BigInt(page.firstIndex),
            lastIndex: BigInt(page.lastIndex),
            dropped: BigInt(page.dropped),
          };
        }
      },

      async listAuditEvents(req) {
        const limit = req.limit === 0 ? 100 : req.limit;
        if (limit > 1000) throw new HotplexError("invalid_argument", `limit ${limit} is more than 1000`);
        if (req.afterId > BigInt(Number.MAX_SAFE_INTEGER)) return { events: [] };
        return { events: await engine.audit.list(Number(req.afterId), limit) };
      },
    });
}
