#!/usr/bin/env node
import { pino } from "pino";
import { Engine } from "../engine/engine.js";
import { startServer } from "../server/server.js";
import { StoreOpenError } from "../store/sqlite-store.js";
import { ConfigError, loadConfig, OPTIONS } from "./config.js";
import { startMemoryRelease } from "./memory-release.js";

function usage(): string {
  const lines = Object.entries(OPTIONS).map(
    ([name, option]) => `  --${name.padEnd(16)} ${option.help} [${option.env}; default ${option.default || "none"}]`,
  );
  return `Usage: hotplexd [options]\n\nServes the hotplex API (Connect, gRPC, gRPC-Web) for Claude Code sessions.\n\n${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage());
    return;
  }
  let config;
  try {
    config = loadConfig(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`hotplexd: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = pino({ level: config.logLevel, base: { service: "hotplexd" } });
  let engine: Engine;
  try {
    engine = await Engine.open(config.engine, logger);
  } catch (error) {
    if (error instanceof StoreOpenError) {
      process.stderr.write(`hotplexd: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const server = await startServer({ engine, logger, host: config.host, port: config.port, token: config.token });
  logger.info(
    {
      url: server.url,
      workRoot: config.engine.workRoot,
      store: engine.store.kind,
      data: engine.store.location,
      claude: config.engine.claudePath,
      auth: Boolean(config.token),
    },
    `hotplexd listening on ${server.url}; data in ${engine.store.location}`,
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

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: ending every session");
    server.close().then(
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
