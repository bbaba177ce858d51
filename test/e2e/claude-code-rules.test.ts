// The tenant's rules with the real Claude Code CLI against the local mock of the Messages API:
// a blocked prompt never reaches the model, a blocked tool call is vetoed through hotplex's
// PreToolUse hook (even one the session's settings allow) while the turn completes, and an
// ask rule turns a call into an approval request. Nothing leaves the machine.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Event, RuleSeverity, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import type { CustomRuleSpec } from "../../src/security/rules/index.js";
import { TenantDirectory, defaultPolicy, NO_TENANT_LIMITS } from "../../src/security/tenant-policy.js";
import { claudeEnv, type MockAnthropic, startMockAnthropic } from "../fixtures/mock-anthropic.js";
import { executeEvents, repoRoot, startTestDaemon, type TestDaemon, turnEndOf } from "../harness.js";
import { allow, requestsIn, turnSeeing } from "../interactive.js";

const claudePath = path.join(repoRoot, "node_modules", ".bin", "claude");
const matchesIn = (events: Event[]) => events.flatMap((e) => (e.payload.case === "ruleMatched" ? [e.payload.value] : []));
const bash = (command: string) => `[[tool:Bash:${JSON.stringify({ command })}]]`;
// A decode-and-run that, were it to run, would only create a file in the work dir.
const DECODE_AND_RUN = `echo ${Buffer.from("touch pwned.txt").toString("base64")} | base64 -d | sh`;

describe("the tenant's rules with the real Claude Code CLI", () => {
  let mock: MockAnthropic;
  let scratch: string;
  let daemon: TestDaemon;

  beforeAll(async () => {
    mock = await startMockAnthropic();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-e2e-rules-"));
    const dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    mkdirSync(dirs.workRoot, { recursive: true });
    mkdirSync(dirs.home, { recursive: true });
    daemon = await startTestDaemon({
      claudePath,
      dirs,
      env: claudeEnv({ home: dirs.home, baseUrl: mock.url }),
      engine: {
        limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 },
        approvals: { defaultMode: "agent", timeoutMs: 60_000 },
        // An ask rule of the operator's own beside the built-in sets.
        tenants: new TenantDirectory({
          policy: defaultPolicy(600_000),
          limits: NO_TENANT_LIMITS,
          rules: {
            sets: (await import("../../src/security/rules/index.js")).DEFAULT_SETS,
            custom: [ASK_RULE],
            allowPaths: [],
          },
        }),
      },
    });
  });
  afterAll(async () => {
    await daemon?.close();
    await mock?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("refuses a blocked prompt with PERMISSION_DENIED: the model never sees it", async () => {
    const before = mock.requests.length;
    const error = await executeEvents(daemon.client.execute({ sessionId: "prompt", prompt: "run this now:\n```\nrm -rf / --no-preserve-root\n```" })).catch(
      (e: unknown) => ConnectError.from(e),
    );
    expect((error as ConnectError).code).toBe(Code.PermissionDenied);
    expect((error as ConnectError).rawMessage).toContain("blocked by rule");
    expect(mock.requests.length).toBe(before);
  });

  it("vetoes a blocked call the session's settings allow (Bash pre-allowed), and the turn completes", async () => {
    const events = await executeEvents(
      daemon.client.execute({ sessionId: "veto", prompt: `${bash(DECODE_AND_RUN)} go`, config: { allowedTools: ["Bash"] } }),
    );
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    expect(matchesIn(events).some((m) => m.severity === RuleSeverity.BLOCK)).toBe(true);
    // The CLI refused the call: its tool result is an error naming the rule, and nothing ran.
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(result?.payload.case === "toolResult" && result.payload.value.isError).toBe(true);
    expect(result?.payload.case === "toolResult" && result.payload.value.content).toContain("blocked by rule");
    const { session } = await daemon.client.getSnapshot({ sessionId: "veto" });
    expect(existsSync(path.join(session?.workDir ?? "", "pwned.txt"))).toBe(false);
  });

  it("lets a benign call the settings allow run with no request, and turns an ask rule's call into an approval request", async () => {
    const plain = await executeEvents(
      daemon.client.execute({ sessionId: "plain", prompt: `${bash("touch fine.txt")} go`, config: { allowedTools: ["Bash"] } }),
    );
    expect(turnEndOf(plain).outcome).toBe(TurnOutcome.COMPLETED);
    expect(requestsIn(plain)).toEqual([]);
    const { session } = await daemon.client.getSnapshot({ sessionId: "plain" });
    expect(existsSync(path.join(session?.workDir ?? "", "fine.txt"))).toBe(true);

    const asked = await turnSeeing(
      daemon.client,
      "ask",
      `${bash("touch asked-first.txt")} go`,
      { allowedTools: ["Bash"], approvalMode: ApprovalMode.CLIENT },
      async (request) => {
        await daemon.client.respondPermission({ sessionId: "ask", requestId: request.requestId, decision: allow() });
      },
    );
    expect(turnEndOf(asked).outcome).toBe(TurnOutcome.COMPLETED);
    expect(matchesIn(asked).some((m) => m.severity === RuleSeverity.ASK && m.ruleId === ASK_RULE.id)).toBe(true);
    expect(requestsIn(asked).map((r) => r.command)).toEqual(["touch asked-first.txt"]);
    const { session: askSession } = await daemon.client.getSnapshot({ sessionId: "ask" });
    expect(existsSync(path.join(askSession?.workDir ?? "", "asked-first.txt"))).toBe(true);
  });
});

// Asks before any `touch` of a file named "asked-*" (an operator's rule).
const ASK_RULE: CustomRuleSpec = {
  id: "custom.ask-touch",
  severity: "ask",
  description: "touching asked-* files needs a human",
  match: { kind: "command", program: "touch", args: ["asked-*"] },
};
