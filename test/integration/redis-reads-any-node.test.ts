// Reads on any node (issue #16, routing): GetSnapshot, Subscribe, ListSessions and stats are
// served from the shared store by every node, for sessions any node ran or runs, and a
// following Subscribe on any node sees each turn as whichever node runs it stores it.
import path from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { type Event, EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import type { RedisStoreConfig } from "../../src/engine/config.js";
import { hashToken } from "../../src/security/credentials.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { useRedisNodes, whenFree } from "../fixtures/redis-nodes.js";
import { collect, executeEvents, startTestDaemon, type TestDaemon, transportFor } from "../harness.js";

const cluster = useRedisNodes();

const TOKENS = { acme: "acme-token-0123456789", globex: "globex-token-0123456789", ops: "ops-token-0123456789" };

/** Two nodes on one Redis and one set of dirs (storage every node shares), with two tenants and an admin. */
async function twoNodes(): Promise<[TestDaemon, TestDaemon]> {
  const prefix = cluster.prefix("reads");
  const dir = cluster.scratchDir("redis-reads");
  const dirs = { workRoot: path.join(dir, "work"), home: path.join(dir, "home") };
  const store = (nodeId: string): RedisStoreConfig => ({ kind: "redis", url: cluster.redis.url, prefix, nodeId, leaseTtlMs: 1_000, leaseMarginMs: 300 });
  const credentials = [
    { name: "acme", tenant: "acme", roles: ["client" as const], tokenSha256: hashToken(TOKENS.acme) },
    { name: "globex", tenant: "globex", roles: ["client" as const], tokenSha256: hashToken(TOKENS.globex) },
    { name: "ops", tenant: "", roles: ["admin" as const], tokenSha256: hashToken(TOKENS.ops) },
  ];
  const one = cluster.track(await startTestDaemon({ dirs, credentials, engine: { store: store("node-1") } }));
  const two = cluster.track(await startTestDaemon({ dirs, credentials, engine: { store: store("node-2") } }));
  return [one, two];
}

const client = (daemon: TestDaemon, tenant: "acme" | "globex" = "acme") => daemon.clientFor("connect", TOKENS[tenant]);
const adminOf = (daemon: TestDaemon) => createClient(AdminService, transportFor(daemon.server.url, "connect", TOKENS.ops));

async function replay(daemon: TestDaemon, sessionId: string, afterSeq = 0n): Promise<Event[]> {
  return (await collect(client(daemon).subscribe({ sessionId, afterSeq }))).flatMap((message) => message.events);
}

const bytesOf = (events: readonly Event[]) => events.map((event) => Buffer.from(toBinary(EventSchema, event)).toString("base64"));

async function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error).code;
  }
  return undefined;
}

async function turn(daemon: TestDaemon, sessionId: string, prompt: string): Promise<Event[]> {
  const events = await executeEvents(client(daemon).execute({ sessionId, prompt }));
  expect(events.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });
  return events;
}

