import { Redis } from "ioredis";
import type { StoreConfig } from "../engine/config.js";
import { MemoryStore } from "./memory-store.js";
import { RedisStore } from "./redis/redis-store.js";
import { SqliteStore, StoreOpenError } from "./sqlite-store.js";
import type { RetentionPolicy, Store } from "./store.js";

// A Redis that does not answer within this long at start-up fails the start.
const CONNECT_TIMEOUT_MS = 5_000;

/** Opens the configured store; StoreOpenError (naming what to fix) when it cannot be used. */
export async function openStore(config: StoreConfig, retention: RetentionPolicy): Promise<Store> {
  switch (config.kind) {
    case "memory":
      return new MemoryStore(retention);
    case "sqlite":
      return new SqliteStore(config.dataDir, config.durability);
    case "redis": {
      const location = redisLocation(config.url);
      const redis = new Redis(config.url, {
        lazyConnect: true,
        connectTimeout: CONNECT_TIMEOUT_MS,
        // A command fails after a few reconnect attempts instead of waiting forever: the
        // group committer retries, the readiness probe reports the store unusable.
        maxRetriesPerRequest: 3,
        ...(config.tlsCa ? { tls: { ca: config.tlsCa } } : {}),
      });
      // Reconnects are ioredis's business; an error event without a listener would end the daemon.
      redis.on("error", () => {});
      try {
        await redis.connect();
        await redis.ping();
      } catch (error) {
        redis.disconnect();
        throw new StoreOpenError(`cannot use Redis at ${location}: ${(error as Error).message}`, { cause: error });
      }
      return new RedisStore(redis, {
        prefix: config.prefix,
        node: config.nodeId,
        lease: { ttlMs: config.leaseTtlMs, marginMs: config.leaseMarginMs },
        location,
        ownsConnection: true,
      });
    }
  }
}

/** The Redis address without its credentials, for logs and messages. */
export function redisLocation(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`;
  } catch {
    return "(an unparsable Redis URL)";
  }
}
