// The real OpenCode (`opencode serve`, one server per tenant shared by its sessions) driven through
// hotplex, against the local Anthropic mock through OpenCode's own `anthropic` provider:
// nothing leaves the machine.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/hotplex/v1/event_pb.js";
import { SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { StartKind, TurnOutcome } from "../../src/events/event.js";
import { OpenCodeProvider } from "../../src/providers/opencode/provider.js";
import { providerContract } from "../contract/contract.js";
import { conversationOf, type MockAnthropic, startMockAnthropic } from "../fixtures/mock-anthropic.js";
import { hashToken } from "../../src/security/credentials.js";
import { executeEvents, followUntil, isAlive, startTestDaemon, type TestDaemon, testToken, textOf, turnEndOf, waitUntil } from "../harness.js";

let mock: MockAnthropic;
let scratch: string;
let dirs: { workRoot: string; home: string };
let provider: OpenCodeProvider;
let daemon: TestDaemon;

const start = async () => {
  // A provider per daemon run, as a daemon has (its server password is new each time).
  provider = new OpenCodeProvider();
  daemon = await startTestDaemon({
    providerInstances: [provider],
    storeKind: "sqlite",
    dirs,
    env: {
      ANTHROPIC_BASE_URL: mock.url,
      ANTHROPIC_API_KEY: "test-key",
      // Anything but the model API would reach the mock as a proxy and be refused.
      HTTPS_PROXY: mock.url,
      HTTP_PROXY: mock.url,
      NO_PROXY: "127.0.0.1,localhost",
    },
    engine: { limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 } },
  });
};

beforeAll(async () => {
  mock = await startMockAnthropic();
  // Outside any git repo: inside one, OpenCode makes the repo the sessions' project.
  scratch = mkdtempSync(path.join(tmpdir(), "hotplex-opencode-e2e-"));
  dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
  mkdirSync(dirs.workRoot, { recursive: true });
  mkdirSync(dirs.home, { recursive: true });
  await start();
});

afterAll(async () => {
  const server = provider?.server;
  await daemon?.close();
  // The daemon's shutdown ends the shared server.
  if (server) expect(isAlive(server.pid)).toBe(false);
  await mock?.close();
  rmSync(scratch, { recursive: true, force: true });
});

const execute = (sessionId: string, prompt: string) => executeEvents(daemon.client.execute({ sessionId, prompt, config: { provider: "opencode" } }));

// Starts a turn and resolves once its TurnStarted is in: the turn runs then.
async function begin(sessionId: string, prompt: string): Promise<{ rest: Promise<Event[]> }> {
  const iterator = daemon.client.execute({ sessionId, prompt })[Symbol.asyncIterator]();
  const first = await iterator.next();
  const rest = (async () => {
    const events: Event[] = first.done ? [] : [...first.value.events];
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) events.push(...next.value.events);
    return events;
  })();
  return { rest };
}

function killServer(): number {
  const server = provider.server;
  if (!server) throw new Error("no opencode server runs");
  process.kill(-server.pid, "SIGKILL");
  return server.pid;
}

