import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { executeEvents, startTestDaemon, type TestDaemon, textOf, turnEndOf } from "../harness.js";
import { settingsInjection } from "./injection.js";


// The fake agent reads --settings from anywhere in its argv, as Claude Code does (see its
// header): a config value passed as its own argv entry would run the hook.
describe("no session config value is ever read as an agent flag", () => {
  let daemon: TestDaemon;
  let dir: string;
  beforeAll(async () => {
    daemon = await startTestDaemon();
    dir = mkdtempSync(path.join(tmpdir(), "hotplex-inject-"));
  });
  afterAll(async () => {
    await daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(["system_prompt", "append_system_prompt"] as const)("passes an injected --settings in %s as text, never as a flag", async (field) => {
    const marker = path.join(dir, `${field}-pwned`);
    const value = settingsInjection(marker);
    const config = field === "system_prompt" ? { systemPrompt: value } : { appendSystemPrompt: value };
    const events = await executeEvents(daemon.client.execute({ sessionId: `inject-${field}`, prompt: "[[system]]", config }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    // The agent got the value as the prompt's text, whole.
    expect(textOf(events)).toContain(field === "system_prompt" ? `system: ${value} |` : `append: ${value}`);
    expect(existsSync(marker)).toBe(false);
  });

  it.each([
    ["allowed_tools", { allowedTools: ["Read", "<x>"] }, "config.allowed_tools[1]"],
    ["disallowed_tools", { disallowedTools: ["<x>"] }, "config.disallowed_tools[0]"],
    ["model", { model: "<x>" }, "config.model"],
    ["permission_mode", { permissionMode: "<x>" }, "config.permission_mode"],
  ] as const)("refuses an injected --settings in %s with INVALID_ARGUMENT, before any agent runs", async (_field, shape, named) => {
    const marker = path.join(dir, `${named}-pwned`);
    const config = JSON.parse(JSON.stringify(shape).replace('"<x>"', JSON.stringify(settingsInjection(marker))));
    const error = await executeEvents(daemon.client.execute({ sessionId: "inject-refused", prompt: "hi", config })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toContain(named);
    expect(existsSync(marker)).toBe(false);
    // Refused before anything was created.
    expect((await daemon.client.listSessions({})).sessions.map((s) => s.sessionId)).not.toContain("inject-refused");
  });
});
