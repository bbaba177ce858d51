// A test daemon with hotplex's metrics, tracing and log lines wired as hotplexd wires them:
// the engine opened with the observer, and a server of its own on that engine with the
// interceptors and /metrics (the harness's own server is left unused). Also a reader of the
// Prometheus text format.
import { type Client, createClient } from "@connectrpc/connect";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { pino } from "pino";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { MetricsAccess } from "../../src/observability/metrics-route.js";
import { Observability } from "../../src/observability/observability.js";
import { Tracing } from "../../src/observability/tracing.js";
import { type CredentialSpec, CredentialTable } from "../../src/security/credentials.js";
import { createServer, type HotplexServer } from "../../src/server/server.js";
import type { Provider } from "../../src/providers/provider.js";
import { type Protocol, startTestDaemon, type TestDaemon, type TestDaemonOptions, transportFor } from "../harness.js";

export interface ObservedDaemonOptions {
  metrics?: boolean;
  /** Spans go to an in-memory exporter (tracing as with --trace-exporter). */
  tracing?: boolean;
  metricsAccess?: MetricsAccess;
  credentials?: CredentialSpec[];
  /** The token the default client sends. */
  token?: string;
  providerInstances?: Provider[];
  storeKind?: "memory" | "sqlite";
  engine?: TestDaemonOptions["engine"];
  /** The server's log level (debug by default: turn lines are written at debug). */
  logLevel?: "debug" | "info";
}

export interface ObservedDaemon {
  daemon: TestDaemon;
  url: string;
  observability: Observability;
  /** The log records of the observed server (RPC lines, turn lines), at the log level and up. */
  records: Record<string, unknown>[];
  /** Finished spans (tracing only). */
  spans: () => ReadableSpan[];
  client: Client<typeof SessionService>;
  clientFor(token?: string, protocol?: Protocol): Client<typeof SessionService>;
  /** GET /metrics (with a bearer token when given). */
  scrape(token?: string, init?: RequestInit): Promise<{ status: number; text: string; headers: Headers }>;
  /** GET /metrics, which must succeed, parsed. */
  metrics(token?: string): Promise<Samples>;
  close(): Promise<void>;
}

export async function startObservedDaemon(options: ObservedDaemonOptions = {}): Promise<ObservedDaemon> {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: options.logLevel ?? "debug" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  const exporter = options.tracing ? new InMemorySpanExporter() : undefined;
  const observability = new Observability({
    metrics: options.metrics ?? true,
    tracing: exporter ? new Tracing([new SimpleSpanProcessor(exporter)], "test") : undefined,
    logger,
  });
  const daemon = await startTestDaemon({
    providerInstances: options.providerInstances,
    storeKind: options.storeKind,
    credentials: options.credentials,
    engine: { ...options.engine, observer: observability.engineObserver },
  });
  observability.attach(daemon.engine);
  const credentials = new CredentialTable(options.credentials ?? []);
  const server: HotplexServer = createServer({
    engine: daemon.engine,
    logger,
    credentials: () => credentials,
    version: "test",
    observe: observability.interceptors,
    extraRoutes: observability.routes(() => credentials, options.metricsAccess ?? "admin"),
  });
  const { url } = await server.listen("127.0.0.1", 0);
  const clientFor = (token = options.token, protocol: Protocol = "connect") => createClient(SessionService, transportFor(url, protocol, token));
  const scrape = async (token?: string, init: RequestInit = {}) => {
    const response = await fetch(`${url}/metrics`, { ...init, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...init.headers } });
    return { status: response.status, text: await response.text(), headers: response.headers };
  };
  return {
    daemon,
    url,
    observability,
    records,
    spans: () => exporter?.getFinishedSpans() ?? [],
    client: clientFor(),
    clientFor,
    scrape,
    async metrics(token = options.token) {
      const { status, text } = await scrape(token);
      if (status !== 200) throw new Error(`/metrics answered ${status}: ${text}`);
      return new Samples(text);
    },
    async close() {
      await daemon.close();
      await server.close();
      await observability.shutdown();
    },
  };
}

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of one scrape. */
export class Samples {
  readonly all: Sample[];

  constructor(readonly text: string) {
    this.all = parseExposition(text);
  }

  /** The sum of the samples named `name` whose labels include `labels` (0 when none). */
  get(name: string, labels: Record<string, string> = {}): number {
    return this.matching(name, labels).reduce((sum, sample) => sum + sample.value, 0);
  }

  matching(name: string, labels: Record<string, string> = {}): Sample[] {
    return this.all.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  }

  /** Whether a metric of this name is exposed at all (a TYPE line). */
  has(name: string): boolean {
    return this.text.includes(`# TYPE ${name} `);
  }
}

/** Parses the Prometheus text exposition format (0.0.4): one sample per line. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1] ?? ""] = (label[2] ?? "").replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const raw = match[3] ?? "";
    samples.push({ name: match[1] ?? "", labels, value: raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw) });
  }
  return samples;
}
