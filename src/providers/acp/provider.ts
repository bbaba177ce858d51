import { constants } from "node:fs";
import { chown, lstat, open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { PROTOCOL_VERSION } from "@agentclientprotocol/sdk";
import { create } from "@bufbuild/protobuf";
import { HotplexError } from "../../errors.js";
import { RawOutputSchema } from "../../events/event.js";
import type { ProcessExit } from "../../process/agent-process.js";
import { LaunchError } from "../../process/launcher.js";
import type { AgentConnection } from "../connection.js";
import {
  type AgentDecision,
  type AgentModel,
  type AgentStart,
  type Command,
  capabilities,
  type LaunchConfig,
  type LiveSettings,
  type ParsedOutput,
  type Provider,
  type ProviderCapabilities,
  type StartupFailure,
} from "../provider.js";
import { isObject, JsonRpcError, type JsonRpcId, JsonRpcPeer } from "../transport/jsonrpc.js";
import { launchStdio, StdioAgentConnection, type StdioLines } from "../transport/stdio-ndjson.js";
import { agentVersion } from "../version.js";
import type { LoadGuard } from "./gemini-chats.js";
import { CANCELLED, type PermissionAsk, permissionAnswer, readPermissionRequest } from "./permissions.js";
import { type AcpQuirks, acpQuirks } from "./quirks.js";
import { SessionSettings } from "./session-settings.js";
import { AcpUpdates, raw } from "./updates.js";

export interface AcpProviderOptions {
  /** The provider's name, as SessionConfig.provider selects it (e.g. "gemini"). */
  name: string;
  /** The agent's executable and its fixed arguments (e.g. ["gemini", "--acp"]); never client values. */
  command: readonly [string, ...string[]];
  /** The agent's quirks, or its kind in the table (default: the generic entry). */
  quirks?: AcpQuirks | string;
}

// A session id as the agent names it (Gemini CLI: a UUID); anything else is refused.
const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
// A session mode id (config.permission_mode) for an agent whose modes are not known before it runs.
const MODE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$/;
// JSON-RPC's code for a request its sender cancelled ($/cancel_request).
const REQUEST_CANCELLED = -32800;
// Why the agent could not continue a conversation: the session then starts a new one.
const NO_CONVERSATION = "has no saved conversation";
// How long an agent that replays a loaded conversation after its answer may take to finish.
const REPLAY_TIMEOUT_MS = 2_000;
const MAX_SETTINGS_BYTES = 1024 * 1024;
const MAX_OPEN_REQUESTS = 1000;

/**
 * Any agent that speaks the Agent Client Protocol (v1) on stdio: one process per session,
 * JSON-RPC both ways, `session/new` for a conversation (the agent names it), `session/load`
 * to continue one after a restart, one `session/prompt` per turn. What one agent needs
 * beyond the protocol comes from its entry in the quirks table.
 *
 * The client advertises no file system and no terminal (the agent uses its own, inside
 * hotplex's sandbox). Each `session/request_permission` becomes an agent_request the
 * session answers; without approvals the agent runs in its quirks' session mode (Gemini:
 * yolo), and a permission request that still comes is denied by the session. The
 * permission mode is an ACP session mode, the model the agent's model selector: both are
 * set at the start and between turns when the agent advertised them.
 */
export class AcpProvider implements Provider {
  readonly name: string;
  readonly capabilities: ProviderCapabilities;
  readonly envAllowList: readonly string[];
  readonly quirks: AcpQuirks;
  readonly #command: readonly [string, ...string[]];

  constructor(options: AcpProviderOptions) {
    this.name = options.name;
    this.#command = options.command;
    this.quirks = typeof options.quirks === "object" ? options.quirks : acpQuirks(options.quirks ?? "generic");
    // The most an ACP agent can do here; a run says what its agent advertised.
    this.capabilities = capabilities({ interrupt: true, resume: this.quirks.loadSession, approvals: true, setModel: true, setPermissionMode: true, listModels: true });
    this.envAllowList = this.quirks.envAllowList;
  }

  validateConfig(config: LaunchConfig): void {
    const refuse = (field: string, why: string) => {
      throw new HotplexError("invalid_argument", `config.${field} is not supported by provider ${this.name}: ${why}`);
    };
    if (config.permissionMode) {
      const known = this.quirks.modes;
      if (known ? !known.includes(config.permissionMode) : !MODE_ID.test(config.permissionMode)) {
        refuse("permission_mode", known ? `it is one of the agent's session modes (${known.join(", ")})` : "it is an ACP session mode id");
      }
    }
    if (config.allowedTools.length > 0) refuse("allowed_tools", "ACP has no tool rules");
    if (config.disallowedTools.length > 0) refuse("disallowed_tools", "ACP has no tool rules");
    if (config.systemPrompt && !this.quirks.systemPromptFileEnv) refuse("system_prompt", "the agent takes no system prompt");
    if (config.appendSystemPrompt) refuse("append_system_prompt", "the agent takes no addition to its system prompt");
  }

  async connect(start: AgentStart): Promise<AgentConnection> {
    const { config, paths, launcher } = start;
    if (start.mode === "fork") throw new LaunchError(`provider ${this.name} cannot fork a conversation`);
    if (config.disallowedTools.length > 0) {
      // The tenant's policy forbids tools; the agent cannot be told to, so it does not run.
      throw new LaunchError(`the tenant's policy disallows tools (${config.disallowedTools.join(", ")}), which provider ${this.name} cannot enforce`);
    }
    if (config.allowedTools.length > 0 || config.appendSystemPrompt || (config.systemPrompt && !this.quirks.systemPromptFileEnv) || (config.permissionMode && !MODE_ID.test(config.permissionMode))) {
      throw new LaunchError(`the session's config asks for settings provider ${this.name} cannot apply`);
    }
    const env: Record<string, string> = { ...this.quirks.env };
    const files: Record<string, string> = {};
    try {
      if (this.quirks.tmpDir) {
        const tmp = path.join(paths.home, this.quirks.tmpDir);
        await ensureRealDir(start, tmp);
        env.TMPDIR = tmp;
      }
      if (this.quirks.settingsFile) await writeSettings(start, this.quirks.settingsFile);
    } catch (error) {
      throw new LaunchError(`cannot prepare the agent's settings: ${String(error)}`);
    }
    if (config.systemPrompt && this.quirks.systemPromptFileEnv) {
      // A launch file in the private state dir (owner-only), never an argument.
      const file = path.join(paths.stateDir, "system-prompt.md");
      files[file] = config.systemPrompt;
      env[this.quirks.systemPromptFileEnv] = file;
    }
    const [file, ...args] = this.#command;
    const command: Command = { file, args, env, files };
    return AcpConnection.open(start, command, this);
  }

  version(): Promise<string> {
    // With the agent's constant variables (Gemini CLI re-launches itself without them).
    return agentVersion(this.#command[0], ["--version"], this.quirks.env);
  }

  transcriptFiles(): string[] {
    // The agent's own business, inside the session's HOME (Gemini: ~/.gemini/tmp/<project>/chats).
    return [];
  }

  classifyStartupFailure(_stderr: string, fatalMessage: string | undefined): StartupFailure | undefined {
    // ACP agents name new conversations themselves, so a new one never collides.
    return fatalMessage?.includes(NO_CONVERSATION) ? "resume_missing" : undefined;
  }
}

/** One ACP agent process and its session. */
class AcpConnection extends StdioAgentConnection implements AgentConnection {
  readonly exited: Promise<ProcessExit>;
  readonly #start: AgentStart;
  readonly #peer: JsonRpcPeer;
  readonly #provider: AcpProvider;
  #updates: AcpUpdates | undefined;
  // What the agent advertised it can be set to (after session/new or load).
  #settings: SessionSettings | undefined;
  // The mode and model the agent began in, for a permission mode or model set back to none.
  #initialMode = "";
  #initialModel = "";
  #model = "";
  #ready: Promise<void> = Promise.resolve();
  // What the agent said before the first turn started (the turn names the session: nothing may come before).
  readonly #early: (() => void)[] = [];
  #turnStarted = false;
  // A loaded conversation's history being replayed: not this run's events.
  #replay: { count: number; done: () => void } | undefined;
  #replayed = 0;
  // A prompt was handed over and its turn has not ended; it has been sent to the agent.
  #promptPending = false;
  #turnRunning = false;
  #interruptWanted = false;
  // The agent's open requests, by the id the session knows (a permission request with what answering it needs).
  readonly #agentRequests = new Map<string, { id: JsonRpcId; method: string; permission?: PermissionAsk }>();

  private constructor(start: AgentStart, lines: StdioLines, peer: JsonRpcPeer, provider: AcpProvider) {
    super(lines);
    this.#start = start;
    this.#peer = peer;
    this.#provider = provider;
    this.exited = lines.agent.exited.then((exit) => {
      peer.close("the agent exited");
      return exit;
    });
  }

  static async open(start: AgentStart, command: Command, provider: AcpProvider): Promise<AcpConnection> {
    // Lines reach the peer once both exist (the first arrives on a later tick anyway).
    let peer: JsonRpcPeer | undefined;
    let target: AcpConnection | undefined;
    const lines = await launchStdio(start, command, (line) => peer?.handleLine(line));
    peer = new JsonRpcPeer(lines.write, {
      onNotification: (method, params) => target?.onNotification(method, params),
      onRequest: (id, method, params) => target?.onRequest(id, method, params),
      onInvalid: (line, reason) => target?.later(() => target?.emit({ type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line: line.slice(0, 1024 * 1024), reason }) } })),
    });
    const connection = new AcpConnection(start, lines, peer, provider);
    target = connection;
    connection.#ready = connection.#handshake();
    // A failed handshake is reported (fatal_startup) and ends the process; prompt() sees it.
    connection.#ready.catch(() => {});
    return connection;
  }


  prompt(text: string): void {
    this.#promptPending = true;
    void this.#ready.then(async () => {
      const updates = this.#updates;
      if (!updates || !this.alive) return;
      this.emit({ type: "turn_start", providerSessionId: updates.sessionId, model: this.#model });
      if (!this.#turnStarted) {
        this.#turnStarted = true;
        if (this.#replayed > 0) this.emit(raw({ sessionId: updates.sessionId, replayedUpdates: this.#replayed }, "history_replay"));
        for (const report of this.#early.splice(0)) report();
      }
      this.#turnRunning = true;
      const request = this.#peer.request("session/prompt", { sessionId: updates.sessionId, prompt: [{ type: "text", text }] });
      if (this.#interruptWanted) this.interrupt();
      try {
        const result = await request;
        this.#turnEnded();
        for (const item of updates.turnEnd(result)) this.emit(item);
      } catch (error) {
        this.#turnEnded();
        // An agent that died mid-turn: the session ends the turn with the exit.
        if (!this.alive) return;
        const message = error instanceof JsonRpcError ? error.message : String(error);
        for (const item of updates.turnFailed(`the agent failed the turn: ${message}`)) this.emit(item);
      }
    }, () => {});
  }

  #turnEnded(): void {
    this.#turnRunning = false;
    this.#promptPending = false;
    this.#interruptWanted = false;
  }

  interrupt(): void {
    // No turn: nothing to stop (and nothing to carry over to the next turn).
    if (!this.#promptPending) return;
    const updates = this.#updates;
    if (!updates || !this.#turnRunning) {
      // The turn has not been sent yet: cancel it as soon as it is.
      this.#interruptWanted = true;
      return;
    }
    this.#interruptWanted = false;
    this.#peer.notify("session/cancel", { sessionId: updates.sessionId });
    // The spec's MUST: every open permission request is answered "cancelled" (the agent
    // waits for them before it ends the cancelled turn); the session hears they are withdrawn.
    for (const [requestId, request] of this.#agentRequests) {
      if (!request.permission) continue;
      this.#agentRequests.delete(requestId);
      this.#peer.respond(request.id, CANCELLED);
      this.emit({ type: "agent_request_cancelled", requestId });
    }
  }

  refuse(requestId: string, message: string): void {
    const request = this.#agentRequests.get(requestId);
    if (!request) return;
    if (request.permission) {
      this.answer(requestId, { behavior: "deny", message });
      return;
    }
    this.#agentRequests.delete(requestId);
    this.#peer.respondError(request.id, -32601, message);
  }

  answer(requestId: string, decision: AgentDecision): void {
    const request = this.#agentRequests.get(requestId);
    // Answered already (or withdrawn by a cancel): an agent request gets one answer.
    if (!request) return;
    this.#agentRequests.delete(requestId);
    if (!request.permission) {
      this.#peer.respondError(request.id, -32601, "hotplex does not serve this request");
      return;
    }
    const { result, refused } = permissionAnswer(request.permission, decision);
    this.#peer.respond(request.id, result);
    // Refused: the agent tells its model and goes on with the turn, and may never report the call's end.
    if (refused) for (const item of this.#updates?.permissionRefused(request.permission.toolCallId, refused) ?? []) this.emit(item);
  }

  get capabilities(): ProviderCapabilities {
    const settings = this.#settings;
    // Before the handshake: what the provider promises; then what the agent advertised.
    if (!settings) return this.#provider.capabilities;
    return { ...this.#provider.capabilities, setModel: settings.canSetModel, listModels: settings.canSetModel, setPermissionMode: settings.canSetMode };
  }

  async applySettings(settings: LiveSettings): Promise<void> {
    await this.#ready;
    const sessionId = this.#updates?.sessionId;
    const advertised = this.#settings;
    if (!sessionId || !advertised) throw new Error("the agent has no session");
    // Both are checked before either is sent: a refused change changes nothing.
    const mode = settings.permissionMode === undefined ? "" : this.#modeFor(settings.permissionMode);
    // No model: the one the agent began with.
    const model = settings.model === undefined ? "" : settings.model || this.#initialModel;
    if (settings.model === "" && !model) throw new Error("the agent named no model of its own to go back to: name one");
    const modeRequest = mode ? advertised.modeRequest(sessionId, mode) : undefined;
    const modelRequest = model ? advertised.modelRequest(sessionId, model) : undefined;
    if (typeof modeRequest === "string") throw new Error(modeRequest);
    if (typeof modelRequest === "string") throw new Error(modelRequest);
    if (modeRequest) {
      await this.#setting(modeRequest);
      advertised.changed("mode", mode);
    }
    if (modelRequest) {
      await this.#setting(modelRequest);
      advertised.changed("model", model);
      this.#model = model;
    }
  }

  async listModels(): Promise<AgentModel[]> {
    await this.#ready;
    if (!this.#settings?.canSetModel) throw new Error("the agent offers no choice of model");
    return this.#settings.models;
  }

  // The mode a permission mode stands for: itself, or (none) the mode the session runs in without one.
  #modeFor(permissionMode: string): string {
    if (permissionMode) return permissionMode;
    const quirks = this.#provider.quirks;
    if (!this.#start.config.approvals && quirks.sessionMode && this.#settings?.mode?.choices.some((m) => m.id === quirks.sessionMode)) return quirks.sessionMode;
    return this.#initialMode;
  }

  async #setting(request: { method: string; params: Record<string, unknown> }): Promise<void> {
    try {
      await this.#peer.request(request.method, request.params);
    } catch (error) {
      throw new Error(`${request.method} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  async close(graceMs: number): Promise<ProcessExit> {
    await this.lines.agent.process.terminate(graceMs);
    return this.exited;
  }

  // initialize, then the session: a new one, or the conversation to continue.
  async #handshake(): Promise<void> {
    const { config, mode, providerSessionId, paths } = this.#start;
    const quirks = this.#provider.quirks;
    try {
      const init = await this.#peer.request("initialize", {
        protocolVersion: PROTOCOL_VERSION,
        // No fs and no terminal: an agent given either (even one set false) routes its
        // file access through the client, which hotplex does not serve.
        clientCapabilities: {},
        clientInfo: { name: "hotplex", title: "hotplex", version: "1" },
      });
      const agentCaps = isObject(init) && isObject(init.agentCapabilities) ? init.agentCapabilities : {};
      let sessionId: string;
      let session: Record<string, unknown>;
      if (mode === "resume") {
        if (!quirks.loadSession || agentCaps.loadSession !== true) throw new StartupError(`the agent cannot load sessions: it ${NO_CONVERSATION} to continue`);
        if (!SESSION_ID.test(providerSessionId)) throw new StartupError(`the conversation id is not one the agent made: it ${NO_CONVERSATION} by that id`);
        sessionId = providerSessionId;
        session = await this.#load(sessionId, quirks);
      } else {
        const result = await this.#peer.request("session/new", { cwd: paths.workDir, mcpServers: [] });
        session = isObject(result) ? result : {};
        sessionId = typeof session.sessionId === "string" ? session.sessionId : "";
        if (!SESSION_ID.test(sessionId)) throw new StartupError(`the agent named no usable session id (${JSON.stringify(sessionId.slice(0, 80))})`);
      }
      const updates = new AcpUpdates(sessionId, { toolName: quirks.toolName });
      await this.#configure(sessionId, session, config);
      this.#updates = updates;
    } catch (error) {
      // The agent could not begin the conversation: say why and end it (the session then
      // starts it the other way, or fails the turn with this message).
      const message = error instanceof Error ? error.message : String(error);
      if (this.alive) this.emit({ type: "fatal_startup", message: message.slice(0, 4096) });
      void this.close(0);
      throw error;
    }
  }

  // session/load, guarded by the agent's quirks; the history it replays is not logged.
  async #load(sessionId: string, quirks: AcpQuirks): Promise<Record<string, unknown>> {
    const { paths } = this.#start;
    let guard: LoadGuard | undefined;
    if (quirks.prepareLoad) {
      guard = await quirks.prepareLoad(paths, sessionId);
      if (guard.missing) throw new StartupError(`the agent ${NO_CONVERSATION} with id ${sessionId}`);
      if (guard.waitMs > 0) await new Promise((resolve) => setTimeout(resolve, guard!.waitMs));
    }
    let replayEnded: Promise<void> = Promise.resolve();
    if (quirks.replayEndsWith) replayEnded = new Promise((resolve) => (this.#replay = { count: 0, done: resolve }));
    else this.#replay = { count: 0, done: () => {} };
    let result: unknown;
    try {
      result = await this.#peer.request("session/load", { sessionId, cwd: paths.workDir, mcpServers: [] });
    } catch (error) {
      this.#replay = undefined;
      await guard?.restore().catch(() => undefined);
      const message = error instanceof JsonRpcError ? error.message : String(error);
      // An agent that says it does not know the session has none to continue; any other
      // failure fails the turn, and the saved conversation stays for a later try.
      const unknown = /not found|no such session|unknown session|invalid session/i.test(message);
      throw new StartupError(`session/load of ${sessionId} failed: ${message}${unknown ? ` (the agent ${NO_CONVERSATION} by that id)` : ""}`);
    }
    await guard?.discard().catch(() => undefined);
    if (quirks.replayEndsWith) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([replayEnded, new Promise<void>((resolve) => (timer = setTimeout(resolve, REPLAY_TIMEOUT_MS)))]);
      clearTimeout(timer);
    }
    this.#replayed = this.#replay?.count ?? 0;
    this.#replay = undefined;
    return isObject(result) ? result : {};
  }

  // The session's mode and model, as the config (and, without approvals, the quirks) want them.
  async #configure(sessionId: string, session: Record<string, unknown>, config: LaunchConfig): Promise<void> {
    const settings = new SessionSettings(session);
    this.#initialMode = settings.mode?.current ?? "";
    this.#initialModel = settings.model?.current ?? "";
    const name = this.#provider.name;
    const mode = config.permissionMode || (!config.approvals && settings.mode?.choices.some((m) => m.id === this.#provider.quirks.sessionMode) ? this.#provider.quirks.sessionMode : "");
    if (mode) {
      const request = settings.modeRequest(sessionId, mode);
      if (typeof request === "string") throw new StartupError(`config.permission_mode is not supported by provider ${name}: ${request}`);
      await this.#setting(request).catch((error: Error) => {
        throw new StartupError(`the agent refused session mode ${JSON.stringify(mode)}: ${error.message}`);
      });
      settings.changed("mode", mode);
    }
    if (config.model) {
      const request = settings.modelRequest(sessionId, config.model);
      if (typeof request === "string") throw new StartupError(`config.model is not supported by provider ${name}: ${request}`);
      await this.#setting(request).catch((error: Error) => {
        throw new StartupError(`the agent refused model ${JSON.stringify(config.model.slice(0, 100))}: ${error.message}`);
      });
      settings.changed("model", config.model);
    }
    this.#model = config.model || settings.model?.current || "";
    this.#settings = settings;
  }

  /** From the peer: one notification. */
  onNotification(method: string, params: unknown): void {
    if (method === "$/cancel_request" && this.#withdraw(params)) return;
    if (method !== "session/update") {
      this.later(() => this.emit(raw(params, "unknown_notification", method.slice(0, 100))));
      return;
    }
    this.#noteSettings(params);
    const replay = this.#replay;
    if (replay) {
      replay.count += 1;
      const update = isObject(params) && isObject(params.update) ? params.update : {};
      if (update.sessionUpdate === this.#provider.quirks.replayEndsWith) replay.done();
      return;
    }
    // Only a running turn's updates are its events (Gemini CLI, say, answers session/set_mode
    // with a "[MODE_UPDATE] yolo" message chunk): anything else is kept raw.
    if (!this.#turnRunning) {
      this.later(() => this.emit(raw(params, "outside_turn")));
      return;
    }
    for (const item of this.#updates?.map(params) ?? []) this.emit(item);
  }

  // The agent withdrew one of its requests: the session hears so, and the request is
  // answered as JSON-RPC cancellation wants (with the "cancelled" error). False when it names none that is open.
  #withdraw(params: unknown): boolean {
    const id = isObject(params) ? params.requestId : undefined;
    if (typeof id !== "string" && typeof id !== "number") return false;
    const requestId = requestKey(id);
    const request = this.#agentRequests.get(requestId);
    if (!request || request.id !== id) return false;
    this.#agentRequests.delete(requestId);
    this.#peer.respondError(request.id, REQUEST_CANCELLED, "Request cancelled");
    if (request.permission) this.emit({ type: "agent_request_cancelled", requestId });
    return true;
  }

  // A change of mode or config options the agent reports (it may change its own mode).
  #noteSettings(params: unknown): void {
    if (!isObject(params) || !isObject(params.update) || !this.#settings || params.sessionId !== this.#updates?.sessionId) return;
    const update = params.update;
    if (update.sessionUpdate === "current_mode_update") this.#settings.modeChanged(update.currentModeId);
    else if (update.sessionUpdate === "config_option_update") this.#settings.readConfigOptions(update.configOptions);
  }

  /** Reports now, or once the first turn has started (at most 1000 such reports are kept). */
  later(report: () => void): void {
    if (this.#turnStarted) report();
    else if (this.#early.length < 1000) this.#early.push(report);
  }

  /**
   * From the peer: the agent asks something. A permission request goes to the session as
   * an agent_request (answered by answer()), anything else as a control_request (refused).
   * Whatever cannot be asked is answered here and now: the agent would wait for ever.
   */
  onRequest(id: JsonRpcId, method: string, params: unknown): void {
    const updates = this.#updates;
    if (this.#agentRequests.size >= MAX_OPEN_REQUESTS || !this.#turnStarted || !updates) {
      this.#peer.respondError(id, -32000, this.#turnStarted && updates ? "too many open requests" : "no turn is running");
      return;
    }
    const requestId = requestKey(id);
    if (this.#agentRequests.has(requestId)) {
      this.#peer.respondError(id, -32600, "a request with this id is already open");
      return;
    }
    if (method !== "session/request_permission") {
      this.#agentRequests.set(requestId, { id, method });
      this.emit({ type: "control_request", requestId, subtype: method.slice(0, 100) });
      return;
    }
    const permission = readPermissionRequest(requestId, params, updates.sessionId, (toolCallId, call) => updates.toolName(toolCallId, call));
    if (typeof permission === "string") {
      this.#peer.respondError(id, -32602, `invalid session/request_permission: ${permission}`);
      return;
    }
    this.#agentRequests.set(requestId, { id, method, permission });
    // An agent may name the call here first (Gemini CLI does): its ToolUse comes before the request.
    for (const item of updates.permissionAsked(permission.toolCall)) this.emit(item);
    this.emit({ type: "agent_request", request: permission.request });
  }

  emit(item: ParsedOutput): void {
    this.#start.handlers.onOutput(item);
  }
}

// The session's id of an agent's request (ids of both JSON types, kept apart).
function requestKey(id: JsonRpcId): string {
  return `${typeof id}:${String(id).slice(0, 128)}`;
}

/** Why the agent could not begin the conversation (its message goes to the turn's error). */
class StartupError extends Error {}

// The agent's JSON settings file in the session HOME: the operator's (from the HOME
// template), with hotplex's defaults under it and its forced settings over it. The HOME is
// the agent's: no link is followed, the file is replaced whole.
async function writeSettings(start: AgentStart, spec: NonNullable<AcpQuirks["settingsFile"]>): Promise<void> {
  const { home } = start.paths;
  const file = path.join(home, spec.path);
  await ensureRealDir(start, path.dirname(file));
  const existing = await readSettings(file);
  const merged = deepMerge(deepMerge(structuredClone(spec.defaults) as Record<string, unknown>, existing), spec.forced);
  const temp = `${file}.hotplex-${process.pid}`;
  await rm(temp, { force: true });
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(merged, null, 2)}\n`);
  } finally {
    await handle.close();
  }
  const { uid, gid } = start.launcher.sandbox.settings;
  if (uid !== undefined) await chown(temp, uid, gid ?? uid);
  await rename(temp, file);
}

// A directory under the session HOME, created for the agent when missing; refused when it,
// or one between it and HOME, is anything but a directory (a link the agent planted would
// send the daemon's writes and chowns elsewhere).
async function ensureRealDir(start: AgentStart, dir: string): Promise<void> {
  const { home } = start.paths;
  const relative = path.relative(home, dir);
  if (relative.startsWith("..") || path.isAbsolute(relative)) throw new Error(`${dir} is not in the session HOME`);
  const check = async () => {
    for (let d = dir; d !== home && d.startsWith(home); d = path.dirname(d)) {
      const info = await lstat(d).catch(() => undefined);
      if (info && !info.isDirectory()) throw new Error(`${path.relative(home, d)} in the session HOME is not a directory`);
    }
  };
  await check();
  await start.launcher.ensureAgentDir(dir);
  await check();
}

async function readSettings(file: string): Promise<Record<string, unknown>> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return {};
  }
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > MAX_SETTINGS_BYTES) return {};
    const parsed: unknown = JSON.parse(await handle.readFile("utf8"));
    return isObject(parsed) ? parsed : {};
  } catch {
    // Not JSON (the CLI also reads comments): replaced by hotplex's settings.
    return {};
  } finally {
    await handle.close();
  }
}

// `over` merged into `base` (objects key by key, anything else replaced); `base` is changed.
function deepMerge(base: Record<string, unknown>, over: Readonly<Record<string, unknown>>): Record<string, unknown> {
  for (const [key, value] of Object.entries(over)) {
    if (key === "__proto__" || key === "constructor" || key === "prototype") continue;
    const current = base[key];
    base[key] = isObject(value) && isObject(current) ? deepMerge(current, value) : isObject(value) ? deepMerge({}, value) : value;
  }
  return base;
}

/** What Gemini CLI needs from the daemon's environment (for the registry, which names it before the provider exists). */
export const GEMINI_ENV: readonly string[] = acpQuirks("gemini").envAllowList;
