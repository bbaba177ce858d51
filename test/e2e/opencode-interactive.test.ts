// Interactive control of the real OpenCode server (`opencode serve`, one per tenant) through
// hotplex, against the local Anthropic mock: its permission requests and questions answered
// by the client, an interrupt while one waits, the model changed between turns, its models
// listed, and conversations forked (whole, or up to a turn).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision, RequestKind } from "../../gen/hotplex/v1/interaction_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import { OpenCodeProvider } from "../../src/providers/opencode/provider.js";
import { conversationOf, type MockAnthropic, startMockAnthropic } from "../fixtures/mock-anthropic.js";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { executeEvents, startTestDaemon, type TestDaemon, textOf, turnEndOf } from "../harness.js";
import { allow, answeredTurn, type Decision, lastSeqOf, nextRequest as nextRequestOf, requestsIn, resolutionsIn } from "../interactive.js";

let mock: MockAnthropic;
let scratch: string;
let provider: OpenCodeProvider;
let daemon: TestDaemon;

beforeAll(async () => {
  mock = await startMockAnthropic();
  // Outside any git repo: inside one, OpenCode makes the repo the sessions' project.
  scratch = mkdtempSync(path.join(tmpdir(), "hotplex-opencode-interactive-"));
  const dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
  provider = new OpenCodeProvider();
  daemon = await startTestDaemon({
    providerInstances: [provider],
    dirs,
    env: {
      ANTHROPIC_BASE_URL: mock.url,
      ANTHROPIC_API_KEY: "test-key",
      HTTPS_PROXY: mock.url,
      HTTP_PROXY: mock.url,
      NO_PROXY: "127.0.0.1,localhost",
    },
    engine: { limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 }, approvals: { defaultMode: "agent", timeoutMs: 60_000 } },
  });
});

