// Daemons on the Redis store (issue #16): one daemon killed with SIGKILL loses nothing and
// takes its sessions back once its old hold expires; two daemons on one Redis never run one
// session at once, and a daemon that loses its hold on a session ends that agent at once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type Event, EventSchema, StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { RedisStoreConfig } from "../../src/engine/config.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { SessionLease } from "../../src/store/redis/lease.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { whenFree } from "../fixtures/redis-nodes.js";
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

  it("hand a session from node to node between turns: its agent ended, any node runs the next turn, the log and the conversation go on", async () => {
    const prefix = `handover${++prefixes}:`;
    // Both nodes on the same dirs (storage every node shares): the work dir and HOME follow.
    const dir = scratchDir();
    const dirs = { workRoot: path.join(dir, "work"), home: path.join(dir, "home") };
    const one = await startTestDaemon({ dirs, engine: { store: storeOf(prefix, "node-1") } });
    daemons.push(one);
    const two = await startTestDaemon({ dirs, engine: { store: storeOf(prefix, "node-2") } });
    daemons.push(two);
    const admin = redis.client();
    const keys = sessionKeys(prefix, "default/moving");
    const released = () => vi.waitFor(async () => expect(await admin.exists(keys.lease)).toBe(0), { timeout: 5_000, interval: 50 });
    const turn = async (daemon: TestDaemon, prompt: string) => {
      const events = await whenFree(() => executeEvents(daemon.client.execute({ sessionId: "moving", prompt })));
      expect(events.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
      await daemon.client.stopSession({ sessionId: "moving" });
      // Its agent ended and no turn waits: the node gives its hold up.
      await released();
      return events;
    };
    await turn(one, "first on node one");
    const second = await turn(two, "second on node two");
    // node-2 took the store's copy: the conversation resumed, not started over.
    const started = second.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.value).toMatchObject({ kind: StartKind.RESUMED });
    // node-1's copy is behind now: it takes the store's again.
    await turn(one, "third on node one");
    const entries = await admin.xrange(keys.log, "-", "+");
    const seqs = entries.map(([id]) => Number(id.split("-")[0]));
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    const epochs = entries.map(([, fields]) => Number(fields[fields.indexOf("ep") + 1]));
    expect(epochs).toEqual([...epochs].sort((a, b) => a - b));
    expect(new Set(epochs).size).toBe(3);
    // What each node serves of it now is what Redis holds.
    const served = (await collect(one.client.subscribe({ sessionId: "moving", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(served.map((e) => Number(e.seq))).toEqual(seqs);
  }, 60_000);

  it("refuse to run a session whose work dir this node does not share, saying so, never starting it over", async () => {
    const prefix = `apart${++prefixes}:`;
    const one = await startTestDaemon({ engine: { store: storeOf(prefix, "node-1") } });
    daemons.push(one);
    const two = await startTestDaemon({ engine: { store: storeOf(prefix, "node-2") } });
    daemons.push(two);
    await executeEvents(one.client.execute({ sessionId: "apart", prompt: "on node one" }));
    await one.client.stopSession({ sessionId: "apart" });
    const admin = redis.client();
    await vi.waitFor(async () => expect(await admin.exists(sessionKeys(prefix, "default/apart").lease)).toBe(0), { timeout: 5_000, interval: 50 });
    const refused = await executeEvents(two.client.execute({ sessionId: "apart", prompt: "on node two" }));
    expect(refused.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.FAILED } });
    const end = refused.at(-1)?.payload.value as { errorMessage: string };
    expect(end.errorMessage).toContain("is no longer inside the work root");
    expect(refused.some((e) => e.payload.case === "sessionStarted")).toBe(false);
  }, 60_000);

  it("never run one session at once: the other node refuses it, and the owner that loses its hold ends its agent at once", async () => {
    const prefix = `pair${++prefixes}:`;
    // On the same dirs (storage every node shares), so that the last part can resume there.
    const dir = scratchDir();
    const dirs = { workRoot: path.join(dir, "work"), home: path.join(dir, "home") };
    const one = await startTestDaemon({ dirs, engine: { store: storeOf(prefix, "node-1") } });
    daemons.push(one);
    const first = await executeEvents(one.client.execute({ sessionId: "shared", prompt: "hello" }));
    expect(first.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    const { session } = await one.client.getSnapshot({ sessionId: "shared" });
    const agentPid = session!.pid;
    expect(isAlive(agentPid)).toBe(true);

    // A second node loads the session node-1 runs, and leaves it alone: no restart events,
    // node-1's agent untouched.
    const two = await startTestDaemon({ dirs, engine: { store: storeOf(prefix, "node-2") } });
    daemons.push(two);
    const seenByTwo = (await collect(two.client.subscribe({ sessionId: "shared", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(seenByTwo.map((e) => e.seq)).toEqual((await collect(one.client.subscribe({ sessionId: "shared", afterSeq: 0n }))).flatMap((m) => m.events).map((e) => e.seq));
    expect(isAlive(agentPid)).toBe(true);

    // It refuses to run it: UNAVAILABLE, naming the node that runs it; nothing stored from it.
    const refused = await executeEvents(two.client.execute({ sessionId: "shared", prompt: "from node two" })).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unavailable);
    expect((refused as ConnectError).rawMessage).toContain('run by node "node-1"');

    // While its agent lives, node-1 keeps its hold: renewed, not given up.
    const heldKeys = sessionKeys(prefix, "default/shared");
    const watcher = redis.client();
    const before = await watcher.pttl(heldKeys.lease);
    await vi.waitFor(async () => expect(await watcher.pttl(heldKeys.lease)).toBeGreaterThan(before), { timeout: 5_000, interval: 20 });
    expect(String(await watcher.get(heldKeys.lease))).toContain(":node-1:");

    // node-1 goes on: its next turn continues the log.
    const second = await executeEvents(one.client.execute({ sessionId: "shared", prompt: "again" }));
    expect(second.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    const stored = (await collect(one.client.subscribe({ sessionId: "shared", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(stored.map((e) => Number(e.seq))).toEqual(stored.map((_, i) => i + 1));
    expect(stored.some((e) => e.payload.case === "turnStarted" && JSON.stringify(e.payload.value).includes("from node two"))).toBe(false);

    // A turn that runs until something ends it, and while it runs, another node takes the
    // session over (node-1's hold gone, as after a long pause): at node-1's next renew its
    // agent is ended at once, and its turn's stream ends. A follower on node-1 reads the
    // store, so it goes on, and sees what the next node runs.
    const hanging = executeEvents(one.client.execute({ sessionId: "shared", prompt: "[[hang]] a long one" })).catch((e: unknown) => e);
    await vi.waitFor(async () => expect((await one.client.getSnapshot({ sessionId: "shared" })).session?.currentTurn).toBeDefined(), { timeout: 5_000, interval: 20 });
    const following = new AbortController();
    const followed: Event[] = [];
    const follow = (async () => {
      for await (const message of one.client.subscribe({ sessionId: "shared", afterSeq: BigInt(stored.length), follow: true }, { signal: following.signal })) followed.push(...message.events);
    })().catch((e: unknown) => e);
    const keys = sessionKeys(prefix, "default/shared");
    const raw = one.engine.store as unknown as { node: string };
    expect(raw.node).toBe("node-1");
    const admin = redis.client();
    await admin.del(keys.lease);
    const taker = await SessionLease.acquire(admin, keys, "node-3", { ttlMs: 10_000, marginMs: 1_000 });
    expect(taker).toBeDefined();
    await waitUntil(() => !isAlive(agentPid), 5_000, "node-1's agent to end");
    const ended = (await hanging) as ConnectError;
    expect(ended.code).toBe(Code.Unavailable);
    expect(ended.rawMessage).toContain("is run by another node now");
    // node-1 no longer runs the session, but serves it as the store has it (the turn it left
    // open, as stored), and its follower has every stored event.
    const lostView = await one.client.getSnapshot({ sessionId: "shared" });
    expect(lostView.session?.currentTurn).toBeDefined();
    await vi.waitFor(() => expect(followed.at(-1)?.seq).toBe(lostView.lastSeq), { timeout: 5_000, interval: 20 });

    // Once the taker gives it up, node-2 runs it: the turn node-1 left open ends explicitly
    // (owner_lost), once, and the next turn runs with the history intact.
    await taker!.release();
    const resumed = await executeEvents(two.client.execute({ sessionId: "shared", prompt: "on node two at last" }));
    expect(resumed.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    const after = (await collect(two.client.subscribe({ sessionId: "shared", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(after.map((e) => Number(e.seq))).toEqual(after.map((_, i) => i + 1));
    const lost = after.filter((e) => e.payload.case === "turnEnded" && e.payload.value.errorMessage.includes("owner_lost"));
    expect(lost).toHaveLength(1);
    expect(lost[0]?.payload.value).toMatchObject({ outcome: TurnOutcome.INTERRUPTED });
    expect(after.filter((e) => e.payload.case === "sessionEnded" && e.payload.value.reason === "owner_lost")).toHaveLength(1);
    expect(resumed.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: StartKind.RESUMED });
    // The follower on node-1 saw all of it: what node-1 stored and what node-2 ran, each seq once.
    await vi.waitFor(() => expect(followed.at(-1)?.seq).toBe(after.at(-1)?.seq), { timeout: 5_000, interval: 20 });
    expect(followed.map((e) => toJsonString(EventSchema, e))).toEqual(after.slice(stored.length).map((e) => toJsonString(EventSchema, e)));
    following.abort();
    // Open until the client left.
    expect(((await follow) as ConnectError).code).toBe(Code.Canceled);
  }, 60_000);
});
