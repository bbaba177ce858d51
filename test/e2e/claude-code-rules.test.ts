// The tenant's rules with the real Claude Code CLI against the local mock of the Messages API:
// a blocked prompt never reaches the model, a blocked tool call is vetoed through hotplex's
// PreToolUse hook (even one the session's settings allow) while the turn completes, and an
// ask rule turns a call into an approval request. Nothing leaves the machine.
import { existsSync } from "node:fs";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Event, RuleSeverity, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { ApprovalMode } from "../../gen/hotplex/v1/session_pb.js";
import { type CustomRuleSpec, DEFAULT_SETS } from "../../src/security/rules/index.js";
import { TenantDirectory, defaultPolicy, NO_TENANT_LIMITS } from "../../src/security/tenant-policy.js";
import { type MockAnthropic } from "../fixtures/mock-anthropic.js";
import { executeEvents, type TestDaemon, turnEndOf } from "../harness.js";
import { type ClaudeE2E, startClaudeE2E } from "./claude-daemon.js";
import { allow, requestsIn, turnSeeing } from "../interactive.js";

const matchesIn = (events: Event[]) => events.flatMap((e) => (e.payload.case === "ruleMatched" ? [e.payload.value] : []));
const bash = (command: string) => `[[tool:Bash:${JSON.stringify({ command })}]]`;
// A decode-and-run that, were it to run, would only create a file in the work dir.
const DECODE_AND_RUN = `echo ${Buffer.from("touch pwned.txt").toString("base64")} | base64 -d | sh`;

describe("the tenant's rules with the real Claude Code CLI", () => {
  let e2e: ClaudeE2E;
  let mock: MockAnthropic;
  let daemon: TestDaemon;

  beforeAll(async () => {
    e2e = await startClaudeE2E("rules",
      {
        approvals: { defaultMode: "agent", timeoutMs: 60_000 },
        // An ask rule of the operator's own beside the built-in sets.
        tenants: new TenantDirectory({
          policy: defaultPolicy(600_000),
          limits: NO_TENANT_LIMITS,
          rules: { sets: DEFAULT_SETS, custom: [ASK_RULE], allowPaths: [] },
        }),
      });
    ({ mock, daemon } = e2e);
  });
  afterAll(async () => {
    await e2e?.close();
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