// Host processes whose command line contains `needle` (a tool's unique command).
function processesWith(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const requestsWith = (needle: string) => mock.requests.filter((r) => JSON.stringify(r.messages.at(-1) ?? {}).includes(needle));

describe("hotplex with the real OpenCode server", () => {
  it("runs a cold turn, then a hot one on the same server and conversation", async () => {
    const first = await execute("oc-chat", "remember PINEAPPLE");
    const started = first.find((e) => e.payload.case === "sessionStarted");
    if (started?.payload.case !== "sessionStarted") throw new Error("no SessionStarted");
    expect(started.payload.value).toMatchObject({ kind: StartKind.COLD, provider: "opencode", pid: 0 });
    expect(started.payload.value.providerSessionId).toMatch(/^ses_/);
    expect(textOf(first)).toBe('Hello from mock. You said: "remember PINEAPPLE"');
    expect(turnEndOf(first)).toMatchObject({ outcome: TurnOutcome.COMPLETED, numTurns: 1, result: 'Hello from mock. You said: "remember PINEAPPLE"' });

    const second = await execute("oc-chat", "what was the word?");
    expect(second.map((e) => e.payload.case)).not.toContain("sessionStarted");
    expect(turnEndOf(second).outcome).toBe(TurnOutcome.COMPLETED);
    const last = mock.requests.at(-1)!;
    expect(last.sessionId).toBe(started.payload.value.providerSessionId);
    expect(conversationOf(last)).toEqual(["user:remember PINEAPPLE", 'assistant:Hello from mock. You said: "remember PINEAPPLE"', "user:what was the word?"]);
    // One model request per plain turn: the session has a title, so none is asked for.
    expect(mock.requests.filter((r) => r.sessionId === last.sessionId)).toHaveLength(2);
    const { stats } = await daemon.client.getSessionStats({ sessionId: "oc-chat" });
    expect(stats?.turns).toBe(2);
    expect(stats?.outputTokens).toBeGreaterThan(0n);
    // The shared server runs in the sandbox when the daemon has one.
    const cmdline = readFileSync(`/proc/${provider.server!.pid}/cmdline`, "utf8").split("\0");
    expect(path.basename(cmdline[0] ?? "") === "bwrap" || cmdline.includes("bwrap")).toBe(daemon.engine.sandbox.enabled);
    // Nothing tried to leave the machine (npm registry, model catalogs, updates).
    expect(mock.log.filter((entry) => entry.method === "CONNECT" || entry.url.startsWith("http"))).toEqual([]);
  });

  it("streams a tool call with its output and the answer", async () => {
    const events = await execute("oc-tools", '[[tool:bash:{"command":"echo hi","description":"x"}]] run it');
    const use = events.find((e) => e.payload.case === "toolUse");
    expect(use?.payload.case === "toolUse" && use.payload.value).toMatchObject({ name: "bash", toolUseId: "toolu_mock_1" });
    expect(use?.payload.case === "toolUse" && JSON.parse(use.payload.value.inputJson)).toMatchObject({ command: "echo hi" });
    expect(events.filter((e) => e.payload.case === "toolUse")).toHaveLength(1);
    const result = events.find((e) => e.payload.case === "toolResult");
    expect(result?.payload.case === "toolResult" && result.payload.value).toMatchObject({ content: "hi\n", isError: false, toolUseId: "toolu_mock_1" });
    expect(textOf(events)).toContain("Tool said: hi");
    expect(turnEndOf(events)).toMatchObject({ outcome: TurnOutcome.COMPLETED, numTurns: 2 });
    const { stats } = await daemon.client.getSessionStats({ sessionId: "oc-tools" });
    expect(stats?.toolsUsed).toEqual({ bash: 1 });
  });

  it("resumes the conversation on a new server after the server was killed", async () => {
    const first = await execute("oc-phoenix", "remember MANGO");
    const started = first.find((e) => e.payload.case === "sessionStarted");
    if (started?.payload.case !== "sessionStarted") throw new Error("no SessionStarted");
    const ended = followUntil(daemon.client, "oc-phoenix", (e) => e.payload.case === "sessionEnded", BigInt(first.at(-1)!.seq));
    const pid = killServer();
    // The session's run ends with its server.
    const gone = (await ended).at(-1);
    expect(gone?.payload.case === "sessionEnded" && gone.payload.value).toMatchObject({ reason: "crashed", signal: "SIGKILL" });
    const next = await execute("oc-phoenix", "[[recall]]");
    const restarted = next.find((e) => e.payload.case === "sessionStarted");
    expect(restarted?.payload.case === "sessionStarted" && restarted.payload.value).toMatchObject({
      kind: StartKind.RESUMED,
      providerSessionId: started.payload.value.providerSessionId,
    });
    expect(textOf(next)).toBe("Earlier you said: remember MANGO");
    expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
    expect(provider.server?.pid).not.toBe(pid);
  });

  it("stops a session in the middle of a tool: nothing of its turn runs on, the server stays", async () => {
    await execute("oc-stop", "warm up");
    const marker = path.join(dirs.workRoot, "default", "oc-stop", "stop-marker");
    const sleeper = "sleep 31.4159";
    const running = await begin("oc-stop", `[[tool:bash:{"command":"${sleeper}; echo late > stop-marker","description":"x"}]] go`);
    await waitUntil(() => processesWith(sleeper).length > 0, 30_000, "the tool's process");
    const server = provider.server!;
    const { session } = await daemon.client.stopSession({ sessionId: "oc-stop" });
    expect(session?.pid).toBe(0);
    expect(session?.status).toBe(SessionStatus.DEAD);
    const events = await running.rest;
    expect(turnEndOf(events).outcome).toBe(TurnOutcome.STOPPED);
    await waitUntil(() => processesWith(sleeper).length === 0, 10_000, "the tool's process to end");
    expect(provider.server).toBe(server);
    const { stats } = await daemon.client.getSessionStats({ sessionId: "oc-stop" });
    expect(stats?.turns).toBe(2);
    // The server has the conversation idle.
    const providerSessionId = (await daemon.client.getSnapshot({ sessionId: "oc-stop" })).session!.providerSessionId;
    const status = await server.client.request("GET", "/session/status");
    expect(JSON.parse(status.body || "{}")[providerSessionId]).toBeUndefined();
    expect(() => readFileSync(marker)).toThrow();
  });

  it("ends a turn FAILED when the server crashes in it; the next turn runs on a new server", async () => {
    await execute("oc-crash", "remember CHERRY");
    const running = await begin("oc-crash", "[[delay:30000]] crash in me");
    await waitUntil(() => requestsWith("crash in me").length > 0, 30_000, "the model request");
    killServer();
    const end = turnEndOf(await running.rest);
    expect(end.outcome).toBe(TurnOutcome.FAILED);
    expect(end.errorMessage).toMatch(/exited in the middle of the turn \(killed by SIGKILL\)/);
    expect(end.stderrTail).toMatch(/the shared opencode server ended/);
    const after = await execute("oc-crash", "[[recall]]");
    expect(turnEndOf(after).outcome).toBe(TurnOutcome.COMPLETED);
    expect(textOf(after)).toContain("remember CHERRY");
  });

  it("runs two sessions at once on the one server without cross-talk", async () => {
    const [a, b] = await Promise.all([execute("oc-left", "[[chunks:6:30]] left-ALPHA"), execute("oc-right", "[[chunks:6:30]] right-BETA")]);
    expect(textOf(a)).toBe('Hello from mock. You said: "[[chunks:6:30]] left-ALPHA"');
    expect(textOf(b)).toBe('Hello from mock. You said: "[[chunks:6:30]] right-BETA"');
    expect(turnEndOf(a).outcome).toBe(TurnOutcome.COMPLETED);
    expect(turnEndOf(b).outcome).toBe(TurnOutcome.COMPLETED);
    const idOf = (events: Event[]) => {
      const started = events.find((e) => e.payload.case === "sessionStarted");
      return started?.payload.case === "sessionStarted" ? started.payload.value.providerSessionId : "";
    };
    expect(idOf(a)).not.toBe(idOf(b));
    expect(requestsWith("left-ALPHA").map((r) => r.sessionId)).toEqual([idOf(a)]);
    expect(requestsWith("right-BETA").map((r) => r.sessionId)).toEqual([idOf(b)]);
  });

  it("refuses settings OpenCode cannot take, naming the provider", async () => {
    for (const config of [{ permissionMode: "plan" }, { allowedTools: ["Bash"] }, { model: "claude-sonnet-4-5" }, { systemPrompt: "be brief" }]) {
      const refused = await executeEvents(daemon.client.execute({ sessionId: `oc-refused-${Object.keys(config)[0]}`, prompt: "x", config: { provider: "opencode", ...config } })).catch(
        (e: unknown) => e as Error,
      );
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).toMatch(/opencode/);
    }
  });

  it("adds the append system prompt to the model's system prompt", async () => {
    await executeEvents(daemon.client.execute({ sessionId: "oc-system", prompt: "hello", config: { provider: "opencode", appendSystemPrompt: "ALWAYS-SAY-PLUM" } }));
    const last = requestsWith("hello").at(-1)!;
    expect(JSON.stringify(last.system)).toContain("ALWAYS-SAY-PLUM");
  });
});

