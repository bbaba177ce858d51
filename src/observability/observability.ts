import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { EngineObserver } from "../engine/config.js";
import type { Engine } from "../engine/engine.js";
import type { CredentialTable } from "../security/credentials.js";
import type { HttpRoutes } from "../server/http-routes.js";
import type { RpcObserver } from "../server/interceptors.js";
import { DaemonMetrics } from "./metrics.js";
import { createMetricsRoute, type MetricsAccess } from "./metrics-route.js";
import { AfterTick } from "./after-tick.js";
import { observeSession } from "./session-observer.js";
import { createTracingInterceptor } from "./tracing-interceptor.js";
import type { Tracing } from "./tracing.js";
import { TurnTraces } from "./turn-traces.js";

export interface ObservabilityOptions {
  /** Prometheus metrics (and /metrics). */
  metrics: boolean;
  /** Spans per RPC and per turn; unset: no spans at all, the no-op path. */
  tracing?: Tracing;
  /** Where turn lines go (one per ended turn, with its trace id). */
  logger: Logger;
}

/**
 * Metrics, tracing and the turn log lines of one daemon, wired from one place: the engine
 * observer (EngineConfig.observer), the server's interceptors and the /metrics route. With
 * metrics off and no tracing there is nothing: no observer, no interceptor, no cost.
 */
export class Observability {
  readonly metrics: DaemonMetrics | undefined;
  readonly tracing: Tracing | undefined;
  readonly #turns: TurnTraces | undefined;
  readonly #logger: Logger;
  /** Observing events and writing RPC lines, done once the tick that produced them is over. */
  readonly later: AfterTick;

  constructor(options: ObservabilityOptions) {
    this.metrics = options.metrics ? new DaemonMetrics() : undefined;
    this.tracing = options.tracing;
    this.#turns = this.enabled ? new TurnTraces() : undefined;
    this.#logger = options.logger;
    this.later = new AfterTick((error) => this.#logger.error({ err: error }, "observing failed"));
  }

  /** Whether anything is observed at all. */
  get enabled(): boolean {
    return this.metrics !== undefined || this.tracing !== undefined;
  }

  /** For EngineConfig.observer: undefined when nothing is observed. */
  get engineObserver(): EngineObserver | undefined {
    if (!this.enabled) return undefined;
    const parts = { metrics: this.metrics?.events, turns: this.#turns, tracer: this.tracing?.tracer, logger: this.#logger };
    return {
      // The events' readers go first: the observer sees each batch after this tick, with the
      // time it was published.
      session: (session) => {
        const observe = observeSession(session, parts);
        return (events) => {
          const publishedAt = performance.now();
          this.later.run(() => observe(events, publishedAt));
        };
      },
      ...(this.metrics ? { commit: this.metrics.store.observer } : {}),
    };
  }

  /** The engine opened with `engineObserver` (the gauges read it when scraped). */
  attach(engine: Engine): void {
    this.metrics?.attach(engine);
  }

  /** For ServerOptions.observe: the RPC metrics' observer and the tracing interceptor, where enabled. */
  get interceptors(): { rpc?: RpcObserver; tracing?: Interceptor } {
    const rpc = this.metrics?.rpc;
    return {
      ...(rpc ? { rpc: (service: string, method: string, code: string, seconds: number) => rpc.observe(service, method, code, seconds) } : {}),
      ...(this.enabled ? { tracing: createTracingInterceptor(this.tracing?.tracer, this.#turns) } : {}),
    };
  }

  /** For ServerOptions.extraRoutes: /metrics when metrics are on (else the path is a 404). */
  routes(credentials: () => CredentialTable, access: MetricsAccess): HttpRoutes {
    return this.metrics ? { "/metrics": createMetricsRoute({ metrics: this.metrics, credentials, access }) } : {};
  }

  /** Observes what is still queued (the last turns' spans end there), then exports the spans still buffered. */
  async shutdown(): Promise<void> {
    this.later.flush();
    await this.tracing?.shutdown();
  }
}
