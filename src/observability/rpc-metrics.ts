import type { Registry } from "prom-client";
import { DeferredCounter, DeferredHistogram } from "./deferred.js";
import { DURATION_BUCKETS, PREFIX } from "./registry.js";

type RpcLabel = "service" | "method" | "code";

/**
 * RPCs by service, method and final Connect code, and their durations (a stream's until its
 * last message). The labels are bounded by construction: only the methods the router
 * serves reach an interceptor, and codes are an enum. Deferred (deferred.ts): this runs on
 * every call.
 */
export class RpcMetrics {
  readonly #requests: DeferredCounter<RpcLabel>;
  readonly #duration: DeferredHistogram<RpcLabel>;

  constructor(registry: Registry) {
    this.#requests = new DeferredCounter({
      name: `${PREFIX}rpc_requests_total`,
      help: "RPCs handled, by service, method and final Connect code (canceled: the client went away)",
      labelNames: ["service", "method", "code"],
      registers: [registry],
    });
    this.#duration = new DeferredHistogram({
      name: `${PREFIX}rpc_duration_seconds`,
      help: "Time from an RPC's arrival to its response's end (for streams, the last message), by service, method and code",
      labelNames: ["service", "method", "code"],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
  }

  /** One RPC ended with `code` after `seconds`. */
  observe(service: string, method: string, code: string, seconds: number): void {
    const key = `${service}\u0000${method}\u0000${code}`;
    const make = () => ({ service, method, code });
    this.#requests.inc(key, make);
    this.#duration.observe(key, make, seconds);
  }
}