describe("provider contract: opencode (real server)", () => {
  providerContract(() => ({
    provider: "opencode",
    client: () => daemon.client,
    restart: async () => {
      await daemon.close();
      await start();
    },
    plain: (word) => `say ${word}`,
    recall: () => "[[recall]]",
    hang: () => "[[delay:60000]] hang",
    talkThenHang: () => "[[chunks:2:60000]] talk, then hang",
    crash: () => {
      killServer();
    },
    noProcessLeft: async (sessionId) => {
      // The server stays (it is shared); the session's conversation must not run on it.
      const { session } = await daemon.client.getSnapshot({ sessionId });
      const status = await provider.server?.client.request("GET", "/session/status");
      expect(JSON.parse(status?.body || "{}")[session!.providerSessionId]).toBeUndefined();
    },
  }));
});

describe("opencode interrupts (a turn timeout)", () => {
  it("interrupts a turn that runs too long with an abort: TIMED_OUT, the conversation stays warm, the next turn is not ended by the abort's idles", async () => {
    const own = mkdtempSync(path.join(tmpdir(), "hotplex-opencode-timeout-"));
    const timed = await startTestDaemon({
      providerInstances: [new OpenCodeProvider()],
      dirs: { workRoot: path.join(own, "work"), home: path.join(own, "home") },
      env: { ANTHROPIC_BASE_URL: mock.url, ANTHROPIC_API_KEY: "test-key", NO_PROXY: "127.0.0.1,localhost" },
      engine: { limits: { turnTimeoutMs: 10_000, stopGraceMs: 5_000 } },
    });
    try {
      const run = (prompt: string) => executeEvents(timed.client.execute({ sessionId: "oc-timeout", prompt, config: { provider: "opencode" } }));
      // The first turn of a new directory is slow (OpenCode sets the directory up): warm it.
      await run("warm");
      const slow = await run("[[delay:30000]] too slow");
      expect(turnEndOf(slow).outcome).toBe(TurnOutcome.TIMED_OUT);
      await waitUntil(() => requestsWith("too slow").every((r) => r.reply.kind === "aborted"), 10_000, "the model request to be aborted");
      // Right after the abort: its late idles must not end this turn early.
      const next = await run("[[chunks:3:50]] after the timeout");
      expect(next.map((e) => e.payload.case)).not.toContain("sessionStarted");
      expect(turnEndOf(next).outcome).toBe(TurnOutcome.COMPLETED);
      expect(textOf(next)).toBe('Hello from mock. You said: "[[chunks:3:50]] after the timeout"');
    } finally {
      await timed.close();
      rmSync(own, { recursive: true, force: true });
    }
  });
});

