// Per provider, with the real CLIs against local mocks of their model APIs:
// - hot vs cold: a warm hotplex turn vs a fresh process per message (spawn, handshake,
//   resume, answer) driving the same agent with its own protocol;
// - hotplex's added latency: a warm hotplex turn vs a warm turn on the same agent CLI
//   driven directly with its own protocol (same mock, same run, interleaved).
// Sides are measured alternately in random order; ratios and differences of medians are
// reported, never single timings alone (the machines are shared and noisy).
import { PROTOCOL_VERSION } from "@agentclientprotocol/sdk";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { DEFAULT_SANDBOX } from "../src/engine/config.js";
import { pino } from "pino";
import { AgentLauncher } from "../src/process/launcher.js";
import { Sandbox } from "../src/process/sandbox.js";
import { nativeCodex } from "../src/providers/codex/executable.js";
import { configContent } from "../src/providers/opencode/config.js";
import { nativeOpenCode } from "../src/providers/opencode/executable.js";
import { type OpenCodeServer, OpenCodeSupervisor } from "../src/providers/opencode/server.js";
import type { AgentStart, Provider } from "../src/providers/provider.js";
import { providerSettings } from "../src/providers/registry.js";
import { claudeEnv, startMockAnthropic } from "../test/fixtures/mock-anthropic.js";
import { geminiEnv, geminiSettings, startMockGemini } from "../test/fixtures/mock-gemini.js";
import { codexConfigToml, startMockOpenAI } from "../test/fixtures/mock-openai-responses.js";
import { type BenchResult, isMain, repoRoot, report, type Row, summarize } from "./lib.js";
import { AGENT_ARGS, connectClient, loadNote, RawAgent, revision, shuffle, startInProcessDaemon, timedExecute } from "./overhead.js";

/** One agent process driven with its own protocol, without hotplex. */
interface DirectAgent {
  /** One warm turn: prompt sent → the agent's turn end (ms). */
  turn(prompt: string): Promise<number>;
  close(): Promise<void>;
}

interface ProviderBench {
  provider: string;
  executable: string;
  /** The daemon's agent environment, given its HOME. */
  env(home: string): Record<string, string>;
  /** Files for every new session HOME (relative path → content). */
  template?: Record<string, string>;
  /** Starts the agent directly in `cwd` with `home`, a new conversation; resolves once it answered `prompt`. */
  direct(cwd: string, home: string, prompt: string): Promise<DirectAgent>;
  /** One message on a fresh process: spawn, resume conversation `direct` made, answer, exit (ms). */
  spawnPerMessage?(cwd: string, home: string, prompt: string): Promise<number>;
}

// ---- Claude Code: stream-json on stdio ----
function claudeBench(mockUrl: string): ProviderBench {
  const executable = path.join(repoRoot, "node_modules", ".bin", "claude");
  let conversation = "";
  return {
    provider: "claude-code",
    executable,
    env: (home) => claudeEnv({ home, baseUrl: mockUrl }),
    async direct(cwd, home, prompt) {
      conversation = randomUUID();
      const agent = new RawAgent(executable, [...AGENT_ARGS, "--session-id", conversation], { cwd, env: claudeEnv({ home, baseUrl: mockUrl }) });
      await agent.turn(prompt);
      return { turn: async (p) => (await agent.turn(p)).endMs, close: () => agent.close() };
    },
    async spawnPerMessage(cwd, home, prompt) {
      const t0 = performance.now();
      const agent = new RawAgent(executable, [...AGENT_ARGS, "--resume", conversation], { cwd, env: claudeEnv({ home, baseUrl: mockUrl }) });
      await agent.turn(prompt);
      const ms = performance.now() - t0;
      await agent.close();
      return ms;
    },
  };
}

// ---- Codex: JSON-RPC on stdio (app-server) ----
class CodexDirect implements DirectAgent {
  readonly #child: ChildProcess;
  #pending = "";
  #nextId = 1;
  readonly #waiting = new Map<number, (result: Record<string, unknown>) => void>();
  #turnDone: (() => void) | undefined;
  threadId = "";

