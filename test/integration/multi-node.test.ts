// The multi-node harness (issue #16): one Redis (with its AOF), three hotplexd processes
// sharing it and their storage, clients that follow sessions through random nodes and switch
// node on error, and a scripted agent that logs which node started it and when it ran.
// Faults: kill -9 of an owner mid-turn, SIGSTOP of an owner (its machine paused) past its
// lease then SIGCONT, kill -9 of a node serving a Subscribe, kill -9 of Redis and a restart
// from its AOF. What must hold: every session's stored seqs are exactly 1..N and every event
// a client saw is stored with identical bytes; each client's seqs rise by exactly one across
// its reconnects; epochs never decrease along a log and each maps to one node; a session's
// agents never run at once; each cut turn ends owner_lost once, and the next Execute resumes
// the conversation.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import { type Event, EventSchema, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { sessionKeys } from "../../src/store/redis/keys.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { useRedisNodes } from "../fixtures/redis-nodes.js";
import { isAlive } from "../harness.js";
import { transportFor } from "../harness.js";

interface RunRecord {
  event: "start" | "exit";
  pid: number;
  ppid: number;
  cwd: string;
  t: number;
}

let watcher: NodeJS.Timeout | undefined;
const cluster = useRedisNodes({
  appendOnly: true,
  afterEach: () => {
    clearInterval(watcher);
    killDaemonProcesses();
  },
});
const SESSIONS = ["s1", "s2", "s3"];