describe("opencode servers and tenants", () => {
  it("gives each tenant a server of its own, which sees only that tenant's work dirs", async () => {
    const tenantProvider = new OpenCodeProvider();
    const tokens = { acme: testToken("acme-oc"), globex: testToken("globex-oc") };
    const tenantDaemon = await startTestDaemon({
      providerInstances: [tenantProvider],
      credentials: Object.entries(tokens).map(([tenant, token]) => ({ name: tenant, tenant, roles: ["client" as const], tokenSha256: hashToken(token) })),
      env: { ANTHROPIC_BASE_URL: mock.url, ANTHROPIC_API_KEY: "test-key", HTTPS_PROXY: mock.url, HTTP_PROXY: mock.url, NO_PROXY: "127.0.0.1,localhost" },
      engine: { limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000 } },
    });
    try {
      for (const [tenant, token] of Object.entries(tokens)) {
        const client = tenantDaemon.clientFor("connect", token);
        const events = await executeEvents(client.execute({ sessionId: "shared-name", prompt: `hello from ${tenant}` }));
        expect(turnEndOf(events).outcome).toBe(TurnOutcome.COMPLETED);
      }
      // Two live servers: a tenant's tools never run with rights over another tenant's sessions.
      const roots = processesWith("--hostname=127.0.0.1").flatMap((pid) => {
        try {
          return [readlinkSync(`/proc/${pid}/cwd`)];
        } catch {
          return [];
        }
      });
      for (const tenant of Object.keys(tokens)) expect(roots.some((root) => root.endsWith(`${path.sep}${tenant}`))).toBe(true);
    } finally {
      await tenantDaemon.close();
    }
  }, 120_000);
});
