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
import { type AgentStart, type Command, capabilities, type LaunchConfig, type ParsedOutput, type Provider, type ProviderCapabilities, type StartupFailure } from "../provider.js";
import { isObject, JsonRpcError, type JsonRpcId, JsonRpcPeer } from "../transport/jsonrpc.js";
import { launchStdio, StdioAgentConnection, type StdioLines } from "../transport/stdio-ndjson.js";
import { agentVersion } from "../version.js";
import type { LoadGuard } from "./gemini-chats.js";
import { type AcpQuirks, acpQuirks } from "./quirks.js";
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
 * hotplex's sandbox), and asks for no approvals: the agent runs in its quirks' session mode
 * (Gemini: yolo); a permission request that still comes is refused.
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
    this.capabilities = capabilities({ interrupt: true, resume: this.quirks.loadSession });
    this.envAllowList = this.quirks.envAllowList;
  }

  validateConfig(config: LaunchConfig): void {
    const refuse = (field: string, why: string) => {
      throw new HotplexError("invalid_argument", `config.${field} is not supported by provider ${this.name}: ${why}`);
    };
    if (config.permissionMode) refuse("permission_mode", "the agent runs without asking (hotplex sets its session mode)");
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
    if (config.allowedTools.length > 0 || config.permissionMode || config.appendSystemPrompt || (config.systemPrompt && !this.quirks.systemPromptFileEnv)) {
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
  readonly capabilities: ProviderCapabilities;
  readonly exited: Promise<ProcessExit>;
  readonly #start: AgentStart;
  readonly #peer: JsonRpcPeer;
  readonly #provider: AcpProvider;
  #updates: AcpUpdates | undefined;
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
  // The agent's open requests, by the id the session knows.
  readonly #agentRequests = new Map<string, { id: JsonRpcId; method: string; params: unknown }>();

  private constructor(start: AgentStart, lines: StdioLines, peer: JsonRpcPeer, provider: AcpProvider) {
    super(lines);
    this.#start = start;
    this.#peer = peer;
    this.#provider = provider;
    this.capabilities = provider.capabilities;
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
    // The agent waits for every open permission request before it ends a cancelled turn.
    for (const [requestId, request] of this.#agentRequests) {
      if (request.method !== "session/request_permission") continue;
      this.#agentRequests.delete(requestId);
      this.#peer.respond(request.id, { outcome: { outcome: "cancelled" } });
    }
  }

  refuse(requestId: string, message: string): void {
    const request = this.#agentRequests.get(requestId);
    if (!request) return;
    this.#agentRequests.delete(requestId);
    if (request.method !== "session/request_permission") {
      this.#peer.respondError(request.id, -32601, message);
      return;
    }
    // Rejected: the agent tells its model, and goes on with the turn.
    const params = isObject(request.params) ? request.params : {};
    const options = Array.isArray(params.options) ? params.options.filter(isObject).slice(0, 100) : [];
    const reject = options.find((o) => o.kind === "reject_once" && typeof o.optionId === "string") ?? options.find((o) => o.kind === "reject_always" && typeof o.optionId === "string");
    this.#peer.respond(request.id, reject ? { outcome: { outcome: "selected", optionId: reject.optionId } } : { outcome: { outcome: "cancelled" } });
    const toolCall = isObject(params.toolCall) ? params.toolCall : {};
    const toolCallId = typeof toolCall.toolCallId === "string" ? toolCall.toolCallId.slice(0, 256) : "";
    for (const item of this.#updates?.permissionRefused(toolCallId, `refused: ${message}`) ?? []) this.emit(item);
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
      await this.#configure(sessionId, session, config.model, quirks);
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

  // The session's mode and model, as the quirks and the config want them.
  async #configure(sessionId: string, session: Record<string, unknown>, model: string, quirks: AcpQuirks): Promise<void> {
    const modes = isObject(session.modes) && Array.isArray(session.modes.availableModes) ? session.modes.availableModes.filter(isObject) : [];
    if (quirks.sessionMode && modes.some((m) => m.id === quirks.sessionMode)) {
      await this.#peer.request("session/set_mode", { sessionId, modeId: quirks.sessionMode });
    }
    const models = isObject(session.models) ? session.models : undefined;
    const current = models && typeof models.currentModelId === "string" ? models.currentModelId.slice(0, 200) : "";
    if (model) {
      if (!models) throw new StartupError(`config.model is not supported by provider ${this.#provider.name}: the agent offers no choice of model`);
      try {
        await this.#peer.request("session/set_model", { sessionId, modelId: model });
      } catch (error) {
        const message = error instanceof JsonRpcError ? error.message : String(error);
        throw new StartupError(`the agent refused model ${JSON.stringify(model.slice(0, 100))}: ${message}`);
      }
    }
    this.#model = model || current;
  }

  /** From the peer: one notification. */
  onNotification(method: string, params: unknown): void {
    if (method !== "session/update") {
      this.later(() => this.emit(raw(params, "unknown_notification", method.slice(0, 100))));
      return;
    }
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

  /** Reports now, or once the first turn has started (at most 1000 such reports are kept). */
  later(report: () => void): void {
    if (this.#turnStarted) report();
    else if (this.#early.length < 1000) this.#early.push(report);
  }

  /** From the peer: the agent asks something (answered through the session, by refuse()). */
  onRequest(id: JsonRpcId, method: string, params: unknown): void {
    if (this.#agentRequests.size >= MAX_OPEN_REQUESTS || !this.#turnStarted) {
      this.#peer.respondError(id, -32000, this.#turnStarted ? "too many open requests" : "no turn is running");
      return;
    }
    const requestId = `${typeof id}:${String(id).slice(0, 128)}`;
    if (this.#agentRequests.has(requestId)) {
      this.#peer.respondError(id, -32600, "a request with this id is already open");
      return;
    }
    this.#agentRequests.set(requestId, { id, method, params });
    if (method === "session/request_permission" && isObject(params)) {
      for (const item of this.#updates?.permissionAsked(params.toolCall) ?? []) this.emit(item);
    }
    this.emit({ type: "control_request", requestId, subtype: method.slice(0, 100) });
  }

  emit(item: ParsedOutput): void {
    this.#start.handlers.onOutput(item);
  }
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
