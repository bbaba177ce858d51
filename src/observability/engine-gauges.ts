import { Gauge, type Registry } from "prom-client";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import type { Engine } from "../engine/engine.js";
import { enumLabel } from "./event-metrics.js";
import { PREFIX } from "./registry.js";

/**
 * Gauges read from the engine when scraped, so they are exact at that moment and cost
 * nothing in between: sessions by status, queued turns, pending approvals (per tenant:
 * tenants come from the config), pre-warmed agents, and the open streams with how far
 * behind their session's log they are (aggregated: never a label per session).
 */
export class EngineGauges {
  #engine: Engine | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    const sessions = () => this.#engine?.pool.all() ?? [];
    const streams = () => this.#engine?.openStreams() ?? [];
    const warm = () => this.#engine?.prewarmed.list() ?? [];
    new Gauge({
      name: `${PREFIX}sessions`,
      help: "Sessions in the registry, by tenant and status",
      labelNames: ["tenant", "status"],
      registers,
      collect() {
        this.reset();
        for (const session of sessions()) this.inc({ tenant: session.tenant, status: enumLabel(SessionStatus, session.view.status) });
      },
    });
    new Gauge({
      name: `${PREFIX}queued_turns`,
      help: "Turns waiting behind a running one (the queue depth), by tenant",
      labelNames: ["tenant"],
      registers,
      collect() {
        this.reset();
        for (const session of sessions()) {
          const queued = session.view.interaction.queued.size;
          if (queued > 0) this.inc({ tenant: session.tenant }, queued);
        }
      },
    });
    new Gauge({
      name: `${PREFIX}permission_requests_pending`,
      help: "Permission requests and questions waiting for a client's answer, by tenant",
      labelNames: ["tenant"],
      registers,
      collect() {
        this.reset();
        for (const session of sessions()) {
          const pending = session.view.interaction.pending.size;
          if (pending > 0) this.inc({ tenant: session.tenant }, pending);
        }
      },
    });
    new Gauge({
      name: `${PREFIX}prewarmed_agents`,
      help: "Agents started ahead of demand (server config prewarm) and not taken yet, by tenant, provider and state (starting, ready)",
      labelNames: ["tenant", "provider", "state"],
      registers,
      collect() {
        this.reset();
        for (const agent of warm()) this.inc({ tenant: agent.tenant, provider: agent.provider, state: agent.state });
      },
    });
    new Gauge({
      name: `${PREFIX}subscribers`,
      help: "Open event streams, by kind (execute, subscribe)",
      labelNames: ["kind"],
      registers,
      collect() {
        this.reset();
        for (const kind of STREAM_KINDS) this.set({ kind }, 0);
        for (const stream of streams()) this.inc({ kind: stream.kind });
      },
    });
    new Gauge({
      name: `${PREFIX}subscriber_lag_max_events`,
      help: "Events the furthest-behind open stream has not read yet from its session's log, by kind",
      labelNames: ["kind"],
      registers,
      collect() {
        const max = new Map<string, number>(STREAM_KINDS.map((kind) => [kind, 0]));
        for (const stream of streams()) max.set(stream.kind, Math.max(max.get(stream.kind) ?? 0, stream.lag));
        for (const [kind, lag] of max) this.set({ kind }, lag);
      },
    });
    new Gauge({
      name: `${PREFIX}subscriber_lag_events`,
      help: "Events the open streams have not read yet from their sessions' logs, summed, by kind (divide by hotplex_subscribers for the mean)",
      labelNames: ["kind"],
      registers,
      collect() {
        const sum = new Map<string, number>(STREAM_KINDS.map((kind) => [kind, 0]));
        for (const stream of streams()) sum.set(stream.kind, (sum.get(stream.kind) ?? 0) + stream.lag);
        for (const [kind, lag] of sum) this.set({ kind }, lag);
      },
    });
  }

  /** The engine whose state the gauges read (it exists only after the observer was configured). */
  attach(engine: Engine): void {
    this.#engine = engine;
  }
}

const STREAM_KINDS = ["execute", "subscribe"] as const;
