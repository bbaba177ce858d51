// The behaviour every provider shares, as a client sees it through the API. Each
// provider's suite runs it with prompts in its own agent's (or mock's) marker language.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { expect, it } from "vitest";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import type { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { StartKind, TurnOutcome } from "../../src/events/event.js";
import { processesIn } from "../harness.js";

export interface ContractTarget {
  /** The provider's name, as SessionConfig.provider. */
  provider: string;
  client(): Client<typeof SessionService>;
  /** Restarts the daemon on the same store and dirs (omitted where a target cannot). */
  restart?(): Promise<void>;
  /** A prompt the agent answers with text containing `word`. */
  plain(word: string): string;
  /** A prompt the agent answers with its earlier prompts (the mock sees the history). */
  recall(): string;
  /** A prompt the agent works on until interrupted or stopped. */
  hang(): string;
  /** A prompt the agent answers with some text, then works on until stopped (default: hang). */
  talkThenHang?(): string;
  /** Makes the agent of session `sessionId` die in the middle of its running turn. */
  crash?(sessionId: string): Promise<void> | void;
  /** The agent's process(es) for a session are gone (after a stop). */
  noProcessLeft?(sessionId: string): Promise<void> | void;
}

/**
 * The crash and no-process-left hooks of a provider whose agent is a process of its own
 * per session: the snapshot's pid is its process group, its work dir holds nothing after.
 */
export function processAgentHooks(client: () => Client<typeof SessionService>): Pick<ContractTarget, "crash" | "noProcessLeft"> {
  return {
    crash: async (sessionId) => {
      const { session } = await client().getSnapshot({ sessionId });
      if (session?.pid) process.kill(-session.pid, "SIGKILL");
    },
    noProcessLeft: async (sessionId) => {
      const { session } = await client().getSnapshot({ sessionId });
      expect(processesIn(session?.workDir ?? "/nonexistent")).toEqual([]);
    },
  };
}

export async function collect(stream: AsyncIterable<{ events: Event[] }>): Promise<Event[]> {
  const events: Event[] = [];
  for await (const response of stream) events.push(...response.events);
  return events;
}

export function text(events: Event[]): string {
  return events.map((e) => (e.payload.case === "textDelta" ? e.payload.value.text : "")).join("");
}

export function turnEnd(events: Event[]) {
  const ends = events.filter((e) => e.payload.case === "turnEnded");
  expect(ends).toHaveLength(1);
  const end = ends[0];
  if (end?.payload.case !== "turnEnded") throw new Error("no TurnEnded");
  return end.payload.value;
}

