// Forwarding (issue #16, routing): a command on a session another node runs (Execute,
// Interrupt, Stop, SetTitle, DeleteSession, ...) reaches that node through any node, acting
// for the caller; calls that claim to be forwarded without the node secret are refused.
import path from "node:path";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it, vi } from "vitest";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { RedisStoreConfig } from "../../src/engine/config.js";
import { hashToken } from "../../src/security/credentials.js";
import { forwardedHeaders } from "../../src/security/forwarded.js";
import { createPrincipal } from "../../src/security/principal.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { completedTurn, failureOf, useRedisNodes } from "../fixtures/redis-nodes.js";
import { collect, executeEvents, isAlive, startTestDaemon, type TestDaemon, waitUntil } from "../harness.js";

const cluster = useRedisNodes();

const SECRET = Buffer.from("the-secret-these-test-nodes-share-0123456789");
const TOKEN = "acme-token-0123456789";
const OPS = "ops-token-0123456789";
const credentials = [
  { name: "acme-app", tenant: "acme", roles: ["client" as const], tokenSha256: hashToken(TOKEN) },
  { name: "ops", tenant: "", roles: ["admin" as const], tokenSha256: hashToken(OPS) },
];

/** Nodes on one Redis and one set of dirs (storage every node shares); `secrets` per node (undefined: none). */
async function nodes(secrets: (Buffer | undefined)[]): Promise<[TestDaemon, TestDaemon, ...TestDaemon[]]> {
  const prefix = cluster.prefix("fwd");
  const dir = cluster.scratchDir("redis-fwd");
  const dirs = { workRoot: path.join(dir, "work"), home: path.join(dir, "home") };
  const started: TestDaemon[] = [];
  for (const [i, nodeSecret] of secrets.entries()) {
    const store: RedisStoreConfig = { kind: "redis", url: cluster.redis.url, prefix, nodeId: `node-${i + 1}`, leaseTtlMs: 1_000, leaseMarginMs: 300 };
    const daemon = cluster.track(await startTestDaemon({ dirs, credentials, token: TOKEN, engine: { store }, ...(nodeSecret ? { nodeSecret } : {}) }));
    started.push(daemon);
  }
  // Each knows where the others are (their heartbeats).
  for (const daemon of started.filter((_, i) => secrets[i])) {
    await vi.waitFor(async () => expect(await daemon.engine.store.addressOf!(daemon.engine.node!)).toBe(daemon.server.url), { timeout: 5_000, interval: 50 });
  }
  return started as [TestDaemon, TestDaemon, ...TestDaemon[]];
}

const prefixOf = (daemon: TestDaemon) => (daemon.engine.config.store as RedisStoreConfig).prefix;

const turn = completedTurn;
const failure = failureOf;

/** A client that sends `headers` with every call (a forged or replayed forward). */
function clientWith<T extends typeof SessionService | typeof AdminService>(service: T, url: string, headers: [string, string][]) {
  const add: Interceptor = (next) => (req) => {
    for (const [name, value] of headers) req.header.set(name, value);
    return next(req);
  };
  return createClient(service, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [add] }));
}

