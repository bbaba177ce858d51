import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision, RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import { CodexProvider } from "../../src/providers/codex/provider.js";
import { codexConfigToml, conversationOf, type MockOpenAI, startMockOpenAI, userPrompts } from "../fixtures/mock-openai-responses.js";
import { executeEvents, followUntil, repoRoot, startTestDaemon, type TestDaemon, textOf, turnEndOf, waitUntil } from "../harness.js";

const codexPath = path.join(repoRoot, "node_modules", ".bin", "codex");

// Interactive control of the real Codex CLI (`codex app-server`) through hotplex, against a
// local mock of the Responses API: approvals and questions answered by the client, steer,
// live model changes, the model list, fork, and an interrupt while a request waits.
describe("interactive control of the real Codex CLI", () => {
  let mock: MockOpenAI;
  let scratch: string;
  let daemon: TestDaemon;

  beforeAll(async () => {
    mock = await startMockOpenAI();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-codex-interactive-"));
    mkdirSync(path.join(scratch, "template", ".codex"), { recursive: true });
    writeFileSync(
      path.join(scratch, "template", ".codex", "config.toml"),
      codexConfigToml({ baseUrl: mock.url, envKey: "OPENAI_API_KEY", model: "gpt-5.5" }),
    );
    daemon = await startTestDaemon({
      providerInstances: [new CodexProvider(codexPath)],
      env: { OPENAI_API_KEY: "mock-key" },
      engine: {
        agentHomeTemplate: path.join(scratch, "template"),
        limits: { turnTimeoutMs: 60_000, stopGraceMs: 3_000 },
        approvals: { defaultMode: "agent", timeoutMs: 60_000 },
      },
    });
  });
  afterAll(async () => {
    await daemon?.close();
    await mock?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const client = () => daemon.client;
  const lastSeq = async (sessionId: string) => (await client().getSnapshot({ sessionId }).catch(() => ({ lastSeq: 0n }))).lastSeq;
  const execute = (sessionId: string, prompt: string, approvalMode = ApprovalMode.CLIENT) =>
    executeEvents(client().execute({ sessionId, prompt, config: { provider: "codex", approvalMode } }));
  // Starts a turn and resolves with the turn's events and its first request to the client.
  const executeUntilAsked = async (sessionId: string, prompt: string) => {
    const after = await lastSeq(sessionId);
    const turn = execute(sessionId, prompt);
    const asked = (await followUntil(client(), sessionId, (e) => e.payload.case === "permissionRequested" || e.payload.case === "turnEnded", after)).at(-1);
    if (asked?.payload.case !== "permissionRequested") throw new Error(`the turn ended without a request: ${JSON.stringify(asked?.payload.value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
    return { turn, request: asked.payload.value };
  };
  const resolvedOf = (events: Event[]) => events.flatMap((e) => (e.payload.case === "permissionResolved" ? [e.payload.value] : []));
  const workDirOf = async (sessionId: string) => (await client().getSnapshot({ sessionId })).session?.workDir ?? "";
  const allow = (forSession = false) => ({ case: "allow" as const, value: { forSession, updatedInputJson: "" } });

  it("asks before a command and runs it once the client allows it", async () => {
    const { turn, request } = await executeUntilAsked("approve", "[[shell:touch approved.txt]]");
    expect(request).toMatchObject({ kind: RequestKind.PERMISSION, toolName: "shell", inputEditable: false });
    expect(request.command).toContain("touch approved.txt");
    expect(request.toolUseId).not.toBe("");
    expect(existsSync(path.join(await workDirOf("approve"), "approved.txt"))).toBe(false);
    await client().respondPermission({ sessionId: "approve", requestId: request.requestId, decision: allow() });
    const events = await turn;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(resolvedOf(events)).toMatchObject([{ decision: PermissionDecision.ALLOW, decidedBy: Decider.CLIENT }]);
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(result?.payload.case === "toolResult" && result.payload.value.isError).toBe(false);
    expect(existsSync(path.join(await workDirOf("approve"), "approved.txt"))).toBe(true);
  }, 120_000);

  it("refuses a command the client denies, and the turn goes on to its end", async () => {
    const { turn, request } = await executeUntilAsked("deny", "[[shell:touch denied.txt]]");
    await client().respondPermission({ sessionId: "deny", requestId: request.requestId, decision: { case: "deny", value: { message: "not this one", interrupt: false } } });
    const events = await turn;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    // The model got the refusal as the tool's output, and answered it.
    expect(textOf(events)).toContain("Tool said:");
    expect(textOf(events)).toContain("rejected");
    expect(existsSync(path.join(await workDirOf("deny"), "denied.txt"))).toBe(false);
  }, 120_000);

  it("does not ask again for a command the client allowed for the session", async () => {
    const { turn, request } = await executeUntilAsked("for-session", "[[shell:touch again.txt]]");
    await client().respondPermission({ sessionId: "for-session", requestId: request.requestId, decision: allow(true) });
    expect(turnEndOf(await turn).outcome).toBe(TurnOutcome.COMPLETED);
    const second = await execute("for-session", "[[shell:touch again.txt]]");
    expect(turnEndOf(second).outcome).toBe(TurnOutcome.COMPLETED);
    // Codex itself remembers it (acceptForSession): it does not even ask.
    expect(second.map((e) => e.payload.case)).not.toContain("permissionRequested");
    expect(second.map((e) => e.payload.case)).toContain("toolResult");
  }, 120_000);

  it("runs commands without asking when the session's approval mode is the agent's", async () => {
    const events = await execute("agent-mode", "[[shell:touch unasked.txt]]", ApprovalMode.AGENT);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(events.map((e) => e.payload.case)).not.toContain("permissionRequested");
    expect(existsSync(path.join(await workDirOf("agent-mode"), "unasked.txt"))).toBe(true);
  }, 120_000);

  it("puts the model's question to the client and gives it the answer", async () => {
    const questions = { questions: [{ id: "color", header: "Color", question: "Which color?", options: [{ label: "red", description: "warm" }, { label: "blue", description: "cold" }] }] };
    const { turn, request } = await executeUntilAsked("question", `[[tool:request_user_input:${JSON.stringify(questions)}]]`);
    expect(request.kind).toBe(RequestKind.QUESTION);
    expect(request.questions).toMatchObject([{ id: "color", question: "Which color?", header: "Color", options: [{ label: "red" }, { label: "blue" }] }]);
    await client().respondPermission({ sessionId: "question", requestId: request.requestId, decision: { case: "answer", value: { answers: { color: "blue" } } } });
    const events = await turn;
    expect(resolvedOf(events)).toMatchObject([{ decision: PermissionDecision.ANSWERED }]);
    // The tool's output the model read is the answer.
    expect(textOf(events)).toContain('{"answers":{"color":{"answers":["blue"]}}}');
  }, 120_000);

  it("delivers a steer into the running turn: the model's next request in the turn has it", async () => {
    await execute("steer", "warm up");
    const before = mock.requests.length;
    const turn = execute("steer", "[[hold]] a long task");
    await waitUntil(() => mock.requests.slice(before).some((r) => r.reply.kind === "none" && userPrompts(r.input).at(-1) === "[[hold]] a long task"), 30_000, "the held request");
    const steered = await client().steer({ sessionId: "steer", prompt: "STEERING TEXT" });
    expect(steered.turnId).not.toBe("");
    expect(mock.release()).toBe(1);
    const events = await turn;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(events.map((e) => e.payload.case)).toContain("turnSteered");
    expect(textOf(events)).toContain('You said: "STEERING TEXT"');
    // One turn: the request after the held one carries the task and the steer, in order.
    const after = mock.requests.slice(before).map((r) => userPrompts(r.input));
    expect(after.at(-1)?.slice(-2)).toEqual(["[[hold]] a long task", "STEERING TEXT"]);
  }, 120_000);

  it("lists the agent's models and switches the warm agent to one for the next turn", async () => {
    await execute("model", "hello");
    const pid = (await client().getSnapshot({ sessionId: "model" })).session?.pid;
    expect(mock.requests.at(-1)?.model).toBe("gpt-5.5");
    const { models } = await client().listModels({ sessionId: "model" });
    expect(models.length).toBeGreaterThan(0);
    for (const model of models) expect(model.id).not.toBe("");
    const other = models.find((m) => m.id !== "gpt-5.5");
    if (!other) throw new Error("no other model");
    const changed = await client().changeSettings({ sessionId: "model", model: other.id });
    expect(changed.session?.config?.model).toBe(other.id);
    // The session's config is the changed one now: the next turn sends none.
    const next = await executeEvents(client().execute({ sessionId: "model", prompt: "after the change" }));
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    expect(next.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect((await client().getSnapshot({ sessionId: "model" })).session?.pid).toBe(pid);
    expect(mock.requests.at(-1)?.model).toBe(other.id);
  }, 120_000);

  it("forks a conversation: the fork sees the parent's history, the parent does not see the fork's", async () => {
    const first = await execute("parent", "remember PAPAYA", ApprovalMode.AGENT);
    const parentThread = first.find((e) => e.payload.case === "sessionStarted");
    const firstTurn = turnEndOf(first);
    expect(firstTurn.providerTurnRef).not.toBe("");
    await execute("parent", "remember MANGO", ApprovalMode.AGENT);

    await client().forkSession({ sessionId: "parent", newSessionId: "child" });
    const child = await execute("child", "[[recall]]", ApprovalMode.AGENT);
    const childThread = child.find((e) => e.payload.case === "sessionStarted");
    expect(childThread?.payload.case === "sessionStarted" && childThread.payload.value.providerSessionId).not.toBe(
      parentThread?.payload.case === "sessionStarted" && parentThread.payload.value.providerSessionId,
    );
    expect(textOf(child)).toBe("Earlier you said: remember PAPAYA | remember MANGO");
    await execute("child", "remember KIWI", ApprovalMode.AGENT);

    const parent = await execute("parent", "[[recall]]", ApprovalMode.AGENT);
    expect(textOf(parent)).toBe("Earlier you said: remember PAPAYA | remember MANGO");

    // Up to a turn: only the history up to its end.
    const firstTurnId = first.at(-1)?.turnId ?? "";
    await client().forkSession({ sessionId: "parent", newSessionId: "early-child", upToTurnId: firstTurnId });
    const early = await execute("early-child", "[[recall]]", ApprovalMode.AGENT);
    expect(textOf(early)).toBe("Earlier you said: remember PAPAYA");
    expect(conversationOf(mock.requests.at(-1)!)).not.toContain("user:remember MANGO");
  }, 180_000);

  it("interrupts a turn while a request waits: the request is withdrawn, the agent stays warm", async () => {
    await execute("interrupt", "warm up");
    const pid = (await client().getSnapshot({ sessionId: "interrupt" })).session?.pid;
    const { turn, request } = await executeUntilAsked("interrupt", "[[shell:touch never.txt]]");
    const snapshot = await client().getSnapshot({ sessionId: "interrupt" });
    expect(snapshot.session?.pendingRequests.map((p) => p.request?.requestId)).toEqual([request.requestId]);
    await client().interrupt({ sessionId: "interrupt" });
    const events = await turn;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    // Codex withdrew it when the turn ended; nobody answered it.
    expect(resolvedOf(events)).toMatchObject([{ requestId: request.requestId, decision: PermissionDecision.DENY, decidedBy: Decider.AGENT_CANCELLED }]);
    const types = events.map((e) => e.payload.case);
    expect(types.indexOf("permissionResolved")).toBeLessThan(types.indexOf("turnEnded"));
    expect((await client().getSnapshot({ sessionId: "interrupt" })).session?.pendingRequests).toEqual([]);
    expect(existsSync(path.join(await workDirOf("interrupt"), "never.txt"))).toBe(false);
    const next = await execute("interrupt", "still there?");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    expect((await client().getSnapshot({ sessionId: "interrupt" })).session?.pid).toBe(pid);
  }, 120_000);
});