describe("three nodes on one Redis, under faults", () => {
  it("lose nothing, never run a session twice at once, and resume every conversation", async () => {
    const { redis } = cluster;
    const dir = cluster.scratchDir("multi-node");
    const prefix = cluster.prefix("multi");
    const runLog = path.join(dir, "runs.jsonl");
    writeFileSync(runLog, "");
    const secret = path.join(dir, "node-secret");
    writeFileSync(secret, "a-secret-the-three-nodes-share-0123456789");
    const env = {
      HOTPLEX_STORE: "redis",
      HOTPLEX_REDIS_URL: redis.url,
      HOTPLEX_REDIS_PREFIX: prefix,
      HOTPLEX_LEASE_TTL: "1s",
      HOTPLEX_LEASE_MARGIN: "300ms",
      HOTPLEX_STATE_DIR: path.join(dir, "state"),
      HOTPLEX_NODE_SECRET_FILE: secret,
      HOTPLEX_SANDBOX: "off",
      HOTPLEX_AGENT_ENV: "FAKE_CLAUDE_RUN_LOG",
      FAKE_CLAUDE_RUN_LOG: runLog,
    };
    // Which node each daemon process (pid) was: a node restarted keeps its id.
    const nodeOfPid = new Map<number, string>();
    const nodes = new Map<string, DaemonProcess>();
    const start = async (id: string) => {
      const daemon = await startDaemonProcess(dir, [], { ...env, HOTPLEX_NODE_ID: id });
      nodes.set(id, daemon);
      nodeOfPid.set(daemon.child.pid!, id);
      return daemon;
    };
    for (const id of ["n1", "n2", "n3"]) await start(id);
    const clientOf = (daemon: DaemonProcess) => createClient(SessionService, transportFor(daemon.url, "connect"));
    // Paused nodes answer nothing: clients (their connect and keepalive timeouts) avoid them.
    const pausedNodes = new Set<DaemonProcess>();
    const live = () => [...nodes.values()].filter((daemon) => daemon.child.exitCode === null && daemon.child.signalCode === null && !pausedNodes.has(daemon));
    const pick = () => {
      const up = live();
      return up[Math.floor(Math.random() * up.length)]!;
    };
    const runs = () =>
      readFileSync(runLog, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as RunRecord);
    // When each agent was last seen alive (a SIGKILLed agent logs no exit).
    // Every check of an agent records when it was first seen gone, so the harness's own waits
    // (before it starts the next turn) bound the end as tightly as the background watch.
    const ended = new Map<number, number>();
    const gone = (pid: number) => {
      if (isAlive(pid)) return false;
      if (!ended.has(pid)) ended.set(pid, Date.now());
      return true;
    };
    watcher = setInterval(() => {
      for (const run of runs()) if (run.event === "start") gone(run.pid);
    }, 20);
    const admin = redis.client();
    const holderOf = async (sessionId: string) => String(await admin.get(sessionKeys(prefix, `default/${sessionId}`).lease)).split(":")[1];
    // The machine of a node goes away: the daemon and the agents it started.
    const agentsOf = (daemon: DaemonProcess) => runs().filter((run) => run.event === "start" && run.ppid === daemon.child.pid && isAlive(run.pid));
    const kill = async (daemon: DaemonProcess) => {
      const agents = agentsOf(daemon);
      daemon.child.kill("SIGKILL");
      for (const agent of agents) process.kill(-agent.pid, "SIGKILL");
      await daemon.exit;
      await vi.waitFor(() => expect(agents.every((agent) => gone(agent.pid))).toBe(true), { timeout: 10_000, interval: 5 });
    };

    // A turn through any node, retried (with the same request id) while nodes come and go.
    let turns = 0;
    const turnVia = async (sessionId: string, prompt: string): Promise<Event[]> => {
      const requestId = `turn-${++turns}`;
      for (let attempt = 0; ; attempt += 1) {
        try {
          const events: Event[] = [];
          for await (const message of clientOf(pick()).execute({ sessionId, prompt, requestId })) events.push(...message.events);
          return events;
        } catch (error) {
          if (ConnectError.from(error).code !== Code.Unavailable || attempt > 40) throw error;
          await new Promise((resolve) => setTimeout(resolve, 150));
        }
      }
    };
    const textOf = (events: readonly Event[]) => events.map((e) => (e.payload.case === "textDelta" ? e.payload.value.text : "")).join("");
    const completed = (events: readonly Event[]) => expect(events.at(-1)?.payload).toMatchObject({ case: "turnEnded", value: { outcome: TurnOutcome.COMPLETED } });

    for (const sessionId of SESSIONS) completed(await turnVia(sessionId, `remember ALPHA-${sessionId}`));

    // A client per session, through a random node, moving to another on any error, resuming
    // with (seq, epoch).
    const stop = new AbortController();
    const seen = new Map<string, Event[]>(SESSIONS.map((id) => [id, []]));
    const serving = new Map<string, { daemon: DaemonProcess; call: AbortController }>();
    // A client whose node stopped answering gives up on it (its keepalive) and moves on.
    const dropReaders = (daemon: DaemonProcess) => {
      for (const reader of serving.values()) if (reader.daemon === daemon) reader.call.abort();
    };
    const fatal: unknown[] = [];
    const follow = async (sessionId: string) => {
      const mine = seen.get(sessionId)!;
      while (!stop.signal.aborted) {
        const daemon = pick();
        const call = new AbortController();
        serving.set(sessionId, { daemon, call });
        const last = mine.at(-1);
        try {
          for await (const message of clientOf(daemon).subscribe(
            { sessionId, afterSeq: last?.seq ?? 0n, afterEpoch: last?.epoch ?? 0n, follow: true },
            { signal: AbortSignal.any([stop.signal, call.signal]) },
          )) {
            mine.push(...message.events);
          }
        } catch (error) {
          if (stop.signal.aborted) return;
          const code = ConnectError.from(error).code;
          // A node that died under the stream (reset, aborted, cut): another one serves it.
          if (![Code.Unavailable, Code.Unknown, Code.Internal, Code.Aborted, Code.Canceled, Code.DeadlineExceeded].includes(code)) {
            fatal.push(error);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    const followers = SESSIONS.map((id) => follow(id));
    const lostEnds = (sessionId: string) => seen.get(sessionId)!.filter((e) => e.payload.case === "turnEnded" && e.payload.value.errorMessage.includes("owner_lost"));
    const runningOn = async (sessionId: string) => {
      await vi.waitFor(async () => expect((await clientOf(pick()).getSnapshot({ sessionId })).session?.currentTurn).toBeDefined(), { timeout: 10_000, interval: 50 });
      return nodes.get((await holderOf(sessionId)) ?? "")!;
    };

    // 1. kill -9 of the owner of s1, mid-turn.
    const cut1 = turnVia("s1", "[[chunks:400:10]] a long turn").catch((e: unknown) => e);
    const owner1 = await runningOn("s1");
    await kill(owner1);
    await vi.waitFor(() => expect(lostEnds("s1")).toHaveLength(1), { timeout: 10_000, interval: 20 });
    await start(nodeOfPid.get(owner1.child.pid!)!);
    await cut1;
    const resumed1 = await turnVia("s1", "[[history]]");
    completed(resumed1);
    expect(textOf(resumed1)).toContain("remember ALPHA-s1");

    // 2. SIGSTOP of the owner of s2 (its machine paused) past its lease, then SIGCONT: the
    // session is taken meanwhile; the paused node ends its agent as soon as it runs again.
    const cut2 = turnVia("s2", "[[chunks:400:10]] a long turn").catch((e: unknown) => e);
    const owner2 = await runningOn("s2");
    const paused = agentsOf(owner2);
    owner2.child.kill("SIGSTOP");
    for (const agent of paused) process.kill(agent.pid, "SIGSTOP");
    pausedNodes.add(owner2);
    dropReaders(owner2);
    await vi.waitFor(() => expect(lostEnds("s2")).toHaveLength(1), { timeout: 10_000, interval: 20 });
    owner2.child.kill("SIGCONT");
    for (const agent of paused) process.kill(agent.pid, "SIGCONT");
    pausedNodes.delete(owner2);
    await vi.waitFor(() => expect(paused.every((agent) => gone(agent.pid))).toBe(true), { timeout: 10_000, interval: 20 });
    await cut2;
    const resumed2 = await turnVia("s2", "[[history]]");
    completed(resumed2);
    expect(textOf(resumed2)).toContain("remember ALPHA-s2");

    // 3. kill -9 of the node serving the client of s3, while a turn of s3 runs.
    const during3 = turnVia("s3", "[[chunks:100:10]] a turn while its reader's node dies").catch((e: unknown) => e);
    await runningOn("s3");
    const reader = serving.get("s3")!.daemon;
    const readerId = nodeOfPid.get(reader.child.pid!)!;
    await kill(reader);
    await start(readerId);
    await during3;
    completed(await turnVia("s3", "[[history]] after the reader's node died"));

    // 4. kill -9 of Redis mid-turn, and a restart from its AOF.
    const during4 = turnVia("s1", "[[chunks:100:10]] a turn while Redis dies").catch((e: unknown) => e);
    await runningOn("s1");
    await redis.restart();
    await during4;
    for (const sessionId of SESSIONS) {
      const after = await turnVia(sessionId, "[[history]] after Redis came back");
      completed(after);
      expect(textOf(after)).toContain(`remember ALPHA-${sessionId}`);
    }

    // What every client saw is what is stored, and the stored logs are whole.
    const stored = new Map<string, { seq: number; bytes: Buffer; epoch: number }[]>();
    for (const sessionId of SESSIONS) {
      const entries = await admin.xrangeBuffer(sessionKeys(prefix, `default/${sessionId}`).log, "-", "+");
      const log = entries.map(([id, fields]) => {
        const at = (name: string) => fields.findIndex((field, i) => i % 2 === 0 && field.toString() === name);
        return { seq: Number(id.toString().split("-")[0]), bytes: fields[at("e") + 1]!, epoch: Number(fields[at("ep") + 1]!.toString()) };
      });
      stored.set(sessionId, log);
      expect(log.map((entry) => entry.seq)).toEqual(log.map((_, i) => i + 1));
      await vi.waitFor(() => expect(Number(seen.get(sessionId)!.at(-1)?.seq), `the client of ${sessionId} (failed: ${fatal.map(String).join("; ")})`).toBe(log.length), {
        timeout: 10_000,
        interval: 20,
      });
    }
    stop.abort();
    await Promise.all(followers);
    clearInterval(watcher);
    expect(fatal).toEqual([]);
    for (const sessionId of SESSIONS) {
      const log = stored.get(sessionId)!;
      const mine = seen.get(sessionId)!;
      // Each client's seqs rise by exactly one, across its reconnects.
      expect(mine.map((e) => Number(e.seq))).toEqual(mine.map((_, i) => i + 1));
      for (const event of mine) expect(Buffer.from(toBinary(EventSchema, event)).equals(log[Number(event.seq) - 1]!.bytes)).toBe(true);
      // Epochs never decrease; each maps to one node (the node whose agent it started).
      const epochs = log.map((entry) => entry.epoch);
      expect(epochs).toEqual([...epochs].sort((a, b) => a - b));
      const runsByPid = new Map(runs().map((run) => [run.pid, run]));
      const nodeOfEpoch = new Map<number, Set<string>>();
      for (const event of mine) {
        if (event.payload.case !== "sessionStarted") continue;
        const node = nodeOfPid.get(runsByPid.get(event.payload.value.pid)?.ppid ?? -1) ?? "?";
        nodeOfEpoch.set(Number(event.epoch), (nodeOfEpoch.get(Number(event.epoch)) ?? new Set()).add(node));
      }
      for (const [epoch, owners] of nodeOfEpoch) expect([...owners], `epoch ${epoch}`).toHaveLength(1);
      // A session's agents never ran at once.
      const started = mine.filter((e) => e.payload.case === "sessionStarted").map((e) => runsByPid.get((e.payload.value as { pid: number }).pid)!);
      const intervals = started.map((run) => {
        const exit = runs().find((r) => r.event === "exit" && r.pid === run.pid)?.t;
        return { pid: run.pid, from: run.t, to: exit ?? ended.get(run.pid) ?? Number.POSITIVE_INFINITY };
      });
      for (let i = 1; i < intervals.length; i += 1) expect(intervals[i]!.from, `agent ${intervals[i]!.pid} of ${sessionId}`).toBeGreaterThanOrEqual(intervals[i - 1]!.to);
      // A cut turn ends owner_lost once, never twice.
      const ends = lostEnds(sessionId).map((e) => e.turnId);
      expect(new Set(ends).size).toBe(ends.length);
    }
    expect(lostEnds("s1").length).toBeGreaterThanOrEqual(1);
    expect(lostEnds("s2")).toHaveLength(1);
    // The nodes stop as an operator stops them: their agents end with them.
    const up = live();
    for (const daemon of up) daemon.child.kill("SIGTERM");
    await Promise.all(up.map((daemon) => daemon.exit));
  }, 240_000);
});
