import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { v5 as uuidv5 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_NAMESPACE } from "../../src/engine/config.js";
import { type Event, EventSchema, StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import {
  collect,
  executeEvents,
  followUntil,
  hostPidOf,
  isAlive,
  type Protocol,
  startTestDaemon,
  subscribedEvents,
  type TestDaemon,
  textOf,
  turnEndOf,
  waitUntil,
} from "../harness.js";

// The core behaviours, over real HTTP, once per wire protocol: Connect over HTTP/1.1
// and gRPC over HTTP/2 cleartext, both on the daemon's one port.
// The gRPC run uses the durable SQLite store, the Connect run the in-memory one.
describe.each<[Protocol, "memory" | "sqlite"]>([
  ["connect", "memory"],
  ["grpc", "sqlite"],
])("hotplex over the %s protocol with the %s store", (protocol, storeKind) => {
  let daemon: TestDaemon;
  let n = 0;
  const sessionId = () => `${protocol}-s${++n}`;

  beforeAll(async () => {
    daemon = await startTestDaemon({ protocol, storeKind });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("starts the agent cold on the first turn and reuses the same process for the next", async () => {
    const id = sessionId();
    const first = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "hello" }));
    expect(first.map((e) => e.payload.case)).toContain("sessionStarted");
    const started = first.find((e) => e.payload.case === "sessionStarted");
    if (started?.payload.case !== "sessionStarted") throw new Error("no sessionStarted");
    expect(started.payload.value.kind).toBe(StartKind.COLD);
    expect(textOf(first)).toBe("echo: hello");
    expect(turnEndOf(first).outcome).toBe(TurnOutcome.COMPLETED);

    const second = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "again" }));
    expect(second.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect(textOf(second)).toBe("echo: again");
    const snapshot = await daemon.client.getSnapshot({ sessionId: id });
    expect(snapshot.session?.pid).toBe(started.payload.value.pid);
    expect(snapshot.session?.status).toBe(SessionStatus.READY);

    // Sequence numbers are per session, from 1, without gaps, across turns; each turn's
    // stream is its part of the log (the StatusChanged after a TurnEnded is outside it).
    const all = (await subscribedEvents(daemon, id)).map((e) => Number(e.seq));
    expect(all).toEqual(all.map((_, i) => i + 1));
    expect(all).toEqual(expect.arrayContaining([...first, ...second].map((e) => Number(e.seq))));
    expect(Number(snapshot.lastSeq)).toBe(all.at(-1));
  });

  it("keeps a turn running when the client disconnects, and Subscribe resumes with nothing lost or repeated", async () => {
    const id = sessionId();
    const abort = new AbortController();
    const seen: number[] = [];
    const stream = daemon.client.execute({ sessionId: id, prompt: "[[chunks:8:40]] stream me" }, { signal: abort.signal });
    await expect(
      (async () => {
        for await (const { events } of stream) {
          for (const event of events) {
            seen.push(Number(event.seq));
            if (event.payload.case === "textDelta" && seen.length >= 4) abort.abort();
          }
        }
      })(),
    ).rejects.toThrow();
    const resumed = (
      await followUntil(daemon.client, id, (e) => e.payload.case === "turnEnded", BigInt(seen.at(-1) ?? 0))
    ).map((e) => Number(e.seq));
    const union = [...seen, ...resumed];
    expect(union).toEqual(union.map((_, i) => i + 1));
    // The whole answer arrived across the two streams.
    const replay = await subscribedEvents(daemon, id);
    expect(textOf(replay)).toContain("stream me");
    expect(Number(replay.find((e) => e.payload.case === "turnEnded")?.seq)).toBe(union.at(-1));
  });

  it("rejects a second turn on a busy session unless it asks to queue, and runs queued turns in order", async () => {
    const id = sessionId();
    const running = daemon.client.execute({ sessionId: id, prompt: "[[delay:400]] first" })[Symbol.asyncIterator]();
    const firstMessage = await running.next(); // the session is busy once the turn has an event
    expect(firstMessage.done).toBe(false);

    const rejected = executeEvents(daemon.client.execute({ sessionId: id, prompt: "second" }));
    await expect(rejected).rejects.toMatchObject({ code: Code.FailedPrecondition });

    const queued = executeEvents(daemon.client.execute({ sessionId: id, prompt: "third", queue: true }));
    const firstRest: number[] = [];
    for (let r = await running.next(); !r.done; r = await running.next()) firstRest.push(...r.value.events.map((e) => Number(e.seq)));
    const third = await queued;
    const started = third.find((e) => e.payload.case === "turnStarted");
    if (started?.payload.case !== "turnStarted") throw new Error("no turnStarted");
    expect(started.payload.value.wasQueued).toBe(true);
    expect(Number(started.seq)).toBeGreaterThan(Math.max(...firstRest));
    expect(textOf(third)).toBe("echo: third");
  });

  it("ends a turn as failed when the agent crashes mid-turn, and the next Execute resumes the conversation", async () => {
    const id = sessionId();
    await executeEvents(daemon.client.execute({ sessionId: id, prompt: "remember PINEAPPLE" }));
    const crashed = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[crash:3]] now" }));
    const end = turnEndOf(crashed);
    expect(end.outcome).toBe(TurnOutcome.FAILED);
    expect(end.exitCode).toBe(3);
    expect(end.stderrTail).toContain("simulated crash");
    const ended = (await subscribedEvents(daemon, id)).flatMap((e) =>
      e.payload.case === "sessionEnded" ? [e.payload.value] : [],
    );
    expect(ended).toMatchObject([{ reason: "crashed", exitCode: 3 }]);

    const next = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[history]]" }));
    const started = next.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.kind).toBe(StartKind.RESUMED);
    expect(textOf(next)).toContain("remember PINEAPPLE");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("stops a session: the running turn ends STOPPED, the process group is gone, the log stays readable", async () => {
    const id = sessionId();
    const turn = executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[grandchild]] [[hang]]" }));
    let pid = 0;
    let grandchild = 0;
    await followUntil(daemon.client, id, ({ payload }) => {
      if (payload.case === "sessionStarted") pid = payload.value.pid;
      if (payload.case === "textDelta") grandchild = hostPidOf(payload.value.text, "grandchild");
      return grandchild > 0;
    });
    expect(isAlive(grandchild)).toBe(true);
    const stopped = await daemon.client.stopSession({ sessionId: id });
    expect(stopped.session?.status).toBe(SessionStatus.DEAD);
    expect(turnEndOf(await turn).outcome).toBe(TurnOutcome.STOPPED);
    expect(isAlive(pid)).toBe(false);
    await waitUntil(() => !isAlive(grandchild), 5_000, "the grandchild to die");
    const log = await subscribedEvents(daemon, id);
    expect(log.at(-2)?.payload).toMatchObject({ case: "sessionEnded", value: { reason: "stopped" } });
    expect(log.at(-1)?.payload).toMatchObject({ case: "statusChanged", value: { status: SessionStatus.DEAD } });
    expect(stopped.lastSeq).toBe(log.at(-1)?.seq);
  });

  it("derives the provider session id as UUID v5 of the namespace and tenant/session id", async () => {
    const id = sessionId();
    await executeEvents(daemon.client.execute({ sessionId: id, prompt: "hi" }));
    const snapshot = await daemon.client.getSnapshot({ sessionId: id });
    expect(snapshot.session?.providerSessionId).toBe(uuidv5(`default/${id}`, DEFAULT_NAMESPACE));
  });

  it("drains a chatty agent's stderr so it never blocks on a full pipe", async () => {
    const id = sessionId();
    const events = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[stderrflood:2000000]] loud" }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("sends JSON clients the same events as binary ones", async () => {
    const id = sessionId();
    const binary = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[think]] same" }));
    const json = createClient(SessionService, createConnectTransport({ baseUrl: daemon.server.url, httpVersion: "1.1", useBinaryFormat: false }));
    const replayed: Event[] = [];
    for await (const { events } of json.subscribe({ sessionId: id })) replayed.push(...events);
    const turnId = binary[0]?.turnId;
    expect(replayed.filter((e) => e.turnId === turnId).map((e) => toJsonString(EventSchema, e))).toEqual(binary.map((e) => toJsonString(EventSchema, e)));
    const again = await executeEvents(json.execute({ sessionId: id, prompt: "json turn" }));
    expect(textOf(again)).toBe("echo: json turn");
  });

  it("returns the same turn when a request id is retried", async () => {
    const id = sessionId();
    const first = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "once", requestId: "req-1" }));
    const retry = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "once", requestId: "req-1" }));
    expect(retry.map((e) => e.seq)).toEqual(first.map((e) => e.seq));
    const stats = await daemon.client.getSessionStats({ sessionId: id });
    expect(stats.stats?.turns).toBe(1);
  });

  it("keeps unrecognized output as raw events and goes on", async () => {
    const id = sessionId();
    const events = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[garbage]] ok" }));
    const raw = events.flatMap((e) => (e.payload.case === "raw" ? [e.payload.value] : []));
    expect(raw.map((r) => r.reason)).toEqual(expect.arrayContaining(["not_json", "unknown_type"]));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("passes a 5 MB output line through whole", async () => {
    const id = sessionId();
    // The agent prints the answer as deltas and then as one 5 MB assistant line.
    const events = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[big:5000000]]" }));
    expect(textOf(events)).toBe("x".repeat(5_000_000));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(turnEndOf(events).result).toHaveLength(5_000_000);
  });

  it("lists the caller's sessions, most recently active first", async () => {
    const a = sessionId();
    const b = sessionId();
    await executeEvents(daemon.client.execute({ sessionId: a, prompt: "a" }));
    await executeEvents(daemon.client.execute({ sessionId: b, prompt: "b" }));
    const { sessions } = await daemon.client.listSessions({});
    const ids = sessions.map((s) => s.sessionId);
    expect(ids.indexOf(b)).toBeLessThan(ids.indexOf(a));
    expect(sessions.find((s) => s.sessionId === b)?.status).toBe(SessionStatus.READY);
  });

  it("fails Subscribe past the retained range with OUT_OF_RANGE and the range in the details", async () => {
    const id = sessionId();
    await executeEvents(daemon.client.execute({ sessionId: id, prompt: "x" }));
    const last = Number((await daemon.client.getSnapshot({ sessionId: id })).lastSeq);
    const error = await collect(daemon.client.subscribe({ sessionId: id, afterSeq: BigInt(last + 5) })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.OutOfRange);
    const { OutOfRangeDetailSchema } = await import("../../gen/hotplex/v1/session_service_pb.js");
    const [detail] = (error as ConnectError).findDetails(OutOfRangeDetailSchema);
    expect(Number(detail?.lastSeq)).toBe(last);
    expect(Number(detail?.firstSeq)).toBe(1);
  });
});