afterAll(async () => {
  await daemon?.close();
  await mock?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

// OpenCode is the daemon's one (default) provider; a config is sent only to set the approval mode.
const execute = (sessionId: string, prompt: string, approvalMode?: ApprovalMode) =>
  executeEvents(daemon.client.execute({ sessionId, prompt, ...(approvalMode ? { config: { provider: "opencode", approvalMode } } : {}) }));
const snapshot = async (sessionId: string) => (await daemon.client.getSnapshot({ sessionId })).session!;
const answered = (sessionId: string, prompt: string, decision: Decision) =>
  answeredTurn(daemon.client, sessionId, prompt, { provider: "opencode", approvalMode: ApprovalMode.CLIENT }, decision);
const resolved = resolutionsIn;
const requested = requestsIn;
const lastSeq = (sessionId: string) => lastSeqOf(daemon.client, sessionId);
const nextRequest = (sessionId: string, afterSeq: bigint) => nextRequestOf(daemon.client, sessionId, afterSeq);
const bash = (command: string) => `[[tool:bash:${JSON.stringify({ command, description: "Run it" })}]]`;
const requestsOf = (providerSessionId: string) => mock.requests.filter((r) => r.sessionId === providerSessionId && r.purpose === "main");
const startedOf = (events: Event[]) => {
  const started = events.find((e) => e.payload.case === "sessionStarted");
  if (started?.payload.case !== "sessionStarted") throw new Error("no SessionStarted");
  return started.payload.value;
};

describe("approvals with the real OpenCode server", () => {
  it("asks the client before a shell command and runs it when allowed", async () => {
    const { request, events } = await answered("oc-approve", `${bash("echo yes > approved.txt && echo ran-approved")} go`, allow());
    expect(request).toMatchObject({
      kind: RequestKind.PERMISSION,
      toolName: "bash",
      command: "echo yes > approved.txt && echo ran-approved",
      description: "Run it",
      inputEditable: false,
    });
    expect(request.toolUseId).toMatch(/^toolu_mock_\d+$/);
    // What OpenCode asks about: the command (the call's full input is in its ToolUse).
    expect(JSON.parse(request.inputJson)).toEqual({ command: "echo yes > approved.txt && echo ran-approved" });
    expect(request.suggestionsJson.map((s) => JSON.parse(s))).toContainEqual({ permission: "bash", pattern: "echo *" });
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toBe("Tool said: ran-approved\n");
    expect(existsSync(path.join((await snapshot("oc-approve")).workDir, "approved.txt"))).toBe(true);
    expect(resolved(events)).toMatchObject([{ requestId: request.requestId, decision: PermissionDecision.ALLOW, decidedBy: Decider.CLIENT }]);
  }, 120_000);

  it("does not run a denied command; the model hears the refusal and the turn goes on", async () => {
    const { events } = await answered("oc-deny", `${bash("echo no > denied.txt")} go`, { case: "deny", value: { message: "not this one", interrupt: false } });
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(existsSync(path.join((await snapshot("oc-deny")).workDir, "denied.txt"))).toBe(false);
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(result?.payload.case === "toolResult" && result.payload.value).toMatchObject({ isError: true, content: expect.stringContaining("not this one") });
    const last = requestsOf(startedOf(events).providerSessionId).at(-1)!;
    expect(conversationOf(last).at(-1)).toMatch(/rejected permission.*not this one/);
    expect(textOf(events)).toContain("Tool said:");
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.DENY, decidedBy: Decider.CLIENT, message: "not this one" }]);
  }, 120_000);

  it("allows an identical later call by itself after an allow for the session, and asks for a different one", async () => {
    const first = await answered("oc-session", `${bash("echo same")} first`, allow(true));
    expect(turnEndOf(first.events).outcome).toBe(TurnOutcome.COMPLETED);
    // OpenCode asks again (hotplex allowed once); the session answers the identical call itself.
    const second = await execute("oc-session", `${bash("echo same")} second`);
    expect(textOf(second)).toBe("Tool said: same\n");
    expect(resolved(second)).toMatchObject([{ decision: PermissionDecision.ALLOW, decidedBy: Decider.SESSION_RULE }]);
    // Not OpenCode's "always" (which would allow every `echo *`): another echo is asked.
    const other = await answered("oc-session", `${bash("echo other")} third`, allow());
    expect(other.request.command).toBe("echo other");
    expect(textOf(other.events)).toBe("Tool said: other\n");
  }, 120_000);

  it("interrupts a turn while a command waits: the request is withdrawn, nothing runs, the conversation stays warm", async () => {
    await execute("oc-interrupt", "warm up", ApprovalMode.CLIENT);
    const { workDir, providerSessionId } = await snapshot("oc-interrupt");
    const from = await lastSeq("oc-interrupt");
    const turn = execute("oc-interrupt", `${bash("echo held > held.txt")} wait`);
    const request = await nextRequest("oc-interrupt", from);
    await daemon.client.interrupt({ sessionId: "oc-interrupt" });
    const events = await turn;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(resolved(events)).toMatchObject([{ requestId: request.requestId, decidedBy: Decider.AGENT_CANCELLED }]);
    expect(existsSync(path.join(workDir, "held.txt"))).toBe(false);
    // The abort left the request listed on the server; hotplex refused it there.
    const server = provider.server!;
    const pending = async () => (JSON.parse((await server.client.request("GET", "/permission")).body) as { sessionID: string }[]).filter((p) => p.sessionID === providerSessionId);
    for (let i = 0; i < 50 && (await pending()).length > 0; i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await pending()).toEqual([]);
    const next = await execute("oc-interrupt", "still there?");
    expect(next.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  }, 120_000);

  it("puts the agent's question to the client and gives the model the answer", async () => {
    const ask = { questions: [{ question: "Pick a color?", header: "Color", options: [{ label: "red", description: "warm" }, { label: "blue", description: "cool" }] }] };
    const { request, events } = await answered("oc-question", `[[tool:question:${JSON.stringify(ask)}]] ask me`, { case: "answer", value: { answers: { "0": "blue" } } });
    expect(request).toMatchObject({ kind: RequestKind.QUESTION, toolName: "question", questions: [{ id: "0", question: "Pick a color?", header: "Color", multiSelect: false }] });
    expect(request.questions[0]!.options.map((o) => o.label)).toEqual(["red", "blue"]);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toContain('"Pick a color?"="blue"');
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.ANSWERED, decidedBy: Decider.CLIENT, answers: { "0": "blue" } }]);
  }, 120_000);

  it("runs commands without asking when the session's approval mode is the agent's", async () => {
    const events = await execute("oc-agent-mode", `${bash("echo free > free.txt && echo ran-free")} go`, ApprovalMode.AGENT);
    expect(requested(events)).toEqual([]);
    expect(textOf(events)).toBe("Tool said: ran-free\n");
    expect(existsSync(path.join((await snapshot("oc-agent-mode")).workDir, "free.txt"))).toBe(true);
  }, 120_000);
});

