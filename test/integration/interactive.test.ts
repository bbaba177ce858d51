// Interactive control through the whole API, on the in-memory fake provider (no child
// processes): approvals and questions, steer, queued turns, live settings, reset, fork,
// titles and the status events. Each provider's own mapping is tested against its real
// CLI in test/e2e/*-interactive.test.ts.
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Event, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision, RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import { ApprovalMode, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { capabilities } from "../../src/providers/provider.js";
import { type FakeConnection, type FakeConversations, FakeProvider } from "../fixtures/fake-provider.js";
import { allow, deny } from "../interactive.js";
import { executeEvents, followUntil, startTestDaemon, subscribedEvents, type TestDaemon, textOf, turnEndOf } from "../harness.js";

const CLIENT = { provider: "fake", approvalMode: ApprovalMode.CLIENT };

async function codeOf(promise: Promise<unknown>): Promise<{ code: Code; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(error)}`);
  return { code: error.code, message: error.rawMessage };
}

function payloads<C extends NonNullable<Event["payload"]["case"]>>(events: Event[], kind: C) {
  return events.flatMap((e) => (e.payload.case === kind ? [e.payload.value as Extract<Event["payload"], { case: C }>["value"]] : []));
}

describe("interactive control on the fake provider", () => {
  let scratch: string;
  let dirs: { workRoot: string; home: string };
  let conversations: FakeConversations;
  let fake: FakeProvider;
  let daemon: TestDaemon;
  let n = 0;
  const sessionId = () => `s${++n}`;

  const start = async (timeoutMs = 60_000) => {
    fake = new FakeProvider("fake", conversations);
    const plain = new FakeProvider("plain", new Map());
    Object.assign(plain.capabilities, capabilities({ interrupt: true }));
    daemon = await startTestDaemon({
      providerInstances: [fake, plain],
      dirs,
      storeKind: "sqlite",
      engine: { approvals: { defaultMode: "agent", timeoutMs } },
    });
  };
  const lastRun = (): FakeConnection => {
    const run = fake.runs.at(-1);
    if (!run) throw new Error("no run");
    return run;
  };
  // Starts a turn and waits until its first permission request is logged.
  const askedIn = async (id: string, prompt: string, config: object = CLIENT) => {
    // Where the log stands before the turn: the request may be logged before any call made after Execute returns.
    const { lastSeq } = await daemon.client.getSnapshot({ sessionId: id }).catch(() => ({ lastSeq: 0n }));
    const turn = executeEvents(daemon.client.execute({ sessionId: id, prompt, config }));
    turn.catch(() => {});
    const events = await followUntil(daemon.client, id, (e) => e.payload.case === "permissionRequested", lastSeq);
    const request = payloads(events, "permissionRequested").at(-1);
    if (!request) throw new Error("no request");
    return { turn, request };
  };

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-interactive-"));
    dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    mkdirSync(dirs.workRoot, { recursive: true });
    mkdirSync(dirs.home, { recursive: true });
    conversations = new Map();
    await start();
  });
  afterAll(async () => {
    await daemon?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  describe("approvals", () => {
    it("asks the client, shows the request in GetSnapshot while the session waits, and runs the call when allowed", async () => {
      const id = sessionId();
      const { turn, request } = await askedIn(id, '[[ask:{"command":"touch a"}]]');
      expect(request).toMatchObject({ kind: RequestKind.PERMISSION, toolName: "shell", command: "touch a", inputJson: '{"command":"touch a"}', inputEditable: true });
      expect(request.deadline).toBeDefined();
      expect(request.suggestionsJson).toEqual(['{"allow":"always"}']);
      const { session } = await daemon.client.getSnapshot({ sessionId: id });
      expect(session?.status).toBe(SessionStatus.WAITING);
      expect(session?.pendingRequests.map((p) => p.request?.requestId)).toEqual([request.requestId]);
      const answered = await daemon.client.respondPermission({ sessionId: id, requestId: request.requestId, decision: allow() });
      const events = await turn;
      expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
      expect(textOf(events)).toBe('ran {"command":"touch a"}');
      const [resolved] = payloads(events, "permissionResolved");
      expect(resolved).toMatchObject({ requestId: request.requestId, decision: PermissionDecision.ALLOW, decidedBy: Decider.CLIENT, principal: expect.any(String) });
      expect(Number(answered.lastSeq)).toBeGreaterThanOrEqual(Number(events.find((e) => e.payload.case === "permissionResolved")?.seq));
      expect((await daemon.client.getSnapshot({ sessionId: id })).session?.pendingRequests).toEqual([]);
    });

    it("runs the edited input when the client changes it", async () => {
      const id = sessionId();
      const { turn, request } = await askedIn(id, '[[ask:{"command":"rm -rf build"}]]');
      await daemon.client.respondPermission({ sessionId: id, requestId: request.requestId, decision: allow(false, '{"command":"rm -rf build/tmp"}') });
      const events = await turn;
      expect(payloads(events, "toolUse")[0]?.inputJson).toBe('{"command":"rm -rf build/tmp"}');
      expect(payloads(events, "permissionResolved")[0]?.updatedInputJson).toBe('{"command":"rm -rf build/tmp"}');
      expect(lastRun().answers.at(-1)?.decision).toEqual({ behavior: "allow", forSession: false, updatedInputJson: '{"command":"rm -rf build/tmp"}' });
    });

    it("denies with the client's message and the turn goes on; deny-and-interrupt ends it INTERRUPTED on a warm agent", async () => {
      const id = sessionId();
      const first = await askedIn(id, '[[ask:{"command":"a"}]] [[ask:{"command":"b"}]]');
      await daemon.client.respondPermission({ sessionId: id, requestId: first.request.requestId, decision: deny("not that one") });
      const second = await followUntil(daemon.client, id, (e) => e.payload.case === "permissionRequested" && e.payload.value.command === "b");
      const next = payloads(second, "permissionRequested").at(-1);
      await daemon.client.respondPermission({ sessionId: id, requestId: next?.requestId ?? "", decision: allow() });
      const events = await first.turn;
      expect(textOf(events)).toBe('denied: not that one; ran {"command":"b"}');
      expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);

      const pid = lastRun().pid;
      const again = await askedIn(id, '[[ask:{"command":"c"}]]');
      await daemon.client.respondPermission({ sessionId: id, requestId: again.request.requestId, decision: deny("stop here", true) });
      const interrupted = await again.turn;
      expect(turnEndOf(interrupted).outcome).toBe(TurnOutcome.INTERRUPTED);
      expect(payloads(interrupted, "permissionResolved")[0]).toMatchObject({ decision: PermissionDecision.DENY, interrupt: true, message: "stop here" });
      const after = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "still warm" }));
      expect(textOf(after)).toBe("Echo: still warm");
      expect(lastRun().pid).toBe(pid);
    });

    it("allows identical calls for the rest of the session without asking, and only identical ones", async () => {
      const id = sessionId();
      const { turn, request } = await askedIn(id, '[[ask:{"command":"npm test"}]]');
      await daemon.client.respondPermission({ sessionId: id, requestId: request.requestId, decision: allow(true) });
      await turn;
      const repeat = await executeEvents(daemon.client.execute({ sessionId: id, prompt: '[[ask:{"command":"npm test"}]]' }));
      expect(textOf(repeat)).toBe('ran {"command":"npm test"}');
      expect(payloads(repeat, "permissionResolved")[0]).toMatchObject({ decidedBy: Decider.SESSION_RULE, decision: PermissionDecision.ALLOW });
      // A different input is asked again.
      const other = await askedIn(id, '[[ask:{"command":"npm publish"}]]');
      await daemon.client.respondPermission({ sessionId: id, requestId: other.request.requestId, decision: deny() });
      expect(textOf(await other.turn)).toBe("denied: denied by the client");
    });

    it("first answer wins; a late one is FAILED_PRECONDITION, an unknown id NOT_FOUND, a malformed decision INVALID_ARGUMENT", async () => {
      const id = sessionId();
      const { turn, request } = await askedIn(id, '[[ask:{"command":"x"}]]');
      const respond = (decision: Parameters<typeof daemon.client.respondPermission>[0]["decision"], requestId = request.requestId) =>
        daemon.client.respondPermission({ sessionId: id, requestId, decision });
      expect(await codeOf(respond({ case: undefined }))).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining("decision") });
      expect(await codeOf(respond(allow(false, "not json")))).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining("updated_input_json") });
      expect(await codeOf(respond(allow(false, "[1,2]")))).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining("JSON object") });
      expect(await codeOf(respond({ case: "answer", value: { answers: { a: "b" } } }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(respond(deny("x".repeat(5000))))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(respond(allow(), "no-such-request"))).toMatchObject({ code: Code.NotFound });
      expect(await codeOf(respond(allow(), ""))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(respond(allow(), "r".repeat(500)))).toMatchObject({ code: Code.InvalidArgument });
      // Nothing above decided it.
      expect((await daemon.client.getSnapshot({ sessionId: id })).session?.pendingRequests).toHaveLength(1);
      const [a, b] = await Promise.allSettled([respond(allow()), respond(deny())]);
      expect(a.status).toBe("fulfilled");
      expect(b.status === "rejected" && (b.reason as ConnectError).code).toBe(Code.FailedPrecondition);
      await turn;
      expect(await codeOf(respond(allow()))).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining("already decided") });
      // The agent got exactly one answer.
      expect(lastRun().answers.filter((x) => x.requestId === "req-1")).toHaveLength(1);
      expect(await codeOf(daemon.client.respondPermission({ sessionId: "missing", requestId: request.requestId, decision: allow() }))).toMatchObject({ code: Code.NotFound });
    });

    it("waits while no client is connected and takes the answer from a new connection", async () => {
      const id = sessionId();
      const abort = new AbortController();
      const stream = daemon.client.execute({ sessionId: id, prompt: '[[ask:{"command":"later"}]]', config: CLIENT }, { signal: abort.signal });
      let requestId = "";
      await expect(
        (async () => {
          for await (const { events } of stream) {
            const asked = payloads(events, "permissionRequested")[0];
            if (asked) {
              requestId = asked.requestId;
              abort.abort();
            }
          }
        })(),
      ).rejects.toThrow();
      expect((await daemon.client.getSnapshot({ sessionId: id })).session?.status).toBe(SessionStatus.WAITING);
      const other = daemon.clientFor("grpc");
      await other.respondPermission({ sessionId: id, requestId, decision: allow() });
      const events = await followUntil(other, id, (e) => e.payload.case === "turnEnded");
      expect(textOf(events)).toBe('ran {"command":"later"}');
    });

    it("answers a question with the client's answers; a question cannot be allowed, and every question needs an answer", async () => {
      const id = sessionId();
      const turn = executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[question]]", config: CLIENT }));
      const asked = payloads(await followUntil(daemon.client, id, (e) => e.payload.case === "permissionRequested"), "permissionRequested")[0];
      expect(asked?.kind).toBe(RequestKind.QUESTION);
      expect(asked?.questions.map((q) => [q.id, q.options.map((o) => o.label)])).toEqual([
        ["color", ["red", "blue"]],
        ["size", []],
      ]);
      const requestId = asked?.requestId ?? "";
      expect(await codeOf(daemon.client.respondPermission({ sessionId: id, requestId, decision: allow() }))).toMatchObject({ code: Code.InvalidArgument });
      expect(
        await codeOf(daemon.client.respondPermission({ sessionId: id, requestId, decision: { case: "answer", value: { answers: { color: "red" } } } })),
      ).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining('"size"') });
      expect(
        await codeOf(
          daemon.client.respondPermission({ sessionId: id, requestId, decision: { case: "answer", value: { answers: { color: "red", size: "L", toString: "x" } } } }),
        ),
      ).toMatchObject({ code: Code.InvalidArgument });
      await daemon.client.respondPermission({ sessionId: id, requestId, decision: { case: "answer", value: { answers: { color: "blue", size: "XL" } } } });
      const events = await turn;
      expect(textOf(events)).toBe("answers: color=blue, size=XL");
      expect(payloads(events, "permissionResolved")[0]).toMatchObject({ decision: PermissionDecision.ANSWERED, answers: { color: "blue", size: "XL" } });
    });

    it("denies a request when the session's approval mode is agent, without asking", async () => {
      const id = sessionId();
      const events = await executeEvents(daemon.client.execute({ sessionId: id, prompt: '[[ask:{"command":"y"}]]', config: { provider: "fake" } }));
      expect(textOf(events)).toContain("denied: no client approves tool calls");
      expect(payloads(events, "permissionResolved")[0]?.decidedBy).toBe(Decider.APPROVAL_MODE);
    });

    it("ends a waiting request when the agent withdraws it (an interrupt), when the session stops, and when the agent exits", async () => {
      const id = sessionId();
      const first = await askedIn(id, '[[ask:{"command":"i"}]]');
      await daemon.client.interrupt({ sessionId: id });
      const interrupted = await first.turn;
      expect(turnEndOf(interrupted).outcome).toBe(TurnOutcome.INTERRUPTED);
      expect(payloads(interrupted, "permissionResolved")[0]?.decidedBy).toBe(Decider.AGENT_CANCELLED);

      const second = await askedIn(id, '[[ask:{"command":"s"}]]');
      await daemon.client.stopSession({ sessionId: id });
      const stopped = await second.turn;
      expect(turnEndOf(stopped).outcome).toBe(TurnOutcome.STOPPED);
      expect(payloads(stopped, "permissionResolved")[0]?.decidedBy).toBe(Decider.STOP);
    });

    it("denies a request nobody answers within the approval timeout", async () => {
      await daemon.close();
      await start(150);
      try {
        const id = sessionId();
        const events = await executeEvents(daemon.client.execute({ sessionId: id, prompt: '[[ask:{"command":"slow"}]]', config: CLIENT }));
        expect(textOf(events)).toContain("denied: no answer within the approval timeout");
        expect(payloads(events, "permissionResolved")[0]?.decidedBy).toBe(Decider.TIMEOUT);
      } finally {
        await daemon.close();
        await start();
      }
    });

    it("ends a request that waited across a daemon restart (DAEMON_RESTART), and a late answer is told it was decided", async () => {
      const id = sessionId();
      const { request } = await askedIn(id, '[[ask:{"command":"r"}]]');
      // A daemon that stops without a shutdown: its engine is abandoned, the store reopened.
      await daemon.server.server.close();
      await daemon.engine.store.close();
      await start();
      const log = await subscribedEvents(daemon, id);
      expect(payloads(log, "permissionResolved").at(-1)).toMatchObject({ requestId: request.requestId, decidedBy: Decider.DAEMON_RESTART });
      const { session } = await daemon.client.getSnapshot({ sessionId: id });
      expect(session?.pendingRequests).toEqual([]);
      expect(session?.status).toBe(SessionStatus.DEAD);
      expect(await codeOf(daemon.client.respondPermission({ sessionId: id, requestId: request.requestId, decision: allow() }))).toMatchObject({
        code: Code.FailedPrecondition,
      });
    });

    it("refuses approval mode CLIENT for a provider that cannot ask, naming it", async () => {
      const { code, message } = await codeOf(
        executeEvents(daemon.client.execute({ sessionId: sessionId(), prompt: "hi", config: { provider: "plain", approvalMode: ApprovalMode.CLIENT } })),
      );
      expect(code).toBe(Code.FailedPrecondition);
      expect(message).toContain("provider plain");
      expect(await codeOf(executeEvents(daemon.client.execute({ sessionId: sessionId(), prompt: "hi", config: { approvalMode: 7 as ApprovalMode } })))).toMatchObject({
        code: Code.InvalidArgument,
      });
    });
  });

  describe("steer and the queue", () => {
    it("delivers a message into the running turn, logged as TurnSteered in it", async () => {
      const id = sessionId();
      const turn = executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[steer]]", config: { provider: "fake" } }));
      await followUntil(daemon.client, id, (e) => e.payload.case === "turnStarted");
      expect(await codeOf(daemon.client.steer({ sessionId: id, prompt: "" }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.steer({ sessionId: id, prompt: "x".repeat(1024 * 1024 + 1) }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.steer({ sessionId: id, prompt: "x", turnId: "t".repeat(129) }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.steer({ sessionId: id, prompt: "x", turnId: "other" }))).toMatchObject({ code: Code.FailedPrecondition });
      const steered = await daemon.client.steer({ sessionId: id, prompt: "use tabs" });
      const events = await turn;
      expect(textOf(events)).toBe("steered: use tabs");
      const logged = events.find((e) => e.payload.case === "turnSteered");
      expect(logged?.seq).toBe(steered.seq);
      expect(logged?.turnId).toBe(steered.turnId);
      expect(await codeOf(daemon.client.steer({ sessionId: id, prompt: "too late" }))).toMatchObject({ code: Code.FailedPrecondition });
    });

    it("refuses steer for a provider that cannot, naming it", async () => {
      const id = sessionId();
      const turn = executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[hang]]", config: { provider: "plain" } }));
      await followUntil(daemon.client, id, (e) => e.payload.case === "turnStarted");
      expect(await codeOf(daemon.client.steer({ sessionId: id, prompt: "x" }))).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining("provider plain") });
      await daemon.client.interrupt({ sessionId: id });
      await turn;
    });

    it("lists queued turns in GetSnapshot and cancels one before it starts", async () => {
      const id = sessionId();
      const running = executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[steer]]", config: { provider: "fake" } }));
      await followUntil(daemon.client, id, (e) => e.payload.case === "turnStarted");
      const second = executeEvents(daemon.client.execute({ sessionId: id, prompt: "second", requestId: "q-2", queue: true }));
      const third = executeEvents(daemon.client.execute({ sessionId: id, prompt: "third", queue: true }));
      await followUntil(daemon.client, id, (e) => e.payload.case === "turnQueued" && e.payload.value.prompt === "third");
      const { session } = await daemon.client.getSnapshot({ sessionId: id });
      expect(session?.queued.map((q) => [q.prompt, q.requestId])).toEqual([
        ["second", "q-2"],
        ["third", ""],
      ]);
      expect(session?.queuedTurns).toBe(2);
      const secondId = session?.queued[0]?.turnId ?? "";
      const runningId = session?.currentTurn?.turnId ?? "";
      expect(await codeOf(daemon.client.cancelTurn({ sessionId: id, turnId: runningId }))).toMatchObject({ code: Code.FailedPrecondition });
      expect(await codeOf(daemon.client.cancelTurn({ sessionId: id, turnId: "nope" }))).toMatchObject({ code: Code.NotFound });
      expect(await codeOf(daemon.client.cancelTurn({ sessionId: id, turnId: "" }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.cancelTurn({ sessionId: id, turnId: "t".repeat(129) }))).toMatchObject({ code: Code.InvalidArgument });
      await daemon.client.cancelTurn({ sessionId: id, turnId: secondId });
      const cancelled = await second;
      expect(cancelled.map((e) => e.payload.case)).toEqual(["turnQueued", "turnEnded"]);
      expect(turnEndOf(cancelled).outcome).toBe(TurnOutcome.CANCELLED);
      expect((await daemon.client.getSnapshot({ sessionId: id })).session?.queued.map((q) => q.prompt)).toEqual(["third"]);
      await daemon.client.steer({ sessionId: id, prompt: "go" });
      await running;
      expect(textOf(await third)).toBe("Echo: third");
    });
  });

  describe("live settings", () => {
    it("changes model and permission mode on the warm agent between turns, logged and kept in the config", async () => {
      const id = sessionId();
      await executeEvents(daemon.client.execute({ sessionId: id, prompt: "hi", config: { provider: "fake", model: "fake-small" } }));
      const pid = lastRun().pid;
      const changed = await daemon.client.changeSettings({ sessionId: id, model: "fake-large", permissionMode: "plan" });
      expect(changed.session?.config).toMatchObject({ model: "fake-large", permissionMode: "plan" });
      const events = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[settings]]" }));
      expect(textOf(events)).toBe("model=fake-large mode=plan");
      expect(lastRun().pid).toBe(pid);
      const log = await subscribedEvents(daemon, id);
      expect(payloads(log, "configChanged")).toMatchObject([{ model: "fake-large", permissionMode: "plan", appliedLive: true }]);
      // The agent's refusal, and refusals before anything is sent.
      expect(await codeOf(daemon.client.changeSettings({ sessionId: id, model: "refused-model" }))).toMatchObject({
        code: Code.FailedPrecondition,
        message: expect.stringContaining("refused"),
      });
      expect(await codeOf(daemon.client.changeSettings({ sessionId: id, model: "--evil" }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.changeSettings({ sessionId: id }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.changeSettings({ sessionId: id, permissionMode: "bypassPermissions" }))).toMatchObject({ code: Code.PermissionDenied });
      // An agent started later (here after a stop) starts with the changed settings.
      await daemon.client.stopSession({ sessionId: id });
      await daemon.client.changeSettings({ sessionId: id, model: "fake-small" });
      expect(textOf(await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[settings]]" })))).toBe("model=fake-small mode=plan");
      expect(payloads(await subscribedEvents(daemon, id), "configChanged").at(-1)?.appliedLive).toBe(false);
    });

    it("refuses to change settings while a turn runs, and lists the running agent's models", async () => {
      const id = sessionId();
      const turn = executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[steer]]", config: { provider: "fake" } }));
      await followUntil(daemon.client, id, (e) => e.payload.case === "turnStarted");
      expect(await codeOf(daemon.client.changeSettings({ sessionId: id, model: "fake-large" }))).toMatchObject({ code: Code.FailedPrecondition });
      const { models } = await daemon.client.listModels({ sessionId: id });
      expect(models.map((m) => m.id)).toEqual(["fake-small", "fake-large"]);
      await daemon.client.steer({ sessionId: id, prompt: "done" });
      await turn;
      await daemon.client.stopSession({ sessionId: id });
      expect(await codeOf(daemon.client.listModels({ sessionId: id }))).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining("run a turn") });
    });

    it("refuses live settings and model lists for a provider that cannot, naming it", async () => {
      const id = sessionId();
      await executeEvents(daemon.client.execute({ sessionId: id, prompt: "hi", config: { provider: "plain" } }));
      expect(await codeOf(daemon.client.changeSettings({ sessionId: id, model: "m" }))).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining("provider plain") });
      expect(await codeOf(daemon.client.listModels({ sessionId: id }))).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining("provider plain") });
    });
  });

  describe("reset, fork and titles", () => {
    it("resets the conversation: the next turn has no history, the log and statistics go on", async () => {
      const id = sessionId();
      await executeEvents(daemon.client.execute({ sessionId: id, prompt: "remember KIWI", config: { provider: "fake" } }));
      const before = (await daemon.client.getSnapshot({ sessionId: id })).session;
      const reset = await daemon.client.resetSession({ sessionId: id });
      expect(reset.providerSessionId).not.toBe(before?.providerSessionId);
      const events = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "[[recall]]" }));
      expect(textOf(events)).toBe("Earlier you said: ");
      const log = await subscribedEvents(daemon, id);
      expect(payloads(log, "conversationReset")).toMatchObject([{ previousProviderSessionId: before?.providerSessionId, providerSessionId: reset.providerSessionId }]);
      expect(payloads(log, "sessionEnded").at(-1)?.reason).toBe("reset");
      expect(payloads(log, "sessionStarted").at(-1)?.providerSessionId).toBe(reset.providerSessionId);
      const after = (await daemon.client.getSnapshot({ sessionId: id })).session;
      expect(after?.stats?.turns).toBe(2);
      expect(after?.providerSessionId).toBe(reset.providerSessionId);
    });

    it("forks a session: the fork sees the parent's history (or up to a turn), records its parent, and the parent is unchanged", async () => {
      const parent = sessionId();
      await executeEvents(daemon.client.execute({ sessionId: parent, prompt: "one", config: { provider: "fake" } }));
      const second = await executeEvents(daemon.client.execute({ sessionId: parent, prompt: "two" }));
      const whole = `${parent}-fork`;
      const forked = await daemon.client.forkSession({ sessionId: parent, newSessionId: whole, title: "Try B" });
      expect(forked.session).toMatchObject({ title: "Try B", forkedFrom: { sessionId: parent }, provider: "fake" });
      expect(textOf(await executeEvents(daemon.client.execute({ sessionId: whole, prompt: "[[recall]]" })))).toBe("Earlier you said: one | two");
      const childLog = await subscribedEvents(daemon, whole);
      expect(childLog[0]?.payload.case).toBe("sessionForked");
      // Up to the first turn only.
      const firstTurn = (await subscribedEvents(daemon, parent)).find((e) => e.payload.case === "turnEnded")?.turnId ?? "";
      const early = `${parent}-early`;
      await daemon.client.forkSession({ sessionId: parent, newSessionId: early, upToTurnId: firstTurn });
      expect(textOf(await executeEvents(daemon.client.execute({ sessionId: early, prompt: "[[recall]]" })))).toBe("Earlier you said: one");
      // The parent goes on with its own history.
      expect(textOf(await executeEvents(daemon.client.execute({ sessionId: parent, prompt: "[[recall]]" })))).toBe("Earlier you said: one | two");
      expect(second.length).toBeGreaterThan(0);
      // Refusals.
      expect(await codeOf(daemon.client.forkSession({ sessionId: parent, newSessionId: whole }))).toMatchObject({ code: Code.AlreadyExists });
      expect(await codeOf(daemon.client.forkSession({ sessionId: parent, newSessionId: "../x" }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.forkSession({ sessionId: parent, newSessionId: `${parent}-z`, upToTurnId: "t".repeat(129) }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.forkSession({ sessionId: parent, newSessionId: `${parent}-z`, title: "x".repeat(257) }))).toMatchObject({ code: Code.InvalidArgument });
      expect(await codeOf(daemon.client.forkSession({ sessionId: parent, newSessionId: `${parent}-x`, upToTurnId: "no-turn" }))).toMatchObject({ code: Code.NotFound });
      expect(await codeOf(daemon.client.forkSession({ sessionId: "nobody", newSessionId: `${parent}-y` }))).toMatchObject({ code: Code.NotFound });
      const plain = sessionId();
      await executeEvents(daemon.client.execute({ sessionId: plain, prompt: "hi", config: { provider: "plain" } }));
      expect(await codeOf(daemon.client.forkSession({ sessionId: plain, newSessionId: `${plain}-f` }))).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringContaining("provider plain") });
      expect((await daemon.client.listSessions({})).sessions.some((s) => s.sessionId === `${plain}-f`)).toBe(false);
    });

    it("sets titles shown in ListSessions and GetSnapshot, refusing hostile ones", async () => {
      const id = sessionId();
      await executeEvents(daemon.client.execute({ sessionId: id, prompt: "hi", config: { provider: "fake" } }));
      await daemon.client.setTitle({ sessionId: id, title: "Fix the login bug 🐛" });
      expect((await daemon.client.getSnapshot({ sessionId: id })).session?.title).toBe("Fix the login bug 🐛");
      expect((await daemon.client.listSessions({})).sessions.find((s) => s.sessionId === id)?.title).toBe("Fix the login bug 🐛");
      for (const title of ["x".repeat(257), "two\nlines", "bell\u0007", "nul\u0000", "sep\u2028"]) {
        expect(await codeOf(daemon.client.setTitle({ sessionId: id, title }))).toMatchObject({ code: Code.InvalidArgument });
      }
      expect(await codeOf(daemon.client.setTitle({ sessionId: "nobody", title: "x" }))).toMatchObject({ code: Code.NotFound });
    });
  });

  describe("status", () => {
    it("logs every transition in order, and GetSnapshot's status is the last StatusChanged at its last_seq", async () => {
      const id = sessionId();
      const seen: { seq: bigint; snapshot: SessionStatus }[] = [];
      const { turn, request } = await askedIn(id, '[[ask:{"command":"z"}]]');
      // A live follower from the start of the log sees the same transitions.
      const follow = followUntil(daemon.client, id, (e) => e.payload.case === "statusChanged" && e.payload.value.status === SessionStatus.DEAD);
      const snap = async () => {
        const { session, lastSeq } = await daemon.client.getSnapshot({ sessionId: id });
        seen.push({ seq: lastSeq, snapshot: session?.status ?? SessionStatus.UNSPECIFIED });
      };
      await snap();
      await daemon.client.respondPermission({ sessionId: id, requestId: request.requestId, decision: allow() });
      await snap();
      await turn;
      await snap();
      await daemon.client.stopSession({ sessionId: id });
      await snap();
      const log = await subscribedEvents(daemon, id);
      const statuses = payloads(log, "statusChanged").map((s) => s.status);
      expect(statuses).toEqual([
        SessionStatus.STARTING,
        SessionStatus.BUSY,
        SessionStatus.WAITING,
        SessionStatus.BUSY,
        SessionStatus.READY,
        SessionStatus.STOPPING,
        SessionStatus.DEAD,
      ]);
      // Each StatusChanged names the status it replaces.
      const changes = payloads(log, "statusChanged");
      changes.slice(1).forEach((change, i) => expect(change.previous).toBe(changes[i]?.status));
      for (const { seq, snapshot } of seen) {
        const upTo = log.filter((e) => e.seq <= seq);
        expect(payloads(upTo, "statusChanged").at(-1)?.status).toBe(snapshot);
      }
      expect(payloads(await follow, "statusChanged").map((s) => s.status)).toEqual(statuses);
    });

    it("keeps the request-id promise across a restart: a retried Execute streams the original turn", async () => {
      const id = sessionId();
      const first = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "once", requestId: "keep-me", config: { provider: "fake" } }));
      await daemon.close();
      await start();
      const retried = await executeEvents(daemon.client.execute({ sessionId: id, prompt: "once", requestId: "keep-me" }));
      expect(retried.map((e) => e.seq)).toEqual(first.map((e) => e.seq));
      expect((await daemon.client.getSessionStats({ sessionId: id })).stats?.turns).toBe(1);
    });
  });

  afterEach(() => {
    // Every answer the fake agent received was for a request it had open (none twice).
    for (const run of fake.runs) {
      const ids = run.answers.map((a) => a.requestId);
      expect(new Set(ids).size).toBe(ids.length);
    }
  });
});
