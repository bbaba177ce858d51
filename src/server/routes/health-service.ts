import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/health/v1/health_pb.js";
import type { Engine } from "../../engine/engine.js";
import { ServingPhase } from "../../engine/serving-state.js";
import { OPEN_METHOD_MAX_BYTES } from "../authorization.js";
import type { HttpRoutes } from "../http-routes.js";

/** Whether the daemon takes new work now, and if not, why (for /readyz and the log). */
export interface Readiness {
  ready: boolean;
  reason: "serving" | "draining" | "stopping" | "store unusable";
}

// A probe reads the store at most this often: /readyz is unauthenticated, and a flood of
// probes must not become a flood of queries.
const STORE_PROBE_MS = 1_000;
// A store that takes longer than this to answer a probe is reported unusable.
const STORE_PROBE_TIMEOUT_MS = 2_000;

// Longest service name echoed back in an error.
const MAX_NAME_IN_MESSAGE = 128;

/**
 * Readiness: the engine's serving phase, and whether its store still answers a query (a
 * daemon whose database went away cannot take a turn, however SERVING its phase).
 */
export function readinessOf(engine: Engine): () => Promise<Readiness> {
  let checkedAtMs = -Infinity;
  let probe: Promise<boolean> = Promise.resolve(true);
  return async () => {
    const phase = engine.serving.phase;
    if (phase !== ServingPhase.SERVING) return { ready: false, reason: phase === ServingPhase.DRAINING ? "draining" : "stopping" };
    const now = performance.now();
    if (now - checkedAtMs >= STORE_PROBE_MS) {
      checkedAtMs = now;
      // One probe at a time, shared by every caller that arrives meanwhile.
      probe = storeAnswers(engine);
    }
    return (await probe) ? { ready: true, reason: "serving" } : { ready: false, reason: "store unusable" };
  };
}

// Whether the store answers within STORE_PROBE_TIMEOUT_MS: a store that hangs (a network
// store behind a partition) is as unusable as one that fails.
async function storeAnswers(engine: Engine): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), STORE_PROBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([engine.store.ping().then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * grpc.health.v1.Health. The service "" (the daemon as a whole) and each of `services` by
 * its full name report SERVING while the daemon is ready and NOT_SERVING from the moment a
 * drain or shutdown starts (or while the store is unusable); any other name is NOT_FOUND,
 * as gRPC's convention says. Served to callers without a credential (server/authorization.ts).
 */
export function healthServiceRoutes(engine: Engine, services: readonly DescService[]): (router: ConnectRouter) => void {
  const readiness = readinessOf(engine);
  const names = ["", ...services.map((service) => service.typeName)];
  const known = new Set(names);
  const status = async (): Promise<Status> => ((await readiness()).ready ? Status.SERVING : Status.NOT_SERVING);
  const checked = (service: string): string => {
    if (!known.has(service)) {
      throw new ConnectError(
        `unknown service ${JSON.stringify(service.slice(0, MAX_NAME_IN_MESSAGE))}: ask for "" (the whole daemon) or one of ${names.filter(Boolean).join(", ")}`,
        Code.NotFound,
      );
    }
    return service;
  };
  return (router) =>
    router.service(
      Health,
      {
        async check(req) {
          checked(req.service);
          return { status: await status() };
        },

        async list() {
          const now = await status();
          return { statuses: Object.fromEntries(names.map((name) => [name, { status: now }])) };
        },

        watch(req, ctx) {
          return watch(engine, known.has(req.service) ? status : async () => Status.SERVICE_UNKNOWN, ctx);
        },
      },
      // A health request holds a service name: the same small bound for every protocol.
      { readMaxBytes: OPEN_METHOD_MAX_BYTES },
    );
}

/**
 * The current status, then each change. Only the latest status is ever kept: a slow client
 * that misses intermediate changes gets the newest one next, never a backlog. An unknown
 * service gets SERVICE_UNKNOWN and the stream stays open (gRPC's convention for Watch). The
 * stream ends when the client goes away, or with UNAVAILABLE once the engine shuts down, so
 * that no watcher holds up the server's close.
 */
async function* watch(engine: Engine, status: () => Promise<Status>, ctx: HandlerContext): AsyncGenerator<{ status: Status }> {
  let sent: Status | undefined;
  for (;;) {
    // Armed before the status is read, so a change between the two is not missed; not at
    // all once stopping, the last phase.
    const changed = engine.serving.phase === ServingPhase.STOPPING ? undefined : engine.serving.nextChange(ctx.signal);
    const now = await status();
    if (now !== sent) {
      sent = now;
      yield { status: now };
    }
    if (!changed) throw new ConnectError("the daemon is shutting down: watch again once it is back", Code.Unavailable);
    await changed;
    if (ctx.signal.aborted) return;
  }
}

/** /healthz (liveness) and /readyz (readiness), plain HTTP GETs for probes with no gRPC. */
export function probeRoutes(engine: Engine): HttpRoutes {
  const readiness = readinessOf(engine);
  return {
    // Alive while the process answers at all: a draining daemon is alive, and restarting it
    // would cut the very turns the drain lets finish.
    "/healthz": () => ({ status: 200, body: "ok\n" }),
    "/readyz": async () => {
      const { ready, reason } = await readiness();
      return ready ? { status: 200, body: "ready\n" } : { status: 503, body: `not ready: ${reason}\n` };
    },
  };
}
