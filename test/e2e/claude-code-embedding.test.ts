import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectTurn, createEngine, type HotplexEngine, StartKind, TurnOutcome } from "../../src/index.js";
import { providerSettings } from "../../src/providers/registry.js";
import { claudeEnv, type MockAnthropic, startMockAnthropic } from "../fixtures/mock-anthropic.js";
import { claudePath } from "./claude-daemon.js";

// The embedding API driving the real Claude Code CLI against the mock Messages API: a first
// turn, a hot one that remembers it, a pre-warmed agent for a second session, and a restart.
describe("createEngine with the real Claude Code CLI", () => {
  let mock: MockAnthropic;
  let scratch: string;
  let engine: HotplexEngine | undefined;
  const open = () =>
    createEngine({
      workRoot: path.join(scratch, "work"),
      stateRoot: path.join(scratch, "state"),
      store: { dataDir: path.join(scratch, "data") },
      providers: providerSettings({ "claude-code": claudePath }),
      agentEnv: claudeEnv({ home: path.join(scratch, "home"), baseUrl: mock.url }),
      limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 },
      prewarm: [{ config: { model: "claude-warm" }, size: 1 }],
    });

  beforeAll(async () => {
    mock = await startMockAnthropic();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-e2e-embed-"));
  });
  afterAll(async () => {
    await engine?.close();
    await mock.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("runs turns, serves a pre-warmed agent, and resumes the conversation after close and open", async () => {
    engine = await open();
    const first = await collectTurn(engine.execute("e1", "remember PAPAYA"));
    expect(first.ended?.outcome).toBe(TurnOutcome.COMPLETED);
    expect(first.text).toBe('Hello from mock. You said: "remember PAPAYA"');
    const hot = await collectTurn(engine.execute("e1", "[[recall]]"));
    expect(hot.events.some((e) => e.payload.case === "sessionStarted")).toBe(false);
    expect(hot.text).toContain("remember PAPAYA");

    const e = engine;
    const deadline = Date.now() + 30_000;
    while (!e.engine.prewarmed.list().some((agent) => agent.state === "ready") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const ready = e.engine.prewarmed.list().map((agent) => agent.pid);
    const warm = await collectTurn(engine.execute("e2", "hello warm", { config: { model: "claude-warm" } }));
    const started = warm.events.find((ev) => ev.payload.case === "sessionStarted");
    expect(started?.payload.case === "sessionStarted" && ready.includes(started.payload.value.pid)).toBe(true);
    expect(warm.text).toBe('Hello from mock. You said: "hello warm"');

    await engine.close();
    engine = await open();
    const resumed = await collectTurn(engine.execute("e1", "[[recall]]"));
    const restarted = resumed.events.find((ev) => ev.payload.case === "sessionStarted");
    expect(restarted?.payload.value).toMatchObject({ kind: StartKind.RESUMED });
    expect(resumed.text).toContain("remember PAPAYA");
    const warmAgain = await collectTurn(engine.execute("e2", "[[recall]]"));
    expect(warmAgain.text).toContain("hello warm");
  }, 120_000);
});
