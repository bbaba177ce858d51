import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { ExecuteResponseSchema, SessionService, SubscribeResponseSchema } from "../../../gen/hotplex/v1/session_service_pb.js";
import type { Caller, Engine } from "../../engine/engine.js";
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
        const subscription = engine.subscribe(callerOf(ctx), req.sessionId, req.afterSeq, req.follow, req.incarnation, ctx.signal);
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

      getSnapshot(req, ctx) {
        const { session, lastSeq } = engine.snapshot(callerOf(ctx), req.sessionId);
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

      getSessionStats(req, ctx) {
        return { sessionId: req.sessionId, stats: engine.stats(callerOf(ctx), req.sessionId) };
      },

      listSessions(_req, ctx) {
        return { sessions: engine.list(callerOf(ctx)) };
      },

      async listProviders() {
        return { providers: await engine.listProviders() };
      },

      async deleteSession(req, ctx) {
        const { lastSeq } = await engine.delete(callerOf(ctx), req.sessionId, req.deleteTranscript);
        return { lastSeq: BigInt(lastSeq) };
      },
    });
}
