// Interactive control of Claude Code through the daemon, with the fake CLI (its exact
// stream-json control protocol) as a real child process in the sandbox: approvals (edited
// input, deny, deny and interrupt, for the session), questions, an interrupt while a
// request waits, live model and permission mode, the model list, and a fork at a turn.
import { existsSync } from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, type PermissionRequested, PermissionDecision, RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import { startTestDaemon, type TestDaemon, textOf, turnEndOf } from "../harness.js";
import { answering as answeringWith, type Decision, requestsIn, resolutionsIn, turnSeeing } from "../interactive.js";

const ALLOW: Decision = { case: "allow", value: { forSession: false, updatedInputJson: "" } };

describe("interactive control of Claude Code (fake CLI, through the daemon)", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({ engine: { approvals: { defaultMode: "agent", timeoutMs: 60_000 } } });
  });
  afterAll(async () => {
    await daemon.close();
  });

  // One turn; `approvalMode` null: no config (the session's as it is).
  const turn = (sessionId: string, prompt: string, onRequest?: (request: PermissionRequested) => Promise<void>, approvalMode: ApprovalMode | null = ApprovalMode.CLIENT) =>
    turnSeeing(daemon.client, sessionId, prompt, approvalMode === null ? undefined : { provider: "claude-code", approvalMode }, onRequest);
  const answering = (sessionId: string, decide: (request: PermissionRequested) => Decision) => answeringWith(daemon.client, sessionId, decide);

  const requested = requestsIn;
  const resolved = resolutionsIn;
  const snapshot = async (sessionId: string) => (await daemon.client.getSnapshot({ sessionId })).session!;
  const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => ConnectError.from(error));

  it("says what it can do: approvals, questions, edited inputs, live settings, models, fork at a turn; no steer", async () => {
    const { providers } = await daemon.client.listProviders({});
    expect(providers.find((p) => p.name === "claude-code")?.capabilities).toMatchObject({
      interrupt: true,
      approvals: true,
      questions: true,
      editApprovedInput: true,
      setModel: true,
      setPermissionMode: true,
      listModels: true,
      fork: true,
      forkAtTurn: true,
      steer: false,
    });
  });

  it("asks before the Bash call with what is at stake, and runs it when allowed", async () => {
    const events = await turn("approve", "[[ask:touch approved.txt]] go", answering("approve", () => ALLOW));
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
    expect(JSON.parse(request!.inputJson)).toEqual({ command: "touch approved.txt" });
    expect(request!.suggestionsJson.map((s) => (JSON.parse(s) as { type: string }).type)).toEqual(["addRules", "addDirectories", "setMode"]);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toContain("Bash: ran touch approved.txt");
    expect(existsSync(path.join(workDir, "approved.txt"))).toBe(true);
    expect(resolved(events)).toMatchObject([{ requestId: request!.requestId, decision: PermissionDecision.ALLOW, decidedBy: Decider.CLIENT }]);
  });

  it("runs the edited command, not the one asked about", async () => {
    const edited: Decision = { case: "allow", value: { forSession: false, updatedInputJson: JSON.stringify({ command: "touch edited.txt" }) } };
    const events = await turn("edit", "[[ask:touch first.txt]] go", answering("edit", () => edited));
    const workDir = (await snapshot("edit")).workDir;
    expect(textOf(events)).toContain("Bash: ran touch edited.txt");
    expect(existsSync(path.join(workDir, "edited.txt"))).toBe(true);
    expect(existsSync(path.join(workDir, "first.txt"))).toBe(false);
  });

  it("denies: the agent gets the message and the turn goes on", async () => {
    const events = await turn("deny", "[[ask:touch denied.txt]] go", answering("deny", () => ({ case: "deny", value: { message: "not now", interrupt: false } })));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toContain("Bash: not now");
    expect(existsSync(path.join((await snapshot("deny")).workDir, "denied.txt"))).toBe(false);
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.DENY, decidedBy: Decider.CLIENT, message: "not now" }]);
  });

  it("denies and interrupts: the turn ends INTERRUPTED, the warm agent takes the next turn", async () => {
    await turn("deny-stop", "warm up");
    const { pid } = await snapshot("deny-stop");
    const events = await turn("deny-stop", "[[ask:touch stopped.txt]] go", answering("deny-stop", () => ({ case: "deny", value: { message: "stop", interrupt: true } })));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.DENY, interrupt: true }]);
    const next = await turn("deny-stop", "again");
    expect(textOf(next)).toBe("echo: again");
    expect((await snapshot("deny-stop")).pid).toBe(pid);
    expect(existsSync(path.join((await snapshot("deny-stop")).workDir, "stopped.txt"))).toBe(false);
  });

  it("allows an identical later call by itself after an allow for the session", async () => {
    const first = await turn("for-session", "[[ask:touch same.txt]] one", answering("for-session", () => ({ case: "allow", value: { forSession: true, updatedInputJson: "" } })));
    expect(resolved(first)).toMatchObject([{ decidedBy: Decider.CLIENT, forSession: true }]);
    // The agent asks again; the session answers by itself (the client never does here).
    const second = await turn("for-session", "[[ask:touch same.txt]] two");
    expect(textOf(second)).toContain("Bash: ran touch same.txt");
    expect(resolved(second)).toMatchObject([{ decision: PermissionDecision.ALLOW, decidedBy: Decider.SESSION_RULE }]);
    // A different command is asked about as usual.
    const other = await turn("for-session", "[[ask:touch other.txt]] three", answering("for-session", () => ALLOW));
    expect(resolved(other)).toMatchObject([{ decidedBy: Decider.CLIENT }]);
  });

  it("puts AskUserQuestion to the client as a question and gives the agent its answers", async () => {
    const questions = [{ question: "Which color?", header: "Color", options: [{ label: "Red", description: "warm" }, { label: "Blue", description: "cool" }], multiSelect: false }];
    const events = await turn("question", `[[tool:AskUserQuestion:${JSON.stringify({ questions })}]] ask`, answering("question", () => ({ case: "answer", value: { answers: { "Which color?": "Blue" } } })));
    const [request] = requested(events);
    expect(request).toMatchObject({ kind: RequestKind.QUESTION, toolName: "AskUserQuestion" });
    expect(request!.questions.map((q) => ({ id: q.id, question: q.question, header: q.header, multiSelect: q.multiSelect, options: q.options.map((o) => o.label) }))).toEqual([
      { id: "Which color?", question: "Which color?", header: "Color", multiSelect: false, options: ["Red", "Blue"] },
    ]);
    expect(textOf(events)).toContain('Your questions have been answered: "Which color?"="Blue"');
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.ANSWERED, answers: { "Which color?": "Blue" } }]);
  });

  it("interrupts while a request waits: the agent withdraws it (AGENT_CANCELLED), a late answer is refused", async () => {
    let pending: PermissionRequested | undefined;
    const events = await turn("interrupt", "[[ask:touch held.txt]] go", async (request) => {
      pending = request;
      // The turn is running, so this is refused for what Claude Code cannot do, by name.
      const steer = await failure(daemon.client.steer({ sessionId: "interrupt", prompt: "also this" }));
      expect(steer?.code).toBe(Code.FailedPrecondition);
      expect(steer?.rawMessage).toContain("claude-code");
      await daemon.client.interrupt({ sessionId: "interrupt" });
    });
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(resolved(events)).toMatchObject([{ requestId: pending!.requestId, decidedBy: Decider.AGENT_CANCELLED }]);
    const late = await failure(daemon.client.respondPermission({ sessionId: "interrupt", requestId: pending!.requestId, decision: ALLOW }));
    expect(late?.code).toBe(Code.FailedPrecondition);
    expect(textOf(await turn("interrupt", "next"))).toBe("echo: next");
    expect(existsSync(path.join((await snapshot("interrupt")).workDir, "held.txt"))).toBe(false);
  });

  it("with approval mode AGENT, launches without the prompt tool: the CLI denies by itself, nothing is asked", async () => {
    const events = await turn("agent-mode", "[[ask:touch refused.txt]] go", undefined, ApprovalMode.AGENT);
    expect(requested(events)).toEqual([]);
    expect(textOf(events)).toContain("Bash: This command requires approval");
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("changes the model and the permission mode of the warm agent, and lists its models", async () => {
    await turn("settings", "hello");
    const { pid } = await snapshot("settings");
    const { session } = await daemon.client.changeSettings({ sessionId: "settings", model: "claude-haiku-4-5", permissionMode: "acceptEdits" });
    expect(session?.config).toMatchObject({ model: "claude-haiku-4-5", permissionMode: "acceptEdits" });
    expect(textOf(await turn("settings", "[[model]]", undefined, null))).toBe("model: claude-haiku-4-5");
    expect(textOf(await turn("settings", "[[mode]]", undefined, null))).toBe("mode: acceptEdits");
    expect((await snapshot("settings")).pid).toBe(pid);
    const { models } = await daemon.client.listModels({ sessionId: "settings" });
    expect(models.map((m) => [m.id, m.displayName])).toEqual([
      ["default", "Default (recommended)"],
      ["sonnet", "Sonnet"],
      ["haiku", "Haiku"],
    ]);
  });

  it("forks up to a turn: the fork has the history up to it, the parent all of it", async () => {
    const turnIds: string[] = [];
    for (const word of ["ONE", "TWO", "THREE"]) {
      const events = await turn("fork-parent", `remember ${word}`);
      expect(turnEndOf(events).providerTurnRef).toMatch(/^[0-9a-f-]{36}$/);
      turnIds.push(events.at(-1)!.turnId);
    }
    await daemon.client.forkSession({ sessionId: "fork-parent", newSessionId: "fork-child", upToTurnId: turnIds[1]!, title: "" });
    expect(textOf(await turn("fork-child", "[[history]]"))).toBe("history: remember ONE | remember TWO");
    expect(textOf(await turn("fork-parent", "[[history]]"))).toBe("history: remember ONE | remember TWO | remember THREE");
  });
});