  constructor(executable: string, cwd: string, env: Record<string, string>) {
    this.#child = spawn(executable, ["app-server"], { cwd, env, stdio: ["pipe", "pipe", "ignore"] });
    this.#child.stdout!.setEncoding("utf8");
    this.#child.stdout!.on("data", (chunk: string) => {
      const lines = (this.#pending + chunk).split("\n");
      this.#pending = lines.pop() ?? "";
      for (const line of lines) this.#onLine(line);
    });
  }

  #onLine(line: string): void {
    const message = JSON.parse(line) as { id?: number; method?: string; result?: Record<string, unknown> };
    if (message.id !== undefined && message.method === undefined) this.#waiting.get(message.id)?.(message.result ?? {});
    if (message.method === "turn/completed") this.#turnDone?.();
  }

  request(method: string, params: unknown): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.#child.stdin!.write(JSON.stringify({ id, method, params }) + "\n");
    });
  }

  async begin(cwd: string, resume: string): Promise<void> {
    await this.request("initialize", { clientInfo: { name: "bench", title: "bench", version: "1" }, capabilities: null });
    this.#child.stdin!.write(JSON.stringify({ method: "initialized" }) + "\n");
    const settings = { cwd, approvalPolicy: "never", sandbox: "workspace-write" };
    const result = resume ? await this.request("thread/resume", { threadId: resume, excludeTurns: true, ...settings }) : await this.request("thread/start", settings);
    this.threadId = String((result.thread as { id?: string } | undefined)?.id ?? "");
  }

  async turn(prompt: string): Promise<number> {
    const t0 = performance.now();
    const done = new Promise<void>((resolve) => (this.#turnDone = resolve));
    await this.request("turn/start", { threadId: this.threadId, input: [{ type: "text", text: prompt, text_elements: [] }] });
    await done;
    return performance.now() - t0;
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.stdin!.end();
    await exited;
  }
}

function codexBench(mockUrl: string): ProviderBench {
  const executable = nativeCodex(path.join(repoRoot, "node_modules", ".bin", "codex"));
  const config = codexConfigToml({ baseUrl: mockUrl, envKey: "OPENAI_API_KEY", model: "gpt-5.5" });
  const envFor = (home: string) => {
    mkdirSync(path.join(home, ".codex"), { recursive: true });
    writeFileSync(path.join(home, ".codex", "config.toml"), config);
    return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, CODEX_HOME: path.join(home, ".codex"), OPENAI_API_KEY: "mock-key" };
  };
  // Spawn per message keeps a conversation of its own, in a HOME of its own: a thread is
  // written by one process at a time.
  let perMessageThread = "";
  return {
    provider: "codex",
    executable,
    env: (home) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, OPENAI_API_KEY: "mock-key" }),
    template: { ".codex/config.toml": config },
    async direct(cwd, home, prompt) {
      const agent = new CodexDirect(executable, cwd, envFor(home));
      await agent.begin(cwd, "");
      await agent.turn(prompt);
      return agent;
    },
    async spawnPerMessage(cwd, home, prompt) {
      const ownHome = `${home}-per-message`;
      if (!perMessageThread) {
        const first = new CodexDirect(executable, cwd, envFor(ownHome));
        await first.begin(cwd, "");
        await first.turn("hello, remember PINEAPPLE");
        perMessageThread = first.threadId;
        await first.close();
      }
      const t0 = performance.now();
      const agent = new CodexDirect(executable, cwd, envFor(ownHome));
      await agent.begin(cwd, perMessageThread);
      await agent.turn(prompt);
      const ms = performance.now() - t0;
      await agent.close();
      return ms;
    },
  };
}

// ---- Gemini CLI: ACP (JSON-RPC 2.0) on stdio ----
class AcpDirect implements DirectAgent {
  readonly #child: ChildProcess;
  #pending = "";
  #nextId = 1;
  readonly #waiting = new Map<number, (message: Record<string, unknown>) => void>();
  sessionId = "";

