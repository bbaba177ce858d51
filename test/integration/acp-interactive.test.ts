// Interactive control of an ACP agent through the daemon: the scripted ACP fake (a real
// child process in the sandbox) asks before its "tool" (it creates a file), and takes
// session modes and models. Approvals, the session's memory of allowed calls, interrupt
// while a request waits, live settings and the agent's models.
import { existsSync } from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision } from "../../gen/hotplex/v1/interaction_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import { executeEvents, fakeClaudePath, followUntil, repoRoot, startTestDaemon, type TestDaemon, textOf, turnEndOf } from "../harness.js";
import { requestsIn, resolutionsIn } from "../interactive.js";

const fakeAcpPath = path.join(repoRoot, "test", "fixtures", "fake-acp-agent.mjs");
const PROVIDER = "scripted-acp";

describe("interactive control of an ACP agent", () => {
  let daemon: TestDaemon;
  beforeAll(async () => {
    daemon = await startTestDaemon({
      providers: {
        enabled: ["claude-code"],
        executables: { "claude-code": fakeClaudePath },
        defaultProvider: "claude-code",
        acpAgents: { [PROVIDER]: [fakeAcpPath] },
      },
      engine: { approvals: { defaultMode: "agent", timeoutMs: 60_000 } },
    });
  });
  afterAll(async () => {
    await daemon.close();
  });

  const execute = (sessionId: string, prompt: string, approvalMode = ApprovalMode.CLIENT) =>
    executeEvents(daemon.client.execute({ sessionId, prompt, config: { provider: PROVIDER, approvalMode } }));
  const snapshot = async (sessionId: string) => (await daemon.client.getSnapshot({ sessionId })).session!;
  const lastSeq = async (sessionId: string) => (await daemon.client.getSnapshot({ sessionId })).lastSeq;
  // The next PermissionRequested of a session after `afterSeq`.
  const nextRequest = async (sessionId: string, afterSeq: bigint) => {
    const events = await followUntil(daemon.client, sessionId, (e) => e.payload.case === "permissionRequested", afterSeq);
    const last = events.at(-1)!;
    if (last.payload.case !== "permissionRequested") throw new Error("no permission request");
    return last.payload.value;
  };
  const resolved = resolutionsIn;
  const requested = requestsIn;
  // The fake's mode and model, by a turn of the session as it is configured.
  const state = async (sessionId: string) => JSON.parse(textOf(await executeEvents(daemon.client.execute({ sessionId, prompt: "[[state]]" })))) as { mode: string; model: string; strayAnswers: number };
  // Runs a turn whose first request the client answers with `decision`.
  const answered = async (sessionId: string, prompt: string, decision: Parameters<TestDaemon["client"]["respondPermission"]>[0]["decision"]) => {
    const from = await lastSeq(sessionId).catch(() => 0n);
    const turn = execute(sessionId, prompt);
    const request = await nextRequest(sessionId, from);
    await daemon.client.respondPermission({ sessionId, requestId: request.requestId, decision });
    return { request, events: await turn };
  };

  it("says what it can do: approvals, live mode and model, its models; no fork, questions or edited inputs", async () => {
    const { providers } = await daemon.client.listProviders({});
    expect(providers.find((p) => p.name === PROVIDER)?.capabilities).toMatchObject({
      interrupt: true,
      approvals: true,
      setModel: true,
      setPermissionMode: true,
      listModels: true,
      fork: false,
      questions: false,
      editApprovedInput: false,
    });
  });

  it("asks the client before the tool call and runs it when allowed", async () => {
    const { request, events } = await answered("approve", "[[run:approved.txt]]", { case: "allow", value: { forSession: false, updatedInputJson: "" } });
    const workDir = (await snapshot("approve")).workDir;
    expect(request).toMatchObject({ toolName: "execute", command: "touch approved.txt", description: "touch approved.txt", path: path.join(workDir, "approved.txt"), inputEditable: false });
    expect(JSON.parse(request.inputJson)).toMatchObject({ rawInput: { command: "touch approved.txt" } });
    expect(request.suggestionsJson.map((s) => (JSON.parse(s) as { kind: string }).kind)).toEqual(["allow_always", "allow_once", "reject_once"]);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toBe("ran approved.txt (proceed_once). ");
    expect(existsSync(path.join(workDir, "approved.txt"))).toBe(true);
    expect(resolved(events)).toMatchObject([{ requestId: request.requestId, decision: PermissionDecision.ALLOW, decidedBy: Decider.CLIENT }]);
  });

  it("skips the tool call when denied, and the turn goes on", async () => {
    const { events } = await answered("deny", "[[run:denied.txt]]", { case: "deny", value: { message: "not now", interrupt: false } });
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toBe("skipped denied.txt (cancel). ");
    expect(existsSync(path.join((await snapshot("deny")).workDir, "denied.txt"))).toBe(false);
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.DENY, decidedBy: Decider.CLIENT, message: "not now" }]);
  });

  it("allows an identical later call by itself after an allow for the session", async () => {
    const first = await answered("for-session", "[[run:same.txt]]", { case: "allow", value: { forSession: true, updatedInputJson: "" } });
    expect(textOf(first.events)).toBe("ran same.txt (proceed_once). ");
    // Asked again by the agent, allowed by the session: no client answer needed.
    const second = await execute("for-session", "[[run:same.txt]]");
    expect(turnEndOf(second).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(second)).toBe("ran same.txt (proceed_once). ");
    expect(resolved(second)).toMatchObject([{ decision: PermissionDecision.ALLOW, decidedBy: Decider.SESSION_RULE }]);
  });

  it("interrupts a turn while a request waits: the agent gets cancelled, the request is resolved as withdrawn", async () => {
    await execute("interrupt", "warm up");
    const { pid } = await snapshot("interrupt");
    const from = await lastSeq("interrupt");
    const turn = execute("interrupt", "[[run:held.txt]]");
    const request = await nextRequest("interrupt", from);
    await daemon.client.interrupt({ sessionId: "interrupt" });
    const events = await turn;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.INTERRUPTED);
    // What the agent got: the outcome ACP's cancellation asks for.
    expect(textOf(events)).toBe('not run held.txt ({"outcome":{"outcome":"cancelled"}}). ');
    expect(resolved(events)).toMatchObject([{ requestId: request.requestId, decidedBy: Decider.AGENT_CANCELLED }]);
    const late = await daemon.client
      .respondPermission({ sessionId: "interrupt", requestId: request.requestId, decision: { case: "allow", value: { forSession: false, updatedInputJson: "" } } })
      .catch((error: unknown) => ConnectError.from(error));
    expect((late as ConnectError).code).toBe(Code.FailedPrecondition);
    // The same warm agent, which got one answer only.
    expect(await state("interrupt")).toMatchObject({ strayAnswers: 0 });
    expect((await snapshot("interrupt")).pid).toBe(pid);
    expect(existsSync(path.join((await snapshot("interrupt")).workDir, "held.txt"))).toBe(false);
  });

  it("without client approvals, a request the agent's mode makes is denied by the session, answered once", async () => {
    // approval mode AGENT and the agent's asking mode: it asks, the session refuses.
    const events = await executeEvents(daemon.client.execute({ sessionId: "agent-mode", prompt: "[[run:refused.txt]]", config: { provider: PROVIDER, approvalMode: ApprovalMode.AGENT, permissionMode: "default" } }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(events)).toBe("skipped refused.txt (cancel). ");
    expect(requested(events)).toHaveLength(1);
    expect(resolved(events)).toMatchObject([{ decision: PermissionDecision.DENY, decidedBy: Decider.APPROVAL_MODE }]);
    expect(await state("agent-mode")).toMatchObject({ mode: "default", strayAnswers: 0 });
  });

  it("changes the permission mode (an ACP session mode) and the model of the warm agent, and lists its models", async () => {
    await execute("settings", "hello");
    const { pid } = await snapshot("settings");
    expect(await state("settings")).toMatchObject({ mode: "default", model: "fake-small" });
    const { models } = await daemon.client.listModels({ sessionId: "settings" });
    expect(models.map((m) => ({ id: m.id, displayName: m.displayName, description: m.description }))).toEqual([
      { id: "fake-small", displayName: "Fake Small", description: "The small one" },
      { id: "fake-large", displayName: "Fake Large", description: "The large one" },
    ]);
    const { session } = await daemon.client.changeSettings({ sessionId: "settings", permissionMode: "plan", model: "fake-large" });
    expect(session?.config).toMatchObject({ permissionMode: "plan", model: "fake-large" });
    expect(await state("settings")).toMatchObject({ mode: "plan", model: "fake-large" });
    expect((await snapshot("settings")).pid).toBe(pid);
    // A mode the agent did not advertise is refused, and nothing changes.
    const refused = await daemon.client.changeSettings({ sessionId: "settings", permissionMode: "acceptEdits" }).catch((error: unknown) => ConnectError.from(error));
    expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
    expect((refused as ConnectError).rawMessage).toContain('the agent offers no mode "acceptEdits"');
    expect(await state("settings")).toMatchObject({ mode: "plan", model: "fake-large" });
  });

  it("starts a new run in the mode and model changed earlier", async () => {
    await execute("restarted", "hello");
    await daemon.client.changeSettings({ sessionId: "restarted", permissionMode: "plan", model: "fake-large" });
    await daemon.client.stopSession({ sessionId: "restarted" });
    expect(await state("restarted")).toMatchObject({ mode: "plan", model: "fake-large" });
  });
});
