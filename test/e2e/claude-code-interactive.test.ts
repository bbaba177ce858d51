// Interactive control of the real Claude Code CLI through hotplex, against the local mock
// of the Messages API: permission prompts on stdio (approve, edit, deny, deny and
// interrupt, for the session), AskUserQuestion, an interrupt while a prompt waits, a live
// model change, the model list, and a fork at a turn. Nothing leaves the machine.
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, type PermissionRequested, PermissionDecision, RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import { type TestDaemon, textOf, turnEndOf } from "../harness.js";
import { type ClaudeE2E, startClaudeE2E } from "./claude-daemon.js";
import { answering as answeringWith, type Decision, requestsIn, resolutionsIn, turnSeeing } from "../interactive.js";
import { conversationOf, type MockAnthropic } from "../fixtures/mock-anthropic.js";

const ALLOW: Decision = { case: "allow", value: { forSession: false, updatedInputJson: "" } };
const bash = (command: string) => `[[tool:Bash:${JSON.stringify({ command })}]]`;

describe("interactive control of the real Claude Code CLI", () => {
  let e2e: ClaudeE2E;
  let mock: MockAnthropic;
  let daemon: TestDaemon;

  beforeAll(async () => {
    e2e = await startClaudeE2E("interactive", { approvals: { defaultMode: "agent", timeoutMs: 60_000 } });
    ({ mock, daemon } = e2e);
  });
  afterAll(async () => {
    await e2e?.close();
  });

  // One turn; `approvalMode` null: no config (the session's as it is).
  const turn = (sessionId: string, prompt: string, onRequest?: (request: PermissionRequested) => Promise<void>, approvalMode: ApprovalMode | null = ApprovalMode.CLIENT) =>
    turnSeeing(daemon.client, sessionId, prompt, approvalMode === null ? undefined : { approvalMode }, onRequest);
  const answering = (sessionId: string, decide: (request: PermissionRequested) => Decision) => answeringWith(daemon.client, sessionId, decide);

  const requested = requestsIn;
  const resolved = resolutionsIn;
  const snapshot = async (sessionId: string) => (await daemon.client.getSnapshot({ sessionId })).session!;
  // What the model saw last: the conversation of the newest request to the mock.
  const lastSeen = () => conversationOf(mock.requests.at(-1)!);

  // Runs a turn and interrupts it once `when` sees the moment; returns its events.
  const interrupted = async (sessionId: string, prompt: string, when: (event: Event) => boolean) => {
    const events: Event[] = [];
    let sent = false;
    // Bash runs without asking, so the interrupt finds it running.
    for await (const message of daemon.client.execute({ sessionId, prompt, config: { allowedTools: ["Bash"] } })) {
      for (const event of message.events) {
        events.push(event);
        if (!sent && when(event)) {
          sent = true;
          await daemon.client.interrupt({ sessionId });
        }
      }
    }
    return events;
  };

  it("interrupts during model streaming and during a tool; the next turn runs on the same process", async () => {
    const streaming = await interrupted("interrupt-live", "[[chunks:40:100]] a long answer", (e) => e.payload.case === "textDelta");
    expect(turnEndOf(streaming).outcome).toBe(TurnOutcome.INTERRUPTED);
    const pid = (await snapshot("interrupt-live")).pid;
    const inTool = await interrupted("interrupt-live", `${bash("sleep 20; touch slept.txt")} run it`, (e) => e.payload.case === "toolUse");
    expect(turnEndOf(inTool).outcome).toBe(TurnOutcome.INTERRUPTED);
    // The tool's result says it was rejected, and the command never finished.
    expect(inTool.some((e) => e.payload.case === "toolResult" && e.payload.value.isError)).toBe(true);
    expect(existsSync(path.join((await snapshot("interrupt-live")).workDir, "slept.txt"))).toBe(false);
    const next = await turn("interrupt-live", "[[recall]]", undefined, null);
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    expect(next.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect((await snapshot("interrupt-live")).pid).toBe(pid);
  });

  it("resets the conversation: the next turn's request carries no history, the log goes on", async () => {
    await turn("reset", "remember MANGO", undefined, null);
    const before = await snapshot("reset");
    const { providerSessionId } = await daemon.client.resetSession({ sessionId: "reset" });
    expect(providerSessionId).not.toBe(before.providerSessionId);
    const after = await turn("reset", "[[recall]] what did I say?", undefined, null);
    expect(turnEndOf(after).outcome).toBe(TurnOutcome.COMPLETED);
    expect(lastSeen()).toEqual(["user:[[recall]] what did I say?"]);
    expect((await snapshot("reset")).providerSessionId).toBe(providerSessionId);
    expect((await snapshot("reset")).stats?.turns).toBe(2);
  });

  it("asks before a Bash call its settings do not allow, with what is at stake, and runs it when allowed", async () => {
    const events = await turn("approve", `${bash("touch approved.txt")} go`, answering("approve", () => ALLOW));
    const workDir = (await snapshot("approve")).workDir;
    const [request] = requested(events);
    expect(request).toMatchObject({
      kind: RequestKind.PERMISSION,
      toolName: "Bash",
      command: "touch approved.txt",
      description: "touch approved.txt",
      path: path.join(workDir, "approved.txt"),
      inputEditable: true,
    });
    expect(request!.toolUseId).toMatch(/^toolu_mock_/);
    expect(request!.suggestionsJson.length).toBeGreaterThan(0);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(existsSync(path.join(workDir, "approved.txt"))).toBe(true);
    expect(resolved(events)).toMatchObject([{ requestId: request!.requestId, decision: PermissionDecision.ALLOW, decidedBy: Decider.CLIENT }]);
  });

  it("runs the edited command, not the one asked about", async () => {
    const edited: Decision = { case: "allow", value: { forSession: false, updatedInputJson: JSON.stringify({ command: "touch edited.txt" }) } };
    const events = await turn("edit", `${bash("touch first.txt")} go`, answering("edit", () => edited));
    const workDir = (await snapshot("edit")).workDir;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(existsSync(path.join(workDir, "edited.txt"))).toBe(true);
    expect(existsSync(path.join(workDir, "first.txt"))).toBe(false);
  });

  it("denies: the model gets the message as the tool's result and the turn goes on", async () => {
    const events = await turn("deny", `${bash("touch denied.txt")} go`, answering("deny", () => ({ case: "deny", value: { message: "not now", interrupt: false } })));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toBe("Tool said: not now");
    expect(lastSeen().at(-1)).toBe("user:[tool_result not now]");
    expect(existsSync(path.join((await snapshot("deny")).workDir, "denied.txt"))).toBe(false);
  });

  it("denies and interrupts: the turn ends INTERRUPTED and the warm agent takes the next turn", async () => {
    await turn("deny-stop", "warm up");
    const { pid } = await snapshot("deny-stop");
    const events = await turn("deny-stop", `${bash("touch stopped.txt")} go`, answering("deny-stop", () => ({ case: "deny", value: { message: "stop", interrupt: true } })));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    const next = await turn("deny-stop", "again");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    expect(lastSeen().at(-1)).toContain("again");
    expect((await snapshot("deny-stop")).pid).toBe(pid);
    expect(existsSync(path.join((await snapshot("deny-stop")).workDir, "stopped.txt"))).toBe(false);
  });

  it("allows an identical later call by itself after an allow for the session", async () => {
    const first = await turn("for-session", `${bash("touch same.txt")} one`, answering("for-session", () => ({ case: "allow", value: { forSession: true, updatedInputJson: "" } })));
    expect(resolved(first)).toMatchObject([{ decidedBy: Decider.CLIENT, forSession: true }]);
    // The CLI asks again; the session answers by itself (the client never does here).
    const second = await turn("for-session", `${bash("touch same.txt")} two`);
    expect(turnEndOf(second).outcome).toBe(TurnOutcome.COMPLETED);
    expect(resolved(second)).toMatchObject([{ decision: PermissionDecision.ALLOW, decidedBy: Decider.SESSION_RULE }]);
    expect(lastSeen().at(-1)).toBe("user:[tool_result (Bash completed with no output)]");
  });

  it("puts AskUserQuestion to the client as a question; the model sees the answer in the tool result", async () => {
    const questions = [{ question: "Which color?", header: "Color", options: [{ label: "Red", description: "warm" }, { label: "Blue", description: "cool" }], multiSelect: false }];
    const events = await turn("question", `[[tool:AskUserQuestion:${JSON.stringify({ questions })}]] ask`, answering("question", () => ({ case: "answer", value: { answers: { "Which color?": "Blue" } } })));
    const [request] = requested(events);
    expect(request).toMatchObject({ kind: RequestKind.QUESTION, toolName: "AskUserQuestion" });
    expect(request!.questions.map((q) => [q.id, q.header, q.options.map((o) => o.label)])).toEqual([["Which color?", "Color", ["Red", "Blue"]]]);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(lastSeen().at(-1)).toContain('"Which color?"="Blue"');
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.ANSWERED, answers: { "Which color?": "Blue" } }]);
  });

  it("interrupts while a prompt waits: the CLI withdraws it (AGENT_CANCELLED) and the next turn works", async () => {
    let pending: PermissionRequested | undefined;
    const events = await turn("interrupt", `${bash("touch held.txt")} go`, async (request) => {
      pending = request;
      await daemon.client.interrupt({ sessionId: "interrupt" });
    });
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(resolved(events)).toMatchObject([{ requestId: pending!.requestId, decidedBy: Decider.AGENT_CANCELLED }]);
    expect(turnEndOf(await turn("interrupt", "next")).outcome).toBe(TurnOutcome.COMPLETED);
    expect(existsSync(path.join((await snapshot("interrupt")).workDir, "held.txt"))).toBe(false);
  });

  it("changes the model of the warm agent (the API sees it) and lists the CLI's models", async () => {
    await turn("model", "hello");
    const { pid } = await snapshot("model");
    expect(mock.requests.at(-1)!.model).not.toBe("claude-haiku-4-5");
    await daemon.client.changeSettings({ sessionId: "model", model: "claude-haiku-4-5" });
    await turn("model", "after the change", undefined, null);
    expect(mock.requests.at(-1)!.model).toBe("claude-haiku-4-5");
    expect((await snapshot("model")).pid).toBe(pid);
    const { models } = await daemon.client.listModels({ sessionId: "model" });
    expect(models.map((m) => m.id)).toContain("default");
    expect(models.every((m) => m.displayName !== "")).toBe(true);
  });

  it("forks at a turn: the fork's first request carries the history up to that turn, the parent keeps all of it", async () => {
    const turnIds: string[] = [];
    for (const word of ["ONE", "TWO", "THREE"]) {
      const events = await turn("fork-parent", `remember ${word}`);
      expect(turnEndOf(events).providerTurnRef).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
      turnIds.push(events.at(-1)!.turnId);
    }
    // At once after the last turn: the CLI writes its transcript some tens of ms after each
    // result (more than a turn behind on hot turns), and the daemon waits for the turns the
    // fork copies to be in it.
    await daemon.client.forkSession({ sessionId: "fork-parent", newSessionId: "fork-child", upToTurnId: turnIds[1]!, title: "" });
    await turn("fork-child", "[[recall]]", undefined, null);
    expect(lastSeen()).toEqual([
      "user:remember ONE",
      'assistant:Hello from mock. You said: "remember ONE"',
      "user:remember TWO",
      'assistant:Hello from mock. You said: "remember TWO"',
      "user:[[recall]]",
    ]);
    await turn("fork-parent", "[[recall]]");
    expect(lastSeen().filter((line) => line.startsWith("user:"))).toEqual(["user:remember ONE", "user:remember TWO", "user:remember THREE", "user:[[recall]]"]);
  });
});
