import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  ExecuteResponseSchema,
  SessionService,
  SubscribeResponseSchema,
} from "../../gen/hotplex/v1/session_service_pb.js";
import type { Engine } from "../engine/engine.js";
import { tenantKey } from "./interceptors.js";
import { isBinaryCall, withPreEncodedEvents } from "./pre-encoded.js";

const tenantOf = (ctx: HandlerContext) => ctx.values.get(tenantKey);

/** Registers the API's routes; every handler is a thin call into the engine. */
export function routes(engine: Engine): (router: ConnectRouter) => void {
  return (router) =>
    router.service(SessionService, {
      async *execute(req, ctx) {
        const events = engine.execute(
          tenantOf(ctx),
          { sessionId: req.sessionId, prompt: req.prompt, requestId: req.requestId, config: req.config, queue: req.queue },
          ctx.signal,
        );
        const binary = isBinaryCall(ctx.requestHeader);
        // Field 1 of ExecuteResponse holds the events.
        for await (const batch of events) yield binary ? withPreEncodedEvents(ExecuteResponseSchema, 1, batch) : { events: batch };
      },

      async *subscribe(req, ctx) {
        const subscription = engine.subscribe(
          tenantOf(ctx),
          req.sessionId,
          Number(req.afterSeq),
          req.follow,
          req.incarnation,
          ctx.signal,
        );
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
        const { session, lastSeq } = engine.snapshot(tenantOf(ctx), req.sessionId);
        return { session, lastSeq: BigInt(lastSeq) };
      },

      async stopSession(req, ctx) {
        const { session, lastSeq } = await engine.stop(tenantOf(ctx), req.sessionId);
        return { session, lastSeq: BigInt(lastSeq) };
      },

      getSessionStats(req, ctx) {
        return { sessionId: req.sessionId, stats: engine.stats(tenantOf(ctx), req.sessionId) };
      },

      listSessions(_req, ctx) {
        return { sessions: engine.list(tenantOf(ctx)) };
      },

      async deleteSession(req, ctx) {
        const { lastSeq } = await engine.delete(tenantOf(ctx), req.sessionId, req.deleteTranscript);
        return { lastSeq: BigInt(lastSeq) };
      },
    });
}
