export { DaemonMetrics } from "./metrics.js";
export { createMetricsHandler, createMetricsRoute, METRICS_ACCESS, type MetricsAccess, metricsReply } from "./metrics-route.js";
export { Observability, type ObservabilityOptions } from "./observability.js";
export { parseTraceparent, type TraceIds, traceKey } from "./trace-context.js";
export { createTracingInterceptor } from "./tracing-interceptor.js";
export { OTLP_TRACES_PATH, otlpTracesUrl, TRACE_EXPORTERS, type TraceExporterKind } from "./trace-exporter.js";
// Tracing (./tracing.js) loads the OpenTelemetry SDK: import it directly, only when an exporter is set.