describe("every node serves reads of every session, from the store", () => {
  it("a session another node created after this one started: snapshot, replay (identical bytes), list, stats, kept current", async () => {
    const [one, two] = await twoNodes();
    await turn(one, "made-on-one", "hello from node one");
    const onOne = await client(one).getSnapshot({ sessionId: "made-on-one" });
    const onTwo = await client(two).getSnapshot({ sessionId: "made-on-one" });
    expect(onTwo.lastSeq).toBe(onOne.lastSeq);
    expect(onTwo.session?.incarnation).toBe(onOne.session?.incarnation);
    expect(onTwo.session?.status).toBe(onOne.session?.status);
    expect(bytesOf(await replay(two, "made-on-one"))).toEqual(bytesOf(await replay(one, "made-on-one")));
    expect((await client(two).getSessionStats({ sessionId: "made-on-one" })).stats?.turns).toBe(1);
    const listed = (await client(two).listSessions({})).sessions;
    expect(listed.map((s) => [s.sessionId, s.lastSeq])).toEqual([["made-on-one", onOne.lastSeq]]);
    // Another tenant sees none of it, on either node.
    expect((await client(two, "globex").listSessions({})).sessions).toEqual([]);
    expect(await codeOf(client(two, "globex").getSnapshot({ sessionId: "made-on-one" }))).toBe(Code.NotFound);
    // The admin's list on node two has it, under its tenant.
    const all = (await adminOf(two).listAllSessions({})).sessions;
    expect(all.map((s) => [s.tenant, s.session?.sessionId])).toEqual([["acme", "made-on-one"]]);

    // node one runs another turn: node two's copy is behind, and brought up to date on the next read.
    await turn(one, "made-on-one", "and again");
    const later = await client(one).getSnapshot({ sessionId: "made-on-one" });
    expect(later.lastSeq).toBeGreaterThan(onOne.lastSeq);
    expect((await client(two).getSnapshot({ sessionId: "made-on-one" })).lastSeq).toBe(later.lastSeq);
    expect((await client(two).getSessionStats({ sessionId: "made-on-one" })).stats?.turns).toBe(2);
    expect(bytesOf(await replay(two, "made-on-one", onOne.lastSeq))).toEqual(bytesOf(await replay(one, "made-on-one", onOne.lastSeq)));
    // A position past the end is refused exactly, on the node that did not write it.
    expect(await codeOf(collect(client(two).subscribe({ sessionId: "made-on-one", afterSeq: later.lastSeq + 1n })))).toBe(Code.OutOfRange);
  }, 60_000);

  it("a session deleted on one node is gone on the other; a delete on a node that does not run the session waits for the one that does", async () => {
    const [one, two] = await twoNodes();
    await turn(one, "doomed", "hello");
    await turn(one, "runs-on-one", "hello");
    expect((await client(two).listSessions({})).sessions.map((s) => s.sessionId).sort()).toEqual(["doomed", "runs-on-one"]);

    await client(one).stopSession({ sessionId: "doomed" });
    await client(one).deleteSession({ sessionId: "doomed" });
    expect(await codeOf(client(two).getSnapshot({ sessionId: "doomed" }))).toBe(Code.NotFound);
    expect((await client(two).listSessions({})).sessions.map((s) => s.sessionId)).toEqual(["runs-on-one"]);

    // node one's agent of it lives: node two does not delete what node one runs.
    const refused = await client(two)
      .deleteSession({ sessionId: "runs-on-one" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unavailable);
    expect((refused as ConnectError).rawMessage).toContain('run by node "node-1"');
    expect((await client(one).getSnapshot({ sessionId: "runs-on-one" })).session?.sessionId).toBe("runs-on-one");

    // Once node one's agent ended and its hold is given up, node two deletes it, for both.
    await client(one).stopSession({ sessionId: "runs-on-one" });
    const lease = sessionKeys(prefixOf(one), "acme/runs-on-one").lease;
    const admin = cluster.redis.client();
    await vi.waitFor(async () => expect(await admin.exists(lease)).toBe(0), { timeout: 5_000, interval: 50 });
    await whenFree(() => client(two).deleteSession({ sessionId: "runs-on-one" }));
    expect(await codeOf(client(one).getSnapshot({ sessionId: "runs-on-one" }))).toBe(Code.NotFound);
    expect((await client(one).listSessions({})).sessions).toEqual([]);
  }, 60_000);
});

describe("a following Subscribe on any node", () => {
  it("sees each turn live as whichever node runs it stores it, every seq once, with the stored bytes", async () => {
    const [one, two] = await twoNodes();
    const first = await turn(one, "followed", "first on node one");
    const from = Number(first.at(-1)!.seq);
    const seen: Event[] = [];
    const stop = new AbortController();
    const following = (async () => {
      for await (const message of client(two).subscribe({ sessionId: "followed", afterSeq: 0n, follow: true }, { signal: stop.signal })) seen.push(...message.events);
    })().catch((e: unknown) => ConnectError.from(e));
    await vi.waitFor(() => expect(seen.length).toBeGreaterThanOrEqual(from), { timeout: 5_000, interval: 20 });

    // A turn on node one, seen live on node two.
    const second = await turn(one, "followed", "[[chunks:5:20]] second on node one");
    await vi.waitFor(() => expect(seen.at(-1)?.seq).toBeGreaterThanOrEqual(second.at(-1)!.seq), { timeout: 5_000, interval: 20 });

    // node one gives the session up; node two runs the next turn, and its own follower goes on.
    await client(one).stopSession({ sessionId: "followed" });
    const admin = cluster.redis.client();
    await vi.waitFor(async () => expect(await admin.exists(sessionKeys(prefixOf(one), "acme/followed").lease)).toBe(0), { timeout: 5_000, interval: 50 });
    const third = await whenFree(() => turn(two, "followed", "third on node two"));
    expect(third.find((e) => e.payload.case === "turnStarted")?.seq).toBeGreaterThan(second.at(-1)!.seq);
    const { lastSeq } = await client(two).getSnapshot({ sessionId: "followed" });
    await vi.waitFor(() => expect(seen.at(-1)?.seq).toBe(lastSeq), { timeout: 5_000, interval: 20 });

    const stored = await replay(one, "followed");
    expect(stored.at(-1)?.seq).toBe(lastSeq);
    expect(seen.map((e) => Number(e.seq))).toEqual(stored.map((_, i) => i + 1));
    expect(bytesOf(seen)).toEqual(bytesOf(stored));
    stop.abort();
    expect((await following)?.code).toBe(Code.Canceled);
  }, 60_000);

  it("ends NOT_FOUND when another node deletes the session, and FAILED_PRECONDITION when it is created again under the same id", async () => {
    const [one, two] = await twoNodes();
    await turn(one, "short-lived", "hello");
    const ending = (async () => {
      for await (const _ of client(two).subscribe({ sessionId: "short-lived", afterSeq: 0n, follow: true }));
    })().catch((e: unknown) => ConnectError.from(e));
    await client(one).stopSession({ sessionId: "short-lived" });
    await client(one).deleteSession({ sessionId: "short-lived" });
    const ended = await ending;
    expect(ended?.code).toBe(Code.NotFound);
    expect(ended?.rawMessage).toContain('session "short-lived" was deleted');

    // Created again: a follower of the old one never gets the new one's events under the old numbers.
    await turn(one, "reborn", "first life");
    const old = await client(two).getSnapshot({ sessionId: "reborn" });
    const oldSeen: Event[] = [];
    const watching = (async () => {
      for await (const message of client(two).subscribe({ sessionId: "reborn", afterSeq: old.lastSeq, follow: true })) oldSeen.push(...message.events);
    })().catch((e: unknown) => ConnectError.from(e));
    await client(one).stopSession({ sessionId: "reborn" });
    const lastLife = await replay(one, "reborn", old.lastSeq);
    await client(one).deleteSession({ sessionId: "reborn" });
    // The new session's log runs past the old one's end before the follower's idle check.
    for (let i = 0; i < 3; i++) await turn(one, "reborn", `second life ${i}`);
    const gone = await watching;
    // Told at the new session's first event past the old end (its ownership period is another).
    expect(gone?.code).toBe(Code.FailedPrecondition);
    expect(gone?.rawMessage).toContain('session "reborn" was deleted and created again');
    // What the old one stored last (its agent's end), and nothing of the new one.
    expect(bytesOf(oldSeen)).toEqual(bytesOf(lastLife));
  }, 60_000);
});

function prefixOf(daemon: TestDaemon): string {
  return (daemon.engine.config.store as RedisStoreConfig).prefix ?? "hp:";
}
