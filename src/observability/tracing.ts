import type { Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from "@opentelemetry/sdk-trace-node";
import { otlpTracesUrl } from "./trace-exporter.js";

/**
 * The daemon's tracer: spans per RPC and per turn, exported by OTLP/HTTP in batches. The
 * provider is the daemon's own, never registered as the global one (several daemons may run
 * in one process, and an embedding application keeps its own), so every span is started
 * with an explicit parent context.
 */
export class Tracing {
  readonly tracer: Tracer;
  readonly #provider: NodeTracerProvider;

  /**
   * A tracer whose spans go to `spanProcessors` (an OTLP exporter in the daemon: see
   * `Tracing.otlp`; an in-memory exporter in tests).
   */
  constructor(spanProcessors: SpanProcessor[], version: string) {
    this.#provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ "service.name": "hotplexd", "service.version": version }),
      spanProcessors,
    });
    this.tracer = this.#provider.getTracer("hotplex", version);
  }

  /** Spans exported to an OTLP/HTTP collector at `endpoint` (see otlpTracesUrl), in batches. */
  static otlp(endpoint: string, version: string): Tracing {
    return new Tracing([new BatchSpanProcessor(new OTLPTraceExporter({ url: otlpTracesUrl(endpoint) }))], version);
  }

  /** Exports what is buffered and stops (shutdown: spans of the last turns are not lost). */
  async shutdown(): Promise<void> {
    await this.#provider.shutdown();
  }
}
