// Which nodes are alive and which has room (issue #16): heartbeats on Redis's clock,
// expiry, leaving, least-loaded choice, and what a node may not claim about itself.
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeRegistry } from "../../src/store/redis/node-registry.js";
import { startRedis, type TestRedis } from "../fixtures/redis-server.js";

let server: TestRedis;
let redis: Redis;
let prefix = 0;
const registry = () => new NodeRegistry(redis, `hp${++prefix}:`);

beforeAll(async () => {
  server = await startRedis();
  redis = server.client();
});
afterAll(async () => server?.stop());

describe("the node registry", () => {
  it("lists the nodes whose heartbeat has not expired, with their address and load", async () => {
    const nodes = registry();
    await nodes.heartbeat({ node: "n1", address: "10.0.0.1:7070", load: 3, capacity: 10 }, 60_000);
    await nodes.heartbeat({ node: "n2", address: "[::1]:7071", load: 0, capacity: 4 }, 60_000);
    const brief = await nodes.heartbeat({ node: "n3", address: "host-3:7072", load: 1, capacity: 4 }, 150);
    const live = await nodes.live();
    expect(live.map((n) => [n.node, n.address, n.load, n.capacity])).toEqual([
      ["n1", "10.0.0.1:7070", 3, 10],
      ["n2", "[::1]:7071", 0, 4],
      ["n3", "host-3:7072", 1, 4],
    ]);
    expect(live.find((n) => n.node === "n3")!.expiresAtMs).toBe(brief + 150);
    // n3 stops beating: gone once its ttl passed on Redis's clock.
    while ((await nodes.live()).some((n) => n.node === "n3")) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await nodes.live()).map((n) => n.node)).toEqual(["n1", "n2"]);
    await nodes.leave("n1");
    expect((await nodes.live()).map((n) => n.node)).toEqual(["n2"]);
  });

  it("picks the live node with the most free room, and none when all are full", async () => {
    const nodes = registry();
    await nodes.heartbeat({ node: "a", address: "a:1", load: 8, capacity: 10 }, 60_000);
    await nodes.heartbeat({ node: "b", address: "b:1", load: 2, capacity: 10 }, 60_000);
    await nodes.heartbeat({ node: "c", address: "c:1", load: 4, capacity: 4 }, 60_000);
    expect((await nodes.leastLoaded())?.node).toBe("b");
    // Beats update in place: b fills up, a is the one with room now.
    await nodes.heartbeat({ node: "b", address: "b:1", load: 10, capacity: 10 }, 60_000);
    expect((await nodes.leastLoaded())?.node).toBe("a");
    await nodes.heartbeat({ node: "a", address: "a:1", load: 10, capacity: 10 }, 60_000);
    expect(await nodes.leastLoaded()).toBeUndefined();
  });

  it("refuses ids, addresses, loads and ttls a node could use to break the registry", async () => {
    const nodes = registry();
    const good = { node: "n", address: "h:1", load: 0, capacity: 1 };
    for (const bad of [{ node: "" }, { node: "a:b" }, { node: "x".repeat(65) }, { address: "" }, { address: "h:1 --flag" }, { address: "a\nb" }, { load: -1 }, { load: 1.5 }, { capacity: Number.NaN }]) {
      await expect(nodes.heartbeat({ ...good, ...bad }, 1_000), JSON.stringify(bad)).rejects.toThrow(RangeError);
    }
    for (const ttl of [0, 99, 600_001, 1.5]) await expect(nodes.heartbeat(good, ttl), String(ttl)).rejects.toThrow(RangeError);
    expect(await nodes.live()).toEqual([]);
  });
});
