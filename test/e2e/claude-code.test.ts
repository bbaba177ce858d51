import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StartKind, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { executeEvents, isAlive, repoRoot, startTestDaemon, type TestDaemon, textOf, turnEndOf, waitUntil } from "../harness.js";
import {
  claudeEnv,
  claudeTranscriptPath,
  conversationOf,
  type MockAnthropic,
  startMockAnthropic,
} from "../fixtures/mock-anthropic.js";

const claudePath = path.join(repoRoot, "node_modules", ".bin", "claude");

// The real Claude Code CLI, driven through hotplex, against a local mock of the
// Messages API: nothing leaves the machine.
describe("hotplex with the real Claude Code CLI", () => {
  let mock: MockAnthropic;
  let scratch: string;
  let dirs: { workRoot: string; home: string };
  let daemon: TestDaemon;

  const start = (store: "memory" | "sqlite" = "memory") =>
    startTestDaemon({
      claudePath,
      dirs,
      env: claudeEnv({ home: dirs.home, baseUrl: mock.url }),
      // A cold start of the real CLI takes about a second, more on a loaded machine.
      engine: {
        limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 },
        store: store === "sqlite" ? { kind: "sqlite", dataDir: path.join(scratch, "data"), durability: "normal" } : { kind: "memory" },
      },
    });

  beforeAll(async () => {
    mock = await startMockAnthropic();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-e2e-"));
    dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    mkdirSync(dirs.workRoot, { recursive: true });
    mkdirSync(dirs.home, { recursive: true });
    daemon = await start();
  });
  afterAll(async () => {
    await daemon?.close();
    await mock?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("holds a multi-turn conversation on one warm process, with the history sent to the model", async () => {
    const first = await executeEvents(daemon.client.execute({ sessionId: "chat", prompt: "remember PINEAPPLE" }));
    const started = first.find((e) => e.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && started.payload.value.kind).toBe(StartKind.COLD);
    expect(textOf(first)).toBe('Hello from mock. You said: "remember PINEAPPLE"');
    expect(turnEndOf(first).outcome).toBe(TurnOutcome.COMPLETED);

    const second = await executeEvents(daemon.client.execute({ sessionId: "chat", prompt: "what was the word?" }));
    expect(second.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect(turnEndOf(second).outcome).toBe(TurnOutcome.COMPLETED);
    const snapshot = await daemon.client.getSnapshot({ sessionId: "chat" });
    expect(started?.payload.case === "sessionStarted" && started.payload.value.pid).toBe(snapshot.session?.pid);

    const last = mock.requests.at(-1)!;
    expect(conversationOf(last)).toEqual([
      "user:remember PINEAPPLE",
      'assistant:Hello from mock. You said: "remember PINEAPPLE"',
      "user:what was the word?",
    ]);
    const { stats } = await daemon.client.getSessionStats({ sessionId: "chat" });
    expect(stats?.turns).toBe(2);
    expect(stats?.outputTokens).toBeGreaterThan(0n);
  });

  it("streams a tool-use turn: the tool call, its result and the answer", async () => {
    const events = await executeEvents(
      daemon.client.execute({
        sessionId: "tools",
        prompt: '[[tool:Bash:{"command":"echo hi"}]] run it',
        config: { allowedTools: ["Bash"] },
      }),
    );
    const use = events.find((e) => e.payload.case === "toolUse");
    expect(use?.payload.case === "toolUse" && use.payload.value).toMatchObject({ name: "Bash" });
    expect(use?.payload.case === "toolUse" && JSON.parse(use.payload.value.inputJson)).toMatchObject({ command: "echo hi" });
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(result?.payload.case === "toolResult" && result.payload.value).toMatchObject({ content: "hi", isError: false });
    expect(textOf(events)).toContain("Tool said: hi");
    expect(turnEndOf(events)).toMatchObject({ outcome: TurnOutcome.COMPLETED, numTurns: 2 });
    const { stats } = await daemon.client.getSessionStats({ sessionId: "tools" });
    expect(stats?.toolsUsed).toEqual({ Bash: 1 });
  });

  it("resumes the conversation with --resume after the agent process was killed", async () => {
    const first = await executeEvents(daemon.client.execute({ sessionId: "phoenix", prompt: "remember MANGO" }));
    const started = first.find((e) => e.payload.case === "sessionStarted");
    if (started?.payload.case !== "sessionStarted") throw new Error("no sessionStarted");
    const { pid, workDir, providerSessionId } = started.payload.value;
    // The CLI writes a turn to its transcript shortly after printing the result.
    const transcript = claudeTranscriptPath(daemon.homeOf("phoenix"), workDir, providerSessionId);
    await waitUntil(() => existsSync(transcript) && readFileSync(transcript, "utf8").includes('"assistant"'), 10_000, "the transcript");
    process.kill(-pid, "SIGKILL");
    await waitUntil(() => !isAlive(pid), 5_000, "the agent to die");

    const next = await executeEvents(daemon.client.execute({ sessionId: "phoenix", prompt: "[[recall]]" }));
    const restarted = next.find((e) => e.payload.case === "sessionStarted");
    expect(restarted?.payload.case === "sessionStarted" && restarted.payload.value).toMatchObject({
      kind: StartKind.RESUMED,
      providerSessionId,
    });
    expect(textOf(next)).toContain("remember MANGO");
    expect(conversationOf(mock.requests.at(-1)!)[0]).toBe("user:remember MANGO");
  });

  it("continues a conversation after a daemon restart that forgot it (in-memory store)", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "forgotten", prompt: "remember KIWI" }));
    // A graceful shutdown ends the agent with SIGTERM, which lets it finish its transcript.
    await daemon.close();
    daemon = await start();
    // The new daemon knows nothing of the session: it tries a new conversation under the
    // same deterministic id, the CLI says the id is in use, and hotplex resumes instead.
    const next = await executeEvents(daemon.client.execute({ sessionId: "forgotten", prompt: "[[recall]]" }));
    const restarted = next.find((e) => e.payload.case === "sessionStarted");
    expect(restarted?.payload.case === "sessionStarted" && restarted.payload.value.kind).toBe(StartKind.RESUMED);
    expect(textOf(next)).toContain("remember KIWI");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("resumes an idle session after the daemon restarts on its durable store", async () => {
    await daemon.close();
    daemon = await start("sqlite");
    await executeEvents(daemon.client.execute({ sessionId: "durable", prompt: "remember PLUM" }));
    await daemon.close();
    daemon = await start("sqlite");
    const requestsBefore = mock.requests.length;
    const next = await executeEvents(daemon.client.execute({ sessionId: "durable", prompt: "[[recall]]" }));
    expect(next.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: StartKind.RESUMED });
    expect(conversationOf(mock.requests.at(-1)!)).toEqual([
      "user:remember PLUM",
      'assistant:Hello from mock. You said: "remember PLUM"',
      "user:[[recall]]",
    ]);
    expect(mock.requests.length).toBe(requestsBefore + 1);
  });

  it("deletes a session with its transcript: the id then starts a new conversation", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "forget-me", prompt: "remember OLIVE" }));
    const { session } = await daemon.client.getSnapshot({ sessionId: "forget-me" });
    const transcript = claudeTranscriptPath(daemon.homeOf("forget-me"), session!.workDir, session!.providerSessionId);
    await waitUntil(() => existsSync(transcript), 10_000, "the transcript");
    await daemon.client.deleteSession({ sessionId: "forget-me", deleteTranscript: true });
    expect(existsSync(transcript)).toBe(false);
    const fresh = await executeEvents(daemon.client.execute({ sessionId: "forget-me", prompt: "[[recall]]" }));
    expect(fresh.find((e) => e.payload.case === "sessionStarted")?.payload.value).toMatchObject({ kind: StartKind.COLD });
    expect(conversationOf(mock.requests.at(-1)!)).toEqual(["user:[[recall]]"]);
  });
});
