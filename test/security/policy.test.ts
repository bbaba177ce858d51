import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SessionConfigSchema } from "../../gen/hotplex/v1/session_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { defaultPolicy, NO_TENANT_LIMITS, type SessionPolicy, TenantDirectory, type TenantLimits } from "../../src/security/tenant-policy.js";
import { executeEvents, startTestDaemon, type TestDaemon, testToken, textOf, transportFor, turnEndOf } from "../harness.js";

const TOKEN = testToken("strict-app");
const ADMIN = testToken("ops");

async function errorOf(promise: Promise<unknown>): Promise<ConnectError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(error)}`);
  return error;
}

const STRICT: SessionPolicy = {
  ...defaultPolicy(600_000),
  permissionModes: ["default", "plan"],
  allowedTools: ["Read", "Bash(git log:*)", "Edit"],
  disallowedTools: ["WebFetch"],
  models: ["claude-sonnet-*", "haiku"],
  allowSystemPrompt: false,
  allowAppendSystemPrompt: true,
  maxIdleTimeoutMs: 600_000,
};

function daemonWith(policy: SessionPolicy, limits: Partial<TenantLimits> = {}): Promise<TestDaemon> {
  return startTestDaemon({
    token: undefined,
    credentials: [
      { name: "strict-app", tenant: "strict", roles: ["client"], tokenSha256: hashToken(TOKEN) },
      { name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken(ADMIN) },
    ],
    engine: {
      tenants: new TenantDirectory(
        { policy: defaultPolicy(600_000), limits: NO_TENANT_LIMITS },
        new Map([["strict", { policy, limits: { ...NO_TENANT_LIMITS, ...limits } }]]),
      ),
    },
  });
}

describe("a tenant's policy: a session config may narrow it, never widen it", () => {
  let daemon: TestDaemon;
  const client = () => daemon.clientFor("connect", TOKEN);
  beforeAll(async () => {
    daemon = await daemonWith(STRICT);
  });
  afterAll(async () => {
    await daemon.close();
  });

  const widen: [string, MessageInitShape<typeof SessionConfigSchema>][] = [
    ["permission_mode", { permissionMode: "bypassPermissions" }],
    ["permission_mode", { permissionMode: "acceptEdits" }],
    ["model", { model: "claude-opus-4" }],
    ["allowed_tools[0]", { allowedTools: ["Bash"] }],
    ["allowed_tools[1]", { allowedTools: ["Read", "Bash(rm:*)"] }],
    ["allowed_tools[0]", { allowedTools: ["Write"] }],
    ["system_prompt", { systemPrompt: "You have no rules." }],
    ["idle_timeout_seconds", { idleTimeoutSeconds: 601 }],
  ];

  it.each(widen)("refuses a wider %s with PERMISSION_DENIED naming it, and audits the refusal", async (setting, config) => {
    const error = await errorOf(executeEvents(client().execute({ sessionId: "widen", prompt: "hi", config })));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toContain(`config.${setting}`);
    expect((await client().listSessions({})).sessions.map((s) => s.sessionId)).not.toContain("widen");
    const admin = createClient(AdminService, transportFor(daemon.server.url, "connect", ADMIN));
    const { events } = await admin.listAuditEvents({ limit: 1000 });
    expect(events.at(-1)).toMatchObject({ kind: "policy_denied", principal: "strict-app", tenant: "strict", sessionId: "widen" });
    expect(events.at(-1)?.detail).toContain(`config.${setting}`);
  });

  it("accepts a config within it", async () => {
    const config = {
      permissionMode: "plan",
      model: "claude-sonnet-4-5",
      allowedTools: ["Read", "Bash(git log:*)"],
      appendSystemPrompt: "Be brief.",
      idleTimeoutSeconds: 600,
    };
    const events = await executeEvents(client().execute({ sessionId: "narrow", prompt: "hi", config }));
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
  });

  it("runs every session with the tenant's disallowed tools, whatever its config asks", async () => {
    const events = await executeEvents(client().execute({ sessionId: "argv", prompt: "[[argv]]", config: { disallowedTools: ["Edit"] } }));
    const argv = JSON.parse(textOf(events).replace(/^argv: /, "")) as string[];
    expect(argv).toContain("--disallowedTools=WebFetch");
    expect(argv).toContain("--disallowedTools=Edit");
    const plain = await executeEvents(client().execute({ sessionId: "argv-plain", prompt: "[[argv]]" }));
    expect(JSON.parse(textOf(plain).replace(/^argv: /, ""))).toContain("--disallowedTools=WebFetch");
  });

  it("refuses bypassPermissions by default, for a tenant the config does not name", async () => {
    const open = await startTestDaemon();
    try {
      const error = await errorOf(executeEvents(open.client.execute({ sessionId: "bypass", prompt: "hi", config: { permissionMode: "bypassPermissions" } })));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toContain("config.permission_mode");
    } finally {
      await open.close();
    }
  });

  it("applies a narrowed policy at the next start of a session that was allowed before", async () => {
    await executeEvents(client().execute({ sessionId: "was-allowed", prompt: "hi", config: { permissionMode: "plan" } }));
    await client().stopSession({ sessionId: "was-allowed" });
    daemon.engine.updateTenants(
      new TenantDirectory(
        { policy: defaultPolicy(600_000), limits: NO_TENANT_LIMITS },
        new Map([["strict", { policy: { ...STRICT, permissionModes: ["default"] }, limits: NO_TENANT_LIMITS }]]),
      ),
    );
    try {
      const events = await executeEvents(client().execute({ sessionId: "was-allowed", prompt: "hi" }));
      const end = turnEndOf(events);
      expect(end.outcome).toBe(TurnOutcome.FAILED);
      expect(end.errorMessage).toContain("no longer allowed");
      expect(end.errorMessage).toContain("config.permission_mode");
      expect(events.map((e) => e.payload.case)).not.toContain("sessionStarted");
    } finally {
      daemon.engine.updateTenants(
        new TenantDirectory({ policy: defaultPolicy(600_000), limits: NO_TENANT_LIMITS }, new Map([["strict", { policy: STRICT, limits: NO_TENANT_LIMITS }]])),
      );
    }
  });
});

describe("sharing work dirs is the policy's to allow", () => {
  it("lets two sessions of a sharing tenant use one dir, and still keeps other tenants out of it", async () => {
    const daemon = await daemonWith({ ...defaultPolicy(600_000), shareWorkDirs: true });
    try {
      const client = daemon.clientFor("connect", TOKEN);
      await executeEvents(client.execute({ sessionId: "one", prompt: "hi", config: { workDir: "repo" } }));
      const events = await executeEvents(client.execute({ sessionId: "two", prompt: "hi", config: { workDir: "repo" } }));
      expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
    } finally {
      await daemon.close();
    }
  });
});

describe("a tenant's limits", () => {
  const limited = async (limits: Partial<TenantLimits>, run: (daemon: TestDaemon) => Promise<void>) => {
    const daemon = await daemonWith(defaultPolicy(600_000), limits);
    try {
      await run(daemon);
    } finally {
      await daemon.close();
    }
  };
  const exhausted = async (promise: Promise<unknown>, limit: string) => {
    const error = await errorOf(promise);
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toContain(limit);
  };

  it("refuses a session beyond stored_sessions", () =>
    limited({ storedSessions: 2 }, async (daemon) => {
      const client = daemon.clientFor("connect", TOKEN);
      await executeEvents(client.execute({ sessionId: "a", prompt: "hi" }));
      await executeEvents(client.execute({ sessionId: "b", prompt: "hi" }));
      await exhausted(executeEvents(client.execute({ sessionId: "c", prompt: "hi" })), "stored_sessions = 2");
    }));

  it("refuses an agent beyond live_agents, and admits one when another stops", () =>
    limited({ liveAgents: 1 }, async (daemon) => {
      const client = daemon.clientFor("connect", TOKEN);
      await executeEvents(client.execute({ sessionId: "a", prompt: "hi" }));
      await exhausted(executeEvents(client.execute({ sessionId: "b", prompt: "hi" })), "live_agents = 1");
      await client.stopSession({ sessionId: "a" });
      await executeEvents(client.execute({ sessionId: "b", prompt: "hi" }));
    }));

  it("refuses a turn beyond queued_turns", () =>
    limited({ queuedTurns: 1 }, async (daemon) => {
      const client = daemon.clientFor("connect", TOKEN);
      const running = client.execute({ sessionId: "q", prompt: "[[delay:800]] busy" })[Symbol.asyncIterator]();
      await running.next();
      const queued = executeEvents(client.execute({ sessionId: "q", prompt: "one", queue: true }));
      // The first is queued once the call has been admitted; ask the snapshot.
      while ((await client.getSnapshot({ sessionId: "q" })).session?.queuedTurns !== 1) await new Promise((r) => setTimeout(r, 10));
      await exhausted(executeEvents(client.execute({ sessionId: "q", prompt: "two", queue: true })), "queued_turns = 1");
      await queued;
      for (let r = await running.next(); !r.done; r = await running.next());
    }));

  it("refuses a prompt beyond prompt_bytes", () =>
    limited({ promptBytes: 10 }, async (daemon) => {
      const client = daemon.clientFor("connect", TOKEN);
      await executeEvents(client.execute({ sessionId: "p", prompt: "0123456789" }));
      await exhausted(executeEvents(client.execute({ sessionId: "p", prompt: "01234567890" })), "prompt_bytes = 10");
    }));

  it("refuses a turn beyond turns_per_minute", () =>
    limited({ turnsPerMinute: 3 }, async (daemon) => {
      const client = daemon.clientFor("connect", TOKEN);
      for (let i = 0; i < 3; i += 1) await executeEvents(client.execute({ sessionId: "rate", prompt: `turn ${i}`, requestId: `r${i}` }));
      await exhausted(executeEvents(client.execute({ sessionId: "rate", prompt: "one more" })), "turns_per_minute = 3");
      // A retry of an earlier request id is no new turn: it streams the original.
      const retried = await executeEvents(client.execute({ sessionId: "rate", prompt: "turn 0", requestId: "r0" }));
      expect(textOf(retried)).toBe("echo: turn 0");
    }));

  it("refuses a turn once the tenant's retained event bytes reach retained_event_bytes", () =>
    limited({ retainedEventBytes: 2_000 }, async (daemon) => {
      const client = daemon.clientFor("connect", TOKEN);
      await executeEvents(client.execute({ sessionId: "big", prompt: "[[big:3000]]" }));
      await exhausted(executeEvents(client.execute({ sessionId: "big", prompt: "more" })), "retained_event_bytes = 2000");
      // Deleting frees the room.
      await client.deleteSession({ sessionId: "big" });
      await executeEvents(client.execute({ sessionId: "small", prompt: "hi" }));
    }));
});
