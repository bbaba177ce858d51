import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { CodexProvider } from "../../src/providers/codex/provider.js";
import { processAgentHooks, providerContract } from "../contract/contract.js";
import { codexConfigToml, conversationOf, type MockOpenAI, startMockOpenAI } from "../fixtures/mock-openai-responses.js";
import { executeEvents, isAlive, processesIn, repoRoot, startTestDaemon, type TestDaemon, textOf, turnEndOf, waitUntil } from "../harness.js";

const codexPath = path.join(repoRoot, "node_modules", ".bin", "codex");

// The real Codex CLI (`codex app-server`), driven through hotplex, against a local mock of
// the Responses API: nothing leaves the machine.
describe("hotplex with the real Codex CLI", () => {
  let mock: MockOpenAI;
  let scratch: string;
  let dirs: { workRoot: string; home: string };
  let daemon: TestDaemon;

  const start = () =>
    startTestDaemon({
      providerInstances: [new CodexProvider(codexPath)],
      dirs,
      storeKind: "sqlite",
      env: { OPENAI_API_KEY: "mock-key", HOME: dirs.home },
      engine: {
        // The operator's Codex settings: the model provider (here the mock), copied into
        // every new session HOME.
        agentHomeTemplate: path.join(scratch, "template"),
        limits: { turnTimeoutMs: 60_000, stopGraceMs: 3_000 },
      },
    });

  beforeAll(async () => {
    mock = await startMockOpenAI();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-codex-"));
    dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    mkdirSync(dirs.workRoot, { recursive: true });
    mkdirSync(dirs.home, { recursive: true });
    mkdirSync(path.join(scratch, "template", ".codex"), { recursive: true });
    writeFileSync(
      path.join(scratch, "template", ".codex", "config.toml"),
      codexConfigToml({ baseUrl: mock.url, envKey: "OPENAI_API_KEY", model: "gpt-5.5" }),
    );
    daemon = await start();
  });
  afterAll(async () => {
    await daemon?.close();
    await mock?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const execute = (sessionId: string, prompt: string) => executeEvents(daemon.client.execute({ sessionId, prompt, config: { provider: "codex" } }));

  it("holds a conversation on one warm process: a cold turn, then a hot one with the history", async () => {
    const first = await execute("chat", "remember PINEAPPLE");
    const started = first.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.kind).toBe(StartKind.COLD);
    // The conversation id is Codex's own thread id, named by the agent.
    const threadId = started?.payload.case === "sessionStarted" ? started.payload.value.providerSessionId : "";
    expect(threadId).toMatch(/^[0-9a-f-]{36}$/);
    expect(textOf(first)).toBe('Hello from mock. You said: "remember PINEAPPLE"');
    expect(turnEndOf(first).outcome).toBe(TurnOutcome.COMPLETED);
    expect(turnEndOf(first).usage?.inputTokens).toBeGreaterThan(0n);

    const pid = (await daemon.client.getSnapshot({ sessionId: "chat" })).session?.pid;
    const second = await execute("chat", "[[recall]]");
    expect(second.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect(textOf(second)).toContain("remember PINEAPPLE");
    expect((await daemon.client.getSnapshot({ sessionId: "chat" })).session?.pid).toBe(pid);
    expect(conversationOf(mock.requests.at(-1)!)).toContain("user:remember PINEAPPLE");
  }, 120_000);

  it("runs a shell tool call and reports its output as the tool result", async () => {
    const events = await execute("tools", "[[shell:echo from-the-shell]]");
    const use = events.find((e) => e.payload.case === "toolUse");
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(use?.payload.case === "toolUse" && use.payload.value.name).toBe("shell");
    expect(use?.payload.case === "toolUse" && use.payload.value.inputJson).toContain("echo from-the-shell");
    expect(result?.payload.case === "toolResult" && result.payload.value.content).toContain("from-the-shell");
    expect(result?.payload.case === "toolResult" && result.payload.value.isError).toBe(false);
    expect(textOf(events)).toContain("Tool said:");
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
  }, 120_000);

  it("records a file change as a tool call that modified the file", async () => {
    const patch = "*** Begin Patch\n*** Add File: hello.txt\n+hello patch\n*** End Patch";
    const events = await execute("files", `[[custom:apply_patch:${patch}]]`);
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const { stats } = await daemon.client.getSessionStats({ sessionId: "files" });
    expect(stats?.modifiedFiles.some((file) => file.endsWith("hello.txt"))).toBe(true);
  }, 120_000);

  it("resumes the conversation in a new process after the agent was killed", async () => {
    await execute("killed", "remember MANGO");
    const pid = (await daemon.client.getSnapshot({ sessionId: "killed" })).session?.pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    process.kill(-pid, "SIGKILL");
    await waitUntil(() => !isAlive(pid), 10_000, "the agent to die");
    const after = await execute("killed", "[[recall]]");
    const started = after.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.kind).toBe(StartKind.RESUMED);
    expect(textOf(after)).toContain("remember MANGO");
  }, 120_000);

  it("ends a turn FAILED when the model API fails, and the session goes on", async () => {
    const failed = await execute("api-error", "[[status:500]]");
    expect(turnEndOf(failed).outcome).toBe(TurnOutcome.FAILED);
    expect(turnEndOf(failed).errorMessage).not.toBe("");
    const next = await execute("api-error", "still there?");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  }, 120_000);

  it("interrupts a turn that runs past the turn timeout through the agent's protocol, and keeps the agent warm", async () => {
    const quick = await startTestDaemon({
      providerInstances: [new CodexProvider(codexPath)],
      env: { OPENAI_API_KEY: "mock-key" },
      engine: { agentHomeTemplate: path.join(scratch, "template"), limits: { turnTimeoutMs: 2_000, stopGraceMs: 10_000 } },
    });
    try {
      const run = (prompt: string) => executeEvents(quick.client.execute({ sessionId: "slow", prompt }));
      await run("warm up");
      const pid = (await quick.client.getSnapshot({ sessionId: "slow" })).session?.pid;
      const slow = await run("[[delay:30000]]");
      expect(turnEndOf(slow).outcome).toBe(TurnOutcome.TIMED_OUT);
      // Interrupted (turn/interrupt), not killed: the same process takes the next turn.
      const next = await run("after the timeout");
      expect(next.map((e) => e.payload.case)).not.toContain("sessionStarted");
      expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
      expect((await quick.client.getSnapshot({ sessionId: "slow" })).session?.pid).toBe(pid);
    } finally {
      await quick.close();
    }
  }, 120_000);

  describe("provider contract", () => {
    providerContract(
      () => ({
        provider: "codex",
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