describe("live settings with the real OpenCode server", () => {
  it("lists its models and takes a new model for the next turn", async () => {
    const first = await execute("oc-model", "hello");
    const providerSessionId = startedOf(first).providerSessionId;
    const { models } = await daemon.client.listModels({ sessionId: "oc-model" });
    const ids = models.map((m) => m.id);
    expect(ids).toContain("anthropic/claude-sonnet-4-5");
    expect(ids).toContain("anthropic/claude-haiku-4-5");
    // Only the operator's model API: none of OpenCode's hosted models.
    expect(ids.every((id) => id.startsWith("anthropic/"))).toBe(true);
    expect(models.find((m) => m.id === "anthropic/claude-haiku-4-5")?.displayName).toMatch(/Haiku/);
    expect(requestsOf(providerSessionId).at(-1)!.model).toBe("claude-sonnet-4-5");

    await daemon.client.changeSettings({ sessionId: "oc-model", model: "anthropic/claude-haiku-4-5" });
    const second = await execute("oc-model", "again");
    expect(second.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect(turnEndOf(second).outcome).toBe(TurnOutcome.COMPLETED);
    expect(requestsOf(providerSessionId).at(-1)!.model).toBe("claude-haiku-4-5");
    // A model the server does not offer is refused, and the last one stays.
    await expect(daemon.client.changeSettings({ sessionId: "oc-model", model: "anthropic/no-such-model" })).rejects.toThrow(/no-such-model/);
    await execute("oc-model", "third");
    expect(requestsOf(providerSessionId).at(-1)!.model).toBe("claude-haiku-4-5");
  }, 120_000);
});

describe("forks with the real OpenCode server", () => {
  it("forks the whole conversation into a session of its own; the parent is unchanged", async () => {
    const parentTurn = await execute("oc-parent", "remember KIWI");
    const parentConversation = startedOf(parentTurn).providerSessionId;
    await daemon.client.forkSession({ sessionId: "oc-parent", newSessionId: "oc-fork", upToTurnId: "", title: "" });
    const forked = await execute("oc-fork", "[[recall]]");
    const forkConversation = startedOf(forked).providerSessionId;
    expect(forkConversation).toMatch(/^ses_/);
    expect(forkConversation).not.toBe(parentConversation);
    expect(textOf(forked)).toBe("Earlier you said: remember KIWI");
    // The fork runs in its own work dir.
    const { workDir } = await snapshot("oc-fork");
    expect(workDir).not.toBe((await snapshot("oc-parent")).workDir);
    expect(JSON.stringify(requestsOf(forkConversation).at(-1)!.system)).toContain(`Working directory: ${workDir}`);
    // The parent never saw the fork's turn.
    const parentNext = await execute("oc-parent", "[[recall]]");
    expect(textOf(parentNext)).toBe("Earlier you said: remember KIWI");
    // The fork's later runs continue its own conversation, in its own dir.
    await daemon.client.stopSession({ sessionId: "oc-fork" });
    const resumed = await execute("oc-fork", "[[recall]]");
    expect(startedOf(resumed).providerSessionId).toBe(forkConversation);
    expect(textOf(resumed)).toBe("Earlier you said: remember KIWI | [[recall]]");
  }, 120_000);

  it("forks up to a given turn, with the parent's approvals", async () => {
    const one = await execute("oc-parent-at", "remember ONE", ApprovalMode.CLIENT);
    const ref = turnEndOf(one).providerTurnRef;
    expect(ref).toMatch(/^msg_/);
    await execute("oc-parent-at", "remember TWO");
    await daemon.client.forkSession({ sessionId: "oc-parent-at", newSessionId: "oc-fork-at", upToTurnId: one.at(-1)!.turnId, title: "" });
    const from = await lastSeq("oc-fork-at");
    const turn = execute("oc-fork-at", `${bash("echo in-fork")} [[recall]]`);
    // The fork asks as its parent did (its rules are set anew on the copy).
    const request = await nextRequest("oc-fork-at", from);
    expect(request.command).toBe("echo in-fork");
    await daemon.client.respondPermission({ sessionId: "oc-fork-at", requestId: request.requestId, decision: allow() });
    const forked = await turn;
    expect(turnEndOf(forked).outcome).toBe(TurnOutcome.COMPLETED);
    const conversation = conversationOf(requestsOf(startedOf(forked).providerSessionId).at(-1)!);
    expect(conversation.slice(0, 2)).toEqual(["user:remember ONE", 'assistant:Hello from mock. You said: "remember ONE"']);
    expect(conversation.join("\n")).not.toContain("remember TWO");
  }, 120_000);
});
