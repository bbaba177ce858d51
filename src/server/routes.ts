import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  ExecuteResponseSchema,
  SessionService,
  SubscribeResponseSchema,
} from "../../gen/hotplex/v1/session_service_pb.js";
import type { Engine } from "../engine/engine.js";
import { tenantKey } from "./interceptors.js";
import { isBinaryCall, withPreEncodedEvent } from "./pre-encoded.js";

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
        // Field 1 of ExecuteResponse is the event.
        for await (const event of events) yield binary ? withPreEncodedEvent(ExecuteResponseSchema, 1, event) : { event };
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
          message: {
            case: "header",
            value: {
              status: subscription.status,
              firstSeq: BigInt(subscription.firstSeq),
              lastSeq: BigInt(subscription.lastSeq),
              incarnation: subscription.incarnation,
            },
          },
        };
        const binary = isBinaryCall(ctx.requestHeader);
        for await (const event of subscription.events) {
          // Field 2 of SubscribeResponse is the event.
          yield binary ? withPreEncodedEvent(SubscribeResponseSchema, 2, event) : { message: { case: "event", value: event } };
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