describe("a command on a session another node runs", () => {
  it("reaches that node through any node: Execute (retried too), SetTitle, Interrupt, Stop and DeleteSession; the agent stays where it runs", async () => {
    const [one, two] = await nodes([SECRET, SECRET]);
    const first = await turn(one, "remote", "hello on node one");
    const pid = (first.find((e) => e.payload.case === "sessionStarted")!.payload.value as { pid: number }).pid;
    const lease = sessionKeys(prefixOf(one), "acme/remote").lease;
    const admin = cluster.redis.client();

    // Execute on node two: node one's agent runs it (no new agent), the client gets every event.
    const second = await turn(two, "remote", "[[history]] on node two", "req-remote-2");
    expect(second.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect(second.find((e) => e.payload.case === "textDelta")).toBeDefined();
    expect((await one.client.getSnapshot({ sessionId: "remote" })).session?.pid).toBe(pid);
    expect(String(await admin.get(lease))).toContain(":node-1:");
    // The same request id again, through node two: the same turn, not a second one.
    const again = await executeEvents(two.client.execute({ sessionId: "remote", prompt: "[[history]] on node two", requestId: "req-remote-2" }));
    expect(again.map((e) => e.seq)).toEqual(second.map((e) => e.seq));
    const stored = (await collect(one.client.subscribe({ sessionId: "remote", afterSeq: 0n }))).flatMap((m) => m.events);
    expect(stored.filter((e) => e.payload.case === "turnStarted")).toHaveLength(2);
    expect(stored.map((e) => Number(e.seq))).toEqual(stored.map((_, i) => i + 1));

    // Unary commands: run by node one, answered through node two.
    await two.client.setTitle({ sessionId: "remote", title: "set through node two" });
    expect((await one.client.getSnapshot({ sessionId: "remote" })).session?.title).toBe("set through node two");

    // Interrupt through node two, of a turn started through node two.
    const hanging = executeEvents(two.client.execute({ sessionId: "remote", prompt: "[[hang]] long" }));
    await vi.waitFor(async () => expect((await one.client.getSnapshot({ sessionId: "remote" })).session?.currentTurn).toBeDefined(), { timeout: 5_000, interval: 20 });
    const interrupted = await two.client.interrupt({ sessionId: "remote" });
    expect(interrupted.outcome).toBe(TurnOutcome.INTERRUPTED);
    expect((await hanging).at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.INTERRUPTED } });
    expect(isAlive(pid)).toBe(true);

    // Stop through node two ends node one's agent.
    await two.client.stopSession({ sessionId: "remote" });
    await waitUntil(() => !isAlive(pid), 5_000, "node one's agent to end");

    // Running again on node one, deleted through node two: gone on both, the agent ended.
    const third = await turn(one, "remote", "back on node one");
    const pid3 = (third.find((e) => e.payload.case === "sessionStarted")!.payload.value as { pid: number }).pid;
    await two.client.deleteSession({ sessionId: "remote" });
    await waitUntil(() => !isAlive(pid3), 5_000, "node one's agent to end on delete");
    for (const daemon of [one, two]) expect((await failure(daemon.client.getSnapshot({ sessionId: "remote" }))).code).toBe(Code.NotFound);
  }, 60_000);

  it("fails UNAVAILABLE, naming the node and why, when the node that runs it cannot be reached", async () => {
    const [one, two] = await nodes([SECRET, SECRET]);
    await turn(one, "stranded", "hello");
    // node one's agent lives, but the address it gave is dead (as for a node that just crashed).
    one.engine.advertise("http://127.0.0.1:9");
    await vi.waitFor(async () => expect(await two.engine.store.addressOf!("node-1")).toBe("http://127.0.0.1:9"), { timeout: 5_000, interval: 50 });
    const refused = await failure(executeEvents(two.client.execute({ sessionId: "stranded", prompt: "anyone?" })));
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.rawMessage).toContain('forwarded to node "node-1" at http://127.0.0.1:9, which runs session "stranded"');
    const stop = await failure(two.client.stopSession({ sessionId: "stranded" }));
    expect(stop.code).toBe(Code.Unavailable);
    // An address that is no URL (a registry entry without its scheme): the same, saying so.
    one.engine.advertise("127.0.0.1:9");
    await vi.waitFor(async () => expect(await two.engine.store.addressOf!("node-1")).toBe("127.0.0.1:9"), { timeout: 5_000, interval: 50 });
    const malformed = await failure(two.client.setTitle({ sessionId: "stranded", title: "x" }));
    expect(malformed.code).toBe(Code.Unavailable);
    expect(malformed.rawMessage).toContain('the call cannot be sent (forwarded to node "node-1" at 127.0.0.1:9');
    // The session is untouched: node one still runs it.
    expect((await one.client.getSnapshot({ sessionId: "stranded" })).session?.pid).toBeGreaterThan(0);
  }, 60_000);

  it("a turn of a session no node runs goes to the node with the most room; with as much room here, it runs here", async () => {
    const [one, two] = await nodes([SECRET, SECRET]);
    const admin = cluster.redis.client();
    const holder = async (sessionId: string) => String(await admin.get(sessionKeys(prefixOf(one), `acme/${sessionId}`).lease)).split(":")[1];
    // Equal room: the node the call reached runs it.
    await turn(one, "here-1", "hello");
    expect(await holder("here-1")).toBe("node-1");
    // node one runs an agent more than node two now: the next new session goes to node two.
    await turn(one, "here-2", "hello");
    const placed = await turn(one, "placed", "where am I?");
    expect(await holder("placed")).toBe("node-2");
    expect(placed.find((e) => e.payload.case === "sessionStarted")).toBeDefined();
    expect(two.engine.pool.get({ tenant: "acme", sessionId: "placed" })?.live).toBe(true);
    expect(one.engine.pool.get({ tenant: "acme", sessionId: "placed" })?.live ?? false).toBe(false);
  }, 60_000);

  it("without the node secret, nothing is forwarded: the other node refuses, naming the node", async () => {
    const [one, two] = await nodes([undefined, undefined]);
    await turn(one, "unshared", "hello");
    const refused = await failure(executeEvents(two.client.execute({ sessionId: "unshared", prompt: "from two" })));
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.rawMessage).toContain('run by node "node-1"');
  }, 60_000);
});

