import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { create, toJsonString } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Event, EventSchema, RawOutputSchema, StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { OutOfRangeDetailSchema, SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import {
  collect,
  executeEvents,
  followUntil,
  hostPidOf,
  isAlive,
  startTestDaemon,
  subscribedEvents,
  textOf,
  transportFor,
  turnEndOf,
  seqRecorder,
  waitUntil,
} from "../harness.js";

const scratch: string[] = [];
function scratchDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-durable-"));
  scratch.push(dir);
  return dir;
}

afterEach(() => {
  killDaemonProcesses();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Work and home dirs and a SQLite store in a fresh scratch dir, for in-process daemons. */
function sqliteSetup() {
  const dir = scratchDir();
  const dirs = { workRoot: path.join(dir, "work"), home: path.join(dir, "home") };
  mkdirSync(dirs.workRoot, { recursive: true });
  mkdirSync(dirs.home, { recursive: true });
  return { dirs, store: { kind: "sqlite" as const, dataDir: path.join(dir, "data"), durability: "normal" as const } };
}

const clientOf = (daemon: DaemonProcess) => createClient(SessionService, transportFor(daemon.url, "connect"));

async function kill9(daemon: DaemonProcess): Promise<void> {
  daemon.child.kill("SIGKILL");
  await daemon.exit;
}

describe("a daemon killed with SIGKILL", () => {
  it("loses no event a client saw: resumes across several crashes with no gap and no duplicate", async () => {
    const dir = scratchDir();
    // The default store is SQLite, in the data dir, and the daemon says so when it starts.
    const probe = await startDaemonProcess(dir);
    expect(probe.startup).toMatchObject({ store: "sqlite", data: path.join(dir, "data", "hotplex.db") });
    await kill9(probe);
    const history = seqRecorder();
    const { seen, remember } = history;

    const rounds = 4;
    for (let round = 0; round < rounds; round += 1) {
      const daemon = await startDaemonProcess(dir);
      const client = clientOf(daemon);
      // Catch up on what the previous daemon stored after the client lost it.
      if (history.lastSeen > 0) {
        for (const event of await collectEvents(client, history.lastSeen)) remember(event);
      }
      // A turn that streams thousands of events (3,000 deltas 2 ms apart, so it is still
      // streaming whenever the kill comes), killed at a random point of it.
      const killAt = 50 + Math.floor(Math.random() * 2_500);
      let received = 0;
      const prompt = `[[chunks:3000:2]] round ${round} ${"x".repeat(4_000)}`;
      try {
        for await (const { events } of client.execute({ sessionId: "crashy", prompt })) {
          for (const event of events) {
            remember(event);
            if ((received += 1) === killAt) daemon.child.kill("SIGKILL");
          }
        }
      } catch {
        // The daemon died under the stream.
      }
      await kill9(daemon);
    }

    const daemon = await startDaemonProcess(dir);
    const all = await collectEvents(clientOf(daemon), 0);
    const seqs = all.map((e) => Number(e.seq));
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    // Every event the client saw before a crash is still there, unchanged.
    for (const [seq, json] of seen) expect(toJsonString(EventSchema, all[seq - 1]!)).toBe(json);
    expect(all.length).toBeGreaterThanOrEqual(seen.size);
    // Turns cut by a crash were closed explicitly at the next start.
    const interrupted = all.filter(
      (e) => e.payload.case === "turnEnded" && e.payload.value.errorMessage === "interrupted by daemon restart",
    );
    expect(interrupted).toHaveLength(rounds);
    for (const e of interrupted) expect(e.payload.case === "turnEnded" && e.payload.value.outcome).toBe(TurnOutcome.INTERRUPTED);
  }, 120_000);

  it("brings back turns it finished before their session's entry was stored, from their events", async () => {
    const dir = scratchDir();
    const daemon = await startDaemonProcess(dir);
    const client = clientOf(daemon);
    await executeEvents(client.execute({ sessionId: "quick", prompt: "one" }));
    const two = await executeEvents(client.execute({ sessionId: "quick", prompt: "two" }));
    // Killed as soon as the turn's end arrives: its commit stored the events, not the entry.
    await kill9(daemon);
    // The turn's end, and the StatusChanged (READY) logged with it.
    const lastSeen = Number(two.at(-1)?.seq) + 1;
    const db = new Database(path.join(dir, "data", "hotplex.db"), { readonly: true });
    try {
      const stored = db.prepare("SELECT last_seq AS lastSeq FROM sessions WHERE session_id = 'quick'").get() as { lastSeq: number };
      expect(stored.lastSeq).toBeLessThan(lastSeen);
    } finally {
      db.close();
    }

    const next = await startDaemonProcess(dir);
    const nextClient = clientOf(next);
    const { session, lastSeq } = await nextClient.getSnapshot({ sessionId: "quick" });
    expect(session?.stats?.turns).toBe(2);
    expect(session?.status).toBe(SessionStatus.DEAD);
    // Both turns had ended: the restart only ends the process, it interrupts nothing.
    const log = await collectEvents(nextClient, 0, "quick");
    expect(log.map((e) => Number(e.seq))).toEqual(log.map((_, i) => i + 1));
    expect(log.flatMap((e) => (e.payload.case === "turnEnded" ? [e.payload.value.outcome] : []))).toEqual([
      TurnOutcome.COMPLETED,
      TurnOutcome.COMPLETED,
    ]);
    expect(log.at(-2)?.payload).toMatchObject({ case: "sessionEnded", value: { reason: "restart" } });
    expect(log.at(-1)?.payload).toMatchObject({ case: "statusChanged", value: { status: SessionStatus.DEAD } });
    expect(Number(lastSeq)).toBe(lastSeen + 2);
  });

  it("leaves agents behind (sandbox off), and the next start ends them and resumes their conversations", async () => {
    const dir = scratchDir();
    // With the sandbox on, agents end with the daemon (test/security/containment.test.ts);
    // without it they run on, and the next start must find and end them.
    const daemon = await startDaemonProcess(dir, [], { HOTPLEX_SANDBOX: "off" });
    const client = clientOf(daemon);
    await executeEvents(client.execute({ sessionId: "orphan", prompt: "remember FIG" }));
    void executeEvents(client.execute({ sessionId: "orphan", prompt: "[[grandchild]] [[hang]]" })).catch(() => {});
    let agent = 0;
    let grandchild = 0;
    const snapshot = await client.getSnapshot({ sessionId: "orphan" });
    agent = snapshot.session?.pid ?? 0;
    await followUntil(client, "orphan", ({ payload }) => {
      if (payload.case === "textDelta") grandchild = hostPidOf(payload.value.text, "grandchild");
      return grandchild > 0;
    });
    await kill9(daemon);
    expect(isAlive(agent)).toBe(true);
    expect(isAlive(grandchild)).toBe(true);

    const next = await startDaemonProcess(dir, [], { HOTPLEX_SANDBOX: "off" });
    await waitUntil(() => !isAlive(agent) && !isAlive(grandchild), 10_000, "the orphaned agent group to end");
    const nextClient = clientOf(next);
    const log = await collectEvents(nextClient, 0, "orphan");
    expect(log.at(-3)?.payload).toMatchObject({
      case: "turnEnded",
      value: { outcome: TurnOutcome.INTERRUPTED, errorMessage: "interrupted by daemon restart" },
    });
    expect(log.at(-2)?.payload).toMatchObject({ case: "sessionEnded", value: { reason: "restart" } });
    expect(log.at(-1)?.payload).toMatchObject({ case: "statusChanged", value: { status: SessionStatus.DEAD } });
    expect((await nextClient.getSnapshot({ sessionId: "orphan" })).session?.status).toBe(SessionStatus.DEAD);

    const resumed = await executeEvents(nextClient.execute({ sessionId: "orphan", prompt: "[[history]]" }));
    expect(resumed.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: StartKind.RESUMED });
    expect(textOf(resumed)).toContain("remember FIG");
    expect(Number(resumed[0]?.seq)).toBe(Number(log.at(-1)?.seq) + 1);
  }, 60_000);

  it("refuses to start on a corrupt data file, naming it, and leaves the file alone", async () => {
    const dir = scratchDir();
    mkdirSync(path.join(dir, "data"), { recursive: true });
    const file = path.join(dir, "data", "hotplex.db");
    const garbage = "this is not a database. ".repeat(200);
    writeFileSync(file, garbage);
    await expect(startDaemonProcess(dir)).rejects.toThrow(`cannot use the data file ${file}`);
    expect(readFileSync(file, "utf8")).toBe(garbage);
  });
});

describe("a restarted daemon", () => {
  it("keeps sessions, sequence numbers and statistics, and resumes the conversation", async () => {
    const { dirs, store } = sqliteSetup();
    const first = await startTestDaemon({ dirs, engine: { store } });
    const before = await executeEvents(first.client.execute({ sessionId: "keep", prompt: "remember LIME" }));
    const { session: old } = await first.client.getSnapshot({ sessionId: "keep" });
    await first.close();

    const second = await startTestDaemon({ dirs, engine: { store } });
    try {
      const { session, lastSeq } = await second.client.getSnapshot({ sessionId: "keep" });
      expect(session?.status).toBe(SessionStatus.DEAD);
      expect(session?.incarnation).toBe(old?.incarnation);
      expect(session?.stats?.turns).toBe(1);
      // The graceful shutdown logged the session's end; nothing was interrupted. After the
      // turn's end: StatusChanged READY, then STOPPING, SessionEnded and StatusChanged DEAD.
      expect(Number(lastSeq)).toBe(Number(before.at(-1)?.seq) + 4);
      const after = await executeEvents(second.client.execute({ sessionId: "keep", prompt: "[[history]]" }));
      expect(Number(after[0]?.seq)).toBe(Number(lastSeq) + 1);
      expect(after.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: StartKind.RESUMED });
      expect(textOf(after)).toContain("remember LIME");
      expect((await second.client.getSessionStats({ sessionId: "keep" })).stats?.turns).toBe(2);
    } finally {
      await second.close();
    }
  });
});

