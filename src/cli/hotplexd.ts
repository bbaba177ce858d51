#!/usr/bin/env node
import { HotplexError } from "../errors.js";
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { createEngine } from "../engine/create-engine.js";
import type { Engine } from "../engine/engine.js";
import { Observability } from "../observability/observability.js";
import { CredentialTable, hashToken } from "../security/credentials.js";
import { createServer } from "../server/server.js";
import { StoreOpenError } from "../store/sqlite-store.js";
import { ConfigError, type DaemonConfig, loadConfig, OPTIONS, reloadConfig } from "./config.js";
import { logDestination, reportDrops } from "./log-destination.js";
import { startMemoryRelease } from "./memory-release.js";
import { printConfig } from "./print-config.js";
import { hotplexVersion } from "./version.js";

function usage(): string {
  const lines = Object.entries(OPTIONS).map(
    ([name, option]) => `  --${name.padEnd(27)} ${option.help} [${option.env}; default ${option.default || "none"}]`,
  );
  return (
    "Usage: hotplexd [options]\n" +
    "       hotplexd hash-token < token-file     prints the SHA-256 a config file stores for a token\n" +
    "       hotplexd --print-config [options]    prints the effective config (secrets masked) and exits\n\n" +
    "Serves the hotplex API (Connect, gRPC, gRPC-Web) for Claude Code sessions.\n" +
    "Every option can also be set in the config file (same name) or the environment.\n\n" +
    `${lines.join("\n")}\n`
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage());
    return;
  }
  if (argv[0] === "hash-token") {
    // From stdin, so the token never appears on a command line.
    process.stdout.write(`${hashToken(readFileSync(0, "utf8").trim())}\n`);
    return;
  }
  if (argv.includes("--print-config")) {
    // The effective config, secrets masked, checked as a start would check it; nothing starts.
    try {
      process.stdout.write(printConfig(argv.filter((arg) => arg !== "--print-config"), process.env));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      process.stderr.write(`hotplexd: ${error.message}\n`);
      process.exit(2);
    }
    return;
  }
  let config: DaemonConfig;
  try {
    config = loadConfig(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`hotplexd: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const destination = logDestination(1);
  const logger = pino({ level: config.logLevel, base: { service: "hotplexd" } }, destination);
  reportDrops(destination, logger);
  for (const warning of config.warnings) logger.warn(warning);
  const observability = new Observability({
    metrics: config.observability.metrics,
    // The OpenTelemetry SDK is loaded only when spans are exported: off, tracing costs nothing.
    tracing:
      config.observability.traceExporter === "otlp"
        ? (await import("../observability/tracing.js")).Tracing.otlp(config.observability.traceEndpoint, hotplexVersion())
        : undefined,
    logger,
  });
  let engine: Engine;
  try {
    // The same entry a program embedding hotplex uses; the daemon adds the RPC server around it.
    engine = (await createEngine({ ...config.engine, observer: observability.engineObserver, logger })).engine;
  } catch (error) {
    // A config the engine refuses (a store it cannot open, a pre-warm config no session could have).
    if (error instanceof StoreOpenError || error instanceof HotplexError || (error instanceof Error && error.message.includes("--sandbox-uid"))) {
      process.stderr.write(`hotplexd: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  observability.attach(engine);
  let credentials = new CredentialTable(config.credentials);
  const server = createServer({
    engine,
    logger,
    credentials: () => credentials,
    requestLimits: config.requestLimits,
    connectionLimits: config.connectionLimits,
    tls: config.tls,
    version: hotplexVersion(),
    observe: observability.interceptors,
    extraRoutes: observability.routes(() => credentials, config.observability.metricsAccess),
    ...(config.cluster ? { nodeSecret: config.cluster.nodeSecret } : {}),
  });
  const { url } = await server.listen(config.host, config.port);
  // The other nodes forward the commands on this node's sessions here.
  if (config.cluster) engine.advertise(config.cluster.advertiseUrl ?? url);
  logger.info(
    {
      url,
      workRoot: config.engine.workRoot,
      store: engine.store.kind,
      data: engine.store.location,
      providers: config.engine.providers.executables,
      auth: credentials.allowsAnonymous ? "none (loopback)" : `${credentials.size} credentials`,
      tls: Boolean(config.tls),
      config: config.configFile,
    },
    `hotplexd listening on ${url}; data in ${engine.store.location}`,
  );

  if (config.releaseMemoryAfterMs > 0) {
    const MiB = (bytes: number) => Math.round(bytes / 1024 / 102.4) / 10;
    startMemoryRelease({
      quietMs: config.releaseMemoryAfterMs,
      onRelease: (r) =>
        logger.info(
          { rssMiB: [MiB(r.rssBefore), MiB(r.rssAfter)], heapCommittedMiB: [MiB(r.heapCommittedBefore), MiB(r.heapCommittedAfter)], ms: Math.round(r.ms) },
          "quiet: compacted the heap and returned unused memory",
        ),
    });
  }

  // SIGHUP reads the config again: credentials and tenant policies and limits change at
  // once; a bad file is reported and changes nothing.
  process.on("SIGHUP", () => {
    try {
      const fresh = reloadConfig(argv, process.env);
      // First what can still refuse the file (a pre-warm config a session could not have).
      engine.configurePrewarm(fresh.prewarm);
      credentials = new CredentialTable(fresh.credentials);
      engine.updateTenants(fresh.tenants);
      logger.info({ credentials: credentials.size, tenants: fresh.tenants.names.length, prewarm: fresh.prewarm.length }, "config reloaded");
    } catch (error) {
      logger.error({ err: error instanceof ConfigError ? error.message : error }, "config reload failed; the running config stays");
    }
  });

  // SIGTERM (or SIGINT) drains: health reports NOT_SERVING at once, no new session or turn
  // is accepted, running turns may finish for --drain-grace, then every session is stopped
  // and the daemon exits 0. A second signal cuts the grace short.
  let stopping = false;
  const cutShort = new AbortController();
  const shutdown = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: stopping the sessions still running now");
      cutShort.abort();
      return;
    }
    stopping = true;
    (async () => {
      // --drain-grace 0: straight to the shutdown, which flips health all the same.
      if (config.drainGraceMs > 0) {
        logger.info({ signal, graceMs: config.drainGraceMs }, "draining: no new sessions or turns; running turns may finish");
        await engine.drain(config.drainGraceMs, cutShort.signal);
      }
      logger.info({ signal }, "shutting down: ending every session");
      // The engine first: its streams end with their last events; then the connections.
      await engine.shutdown();
      await server.close();
      // The spans of the last turns, still buffered.
      await observability.shutdown();
    })().then(
      () => {
        logger.info("shutdown complete");
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`hotplexd: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
