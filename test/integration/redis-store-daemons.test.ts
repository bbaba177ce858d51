// Daemons on the Redis store (issue #16): one daemon killed with SIGKILL loses nothing and
// takes its sessions back once its old hold expires; two daemons on one Redis never run one
// session at once, and a daemon that loses its hold on a session ends that agent at once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type Event, EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { RedisStoreConfig } from "../../src/engine/config.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { SessionLease } from "../../src/store/redis/lease.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { startRedis, type TestRedis } from "../fixtures/redis-server.js";
import { collect, executeEvents, isAlive, seqRecorder, startTestDaemon, type TestDaemon, transportFor, waitUntil } from "../harness.js";

let redis: TestRedis;
let prefixes = 0;
const scratch: string[] = [];

beforeAll(async () => {
  redis = await startRedis({ appendOnly: true });
});
afterAll(async () => redis?.stop());
afterEach(() => {
  killDaemonProcesses();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function scratchDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-redis-daemon-"));
  scratch.push(dir);
  return dir;
}

const clientOf = (daemon: DaemonProcess) => createClient(SessionService, transportFor(daemon.url, "connect"));

async function logOf(client: ReturnType<typeof clientOf>, sessionId: string, afterSeq = 0): Promise<Event[]> {
  const events: Event[] = [];
  for await (const message of client.subscribe({ sessionId, afterSeq: BigInt(afterSeq) })) events.push(...message.events);
  return events;
}

const restartEnds = (events: readonly Event[]) =>
  events.filter((e) => e.payload.case === "turnEnded" && e.payload.value.errorMessage === "interrupted by daemon restart");

describe("a daemon on the Redis store, killed with SIGKILL", () => {
  it("loses no event a client saw, and runs its sessions again once its old hold expires", async () => {
    const dir = scratchDir();
    const env = {
      HOTPLEX_STORE: "redis",
      HOTPLEX_REDIS_URL: redis.url,
      HOTPLEX_REDIS_PREFIX: `crash${++prefixes}:`,
      HOTPLEX_NODE_ID: "node-1",
      HOTPLEX_LEASE_TTL: "1s",
      HOTPLEX_LEASE_MARGIN: "300ms",
    };
    const history = seqRecorder();
    const { seen, remember } = history;
    const rounds = 2;
    for (let round = 0; round < rounds; round += 1) {
      const daemon = await startDaemonProcess(dir, [], env);
      expect(daemon.startup).toMatchObject({ store: "redis", data: redis.url });
      const client = clientOf(daemon);
      if (round > 0) {
        // The restart's own events (the cut turn ended) are stored once the killed run's hold
        // on the session expired: within the lease ttl.
        await vi.waitFor(async () => expect(restartEnds(await logOf(client, "crashy"))).toHaveLength(round), { timeout: 10_000, interval: 100 });
        for (const event of await logOf(client, "crashy", history.lastSeen)) remember(event);
      }
      const killAt = 50 + Math.floor(Math.random() * 1_500);
      let received = 0;
      try {
        for await (const { events } of client.execute({ sessionId: "crashy", prompt: `[[chunks:2000:2]] round ${round} ${"x".repeat(4_000)}` })) {
          for (const event of events) {
            remember(event);
            if ((received += 1) === killAt) daemon.child.kill("SIGKILL");
          }
        }
      } catch {
        // The daemon died under the stream.
      }
      daemon.child.kill("SIGKILL");
      await daemon.exit;
    }
    const daemon = await startDaemonProcess(dir, [], env);
    const client = clientOf(daemon);
    await vi.waitFor(async () => expect(restartEnds(await logOf(client, "crashy"))).toHaveLength(rounds), { timeout: 10_000, interval: 100 });
    const all = await logOf(client, "crashy");
    expect(all.map((e) => Number(e.seq))).toEqual(all.map((_, i) => i + 1));
    // Every event the client saw before a crash is stored, unchanged.
    for (const [seq, json] of seen) expect(toJsonString(EventSchema, all[seq - 1]!)).toBe(json);
    // And the session goes on: a turn on the restarted daemon resumes the conversation.
    const next = await executeEvents(client.execute({ sessionId: "crashy", prompt: "after the crashes" }));
    expect(next.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    expect(Number(next[0]?.seq)).toBe(all.length + 1);
  }, 120_000);
});

describe("two daemons on one Redis", () => {
  const storeOf = (prefix: string, nodeId: string): RedisStoreConfig => ({ kind: "redis", url: redis.url, prefix, nodeId, leaseTtlMs: 1_000, leaseMarginMs: 300 });
  const daemons: TestDaemon[] = [];
  afterEach(async () => {
    for (const daemon of daemons.splice(0)) await daemon.close().catch(() => undefined);
  });

  it("never run one session at once: the other node refuses it, and the owner that loses its hold ends its agent at once", async () => {
    const prefix = `pair${++prefixes}:`;
    const one = await startTestDaemon({ engine: { store: storeOf(prefix, "node-1") } });
    daemons.push(one);
    const first = await executeEvents(one.client.execute({ sessionId: "shared", prompt: "hello" }));
    expect(first.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    const { session } = await one.client.getSnapshot({ sessionId: "shared" });
    const agentPid = session!.pid;
    expect(isAlive(agentPid)).toBe(true);

    // A second node loads the session node-1 runs, and leaves it alone: no restart events,
    // node-1's agent untouched.
    const two = await startTestDaemon({ engine: { store: storeOf(prefix, "node-2") } });
    daemons.push(two);
    const seenByTwo = (await collect(two.client.subscribe({ sessionId: "shared", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(seenByTwo.map((e) => e.seq)).toEqual((await collect(one.client.subscribe({ sessionId: "shared", afterSeq: 0n }))).flatMap((m) => m.events).map((e) => e.seq));
    expect(isAlive(agentPid)).toBe(true);

    // It refuses to run it: UNAVAILABLE, naming the node that runs it; nothing stored from it.
    const refused = await executeEvents(two.client.execute({ sessionId: "shared", prompt: "from node two" })).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unavailable);
    expect((refused as ConnectError).rawMessage).toContain('run by node "node-1"');

    // node-1 goes on: its next turn continues the log.
    const second = await executeEvents(one.client.execute({ sessionId: "shared", prompt: "again" }));
    expect(second.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    const stored = (await collect(one.client.subscribe({ sessionId: "shared", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(stored.map((e) => Number(e.seq))).toEqual(stored.map((_, i) => i + 1));
    expect(stored.some((e) => e.payload.case === "turnStarted" && JSON.stringify(e.payload.value).includes("from node two"))).toBe(false);

    // Another node takes the session over (node-1's hold gone, as after a long pause): at
    // node-1's next renew its agent is ended at once, and its streams of the session end.
    const follow = collect(one.client.subscribe({ sessionId: "shared", afterSeq: BigInt(stored.length), follow: true })).catch((e: unknown) => e);
    const keys = sessionKeys(prefix, "default/shared");
    const raw = one.engine.store as unknown as { node: string };
    expect(raw.node).toBe("node-1");
    const admin = redis.client();
    await admin.del(keys.lease);
    const taker = await SessionLease.acquire(admin, keys, "node-3", { ttlMs: 10_000, marginMs: 1_000 });
    expect(taker).toBeDefined();
    await waitUntil(() => !isAlive(agentPid), 5_000, "node-1's agent to end");
    const ended = await follow;
    expect(ended).toBeInstanceOf(ConnectError);
    expect((ended as ConnectError).code).toBe(Code.Unavailable);
    expect((ended as ConnectError).rawMessage).toContain("is run by another node now");
    // node-1 no longer serves the session it lost.
    const gone = await one.client.getSnapshot({ sessionId: "shared" }).catch((e: unknown) => e);
    expect((gone as ConnectError).code).toBe(Code.NotFound);
  }, 60_000);
});
