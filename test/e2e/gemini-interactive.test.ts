import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision } from "../../gen/hotplex/v1/interaction_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import { AcpProvider } from "../../src/providers/acp/provider.js";
import { conversationOf, geminiEnv, geminiSettings, type MockGemini, SHELL_TOOL, startMockGemini } from "../fixtures/mock-gemini.js";
import { executeEvents, repoRoot, startTestDaemon, type TestDaemon, textOf, turnEndOf } from "../harness.js";
import { allow, answeredTurn, type Decision, lastSeqOf, nextRequest as nextRequestOf, resolutionsIn } from "../interactive.js";

const geminiPath = path.join(repoRoot, "node_modules", ".bin", "gemini");

// Interactive control of the real Gemini CLI (`gemini --acp`) through hotplex, against a
// local mock of the Gemini API: its permission requests answered by the client, an
// interrupt while one waits, and its session mode and model changed on the warm agent.
describe("interactive control of the real Gemini CLI over ACP", () => {
  let mock: MockGemini;
  let scratch: string;
  let daemon: TestDaemon;

  beforeAll(async () => {
    mock = await startMockGemini();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-gemini-interactive-"));
    const home = path.join(scratch, "home");
    for (const dir of [home, path.join(scratch, "tmp"), path.join(scratch, "template", ".gemini")]) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(scratch, "template", ".gemini", "settings.json"), JSON.stringify(geminiSettings({ maxAttempts: 1 })));
    daemon = await startTestDaemon({
      providerInstances: [new AcpProvider({ name: "gemini", command: [geminiPath, "--acp"], quirks: "gemini" })],
      dirs: { workRoot: path.join(scratch, "work"), home },
      env: geminiEnv({ home, tmpdir: path.join(scratch, "tmp"), baseUrl: mock.url }),
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
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const execute = (sessionId: string, prompt: string, approvalMode?: ApprovalMode) =>
    executeEvents(daemon.client.execute({ sessionId, prompt, ...(approvalMode ? { config: { provider: "gemini", approvalMode } } : {}) }));
  const snapshot = async (sessionId: string) => (await daemon.client.getSnapshot({ sessionId })).session!;
  const answered = (sessionId: string, prompt: string, decision: Decision) =>
    answeredTurn(daemon.client, sessionId, prompt, { provider: "gemini", approvalMode: ApprovalMode.CLIENT }, decision);
  const resolved = resolutionsIn;
  const lastSeq = (sessionId: string) => lastSeqOf(daemon.client, sessionId);
  const nextRequest = (sessionId: string, afterSeq: bigint) => nextRequestOf(daemon.client, sessionId, afterSeq);

  it("asks the client before a shell command and runs it when allowed; the agent stays in its own mode", async () => {
    const { request, events } = await answered("approve", "[[shell:touch approved.txt && echo from-the-shell]]", allow());
    expect(request).toMatchObject({ toolName: SHELL_TOOL, command: "touch approved.txt && echo from-the-shell", description: "touch approved.txt && echo from-the-shell", inputEditable: false });
    expect(request.suggestionsJson.map((s) => (JSON.parse(s) as { optionId: string }).optionId)).toEqual(["proceed_always", "proceed_once", "cancel"]);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toBe("Tool said: from-the-shell");
    expect(existsSync(path.join((await snapshot("approve")).workDir, "approved.txt"))).toBe(true);
    expect(resolved(events)).toMatchObject([{ requestId: request.requestId, decision: PermissionDecision.ALLOW, decidedBy: Decider.CLIENT }]);
    // With approvals hotplex does not switch the agent to yolo.
    expect(events.some((e) => e.payload.case === "raw" && e.payload.value.line.includes("[MODE_UPDATE]"))).toBe(false);
  }, 120_000);

  it("does not run a denied command: the model hears it was refused", async () => {
    const { events } = await answered("deny", "[[shell:touch denied.txt && echo ran]]", { case: "deny", value: { message: "not this one", interrupt: false } });
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(existsSync(path.join((await snapshot("deny")).workDir, "denied.txt"))).toBe(false);
    expect(textOf(events)).toContain("canceled by the user");
    expect(conversationOf(mock.requests.filter((r) => r.method === "streamGenerateContent").at(-1)!).join("\n")).toContain("canceled by the user");
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(result?.payload.case === "toolResult" && result.payload.value.isError).toBe(true);
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.DENY, decidedBy: Decider.CLIENT, message: "not this one" }]);
  }, 120_000);

  it("allows an identical later command by itself after an allow for the session", async () => {
    await answered("for-session", "[[shell:touch same.txt && echo first]]", allow(true));
    // The CLI asks again (hotplex chose its allow-once option); the session allows the identical call itself.
    const second = await execute("for-session", "[[shell:touch same.txt && echo first]]");
    expect(turnEndOf(second).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(second)).toBe("Tool said: first");
    expect(resolved(second)).toMatchObject([{ decision: PermissionDecision.ALLOW, decidedBy: Decider.SESSION_RULE }]);
  }, 120_000);

  it("interrupts a turn while a command waits for approval: the CLI gets cancelled and stays warm", async () => {
    await execute("interrupt", "warm up", ApprovalMode.CLIENT);
    const { pid, workDir } = await snapshot("interrupt");
    const from = await lastSeq("interrupt");
    const turn = execute("interrupt", "[[shell:touch held.txt]]");
    const request = await nextRequest("interrupt", from);
    await daemon.client.interrupt({ sessionId: "interrupt" });
    const events = await turn;
    // Gemini CLI ends the turn "cancelled" once its open request was answered "cancelled".
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    expect(resolved(events)).toMatchObject([{ requestId: request.requestId, decidedBy: Decider.AGENT_CANCELLED }]);
    expect(existsSync(path.join(workDir, "held.txt"))).toBe(false);
    const next = await execute("interrupt", "still there?");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    expect((await snapshot("interrupt")).pid).toBe(pid);
  }, 120_000);

  it("changes the model and the session mode of the warm CLI, and lists its models", async () => {
    // Approval mode AGENT: the CLI runs in yolo and runs the command without asking.
    await execute("settings", "[[shell:touch yolo.txt]]", ApprovalMode.AGENT);
    const { pid, workDir } = await snapshot("settings");
    expect(existsSync(path.join(workDir, "yolo.txt"))).toBe(true);
    const { models } = await daemon.client.listModels({ sessionId: "settings" });
    expect(models.map((m) => m.id)).toContain("auto");
    const model = models.find((m) => m.id !== "auto")!.id;
    await daemon.client.changeSettings({ sessionId: "settings", model, permissionMode: "default" });
    const from = mock.requests.length;
    // In "default" the CLI asks before the command; no client approves here, so the session denies it.
    const events = await execute("settings", "[[shell:touch asked.txt]]");
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.DENY, decidedBy: Decider.APPROVAL_MODE }]);
    expect(existsSync(path.join(workDir, "asked.txt"))).toBe(false);
    // The new model is the one the mock was asked (no router for a model chosen by name).
    expect(mock.requests.slice(from).filter((r) => r.method === "streamGenerateContent").map((r) => r.model)).toEqual([model, model]);
    expect((await snapshot("settings")).pid).toBe(pid);
  }, 120_000);
});