describe("retention and the session registry", () => {
  it("waits until every registry entry is stored, so that no event an entry still needs is dropped", async () => {
    const { dirs, store } = sqliteSetup();
    const retention = { maxEvents: 3, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 };
    const daemon = await startTestDaemon({ dirs, engine: { store, retention } });
    try {
      await executeEvents(daemon.client.execute({ sessionId: "kept", prompt: "[[chunks:10:0]] go" }));
      // The store fails, and the session has an event its stored entry does not reflect yet.
      const commit = vi.spyOn(daemon.engine.store, "commit").mockImplementation(async () => {
        throw new Error("disk full");
      });
      const session = daemon.engine.pool.get({ tenant: "default", sessionId: "kept" })!;
      session.log.append("", { case: "raw", value: create(RawOutputSchema, { line: "late", reason: "test" }) });
      await daemon.engine.compact();
      expect(await daemon.engine.store.firstSeq("default/kept")).toBe(1);
      commit.mockRestore();
      await daemon.engine.compact();
      const { lastSeq } = await daemon.client.getSnapshot({ sessionId: "kept" });
      expect(await daemon.engine.store.firstSeq("default/kept")).toBe(Number(lastSeq) - 2);
    } finally {
      await daemon.close();
    }
  });
});

describe.each(["memory", "sqlite"] as const)("retention and incarnations with the %s store", (kind) => {
  const storeFor = () =>
    kind === "sqlite" ? { kind, dataDir: path.join(scratchDir(), "data"), durability: "normal" as const } : { kind };

  it("drops events beyond the limit and answers OUT_OF_RANGE with the first retained seq", async () => {
    const daemon = await startTestDaemon({
      engine: { store: storeFor(), retention: { maxEvents: 20, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 } },
    });
    try {
      // Short turns: each Execute stream reads only its own few events, well within the limit.
      let events: Event[] = [];
      for (let i = 0; i < 12; i += 1) events = await executeEvents(daemon.client.execute({ sessionId: "short", prompt: `t${i}` }));
      // The turn's end, then the StatusChanged (READY) after it.
      const last = Number(events.at(-1)?.seq) + 1;
      expect(last).toBeGreaterThan(40);
      await daemon.engine.compact();
      const error = await collect(daemon.client.subscribe({ sessionId: "short", afterSeq: 0n })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.OutOfRange);
      const [detail] = (error as ConnectError).findDetails(OutOfRangeDetailSchema);
      expect(detail).toMatchObject({ firstSeq: BigInt(last - 19), lastSeq: BigInt(last), requestedAfterSeq: 0n });
      const retained = await subscribedEvents(daemon, "short", BigInt(last - 20));
      expect(retained.map((e) => Number(e.seq))).toEqual(Array.from({ length: 20 }, (_, i) => last - 19 + i));
      const header = (await collect(daemon.client.subscribe({ sessionId: "short", afterSeq: BigInt(last) })))[0];
      expect(header?.header).toMatchObject({ firstSeq: BigInt(last - 19), lastSeq: BigInt(last) });
    } finally {
      await daemon.close();
    }
  });

  it("deletes a session; the id starts over with a new incarnation and the old one is refused", async () => {
    const daemon = await startTestDaemon({ engine: { store: storeFor() } });
    try {
      await executeEvents(daemon.client.execute({ sessionId: "again", prompt: "one" }));
      const old = (await daemon.client.getSnapshot({ sessionId: "again" })).session!.incarnation;
      const deleted = await daemon.client.deleteSession({ sessionId: "again" });
      expect(deleted.lastSeq).toBeGreaterThan(0n);
      expect((await collect(daemon.client.subscribe({ sessionId: "again" })).catch((e: unknown) => e)) as ConnectError).toMatchObject({
        code: Code.NotFound,
      });
      const fresh = await executeEvents(daemon.client.execute({ sessionId: "again", prompt: "two" }));
      expect(Number(fresh[0]?.seq)).toBe(1);
      const stale = await collect(daemon.client.subscribe({ sessionId: "again", incarnation: old })).catch((e: unknown) => e);
      expect(stale).toMatchObject({ code: Code.FailedPrecondition });
      const current = (await daemon.client.getSnapshot({ sessionId: "again" })).session!.incarnation;
      expect(current).not.toBe(old);
      const header = (await collect(daemon.client.subscribe({ sessionId: "again", incarnation: current })))[0];
      expect(header?.header).toMatchObject({ incarnation: current });
    } finally {
      await daemon.close();
    }
  });
});

async function collectEvents(client: ReturnType<typeof clientOf>, afterSeq: number, sessionId = "crashy"): Promise<Event[]> {
  const events: Event[] = [];
  for await (const message of client.subscribe({ sessionId, afterSeq: BigInt(afterSeq) })) {
    events.push(...message.events);
  }
  return events;
}
