import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { ExecuteResponseSchema, SessionService, SubscribeResponseSchema } from "../../../gen/hotplex/v1/session_service_pb.js";
import type { RespondPermissionRequest } from "../../../gen/hotplex/v1/session_service_pb.js";
import type { Caller, ClientDecision, Engine } from "../../engine/engine.js";
import { HotplexError } from "../../errors.js";
import { principalKey } from "../context.js";
import { isBinaryCall, withPreEncodedEvents } from "../pre-encoded.js";

// The authorization interceptor sets the principal before any handler runs.
function callerOf(ctx: HandlerContext): Caller {
  const principal = ctx.values.get(principalKey);
  if (!principal) throw new HotplexError("internal", "a call reached its handler without a principal");
  return principal;
}

/** SessionService: every handler is a thin call into the engine, for the caller's tenant. */
export function sessionServiceRoutes(engine: Engine): (router: ConnectRouter) => void {
  return (router) =>
    router.service(SessionService, {
      async *execute(req, ctx) {
        const events = engine.execute(
          callerOf(ctx),
          { sessionId: req.sessionId, prompt: req.prompt, requestId: req.requestId, config: req.config, queue: req.queue },
          ctx.signal,
        );
        const binary = isBinaryCall(ctx.requestHeader);
        // Field 1 of ExecuteResponse holds the events.
        for await (const batch of events) yield binary ? withPreEncodedEvents(ExecuteResponseSchema, 1, batch) : { events: batch };
      },

      async *subscribe(req, ctx) {
        const subscription = await engine.subscribe(callerOf(ctx), req.sessionId, req.afterSeq, req.follow, req.incarnation, ctx.signal, req.afterEpoch);
        yield {
          header: {
            status: subscription.status,
            firstSeq: BigInt(subscription.firstSeq),
            lastSeq: BigInt(subscription.lastSeq),
            incarnation: subscription.incarnation,
          },
        };
        const binary = isBinaryCall(ctx.requestHeader);
        for await (const batch of subscription.events) {
          // Field 2 of SubscribeResponse holds the events.
          yield binary ? withPreEncodedEvents(SubscribeResponseSchema, 2, batch) : { events: batch };
        }
      },

      async getSnapshot(req, ctx) {
        const { session, lastSeq } = await engine.snapshot(callerOf(ctx), req.sessionId);
        return { session, lastSeq: BigInt(lastSeq) };
      },

      async stopSession(req, ctx) {
        const { session, lastSeq } = await engine.stop(callerOf(ctx), req.sessionId);
        return { session, lastSeq: BigInt(lastSeq) };
      },

      async interrupt(req, ctx) {
        const { turnId, outcome, lastSeq } = await engine.interrupt(callerOf(ctx), req.sessionId, req.turnId);
        return { turnId, outcome, lastSeq: BigInt(lastSeq) };
      },

      async getSessionStats(req, ctx) {
        return { sessionId: req.sessionId, stats: await engine.stats(callerOf(ctx), req.sessionId) };
      },

      async listSessions(_req, ctx) {
        return { sessions: await engine.list(callerOf(ctx)) };
      },

      async listProviders() {
        return { providers: await engine.listProviders() };
      },

      async deleteSession(req, ctx) {
        const { lastSeq } = await engine.delete(callerOf(ctx), req.sessionId, req.deleteTranscript);
        return { lastSeq: BigInt(lastSeq) };
      },

      async respondPermission(req, ctx) {
        return { lastSeq: BigInt(await engine.respondPermission(callerOf(ctx), req.sessionId, req.requestId, decisionOf(req))) };
      },

      async steer(req, ctx) {
        const { turnId, seq } = await engine.steer(callerOf(ctx), req.sessionId, req.prompt, req.turnId);
        return { turnId, seq: BigInt(seq) };
      },

      async cancelTurn(req, ctx) {
        return { lastSeq: BigInt(await engine.cancelTurn(callerOf(ctx), req.sessionId, req.turnId)) };
      },

      async changeSettings(req, ctx) {
        const { session, lastSeq } = await engine.changeSettings(callerOf(ctx), req.sessionId, {
          ...(req.model !== undefined ? { model: req.model } : {}),
          ...(req.permissionMode !== undefined ? { permissionMode: req.permissionMode } : {}),
        });
        return { session, lastSeq: BigInt(lastSeq) };
      },

      async listModels(req, ctx) {
        const models = await engine.listModels(callerOf(ctx), req.sessionId);
        return { models: models.map((model) => ({ id: model.id, displayName: model.displayName, description: model.description })) };
      },

      async resetSession(req, ctx) {
        const { providerSessionId, lastSeq } = await engine.resetSession(callerOf(ctx), req.sessionId);
        return { providerSessionId, lastSeq: BigInt(lastSeq) };
      },

      async forkSession(req, ctx) {
        const { session, lastSeq } = await engine.forkSession(callerOf(ctx), req.sessionId, req.newSessionId, req.upToTurnId, req.title);
        return { session, lastSeq: BigInt(lastSeq) };
      },

      async setTitle(req, ctx) {
        return { lastSeq: BigInt(await engine.setTitle(callerOf(ctx), req.sessionId, req.title)) };
      },
    });
}

// The request's decision in the engine's terms (undefined when none is set).
function decisionOf(req: RespondPermissionRequest): ClientDecision | undefined {
  const { decision } = req;
  switch (decision.case) {
    case "allow":
      return { behavior: "allow", updatedInputJson: decision.value.updatedInputJson, forSession: decision.value.forSession };
    case "deny":
      return { behavior: "deny", message: decision.value.message, interrupt: decision.value.interrupt };
    case "answer":
      return { behavior: "answer", answers: { ...decision.value.answers } };
    default:
      return undefined;
  }
}
