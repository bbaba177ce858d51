// The trace exporter settings, apart from the OpenTelemetry SDK (tracing.ts), which is
// loaded only when an exporter is configured.

/** Where spans go: nowhere (the default: no provider, no cost) or an OTLP/HTTP collector. */
export type TraceExporterKind = "none" | "otlp";

export const TRACE_EXPORTERS: readonly TraceExporterKind[] = ["none", "otlp"];

/** The OTLP/HTTP traces path a collector serves (appended to an endpoint given without a path). */
export const OTLP_TRACES_PATH = "/v1/traces";

/**
 * The collector URL for traces: `http://host:4318` (no path) means the collector's usual
 * `/v1/traces`; a URL with a path is taken as it is. Throws TypeError for a URL that is not
 * http or https.
 */
export function otlpTracesUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new TypeError(`"${endpoint}" is not a URL (e.g. http://127.0.0.1:4318)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`"${endpoint}" is not an http or https URL`);
  if (url.pathname === "/" || url.pathname === "") url.pathname = OTLP_TRACES_PATH;
  return url.toString();
}
