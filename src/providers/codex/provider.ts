import { create } from "@bufbuild/protobuf";
import path from "node:path";
import { HotplexError } from "../../errors.js";
import { RawOutputSchema, TurnEndedSchema, TurnOutcome } from "../../events/event.js";
import type { ProcessExit } from "../../process/agent-process.js";
import { LaunchError } from "../../process/launcher.js";
import type { AgentConnection } from "../connection.js";
import { type AgentStart, type Command, capabilities, type LaunchConfig, type ParsedOutput, type Provider, type ProviderCapabilities, type StartupFailure } from "../provider.js";
import { isObject, JsonRpcError, type JsonRpcId, JsonRpcPeer } from "../transport/jsonrpc.js";
import { launchStdio, StdioAgentConnection, type StdioLines } from "../transport/stdio-ndjson.js";
import { agentVersion } from "../version.js";
import { nativeCodex } from "./executable.js";
import { CodexNotifications } from "./notifications.js";

/** What Codex needs from the daemon's environment: its API key and endpoint settings. */
export const CODEX_ENV: readonly string[] = ["OPENAI_*", "AZURE_OPENAI_*"];

// Settings every hotplex-run Codex gets, over whatever its config.toml says: nothing
// online but the model API (no plugins, apps, updates, analytics), no approvals asked
// (hotplex has no approval round trip yet; a request that comes anyway is refused).
// Constants, never client values.
const CONFIG_OVERRIDES = [
  "features.plugins=false",
  "features.remote_plugin=false",
  "features.apps=false",
  "features.in_app_updates=false",
  "analytics.enabled=false",
  "check_for_update_on_startup=false",
  'approval_policy="never"',
].map((setting) => `--config=${setting}`);

// A thread id as Codex makes them (a UUID); anything else from the agent is refused.
const THREAD_ID = /^[A-Za-z0-9-]{1,128}$/;

/**
 * OpenAI Codex through `codex app-server`: one process per session, JSON-RPC on stdio,
 * a thread per conversation (resumed by id after a restart). Codex's own sandbox runs
 * only when hotplex's is off: inside hotplex's, the agent already has exactly its work
 * dir and HOME, and a nested sandbox would need namespaces the outer one withholds.
 */
export class CodexProvider implements Provider {
  readonly name = "codex";
  readonly capabilities = capabilities({ interrupt: true, approvals: true, steer: true, fork: true, setModel: true });
  readonly envAllowList = CODEX_ENV;
  readonly #executable: string;

  constructor(executable: string) {
    this.#executable = nativeCodex(executable);
  }

  validateConfig(config: LaunchConfig): void {
    const refuse = (field: string, why: string) => {
      throw new HotplexError("invalid_argument", `config.${field} is not supported by provider ${this.name}: ${why}`);
    };
    if (config.permissionMode) refuse("permission_mode", "Codex has no permission modes (the server sets its approvals)");
    if (config.allowedTools.length > 0) refuse("allowed_tools", "Codex has no tool rules");
    if (config.disallowedTools.length > 0) refuse("disallowed_tools", "Codex has no tool rules");
  }

  async connect(start: AgentStart): Promise<AgentConnection> {
    if (start.config.disallowedTools.length > 0) {
      // The tenant's policy forbids tools; Codex cannot be told to, so it does not run.
      throw new LaunchError(`the tenant's policy disallows tools (${start.config.disallowedTools.join(", ")}), which provider ${this.name} cannot enforce`);
    }
    const codexHome = path.join(start.paths.home, ".codex");
    const tmp = path.join(start.paths.home, ".tmp");
    await start.launcher.ensureAgentDir(codexHome);
    await start.launcher.ensureAgentDir(tmp);
    const command: Command = {
      file: this.#executable,
      args: ["app-server", ...CONFIG_OVERRIDES],
      // Its state (threads, rollouts) lives in the session's own HOME, never under /tmp,
      // where Codex turns its sandbox off.
      env: { CODEX_HOME: codexHome, TMPDIR: tmp },
    };
    return CodexConnection.open(start, command, this.capabilities);
  }

  version(): Promise<string> {
    return agentVersion(this.#executable);
  }

  transcriptFiles(): string[] {
    // Rollouts are kept by date under CODEX_HOME/sessions, inside the session's HOME.
    return [];
  }

  classifyStartupFailure(_stderr: string, fatalMessage: string | undefined): StartupFailure | undefined {
    if (fatalMessage?.includes("no rollout found") || fatalMessage?.includes("invalid session id")) return "resume_missing";
    return undefined;
  }
}

/** One Codex app-server process and its thread. */
class CodexConnection extends StdioAgentConnection implements AgentConnection {
  readonly capabilities: ProviderCapabilities;
  readonly exited: Promise<ProcessExit>;
  readonly #start: AgentStart;
  readonly #peer: JsonRpcPeer;
  #notes: CodexNotifications | undefined;
  // Notifications before the thread exists (the handshake's), mapped once it does.
  readonly #early: [string, unknown][] = [];
  #ready: Promise<void> = Promise.resolve();
  #interruptWanted = false;
  readonly #agentRequests = new Map<string, JsonRpcId>();

  private constructor(start: AgentStart, lines: StdioLines, peer: JsonRpcPeer, capabilities: ProviderCapabilities) {
    super(lines);
    this.#start = start;
    this.#peer = peer;
    this.capabilities = capabilities;
    this.exited = lines.agent.exited.then((exit) => {
      peer.close("the agent exited");
      return exit;
    });
  }

