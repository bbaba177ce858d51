import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Event, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { DEFAULT_SANDBOX } from "../../src/engine/config.js";
import { StatsAccumulator } from "../../src/session/stats.js";
import {
  executeEvents,
  followUntil,
  hostPidOf,
  isAlive,
  startTestDaemon,
  subscribedEvents,
  type TestDaemon,
  textOf,
  turnEndOf,
  waitUntil,
} from "../harness.js";

const waitForEvent = async (daemon: TestDaemon, sessionId: string, match: (e: Event) => boolean) =>
  (await followUntil(daemon.client, sessionId, match)).at(-1)!;

describe("idle reaping", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({ engine: { limits: { idleTimeoutMs: 300 } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("ends an idle agent process and resumes the conversation on the next turn", async () => {
    const first = await executeEvents(daemon.client.execute({ sessionId: "idle", prompt: "remember KIWI" }));
    const started = first.find((e) => e.payload.case === "sessionStarted");
    const pid = started?.payload.case === "sessionStarted" ? started.payload.value.pid : 0;
    const ended = await waitForEvent(daemon, "idle", (e) => e.payload.case === "sessionEnded");
    expect(ended.payload.case === "sessionEnded" && ended.payload.value.reason).toBe("idle");
    expect(isAlive(pid)).toBe(false);
    expect((await daemon.client.getSnapshot({ sessionId: "idle" })).session?.status).toBe(SessionStatus.DEAD);

    const next = await executeEvents(daemon.client.execute({ sessionId: "idle", prompt: "[[history]]" }));
    expect(next.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: 2 });
    expect(next.map((e) => (e.payload.case === "textDelta" ? e.payload.value.text : "")).join("")).toContain("remember KIWI");
  });

  it("never reaps a session whose turn runs longer than the idle timeout", async () => {
    const events = await executeEvents(daemon.client.execute({ sessionId: "long", prompt: "[[delay:900]] slow" }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(events.map((e) => e.payload.case)).not.toContain("sessionEnded");
  });

});

describe("a session's own idle timeout", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({ engine: { limits: { idleTimeoutMs: 60_000 } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("may be shorter than the daemon's: that session is reaped first, the others stay up", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "default-idle", prompt: "hi" }));
    await executeEvents(daemon.client.execute({ sessionId: "own-idle", prompt: "hi", config: { idleTimeoutSeconds: 1 } }));
    const ended = await waitForEvent(daemon, "own-idle", (e) => e.payload.case === "sessionEnded");
    expect(ended.payload.case === "sessionEnded" && ended.payload.value.reason).toBe("idle");
    expect((await daemon.client.getSnapshot({ sessionId: "default-idle" })).session?.status).toBe(SessionStatus.READY);
  });
});

describe("turn timeout", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    // Long enough for a cold start of the fake agent on a loaded machine.
    daemon = await startTestDaemon({ engine: { limits: { turnTimeoutMs: 1_500, stopGraceMs: 300 } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("interrupts a turn that runs too long and ends it TIMED_OUT; the process stays warm", async () => {
    const events = await executeEvents(daemon.client.execute({ sessionId: "slow", prompt: "[[hang]]" }));
    const end = turnEndOf(events);
    expect(end.outcome).toBe(TurnOutcome.TIMED_OUT);
    expect(end.errorMessage).toContain("turn timeout");
    const next = await executeEvents(daemon.client.execute({ sessionId: "slow", prompt: "quick" }));
    expect(next.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("kills an agent that ignores the interrupt, and the next turn restarts it", async () => {
    // A first turn makes the conversation exist, so the restart below must resume it.
    await executeEvents(daemon.client.execute({ sessionId: "stuck", prompt: "warm up" }));
    const events = await executeEvents(daemon.client.execute({ sessionId: "stuck", prompt: "[[hang-hard]]" }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.TIMED_OUT);
    const next = await executeEvents(daemon.client.execute({ sessionId: "stuck", prompt: "again" }));
    expect(next.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: 2 });
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  });
});

describe("snapshots and statistics", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({ engine: { limits: { queueLimit: 64 } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("gives snapshots that reflect exactly the events up to last_seq, under concurrent appends", async () => {
    const sessionId = "consistent";
    const turns = Array.from({ length: 12 }, (_, i) =>
      executeEvents(daemon.client.execute({ sessionId, prompt: `[[flood:300]] [[tool:Bash:{"command":"echo ${i}"}]] t${i}`, queue: true })),
    );
    const snapshots = [];
    let done = false;
    void Promise.all(turns).then(() => (done = true));
    while (!done) {
      snapshots.push(await daemon.client.getSnapshot({ sessionId }));
    }
    await Promise.all(turns);
    const log = await subscribedEvents(daemon, sessionId);
    expect(snapshots.length).toBeGreaterThan(3);
    for (const snapshot of snapshots) {
      const upTo = log.filter((e) => e.seq <= snapshot.lastSeq);
      const folded = new StatsAccumulator();
      for (const event of upTo) folded.apply(event);
      expect(snapshot.session?.stats?.turns).toBe(folded.stats.turns);
      expect(snapshot.session?.stats?.toolCalls).toBe(folded.stats.toolCalls);
      const ended = new Set(upTo.filter((e) => e.payload.case === "turnEnded").map((e) => e.turnId));
      const running = upTo.filter((e) => e.payload.case === "turnStarted" && !ended.has(e.turnId));
      expect(snapshot.session?.status === SessionStatus.BUSY).toBe(running.length === 1);
      expect(snapshot.session?.currentTurn?.turnId ?? "").toBe(running[0]?.turnId ?? "");
      // Subscribing from the snapshot's last_seq continues exactly where it left off.
      const after = await subscribedEvents(daemon, sessionId, snapshot.lastSeq);
      expect(after[0]?.seq ?? log.at(-1)!.seq + 1n).toBe(snapshot.lastSeq + 1n);
    }
  });

  it("adds up turns, durations, tokens, cost, tools and modified files", async () => {
    const sessionId = "stats";
    const file = `${daemon.workRoot}/stats/a.txt`;
    await executeEvents(daemon.client.execute({ sessionId, prompt: "[[think]] plain" }));
    await executeEvents(daemon.client.execute({ sessionId, prompt: `[[tool:Write:{"file_path":"${file}","content":"x"}]] w` }));
    await executeEvents(daemon.client.execute({ sessionId, prompt: '[[tool:Bash:{"command":"echo hi"}]] b' }));
    await executeEvents(daemon.client.execute({ sessionId, prompt: `[[toolerror]] [[tool:Edit:{"file_path":"${file}.bad"}]] e` }));
    const { stats } = await daemon.client.getSessionStats({ sessionId });
    expect(stats?.turns).toBe(4);
    expect(stats?.failedTurns).toBe(0);
    expect(stats?.toolCalls).toBe(3);
    expect(stats?.toolsUsed).toEqual({ Write: 1, Bash: 1, Edit: 1 });
    expect(stats?.modifiedFiles).toEqual([file]);
    expect(stats?.inputTokens).toBeGreaterThan(0n);
    expect(stats?.outputTokens).toBeGreaterThan(0n);
    expect(stats?.cacheReadTokens).toBe(20n);
    expect(stats?.cacheWriteTokens).toBe(12n);
    // The agent reports a running total; each turn is counted once.
    expect(stats?.costUsd).toBeCloseTo(0.004, 6);
    expect(stats?.totalDurationMs).toBeGreaterThanOrEqual(stats!.toolDurationMs);
  });
});

describe("an agent that died while idle", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    // Unsandboxed: in a sandbox a stray process dies with the agent's PID namespace.
    daemon = await startTestDaemon({ engine: { sandbox: { ...DEFAULT_SANDBOX, mode: "off" } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("is started again for the next turn, resuming the conversation, when it dies as the turn reaches it", async () => {
    // The agent takes the next line and dies without a word: as when it was killed a moment
    // before the turn arrived and the daemon had not yet seen the exit.
    const first = await executeEvents(daemon.client.execute({ sessionId: "phoenix", prompt: "remember FIG [[dienext]]" }));
    expect(turnEndOf(first).outcome).toBe(TurnOutcome.COMPLETED);
    const next = await executeEvents(daemon.client.execute({ sessionId: "phoenix", prompt: "[[history]]" }));
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    const cases = next.map((e) => e.payload.case);
    expect(cases.indexOf("sessionEnded")).toBeLessThan(cases.indexOf("sessionStarted"));
    const ended = next.find((e) => e.payload.case === "sessionEnded");
    expect(ended?.payload.case === "sessionEnded" && ended.payload.value.reason).toBe("crashed");
    expect(next.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: 2 });
    expect(next.map((e) => (e.payload.case === "textDelta" ? e.payload.value.text : "")).join("")).toContain("remember FIG");
  });

  it("lets a dead agent's exit be handled before the next turn starts, though a stray process holds its output", async () => {
    const first = await executeEvents(daemon.client.execute({ sessionId: "held", prompt: "remember PLUM [[setsid]]" }));
    const started = first.find((e) => e.payload.case === "sessionStarted");
    const pid = started?.payload.case === "sessionStarted" ? started.payload.value.pid : 0;
    const stray = hostPidOf(textOf(first), "setsid");
    expect(stray).toBeGreaterThan(0);
    try {
      // Killed while idle; the stray keeps the output pipe open, so the exit is handled only
      // after the pipe's grace period: the next turn arrives inside it.
      process.kill(-pid, "SIGKILL");
      await waitUntil(() => !isAlive(pid), 5_000, "the agent to die");
      const next = await executeEvents(daemon.client.execute({ sessionId: "held", prompt: "[[history]]" }));
      expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
      expect(next.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: 2 });
      expect(textOf(next)).toContain("remember PLUM");
      // The first agent's end is in the log, once, between the two starts.
      const lifecycle = (await subscribedEvents(daemon, "held")).map((e) => e.payload.case).filter((c) => c === "sessionStarted" || c === "sessionEnded");
      expect(lifecycle).toEqual(["sessionStarted", "sessionEnded", "sessionStarted"]);
    } finally {
      if (isAlive(stray)) process.kill(stray, "SIGKILL");
    }
  });
});

describe("interrupting a turn", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({ engine: { limits: { stopGraceMs: 500 } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("ends the agent when it ignores the interrupt, and the next turn resumes the conversation", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "deaf", prompt: "remember FIG" }));
    const pid = (await daemon.client.getSnapshot({ sessionId: "deaf" })).session?.pid ?? 0;
    const stream = daemon.client.execute({ sessionId: "deaf", prompt: "[[hang-hard]]" })[Symbol.asyncIterator]();
    await stream.next();
    const answer = await daemon.client.interrupt({ sessionId: "deaf" });
    expect(answer.outcome).toBe(TurnOutcome.INTERRUPTED);
    await waitUntil(() => !isAlive(pid), 10_000, "the deaf agent to be ended");
    const next = await executeEvents(daemon.client.execute({ sessionId: "deaf", prompt: "[[history]]" }));
    expect(textOf(next)).toContain("remember FIG");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("keeps queued turns: they run after the interrupted one on the same agent", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "queue", prompt: "warm" }));
    const stream = daemon.client.execute({ sessionId: "queue", prompt: "[[hang]]" })[Symbol.asyncIterator]();
    const first = await stream.next();
    const turnId = first.done ? "" : (first.value.events[0]?.turnId ?? "");
    const queued = executeEvents(daemon.client.execute({ sessionId: "queue", prompt: "after", queue: true }));
    await waitUntil(() => daemon.engine.pool.get({ tenant: "default", sessionId: "queue" })?.queuedTurns === 1, 5_000, "the queued turn");
    // A turn id that is not the running turn's is refused, the right one taken.
    const wrong = await daemon.client.interrupt({ sessionId: "queue", turnId: "another" }).catch((e: unknown) => ConnectError.from(e));
    expect(wrong).toBeInstanceOf(ConnectError);
    expect((wrong as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((await daemon.client.interrupt({ sessionId: "queue", turnId })).turnId).toBe(turnId);
    const after = await queued;
    expect(after.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect(turnEndOf(after).outcome).toBe(TurnOutcome.COMPLETED);
  });
});

describe("what a turn's and a session's end report", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("measures a cold turn's duration from its TurnStarted, as the event timestamps do", async () => {
    const events = await executeEvents(daemon.client.execute({ sessionId: "cold-duration", prompt: "[[delay:200]]" }));
    const started = events.find((e) => e.payload.case === "turnStarted");
    const ended = events.find((e) => e.payload.case === "turnEnded");
    const ms = (e: Event | undefined) => Number(e?.time?.seconds ?? 0n) * 1000 + (e?.time?.nanos ?? 0) / 1e6;
    const gap = ms(ended) - ms(started);
    expect(gap).toBeGreaterThanOrEqual(190);
    expect(Math.abs(Number(turnEndOf(events).durationMs) - gap)).toBeLessThan(25);
  });

  it("reports the signal a stop sent in SessionEnded, also for a sandboxed agent", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "stop-signal", prompt: "hi" }));
    await daemon.client.stopSession({ sessionId: "stop-signal" });
    const ended = (await subscribedEvents(daemon, "stop-signal")).find((e) => e.payload.case === "sessionEnded");
    expect(ended?.payload.case === "sessionEnded" && ended.payload.value).toMatchObject({ reason: "stopped", signal: "SIGTERM" });
  });
});
