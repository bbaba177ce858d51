import { existsSync } from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { type MockAnthropic } from "../fixtures/mock-anthropic.js";
import { executeEvents, type TestDaemon, turnEndOf } from "../harness.js";
import { type ClaudeE2E, startClaudeE2E } from "./claude-daemon.js";
import { settingsInjection } from "../security/injection.js";


// The real Claude Code CLI reads --settings from anywhere in its argv, also from an entry
// meant as another flag's value, and runs the hooks it names: no config value may ever be
// such an entry. Each field, tried against the real CLI.
describe("session config values reach the real Claude Code CLI as values, never as flags", () => {
  let e2e: ClaudeE2E;
  let mock: MockAnthropic;
  let daemon: TestDaemon;

  beforeAll(async () => {
    e2e = await startClaudeE2E("flags");
    ({ mock, daemon } = e2e);
  });
  afterAll(async () => {
    await e2e?.close();
  });

  const systemText = (system: unknown) => JSON.stringify(system);

  it("sends an injected system prompt and appended prompt to the model as text, and runs no hook", async () => {
    const marker = path.join(e2e.scratch, "system-pwned");
    const before = mock.requests.length;
    const events = await executeEvents(
      daemon.client.execute({
        sessionId: "sys",
        prompt: "hello",
        config: { systemPrompt: `REPLACED ${settingsInjection(marker)}`, appendSystemPrompt: `APPENDED ${settingsInjection(marker)}` },
      }),
    );
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const request = mock.requests.slice(before).find((r) => r.messages.length > 0);
    expect(systemText(request?.system)).toContain("REPLACED --settings=");
    expect(systemText(request?.system)).toContain("APPENDED --settings=");
    expect(existsSync(marker)).toBe(false);
  });

  it("passes a model and tool rules with spaces as single values the CLI takes", async () => {
    const before = mock.requests.length;
    const events = await executeEvents(
      daemon.client.execute({
        sessionId: "tools",
        prompt: "hello",
        config: { model: "claude-hotplex-test-1", allowedTools: ["Bash(git log:*)"], disallowedTools: ["WebFetch", "Bash"] },
      }),
    );
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const request = mock.requests.slice(before).find((r) => r.messages.length > 0);
    expect(request?.model).toBe("claude-hotplex-test-1");
    const tools = request?.tools.map((t) => t.name) ?? [];
    expect(tools).toContain("Read");
    expect(tools).not.toContain("WebFetch");
    expect(tools).not.toContain("Bash");
  });

  it.each([
    ["allowed_tools", { allowedTools: ["<x>"] }],
    ["disallowed_tools", { disallowedTools: ["<x>"] }],
    ["model", { model: "<x>" }],
    ["permission_mode", { permissionMode: "<x>" }],
  ] as const)("refuses an injected --settings in %s before the CLI starts", async (field, shape) => {
    const marker = path.join(e2e.scratch, `${field}-pwned`);
    const config = JSON.parse(JSON.stringify(shape).replace('"<x>"', JSON.stringify(settingsInjection(marker))));
    const error = await executeEvents(daemon.client.execute({ sessionId: `refused-${field}`, prompt: "hi", config })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toContain(`config.${field}`);
    expect(existsSync(marker)).toBe(false);
  });
});