  constructor(file: string, args: string[], cwd: string, env: Record<string, string>) {
    this.#child = spawn(file, args, { cwd, env, stdio: ["pipe", "pipe", "ignore"] });
    this.#child.stdout!.setEncoding("utf8");
    this.#child.stdout!.on("data", (chunk: string) => {
      const lines = (this.#pending + chunk).split("\n");
      this.#pending = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("{")) continue;
        const message = JSON.parse(line) as Record<string, unknown>;
        if (typeof message.id === "number" && message.method === undefined) this.#waiting.get(message.id)?.(message);
        // The agent's own requests (permissions) are answered with "cancelled": the bench runs no tools.
        else if (message.id !== undefined && typeof message.method === "string") this.#send({ id: message.id, result: { outcome: { outcome: "cancelled" } } });
      }
    });
  }

  #send(message: Record<string, unknown>): void {
    this.#child.stdin!.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
  }

  async request(method: string, params: unknown): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const answer = await new Promise<Record<string, unknown>>((resolve) => {
      this.#waiting.set(id, resolve);
      this.#send({ id, method, params });
    });
    if (answer.error) throw new Error(`${method}: ${JSON.stringify(answer.error)}`);
    return (answer.result ?? {}) as Record<string, unknown>;
  }

  async begin(cwd: string): Promise<void> {
    await this.request("initialize", { protocolVersion: PROTOCOL_VERSION, clientCapabilities: {} });
    const session = await this.request("session/new", { cwd, mcpServers: [] });
    this.sessionId = String(session.sessionId ?? "");
  }

  async turn(prompt: string): Promise<number> {
    const t0 = performance.now();
    await this.request("session/prompt", { sessionId: this.sessionId, prompt: [{ type: "text", text: prompt }] });
    return performance.now() - t0;
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.stdin!.end();
    await exited;
  }
}

function geminiBench(mockUrl: string): ProviderBench {
  const executable = path.join(repoRoot, "node_modules", ".bin", "gemini");
  const settings = JSON.stringify(geminiSettings({ maxAttempts: 1 }));
  const envFor = (home: string) => {
    mkdirSync(path.join(home, ".gemini"), { recursive: true });
    mkdirSync(path.join(home, ".tmp"), { recursive: true });
    writeFileSync(path.join(home, ".gemini", "settings.json"), settings);
    return { ...geminiEnv({ home, tmpdir: path.join(home, ".tmp"), baseUrl: mockUrl }), GEMINI_CLI_NO_RELAUNCH: "true" };
  };
  return {
    provider: "gemini",
    executable,
    env: (home) => geminiEnv({ home, tmpdir: path.join(home, ".tmp"), baseUrl: mockUrl }),
    template: { ".gemini/settings.json": settings },
    async direct(cwd, home, prompt) {
      const agent = new AcpDirect(executable, ["--acp"], cwd, envFor(home));
      await agent.begin(cwd);
      await agent.turn(prompt);
      return agent;
    },
    // A new process per message cannot resume in the same minute without the provider's
    // guard (see providers/acp): the per-message side starts a new conversation each time.
    async spawnPerMessage(cwd, home, prompt) {
      const t0 = performance.now();
      const agent = new AcpDirect(executable, ["--acp"], cwd, envFor(`${home}-per-message`));
      await agent.begin(cwd);
      await agent.turn(prompt);
      const ms = performance.now() - t0;
      await agent.close();
      return ms;
    },
  };
}

// ---- OpenCode: HTTP to `opencode serve` ----
// The direct side's server is started the way hotplex starts one (the same supervisor,
// without a sandbox, in dirs of its own); its turns then go straight to OpenCode's
// blocking message route, with no hotplex in between.
class OpenCodeDirect implements DirectAgent {
  constructor(
    readonly supervisor: OpenCodeSupervisor,
    readonly server: OpenCodeServer,
    readonly sessionId: string,
    readonly cwd: string,
  ) {}

  async turn(prompt: string): Promise<number> {
    const t0 = performance.now();
    const reply = await this.server.client.request("POST", `/session/${this.sessionId}/message`, {
      query: { directory: this.cwd },
      body: { parts: [{ type: "text", text: prompt }] },
      timeoutMs: 60_000,
      maxBytes: 16 * 1024 * 1024,
    });
    if (reply.status !== 200) throw new Error(`opencode direct turn: HTTP ${reply.status}`);
    return performance.now() - t0;
  }

  async close(): Promise<void> {
    await this.supervisor.close();
  }
}

function opencodeBench(mockUrl: string): ProviderBench {
  const executable = nativeOpenCode();
  const env = (home: string) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, ANTHROPIC_BASE_URL: mockUrl, ANTHROPIC_API_KEY: "mock-key" });
  return {
    provider: "opencode",
    executable,
    env,
    async direct(cwd, home, prompt) {
      const supervisor = new OpenCodeSupervisor(executable);
      const launcher = new AgentLauncher(Sandbox.open({ ...DEFAULT_SANDBOX, mode: "off", memoryBytes: 0, processes: 0, openFiles: 0 }, pino({ level: "silent" })));
      const server = await supervisor.acquire({
        launcher,
        daemonPaths: { workRoot: cwd, stateRoot: home },
        env: env(home),
        maxLineBytes: 1 << 20,
        config: configContent(env(home), {}),
      });
      const created = await server.client.request("POST", "/session", { query: { directory: cwd }, body: { title: "bench" } });
      const sessionId = String((JSON.parse(created.body) as { id?: string }).id ?? "");
      const agent = new OpenCodeDirect(supervisor, server, sessionId, cwd);
      await agent.turn(prompt);
      return agent;
    },
  };
}

