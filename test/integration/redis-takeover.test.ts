// Takeover (issue #16): a node that dies mid-turn loses its hold; another node takes the
// session by itself once the hold expired (no call needed), ends the cut turn explicitly
// (owner_lost), and the next Execute resumes the conversation there.
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { type Event, StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import type { RedisStoreConfig } from "../../src/engine/config.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { useRedisNodes } from "../fixtures/redis-nodes.js";
import { collect, executeEvents, isAlive, startTestDaemon, type TestDaemon, transportFor } from "../harness.js";
import { createClient } from "@connectrpc/connect";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";

const agents: number[] = [];
const cluster = useRedisNodes({
  afterEach() {
    killDaemonProcesses();
    for (const pid of agents.splice(0)) if (isAlive(pid)) process.kill(-pid, "SIGKILL");
  },
});

describe("a node that dies mid-turn", () => {
  it("has its session taken by another node once its hold expired, the turn ended owner_lost once, and the conversation resumed there", async () => {
    const dir = cluster.scratchDir("takeover");
    const prefix = cluster.prefix("takeover");
    const { redis } = cluster;
    // Both nodes on the same work root, state dir and HOME (storage every node shares).
    const one = await startDaemonProcess(dir, [], {
      HOTPLEX_STORE: "redis",
      HOTPLEX_REDIS_URL: redis.url,
      HOTPLEX_REDIS_PREFIX: prefix,
      HOTPLEX_NODE_ID: "node-1",
      HOTPLEX_LEASE_TTL: "1s",
      HOTPLEX_LEASE_MARGIN: "300ms",
      HOTPLEX_STATE_DIR: path.join(dir, "state"),
    });
    const store: RedisStoreConfig = { kind: "redis", url: redis.url, prefix, nodeId: "node-2", leaseTtlMs: 1_000, leaseMarginMs: 300 };
    const two = cluster.track(await startTestDaemon({ dirs: { workRoot: path.join(dir, "work"), home: path.join(dir, "home") }, engine: { store } }));
    const clientOne = createClient(SessionService, transportFor(one.url, "connect"));

    const first = await executeEvents(clientOne.execute({ sessionId: "orphan", prompt: "remember PLUM" }));
    expect(first.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    void collect(clientOne.execute({ sessionId: "orphan", prompt: "[[hang]] a long one" })).catch(() => undefined);
    // node two sees the turn run on node one (reads are served by every node).
    await vi.waitFor(async () => expect((await two.client.getSnapshot({ sessionId: "orphan" })).session?.currentTurn).toBeDefined(), { timeout: 5_000, interval: 20 });
    const { lastSeq, session } = await two.client.getSnapshot({ sessionId: "orphan" });
    agents.push(session!.pid);
    const seen: Event[] = [];
    const following = new AbortController();
    void (async () => {
      for await (const message of two.client.subscribe({ sessionId: "orphan", afterSeq: lastSeq, follow: true }, { signal: following.signal })) seen.push(...message.events);
    })().catch(() => undefined);

    // node one dies with its agent (the machine went away); nobody calls node two.
    one.child.kill("SIGKILL");
    process.kill(-session!.pid, "SIGKILL");
    await one.exit;
    const lostEnd = (e: Event) => e.payload.case === "turnEnded" && e.payload.value.errorMessage.includes("owner_lost");
    await vi.waitFor(() => expect(seen.some(lostEnd)).toBe(true), { timeout: 10_000, interval: 20 });
    expect(seen.find(lostEnd)?.payload.value).toMatchObject({ outcome: TurnOutcome.INTERRUPTED });
    await vi.waitFor(() => expect(seen.some((e) => e.payload.case === "sessionEnded" && e.payload.value.reason === "owner_lost")).toBe(true), { timeout: 5_000, interval: 20 });
    // It took the session only to close it: its hold is given up again.
    const admin = redis.client();
    await vi.waitFor(async () => expect(await admin.exists(sessionKeys(prefix, "default/orphan").lease)).toBe(0), { timeout: 5_000, interval: 50 });
    expect(await admin.sismember(`${prefix}held`, "default/orphan")).toBe(0);

    // The next Execute resumes the conversation, on node two.
    const next = await executeEvents(two.client.execute({ sessionId: "orphan", prompt: "[[history]]" }));
    expect(next.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
    expect(next.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: StartKind.RESUMED });
    const text = next.map((e) => (e.payload.case === "textDelta" ? e.payload.value.text : "")).join("");
    expect(text).toContain("remember PLUM");
    const all = (await collect(two.client.subscribe({ sessionId: "orphan", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(all.map((e) => Number(e.seq))).toEqual(all.map((_, i) => i + 1));
    expect(all.filter(lostEnd)).toHaveLength(1);
    following.abort();
  }, 60_000);
});