  static async open(start: AgentStart, command: Command, capabilities: ProviderCapabilities): Promise<CodexConnection> {
    // Lines reach the peer once both exist (the first arrives on a later tick anyway).
    let peer: JsonRpcPeer | undefined;
    let target: CodexConnection | undefined;
    const lines = await launchStdio(start, command, (line) => peer?.handleLine(line));
    peer = new JsonRpcPeer(
      lines.write,
      {
        onNotification: (method, params) => target?.onNotification(method, params),
        onRequest: (id, method) => target?.onRequest(id, method),
        onInvalid: (line, reason) => target?.emit({ type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line, reason }) } }),
      },
      { versionField: false },
    );
    const connection = new CodexConnection(start, lines, peer, capabilities);
    target = connection;
    connection.#ready = connection.#handshake();
    return connection;
  }


  prompt(text: string): void {
    void this.#ready.then(async () => {
      const notes = this.#notes;
      if (!notes) return;
      try {
        const result = await this.#peer.request("turn/start", { threadId: notes.threadId, input: [{ type: "text", text, text_elements: [] }] });
        const turn = isObject(result) && isObject(result.turn) ? result.turn : {};
        if (typeof turn.id === "string" && !notes.turnId) notes.turnId = turn.id;
      } catch (error) {
        if (!this.alive) return;
        const message = error instanceof JsonRpcError ? error.message : String(error);
        this.emit({ type: "turn_end", turnEnded: create(TurnEndedSchema, { outcome: TurnOutcome.FAILED, errorMessage: `the agent refused the turn: ${message}` }) });
      }
    }, () => {});
  }

  interrupt(): void {
    const notes = this.#notes;
    if (!notes?.turnActive || !notes.turnId) {
      // The turn has not started yet (Codex answers "no active turn" until it announced
      // it): interrupt it as soon as turn/started arrives.
      this.#interruptWanted = true;
      return;
    }
    this.#interruptWanted = false;
    this.#peer.request("turn/interrupt", { threadId: notes.threadId, turnId: notes.turnId }).catch(() => {});
  }

  refuse(requestId: string, message: string): void {
    const id = this.#agentRequests.get(requestId);
    if (id === undefined) return;
    this.#agentRequests.delete(requestId);
    this.#peer.respondError(id, -32601, message);
  }

  async close(graceMs: number): Promise<ProcessExit> {
    await this.lines.agent.process.terminate(graceMs);
    return this.exited;
  }

  // initialize, then the thread: a new one, or the conversation to continue.
  async #handshake(): Promise<void> {
    const { config, mode, providerSessionId, forkFrom, paths } = this.#start;
    try {
      await this.#peer.request("initialize", { clientInfo: { name: "hotplex", title: "hotplex", version: "1" }, capabilities: null });
      this.#peer.notify("initialized");
      const settings = {
        cwd: paths.workDir,
        approvalPolicy: "never",
        sandbox: this.#start.launcher.sandbox.enabled ? "danger-full-access" : "workspace-write",
        model: config.model || null,
        baseInstructions: config.systemPrompt || null,
        developerInstructions: config.appendSystemPrompt || null,
      };
      const result =
        mode === "resume"
          ? await this.#peer.request("thread/resume", { threadId: providerSessionId, excludeTurns: true, ...settings })
          : mode === "fork"
            ? await this.#peer.request("thread/fork", { threadId: forkFrom, excludeTurns: true, ...settings })
            : await this.#peer.request("thread/start", settings);
      const thread = isObject(result) && isObject(result.thread) ? result.thread : {};
      const threadId = typeof thread.id === "string" ? thread.id : "";
      if (!THREAD_ID.test(threadId)) throw new JsonRpcError(-32603, `the agent named no usable thread id (${JSON.stringify(threadId.slice(0, 80))})`);
      this.#notes = new CodexNotifications(threadId);
      for (const [method, params] of this.#early.splice(0)) this.onNotification(method, params);
    } catch (error) {
      // The agent could not begin the conversation: say why and end it (the session then
      // starts it the other way, or fails the turn with this message).
      const message = error instanceof JsonRpcError ? error.message : String(error);
      if (this.alive) this.emit({ type: "fatal_startup", message: message.slice(0, 4096) });
      void this.close(0);
      throw error;
    }
  }

  /** From the peer: one notification. */
  onNotification(method: string, params: unknown): void {
    const notes = this.#notes;
    if (!notes) {
      if (this.#early.length < 1000) this.#early.push([method, params]);
      return;
    }
    for (const item of notes.map(method, params)) this.emit(item);
    if (method === "turn/started" && this.#interruptWanted) this.interrupt();
    // A wish to interrupt is for the turn it was made in, never the next one.
    if (method === "turn/completed") this.#interruptWanted = false;
  }

  /** From the peer: the agent asks something (answered through the session, by refuse()). */
  onRequest(id: JsonRpcId, method: string): void {
    const requestId = String(id).slice(0, 128);
    if (this.#agentRequests.size >= 1000) {
      this.#peer.respondError(id, -32000, "too many open requests");
      return;
    }
    this.#agentRequests.set(requestId, id);
    this.emit({ type: "control_request", requestId, subtype: method.slice(0, 100) });
  }

  emit(item: ParsedOutput): void {
    this.#start.handlers.onOutput(item);
  }
}