/**
 * Times each turn at the seam between hotplex and the provider: when the session hands
 * the prompt to the connection, and when the connection reports the turn's end. What
 * hotplex adds to a turn is then the time before the first and after the second, measured
 * without the agent's own variance (the model mock and the CLI take tens of ms and vary
 * by more than hotplex's whole share). The provider's own parsing of the agent's output
 * happens before the second mark, so it is not counted here.
 */
class SeamClock {
  promptAt = NaN;
  endAt = NaN;

  wrap(provider: Provider): Provider {
    const clock = this;
    const bound = <T extends object>(target: T, key: string | symbol): unknown => {
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    };
    return new Proxy(provider, {
      get(target, key) {
        if (key !== "connect") return bound(target, key);
        return async (start: AgentStart) => {
          const handlers = {
            onOutput: (item: Parameters<AgentStart["handlers"]["onOutput"]>[0]) => {
              if (item.type === "turn_end") clock.endAt = performance.now();
              start.handlers.onOutput(item);
            },
            onFault: start.handlers.onFault,
          };
          const connection = await target.connect({ ...start, handlers });
          return new Proxy(connection, {
            get(inner, name) {
              if (name === "prompt") {
                return (text: string) => {
                  clock.promptAt = performance.now();
                  inner.prompt(text);
                };
              }
              return bound(inner, name);
            },
          });
        };
      },
    });
  }
}

