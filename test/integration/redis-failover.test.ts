// Resume tokens of (seq, epoch) (issue #16): after a Redis failover that lost acknowledged
// events (a replica promoted before it had them), and the numbers were given to other events,
// a client resuming with what it saw gets FAILED_PRECONDITION, never other events under the
// numbers it saw; a follower open across the failover ends the same way.
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { resumingSubscribe } from "../../src/client/resuming-subscribe.js";
import type { RedisStoreConfig } from "../../src/engine/config.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { completedTurn, failureOf, useRedisNodes } from "../fixtures/redis-nodes.js";
import { collect, executeEvents, startTestDaemon } from "../harness.js";

const cluster = useRedisNodes();

const turn = completedTurn;
const failure = failureOf;

describe("a Redis failover that lost acknowledged events", () => {
  it("refuses resume tokens of the lost events (FAILED_PRECONDITION), ends a follower across it, and serves tokens of what survived", async () => {
    const prefix = cluster.prefix("failover");
    const dir = cluster.scratchDir("failover");
    const store: RedisStoreConfig = { kind: "redis", url: cluster.redis.url, prefix, nodeId: "node-1", leaseTtlMs: 1_000, leaseMarginMs: 300 };
    const node = cluster.track(await startTestDaemon({ dirs: { workRoot: path.join(dir, "work"), home: path.join(dir, "home") }, engine: { store } }));
    const admin = cluster.redis.client();
    const keys = sessionKeys(prefix, "default/lossy");

    await turn(node, "lossy", "first");
    const survived = (await collect(node.client.subscribe({ sessionId: "lossy", afterSeq: 0n }))).flatMap((m) => m.events).at(-1)!;
    expect(survived.epoch).toBeGreaterThan(0n);
    // What the replica has: the session's keys as of now (its epoch counter too).
    const replica = await Promise.all([keys.log, keys.meta, keys.bytes, keys.epoch].map(async (key) => [key, await admin.dumpBuffer(key)] as const));

    await turn(node, "lossy", "second, soon lost");
    const seen = (await collect(node.client.subscribe({ sessionId: "lossy", afterSeq: 0n }))).flatMap((m) => m.events);
    const lost = seen.at(-1)!;
    expect(lost.seq).toBeGreaterThan(survived.seq);
    // A follower open across the failover, at the end of what it saw.
    const followed: Event[] = [];
    const following = (async () => {
      for await (const message of node.client.subscribe({ sessionId: "lossy", afterSeq: lost.seq, afterEpoch: lost.epoch, follow: true })) followed.push(...message.events);
    })().catch((e: unknown) => ConnectError.from(e));

    // The failover: the replica, promoted, lacks the second turn.
    for (const [key, dump] of replica) {
      await admin.del(key);
      if (dump) await admin.restore(key, 0, dump, "REPLACE");
    }
    // The node learns at its next commit (the log ends before what it remembers): it loses
    // the session, and takes the store's copy at the next Execute; new events take the lost
    // numbers, in a new epoch.
    await failure(executeEvents(node.client.execute({ sessionId: "lossy", prompt: "third" })));
    const ends = await failure(collect(node.client.subscribe({ sessionId: "lossy", afterSeq: lost.seq, afterEpoch: lost.epoch })));
    expect(ends.code).toBe(Code.FailedPrecondition);
    expect(ends.rawMessage).toMatch(new RegExp(`the event at seq ${lost.seq} .* \\(epoch ${lost.epoch}\\) is not in its log any more \\(the log ends at seq \\d+\\)`));
    while ((await node.client.getSnapshot({ sessionId: "lossy" })).lastSeq <= lost.seq) await turn(node, "lossy", "again");

    // The token of a lost event: refused, now that its number is another event's.
    const refused = await failure(collect(node.client.subscribe({ sessionId: "lossy", afterSeq: lost.seq, afterEpoch: lost.epoch })));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.rawMessage).toMatch(new RegExp(`seq ${lost.seq} is of epoch \\d+ now`));
    const resuming = resumingSubscribe(node.client, { sessionId: "lossy", afterSeq: lost.seq, afterEpoch: lost.epoch, follow: true });
    expect((await failure(collect(resuming))).code).toBe(Code.FailedPrecondition);
    // The follower across it ended so too, having received nothing of the new events.
    const ended = await vi.waitFor(async () => {
      const result = await Promise.race([following, new Promise((resolve) => setTimeout(resolve, 50, "open"))]);
      expect(result).not.toBe("open");
      return result as ConnectError;
    }, { timeout: 10_000, interval: 20 });
    expect(ended.code).toBe(Code.FailedPrecondition);
    expect(followed).toEqual([]);

    // A token of what survived reads on: the new events after it.
    const after = (await collect(node.client.subscribe({ sessionId: "lossy", afterSeq: survived.seq, afterEpoch: survived.epoch }))).flatMap((m) => m.events);
    expect(after[0]?.seq).toBe(survived.seq + 1n);
    expect(after[0]!.epoch).toBeGreaterThan(lost.epoch);
    expect(after.map((e) => Number(e.seq))).toEqual(after.map((_, i) => Number(survived.seq) + 1 + i));
  }, 60_000);
});
