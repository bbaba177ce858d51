import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { minuteStamp } from "../../src/providers/acp/gemini-chats.js";
import { AcpProvider } from "../../src/providers/acp/provider.js";
import { processAgentHooks, providerContract } from "../contract/contract.js";
import { conversationOf, geminiEnv, geminiSettings, type MockGemini, startMockGemini } from "../fixtures/mock-gemini.js";
import { executeEvents, isAlive, processesIn, repoRoot, startTestDaemon, type TestDaemon, textOf, turnEndOf, waitUntil } from "../harness.js";

const geminiPath = path.join(repoRoot, "node_modules", ".bin", "gemini");
const gemini = () => new AcpProvider({ name: "gemini", command: [geminiPath, "--acp"], quirks: "gemini" });

/** Whether bubblewrap can make the namespaces hotplex's sandbox uses, here. */
function bwrapWorks(): boolean {
  const probe = spawnSync("bwrap", ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "/bin/true"], { timeout: 10_000 });
  return probe.status === 0;
}


// The real Gemini CLI (`gemini --acp`), driven through hotplex by the generic ACP provider,
// against a local mock of the Gemini API: nothing leaves the machine. The sandbox is the
// daemon's default ("auto": bubblewrap where it works).
describe("hotplex with the real Gemini CLI over ACP", () => {
  let mock: MockGemini;
  let scratch: string;
  let dirs: { workRoot: string; home: string };
  let daemon: TestDaemon;

  const env = () => geminiEnv({ home: dirs.home, tmpdir: path.join(scratch, "tmp"), baseUrl: mock.url });
  const start = () =>
    startTestDaemon({
      providerInstances: [gemini()],
      dirs,
      storeKind: "sqlite",
      env: env(),
      engine: {
        // The operator's Gemini settings, copied into every new session HOME: one attempt
        // per model call (the provider's own default retries, seconds apart).
        agentHomeTemplate: path.join(scratch, "template"),
        limits: { turnTimeoutMs: 60_000, stopGraceMs: 3_000 },
      },
    });

  beforeAll(async () => {
    mock = await startMockGemini();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-gemini-"));
    dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    for (const dir of [dirs.workRoot, dirs.home, path.join(scratch, "tmp"), path.join(scratch, "template", ".gemini")]) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(scratch, "template", ".gemini", "settings.json"), JSON.stringify(geminiSettings({ maxAttempts: 1 })));
    daemon = await start();
  });
  afterAll(async () => {
    await daemon?.close();
    await mock?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const execute = (sessionId: string, prompt: string, config: Record<string, unknown> = {}) =>
    executeEvents(daemon.client.execute({ sessionId, prompt, config: { provider: "gemini", ...config } }));
  const snapshot = async (sessionId: string) => (await daemon.client.getSnapshot({ sessionId })).session;
  const cases = (events: Event[]) => events.map((e) => e.payload.case);

  it("holds a conversation on one warm process: a cold turn, then a hot one with the history", async () => {
    const first = await execute("chat", "remember PINEAPPLE");
    const started = first.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.kind).toBe(StartKind.COLD);
    // The conversation id is the agent's own (ACP session/new names it).
    const acpId = started?.payload.case === "sessionStarted" ? started.payload.value.providerSessionId : "";
    expect(acpId).toMatch(/^[0-9a-f-]{36}$/);
    expect(textOf(first)).toBe('Hello from mock. You said: "remember PINEAPPLE"');
    expect(turnEndOf(first).outcome).toBe(TurnOutcome.COMPLETED);
    expect(turnEndOf(first).result).toBe('Hello from mock. You said: "remember PINEAPPLE"');
    expect(turnEndOf(first).usage?.inputTokens).toBeGreaterThan(0n);
    expect(turnEndOf(first).usage?.outputTokens).toBeGreaterThan(0n);
    // What the agent said before the turn (its answer to session/set_mode, its command list) is kept raw.
    const early = first.filter((e) => e.payload.case === "raw").map((e) => (e.payload.case === "raw" ? e.payload.value : undefined));
    expect(early.some((r) => r?.reason === "outside_turn" && r.line.includes("[MODE_UPDATE] yolo"))).toBe(true);
    const pid = (await snapshot("chat"))?.pid;
    expect(pid).toBeGreaterThan(0);
    // In bubblewrap wherever it works (the daemon's default), as on the machines this suite runs on.
    expect((await snapshot("chat"))?.sandbox?.enabled).toBe(bwrapWorks());
    expect((await snapshot("chat"))?.providerSessionId).toBe(acpId);

    const second = await execute("chat", "[[recall]]");
    expect(cases(second)).not.toContain("sessionStarted");
    expect(textOf(second)).toBe("Earlier you said: remember PINEAPPLE");
    expect((await snapshot("chat"))?.pid).toBe(pid);
    expect(conversationOf(mock.requests.at(-1)!)).toContain("user:remember PINEAPPLE");
  }, 120_000);

  it("runs tools without asking (yolo): a shell call with its output for the model, and a file write", async () => {
    // `touch` is not one of the CLI's known-safe commands: it runs only because the session is in yolo mode.
    const events = await execute("tools", "[[shell:touch made-by-shell.txt && echo from-the-shell]]");
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const use = events.find((e) => e.payload.case === "toolUse");
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(use?.payload.case === "toolUse" && use.payload.value.name).toBe("run_shell_command");
    expect(use?.payload.case === "toolUse" && use.payload.value.inputJson).toContain("touch made-by-shell.txt");
    expect(result?.payload.case === "toolResult" && result.payload.value.toolUseId).toBe(use?.payload.case === "toolUse" && use.payload.value.toolUseId);
    expect(result?.payload.case === "toolResult" && result.payload.value.isError).toBe(false);
    // The CLI reports no shell output over ACP; the model got it (the mock repeats it).
    expect(textOf(events)).toBe("Tool said: from-the-shell");
    const workDir = (await snapshot("tools"))?.workDir ?? "";
    expect(existsSync(path.join(workDir, "made-by-shell.txt"))).toBe(true);

    const write = await execute("tools", '[[tool:write_file:{"file_path":"note.txt","content":"hello\\n"}]]');
    expect(turnEndOf(write).outcome).toBe(TurnOutcome.COMPLETED);
    expect(readFileSync(path.join(workDir, "note.txt"), "utf8")).toBe("hello\n");
    const { stats } = await daemon.client.getSessionStats({ sessionId: "tools" });
    expect(stats?.modifiedFiles.some((file) => file.endsWith("note.txt"))).toBe(true);
  }, 120_000);

  it("ends a turn FAILED with the API's message when the model API fails, and the session goes on", async () => {
    const failed = await execute("api-error", "[[status:500]]");
    expect(turnEndOf(failed).outcome).toBe(TurnOutcome.FAILED);
    expect(turnEndOf(failed).errorMessage).toContain("Mock error 500");
    // The CLI's error report went to the agent's own TMPDIR, not the daemon's.
    expect(readdirSync(path.join(scratch, "tmp"))).toEqual([]);
    const next = await execute("api-error", "still there?");
    expect(cases(next)).not.toContain("sessionStarted");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  }, 120_000);

  it("takes a system prompt through a launch file, and refuses settings ACP cannot apply", async () => {
    const events = await execute("system", "hello", { systemPrompt: "You are MOCKBOT-7." });
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(JSON.stringify(mock.requests.at(-1)?.systemInstruction)).toContain("You are MOCKBOT-7.");
    for (const config of [{ permissionMode: "acceptEdits" }, { allowedTools: ["run_shell_command"] }, { appendSystemPrompt: "more" }]) {
      const refused = await execute("refused", "x", config).catch((error: unknown) => ConnectError.from(error));
      expect((refused as ConnectError).code).toBe(Code.InvalidArgument);
      expect((refused as ConnectError).rawMessage).toContain("provider gemini");
    }
  }, 120_000);

  it("cancels a turn that runs past the turn timeout through session/cancel, and keeps the agent warm", async () => {
    const quick = await startTestDaemon({
      providerInstances: [gemini()],
      env: env(),
      engine: { agentHomeTemplate: path.join(scratch, "template"), limits: { turnTimeoutMs: 1_500, stopGraceMs: 20_000 } },
    });
    try {
      const run = (prompt: string) => executeEvents(quick.client.execute({ sessionId: "slow", prompt }));
      await run("warm up");
      const pid = (await quick.client.getSnapshot({ sessionId: "slow" })).session?.pid;
      const slow = await run("[[delay:30000]]");
      expect(turnEndOf(slow).outcome).toBe(TurnOutcome.TIMED_OUT);
      const next = await run("after the timeout");
      expect(cases(next)).not.toContain("sessionStarted");
      expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
      expect((await quick.client.getSnapshot({ sessionId: "slow" })).session?.pid).toBe(pid);
    } finally {
      await quick.close();
    }
  }, 120_000);

  it("StopSession leaves no process behind", async () => {
    await execute("stopped", "hello");
    const { pid, workDir } = (await snapshot("stopped"))!;
    expect(processesIn(workDir).length).toBeGreaterThan(0);
    const { session } = await daemon.client.stopSession({ sessionId: "stopped" });
    expect(session?.pid).toBe(0);
    expect(isAlive(pid)).toBe(false);
    expect(processesIn(workDir)).toEqual([]);
  }, 120_000);

  it("resumes the conversation in a new process after the agent was killed, in the minute it began", async () => {
    // The CLI's session/load wipes a conversation loaded in the UTC minute it was created;
    // the provider's guard side-steps that, so this must work at once, without waiting.
    const createdIn = minuteStamp(Date.now());
    await execute("killed", "remember MANGO");
    const { pid, providerSessionId } = (await snapshot("killed"))!;
    process.kill(-pid, "SIGKILL");
    await waitUntil(() => !isAlive(pid), 10_000, "the agent to die");
    const began = Date.now();
    const after = await execute("killed", "[[recall]]");
    const started = after.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.kind).toBe(StartKind.RESUMED);
    expect(started?.payload.case === "sessionStarted" && started.payload.value.providerSessionId).toBe(providerSessionId);
    expect(textOf(after)).toBe("Earlier you said: remember MANGO");
    // The history the load replays is the agent's, not this turn's.
    expect(cases(after).filter((c) => c === "textDelta").length).toBeLessThanOrEqual(3);
    expect(Date.now() - began).toBeLessThan(30_000);
    if (minuteStamp(Date.now()) === createdIn) {
      // Loaded in its creation minute: the guard moved the conversation's file out of the load's way.
      const chats = path.join(daemon.homeOf("killed"), ".gemini", "tmp", path.basename((await snapshot("killed"))!.workDir), "chats");
      expect(readdirSync(chats).some((name) => name.endsWith(`-hx-${providerSessionId.slice(0, 8)}.jsonl`))).toBe(true);
    }
  }, 120_000);

  describe("provider contract", () => {
    providerContract(
      () => ({
        provider: "gemini",
        client: () => daemon.client,
        restart: async () => {
          await daemon.close();
          daemon = await start();
        },
        plain: (word) => `say ${word}`,
        recall: () => "[[recall]]",
        hang: () => "[[delay:60000]]",
        talkThenHang: () => "[[chunks:2:60000]]",
        ...processAgentHooks(() => daemon.client),
      }),
      { timeoutMs: 120_000 },
    );
  });
});