export async function main(): Promise<BenchResult> {
  const codeAtStart = revision();
  const startLoad = os.loadavg()[0] ?? NaN;
  const turns = Number(process.env.PROVIDER_BENCH_TURNS ?? 20);
  const coldTurns = Number(process.env.PROVIDER_BENCH_COLD ?? 8);
  const anthropic = await startMockAnthropic();
  const openai = await startMockOpenAI();
  const gemini = await startMockGemini();
  const only = process.env.PROVIDER_BENCH_ONLY?.split(",");
  const benches = [claudeBench(anthropic.url), codexBench(openai.url), geminiBench(gemini.url), opencodeBench(anthropic.url)].filter(
    (bench) => !only || only.includes(bench.provider),
  );
  const rows: Row[] = [];
  const notes: string[] = [];
  const added: Record<string, number> = {};
  const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-bench-providers-"));
  try {
    for (const bench of benches) {
      const template = path.join(scratch, `${bench.provider}-template`);
      for (const [file, content] of Object.entries(bench.template ?? {})) {
        mkdirSync(path.dirname(path.join(template, file)), { recursive: true });
        writeFileSync(path.join(template, file), content);
      }
      // The sandbox is off on the hotplex side, as the direct side has none: the difference
      // is what hotplex's own path costs (the sandbox's cost is in bench/sandbox.ts).
      const clock = new SeamClock();
      const daemon = await startInProcessDaemon({
        wrapProvider: (provider) => clock.wrap(provider),
        store: "sqlite",
        claudePath: bench.executable,
        providers: providerSettings({ [bench.provider]: bench.executable }),
        agentEnv: (home) => bench.env(home),
        agentHomeTemplate: bench.template ? template : undefined,
        sandbox: { ...DEFAULT_SANDBOX, mode: "off", memoryBytes: 0, processes: 0, openFiles: 0 },
        turnTimeoutMs: 120_000,
      });
      const client = connectClient(daemon.url);
      const directDir = path.join(daemon.scratch, "direct");
      const directHome = path.join(daemon.scratch, "direct-home");
      mkdirSync(directDir, { recursive: true });
      mkdirSync(directHome, { recursive: true });
      const hot: number[] = [];
      const addedAtSeam: number[] = [];
      const direct: number[] = [];
      const perMessage: number[] = [];
      const coldHotplex: number[] = [];
      try {
        await timedExecute(client, "warm", "hello, remember PINEAPPLE", bench.provider);
        await timedExecute(client, "warm", "warm-up", bench.provider);
        const agent = await bench.direct(directDir, directHome, "hello, remember PINEAPPLE");
        await agent.turn("warm-up");
        for (let i = 0; i < turns; i += 1) {
          for (const side of shuffle(["hot", "direct", ...(bench.spawnPerMessage && i < coldTurns ? ["per-message", "cold"] : [])])) {
            const prompt = `turn ${i}: what was the word?`;
            if (process.env.BENCH_TRACE) process.stderr.write(`${bench.provider} ${i} ${side}\n`);
            if (side === "hot") {
              const t0 = performance.now();
              const t = await timedExecute(client, "warm", prompt, bench.provider);
              if (t.outcome !== 1) throw new Error(`${bench.provider}: hotplex turn ${i} ended with outcome ${t.outcome}`);
              hot.push(t.endMs);
              addedAtSeam.push(clock.promptAt - t0 + (t0 + t.endMs - clock.endAt));
            } else if (side === "direct") {
              direct.push(await agent.turn(prompt));
            } else if (side === "per-message") {
              perMessage.push(await bench.spawnPerMessage!(directDir, directHome, prompt));
            } else {
              coldHotplex.push((await timedExecute(client, `cold-${i}`, prompt, bench.provider)).endMs);
            }
          }
        }
        await agent.close();
      } finally {
        await daemon.close();
      }
      const h = summarize(hot);
      const d = summarize(direct);
      const row = (side: string, s: ReturnType<typeof summarize>) => ({ provider: bench.provider, side, n: s.n, "median ms": s.median, "p99 ms": s.p99, "min ms": s.min });
      rows.push(
        row("hotplex warm turn (Execute → TurnEnded)", h),
        row("direct warm turn, own protocol", d),
        row("hotplex's own share of a warm turn (Execute → prompt handed over, turn end reported → TurnEnded)", summarize(addedAtSeam)),
      );
      if (perMessage.length > 0) rows.push(row("spawn per message, own protocol (resume)", summarize(perMessage)));
      if (coldHotplex.length > 0) rows.push(row("hotplex first turn of a new session (cold)", summarize(coldHotplex)));
      added[bench.provider] = summarize(addedAtSeam).median;
      notes.push(
        `${bench.provider}: hotplex's own share of a warm turn ${summarize(addedAtSeam).median.toFixed(2)} ms at the median (${summarize(addedAtSeam).p99.toFixed(2)} ms p99); warm turn vs driving the agent directly: ${(h.median - d.median).toFixed(2)} ms apart at the median (agent variance included)` +
          (perMessage.length > 0 ? `; spawn-per-message / hotplex warm: ${(summarize(perMessage).median / h.median).toFixed(1)}× at the median` : "") +
          (coldHotplex.length > 0 ? `; hotplex cold / direct spawn-per-message: ${(summarize(coldHotplex).median / summarize(perMessage).median).toFixed(2)}×` : "") +
          ".",
      );
    }
  } finally {
    await anthropic.close();
    await openai.close();
    await gemini.close();
    rmSync(scratch, { recursive: true, force: true });
  }
  const claude = added["claude-code"] ?? NaN;
  for (const [provider, ms] of Object.entries(added)) {
    if (provider === "claude-code") continue;
    notes.push(`${provider}: hotplex's share p50 ${ms.toFixed(2)} ms vs Claude Code's ${claude.toFixed(2)} ms in the same run (target: within 0.5 ms: ${ms - claude <= 0.5 ? "met" : "MISSED"}).`);
  }
  notes.push(
    `Code: ${codeAtStart}${revision() === codeAtStart ? "" : ` at start, ${revision()} at end`}. ${loadNote(startLoad)} Real CLIs against local mocks (Claude Code: mock Messages API; Codex: mock Responses API; Gemini CLI: mock Gemini API; OpenCode: its anthropic provider on the mock Messages API, one server per side, the direct side's turns on its blocking message route); hotplexd in-process, sqlite store, sandbox off on both sides.`,
    `${turns} warm turns per side (one untimed warm-up each), alternating in random order; cold sides ${coldTurns} samples each, interleaved with them. A cold hotplex turn is a new session's first turn (work dir, HOME, spawn, handshake); spawn per message resumes the conversation each time.`,
  );
  const result: BenchResult = {
    name: "providers",
    title: "Per provider: hotplex warm turn vs the agent driven directly, and vs spawn per message (real CLIs, mock APIs)",
    command: "node --import tsx bench/providers.ts",
    rows,
    notes,
  };
  report(result);
  return result;
}

if (isMain(import.meta.url)) await main();