/** Registers the contract's tests for one target (call inside a describe). */
export function providerContract(target: () => ContractTarget, options: { timeoutMs?: number } = {}): void {
  const timeout = options.timeoutMs ?? 60_000;
  let n = 0;
  const sessionId = (label: string) => `contract-${label}-${process.pid}-${(n += 1)}`;
  const execute = (id: string, prompt: string, extra: { queue?: boolean; requestId?: string } = {}) =>
    collect(target().client().execute({ sessionId: id, prompt, config: { provider: target().provider }, ...extra }));

  it("streams one turn in seq order: TurnStarted first, exactly one TurnEnded last, all with the turn's id", async () => {
    const id = sessionId("order");
    const events = await execute(id, target().plain("alpha"));
    const seqs = events.map((e) => Number(e.seq));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    // A cold turn shows the start (StatusChanged STARTING, SessionStarted) before TurnStarted.
    expect(["statusChanged", "sessionStarted", "turnStarted"]).toContain(events[0]?.payload.case);
    expect(events.findIndex((e) => e.payload.case === "turnStarted")).toBeGreaterThanOrEqual(0);
    expect(events.at(-1)?.payload.case).toBe("turnEnded");
    expect(new Set(events.map((e) => e.turnId)).size).toBe(1);
    expect(turnEnd(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(text(events)).toContain("alpha");
    const started = events.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.provider).toBe(target().provider);
  }, timeout);

  it("runs the next turn on the same warm agent, without a new start", async () => {
    const id = sessionId("hot");
    const first = await execute(id, target().plain("one"));
    const second = await execute(id, target().plain("two"));
    expect(first.some((e) => e.payload.case === "sessionStarted")).toBe(true);
    expect(second.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect(turnEnd(second).outcome).toBe(TurnOutcome.COMPLETED);
    expect(text(second)).toContain("two");
    const { session } = await target().client().getSnapshot({ sessionId: id });
    expect(session?.provider).toBe(target().provider);
    expect(session?.capabilities?.resume).toBe(true);
  }, timeout);

  // Starts a turn and waits for its first events (its TurnStarted): it is running then.
  const begin = async (id: string, prompt: string) => {
    const iterator = target().client().execute({ sessionId: id, prompt })[Symbol.asyncIterator]();
    const first = await iterator.next();
    const rest = (async () => {
      const events: Event[] = first.done ? [] : [...first.value.events];
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) events.push(...next.value.events);
      return events;
    })();
    return { rest };
  };

  it("refuses a second turn while one runs unless it may queue, then runs the queued one after", async () => {
    const id = sessionId("busy");
    await execute(id, target().plain("warm"));
    const running = await begin(id, target().hang());
    const refused = await execute(id, target().plain("nope")).catch((error: unknown) => ConnectError.from(error));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
    const queued = execute(id, target().plain("later"), { queue: true });
    // Queuing logs nothing: the snapshot is where it shows.
    await waitFor(async () => (await target().client().getSnapshot({ sessionId: id })).session?.queuedTurns === 1);
    await target().client().stopSession({ sessionId: id });
    expect(turnEnd(await running.rest).outcome).toBe(TurnOutcome.STOPPED);
    // The stop ends the queued turn too.
    expect(turnEnd(await queued).outcome).toBe(TurnOutcome.STOPPED);
  }, timeout);

  it("stops a running turn: STOPPED, no process left, and the next turn resumes the conversation", async () => {
    const id = sessionId("stop");
    await execute(id, target().plain("remember-me"));
    const running = await begin(id, target().hang());
    const { session } = await target().client().stopSession({ sessionId: id });
    expect(session?.pid).toBe(0);
    expect(turnEnd(await running.rest).outcome).toBe(TurnOutcome.STOPPED);
    await target().noProcessLeft?.(id);
    const after = await execute(id, target().recall());
    const started = after.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.kind).toBe(StartKind.RESUMED);
    expect(text(after)).toContain("remember-me");
  }, timeout);

  it("interrupts a running turn: INTERRUPTED, the agent stays warm and the next turn continues the conversation", async () => {
    const t = target();
    const id = sessionId("interrupt");
    await execute(id, t.plain("before-interrupt"));
    const pid = (await t.client().getSnapshot({ sessionId: id })).session?.pid;
    const running = await begin(id, t.hang());
    const answer = await t.client().interrupt({ sessionId: id });
    const events = await running.rest;
    expect(turnEnd(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(answer.outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(answer.turnId).toBe(events.at(-1)?.turnId);
    expect(Number(answer.lastSeq)).toBeGreaterThanOrEqual(Number(events.at(-1)?.seq));
    expect((await t.client().getSnapshot({ sessionId: id })).session?.pid).toBe(pid);
    const after = await execute(id, t.recall());
    expect(after.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect(turnEnd(after).outcome).toBe(TurnOutcome.COMPLETED);
    expect(text(after)).toContain("before-interrupt");
    // Nothing runs now, and a turn id that is not the running turn's is refused.
    const idle = await t.client().interrupt({ sessionId: id }).catch((e: unknown) => ConnectError.from(e));
    expect((idle as ConnectError).code).toBe(Code.FailedPrecondition);
    const missing = await t.client().interrupt({ sessionId: `${id}-none` }).catch((e: unknown) => ConnectError.from(e));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
  }, timeout);

  it("ends a turn FAILED when the agent dies in it, and resumes on the next turn", async () => {
    const t = target();
    if (!t.crash) return;
    const id = sessionId("crash");
    await execute(id, t.plain("before-crash"));
    // Killed once it is visibly working on the turn: an agent that dies before it took
    // the turn at all is started again for it (the turn is not lost), which is no crash.
    const iterator = t.client().execute({ sessionId: id, prompt: t.talkThenHang?.() ?? t.hang() })[Symbol.asyncIterator]();
    const seen: Event[] = [];
    while (!seen.some((e) => e.payload.case === "textDelta")) {
      const next = await iterator.next();
      if (next.done) break;
      seen.push(...next.value.events);
    }
    await t.crash(id);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) seen.push(...next.value.events);
    expect(turnEnd(seen).outcome).toBe(TurnOutcome.FAILED);
    const after = await execute(id, t.recall());
    expect(turnEnd(after).outcome).toBe(TurnOutcome.COMPLETED);
    expect(text(after)).toContain("before-crash");
  }, timeout);

  it("brings a session back after a daemon restart and continues its conversation", async () => {
    const t = target();
    if (!t.restart) return;
    const id = sessionId("restart");
    const first = await execute(id, t.plain("kept-across-restart"));
    await t.restart();
    const { session, lastSeq } = await target().client().getSnapshot({ sessionId: id });
    expect(Number(lastSeq)).toBeGreaterThanOrEqual(Number(first.at(-1)?.seq));
    expect(session?.status).toBe(SessionStatus.DEAD);
    const after = await execute(id, target().recall());
    expect(text(after)).toContain("kept-across-restart");
  }, timeout * 2);

  it("refuses a provider that is not enabled, and a change of a session's provider", async () => {
    const id = sessionId("provider");
    const unknown = await collect(target().client().execute({ sessionId: id, prompt: "x", config: { provider: "no-such-agent" } })).catch(
      (error: unknown) => ConnectError.from(error),
    );
    expect((unknown as ConnectError).code).toBe(Code.InvalidArgument);
    expect((unknown as ConnectError).rawMessage).toMatch(/config.provider "no-such-agent" is not enabled/);
    await execute(id, target().plain("first"));
    const { providers } = await target().client().listProviders({});
    const other = providers.find((p) => p.name !== target().provider);
    if (!other) return;
    const changed = await collect(target().client().execute({ sessionId: id, prompt: "x", config: { provider: other.name } })).catch(
      (error: unknown) => ConnectError.from(error),
    );
    expect((changed as ConnectError).code).toBe(Code.FailedPrecondition);
  }, timeout);
}

/** Polls the API until `condition` holds (for state that no event announces). */
export async function waitFor(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
