import type { Registry } from "prom-client";
import type { Engine } from "../engine/engine.js";
import { EngineGauges } from "./engine-gauges.js";
import { EventMetrics } from "./event-metrics.js";
import { createRegistry } from "./registry.js";
import { RpcMetrics } from "./rpc-metrics.js";
import { StoreMetrics } from "./store-metrics.js";

/**
 * One daemon's Prometheus metrics, in a registry of its own: RPCs (from an interceptor),
 * the sessions' events (from the engine's event observer), store commits (from the group
 * committer) and gauges read from the engine when scraped, plus the process defaults.
 */
export class DaemonMetrics {
  readonly registry: Registry;
  readonly rpc: RpcMetrics;
  readonly events: EventMetrics;
  readonly store: StoreMetrics;
  readonly #gauges: EngineGauges;

  constructor() {
    this.registry = createRegistry();
    this.rpc = new RpcMetrics(this.registry);
    this.events = new EventMetrics(this.registry);
    this.store = new StoreMetrics(this.registry);
    this.#gauges = new EngineGauges(this.registry);
  }

  /** The engine the gauges read (opened with this daemon's observer). */
  attach(engine: Engine): void {
    this.#gauges.attach(engine);
  }

  /** The exposition: Prometheus text format. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