describe("a call that claims to be forwarded", () => {
  it("is refused without a valid signature, for another method, on AdminService, and on a node without the secret; it is never forwarded again", async () => {
    const [one, two, lone] = await nodes([SECRET, SECRET, undefined]);
    await turn(one, "held", "hello");
    const mallory = createPrincipal("mallory", "acme", ["client"]);
    const execute = "hotplex.v1.SessionService/Execute";
    const signed = forwardedHeaders(SECRET, mallory, execute, "node-2");

    // A client that made up the headers (another secret): refused before anything runs.
    const forged = forwardedHeaders(Buffer.from("not-the-secret-but-as-long-as-one-0123"), mallory, execute, "node-2");
    const noSecret = await failure(executeEvents(clientWith(SessionService, two.server.url, forged).execute({ sessionId: "held", prompt: "x" })));
    expect(noSecret.code).toBe(Code.Unauthenticated);
    expect(noSecret.rawMessage).toBe("the call claims to be forwarded by another node, and is refused: the forwarded call's signature is not valid");
    // A real forward of an Execute, replayed on DeleteSession.
    const replayed = await failure(clientWith(SessionService, one.server.url, signed).deleteSession({ sessionId: "held" }));
    expect(replayed.code).toBe(Code.Unauthenticated);
    // An identity on AdminService, with an admin role: never.
    const adminForward = forwardedHeaders(SECRET, createPrincipal("ops", "", ["admin"]), "hotplex.v1.AdminService/ListAllSessions", "node-2");
    const adminCall = await failure(clientWith(AdminService, one.server.url, adminForward).listAllSessions({}));
    expect(adminCall.code).toBe(Code.Unauthenticated);
    expect(adminCall.rawMessage).toContain("ListAllSessions is never forwarded");
    // A node without the secret accepts none.
    const lonely = await failure(executeEvents(clientWith(SessionService, lone!.server.url, signed).execute({ sessionId: "held", prompt: "x" })));
    expect(lonely.code).toBe(Code.Unauthenticated);
    expect(lonely.rawMessage).toContain("accepts no forwarded calls");
    expect((await one.client.getSnapshot({ sessionId: "held" })).session?.title).toBe("");

    // A valid forward that reaches a node which does not run the session: it runs there or
    // fails there, naming the node; it is not sent on (no loops between nodes).
    const loop = await failure(executeEvents(clientWith(SessionService, two.server.url, signed).execute({ sessionId: "held", prompt: "x" })));
    expect(loop.code).toBe(Code.Unavailable);
    expect(loop.rawMessage).toContain('run by node "node-1"');
    expect(loop.rawMessage).not.toContain("forwarded to node");
  }, 60_000);
});
