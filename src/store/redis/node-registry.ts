/**
 * Which hotplexd nodes are alive, where they listen and how loaded they are: each node
 * sends a heartbeat every few seconds (an expiry in a sorted set, its details in a hash
 * that expires with it), and an idle session's next Execute goes to the least-loaded live
 * node. Expiries are on Redis's clock, so nodes whose clocks disagree still agree on who
 * is alive.
 *
 * Node keys are global (no session hash tag): on Redis Cluster they live on one shard of
 * their own, and no script touches them together with a session's keys.
 */
import type { Redis } from "ioredis";
import { HEARTBEAT, LIVE_NODES } from "./scripts.js";

export interface NodeInfo {
  node: string;
  /** Where its API listens for the other nodes (http(s)://host:port, or host:port). */
  address: string;
  /** Agents it runs now. */
  load: number;
  /** Agents it may run. */
  capacity: number;
  /** When its heartbeat expires, in Redis's ms. */
  expiresAtMs: number;
}

const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const ADDRESS = /^(https?:\/\/)?[A-Za-z0-9.:[\]-]{1,260}$/;

export class NodeRegistry {
  readonly #nodes: string;
  readonly #infoPrefix: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.#nodes = `${prefix}nodes`;
    this.#infoPrefix = `${prefix}node:`;
  }

  /** Says `info.node` is alive for `ttlMs` more; returns Redis's time in ms. */
  async heartbeat(info: Omit<NodeInfo, "expiresAtMs">, ttlMs: number): Promise<number> {
    if (!NODE_ID.test(info.node)) throw new RangeError(`node id ${JSON.stringify(info.node.slice(0, 100))} is invalid: use 1 to 64 characters of [A-Za-z0-9._-]`);
    if (!ADDRESS.test(info.address)) throw new RangeError(`node address ${JSON.stringify(info.address.slice(0, 300))} is not http(s)://host:port or host:port`);
    for (const [name, value] of [["load", info.load], ["capacity", info.capacity]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`node ${name} ${value} is not a non-negative integer`);
    }
    if (!Number.isInteger(ttlMs) || ttlMs < 100 || ttlMs > 600_000) throw new RangeError(`heartbeat ttl ${ttlMs} ms is out of range: use 100 ms to 10 min`);
    const fields = ["address", info.address, "load", String(info.load), "capacity", String(info.capacity)];
    return (await this.redis.eval(HEARTBEAT, 2, this.#nodes, this.#infoPrefix + info.node, info.node, String(ttlMs), ...fields)) as number;
  }

  /** Removes a node at once (it is shutting down). */
  async leave(node: string): Promise<void> {
    await this.redis.zrem(this.#nodes, node);
    await this.redis.del(this.#infoPrefix + node);
  }

  /** The nodes whose heartbeat has not expired, by id. */
  async live(): Promise<NodeInfo[]> {
    const reply = (await this.redis.eval(LIVE_NODES, 1, this.#nodes, this.#infoPrefix)) as (string | string[])[];
    const nodes: NodeInfo[] = [];
    for (let k = 0; k + 2 < reply.length; k += 3) {
      const fields = reply[k + 2] as string[];
      // A node whose details expired a moment before its entry: skipped until it beats again.
      if (fields.length === 0) continue;
      const values = new Map<string, string>();
      for (let f = 0; f + 1 < fields.length; f += 2) values.set(fields[f]!, fields[f + 1]!);
      const get = (name: string) => values.get(name);
      nodes.push({ node: reply[k] as string, expiresAtMs: Number(reply[k + 1]), address: get("address") ?? "", load: Number(get("load") ?? 0), capacity: Number(get("capacity") ?? 0) });
    }
    return nodes.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /** The live node with the most room (free capacity, then fewest agents, then id); undefined when none has room. */
  async leastLoaded(): Promise<NodeInfo | undefined> {
    const withRoom = (await this.live()).filter((node) => node.load < node.capacity);
    withRoom.sort((a, b) => b.capacity - b.load - (a.capacity - a.load) || a.load - b.load || (a.node < b.node ? -1 : 1));
    return withRoom[0];
  }
}
