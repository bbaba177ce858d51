import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { DEFAULT_SANDBOX } from "../../src/engine/config.js";
import { claudeEnv, type MockAnthropic, startMockAnthropic } from "../fixtures/mock-anthropic.js";
import { defaultPolicy, NO_TENANT_LIMITS, TenantDirectory } from "../../src/security/tenant-policy.js";
import { executeEvents, repoRoot, startTestDaemon, type TestDaemon, turnEndOf } from "../harness.js";

const claudePath = path.join(repoRoot, "node_modules", ".bin", "claude");

// The real Claude Code CLI's own Bash tool, run by the model (the mock) inside hotplex's
// sandbox: what a hostile prompt could make it do.
describe("the real Claude Code CLI's Bash tool inside the sandbox", () => {
  let mock: MockAnthropic;
  let scratch: string;
  let daemon: TestDaemon;
  let secretFile: string;

  beforeAll(async () => {
    mock = await startMockAnthropic();
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-e2e-sandbox-"));
    const dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    mkdirSync(dirs.workRoot, { recursive: true });
    mkdirSync(dirs.home, { recursive: true });
    // A file of the daemon's, outside everything an agent may see.
    secretFile = path.join(scratch, "daemon-secret");
    writeFileSync(secretFile, "daemon-secret-value");
    daemon = await startTestDaemon({
      claudePath,
      dirs,
      env: claudeEnv({ home: dirs.home, baseUrl: mock.url }),
      engine: {
        limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 },
        sandbox: { ...DEFAULT_SANDBOX, mode: "required" },
        // What the sandbox contains is the point here: no rule stops the hostile commands first.
        tenants: new TenantDirectory({ policy: defaultPolicy(600_000), limits: NO_TENANT_LIMITS, rules: { sets: [], custom: [], allowPaths: [] } }),
      },
    });
  });
  afterAll(async () => {
    await daemon?.close();
    await mock?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const bash = async (sessionId: string, command: string) => {
    const events = await executeEvents(
      daemon.client.execute({ sessionId, prompt: `[[tool:Bash:${JSON.stringify({ command })}]] go`, config: { allowedTools: ["Bash"] } }),
    );
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    const result = events.find((e) => e.payload.case === "toolResult");
    return result?.payload.case === "toolResult" ? result.payload.value.content : "";
  };

  it("runs commands in the sandbox: own PID namespace, no daemon files, no other session, read-only system", async () => {
    const escaped = `escaped-${process.pid}-${Date.now()}`;
    await bash("other", "echo other-secret > marker.txt && echo written");
    const other = await daemon.client.getSnapshot({ sessionId: "other" });
    expect(other.session?.sandbox?.enabled).toBe(true);
    const out = await bash(
      "probe",
      [
        `cat /proc/1/comm`,
        `ls /proc/${process.pid} >/dev/null 2>&1 && echo DAEMON-VISIBLE`,
        `cat ${secretFile} 2>&1`,
        `cat ${other.session!.workDir}/marker.txt 2>&1`,
        `touch /usr/${escaped} 2>&1`,
        `touch ${path.join(daemon.workRoot, escaped)} 2>&1`,
        `echo ok > inside.txt && echo inside-ok`,
      ].join("; "),
    );
    expect(out).toContain("bwrap");
    expect(out).not.toContain("DAEMON-VISIBLE");
    expect(out).not.toContain("daemon-secret-value");
    expect(out).not.toContain("other-secret");
    expect(out).toContain("inside-ok");
    expect(existsSync(`/usr/${escaped}`)).toBe(false);
    expect(existsSync(path.join(daemon.workRoot, escaped))).toBe(false);
    const probe = await daemon.client.getSnapshot({ sessionId: "probe" });
    expect(existsSync(path.join(probe.session!.workDir, "inside.txt"))).toBe(true);
  });
});

describe("the real Claude Code CLI with only its model API allowed on the network", () => {
  it("answers through the daemon's egress proxy, from a sandbox with no network of its own", async () => {
    const mock = await startMockAnthropic();
    const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-e2e-allow-"));
    const dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
    mkdirSync(dirs.workRoot, { recursive: true });
    mkdirSync(dirs.home, { recursive: true });
    const port = new URL(mock.url).port;
    const daemon = await startTestDaemon({
      claudePath,
      dirs,
      env: claudeEnv({ home: dirs.home, baseUrl: mock.url }),
      engine: {
        limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 },
        sandbox: { ...DEFAULT_SANDBOX, mode: "required", network: "allow", allowedHosts: [`127.0.0.1:${port}`] },
      },
    });
    try {
      const config = { allowedTools: ["Bash"] };
      const events = await executeEvents(daemon.client.execute({ sessionId: "allowed", prompt: "hello through the proxy", config }));
      expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
      expect(mock.requests.some((r) => JSON.stringify(r.messages).includes("hello through the proxy"))).toBe(true);
      // The same host on another port is not allowed: a Bash probe of it fails.
      const probe = await executeEvents(
        daemon.client.execute({
          sessionId: "allowed",
          prompt: `[[tool:Bash:${JSON.stringify({ command: `node -e "require('net').connect(${port},'127.0.0.1').on('connect',()=>console.log('DIRECT-OK')).on('error',e=>console.log('DIRECT',e.code))"` })}]] go`,
          config,
        }),
      );
      const result = probe.find((e) => e.payload.case === "toolResult");
      expect(result?.payload.case === "toolResult" && result.payload.value.content).toContain("DIRECT ECONNREFUSED");
    } finally {
      await daemon.close();
      await mock.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
