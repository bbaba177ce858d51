import { realpathSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { execa } from "execa";
import { HotplexError } from "../../errors.js";
import { RawOutputSchema, TurnEndedSchema, TurnOutcome } from "../../events/event.js";
import type { ProcessExit } from "../../process/agent-process.js";
import { LaunchError } from "../../process/launcher.js";
import type { AgentConnection } from "../connection.js";
import {
  type AgentDecision,
  type AgentModel,
  type AgentStart,
  capabilities,
  type LaunchConfig,
  type LiveSettings,
  type ParsedOutput,
  type Provider,
  type ProviderCapabilities,
  type StartupFailure,
} from "../provider.js";
import { configContent, MODEL, type OperatorSettings, readOperatorSettings } from "./config.js";
import { OpenCodeEvents } from "./events.js";
import { nativeOpenCode } from "./executable.js";
import { findCut, MESSAGE_ID } from "./fork.js";
import { jsonOf, type Reply } from "./http.js";
import { ascendingMessageId, ITEM_ID, SESSION_ID } from "./ids.js";
import { modelsOf } from "./models.js";
import { answerCall, APPROVAL_RULES, rulesToAdd } from "./requests.js";
import { type OpenCodeServer, OpenCodeSupervisor, type ServerSink } from "./server.js";

/** What OpenCode needs from the daemon's environment: the model API's endpoint and key. */
export const OPENCODE_ENV: readonly string[] = ["ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"];

// What a refused re-attach says (classifyStartupFailure maps it to "resume_missing").
const SESSION_MISSING = "opencode session not found";

const VERSION_TIMEOUT_MS = 15_000;

export interface OpenCodeOptions {
  /** The `opencode` executable (the npm package's bin, or a binary); default: the package installed with hotplex. */
  executable?: string;
  /** The operator's model API settings (see OperatorSettings); default: the daemon's environment. */
  settingsFile?: string;
}

/**
 * OpenCode through ONE `opencode serve` per daemon, over HTTP and server-sent events:
 * each hotplex session is an OpenCode session on it (created in the session's work dir,
 * re-attached by id after a restart of either). The server is started by the first
 * session, restarted when it dies (its sessions stay in its state dirs) and ended at
 * daemon shutdown.
 *
 * Interactive control: with approvals a conversation gets rules of its own that ask
 * before the tools that change things (its `permission.asked` and `question.asked` go to
 * the host); the model goes with each prompt, so a new one takes effect on the next; a
 * fork is OpenCode's fork of the parent conversation (up to a turn: cut after that
 * turn's messages), moved into the fork's own work dir.
 *
 * One server per tenant: its sandbox holds the tenant's work root and every conversation
 * of the tenant, and the tools of one session run with the server's rights (they can
 * read the other sessions' work dirs of the same tenant and reach the server's API).
 * Tenants never share a server.
 */
export class OpenCodeProvider implements Provider {
  readonly name = "opencode";
  readonly capabilities = capabilities({
    interrupt: true,
    approvals: true,
    questions: true,
    fork: true,
    forkAtTurn: true,
    setModel: true,
    listModels: true,
  });
  readonly envAllowList = OPENCODE_ENV;
  readonly #executable: string;
  readonly #settingsFile: string | undefined;
  /** One server per tenant (see the class comment). */
  readonly #supervisors = new Map<string, OpenCodeSupervisor>();

  constructor(options: OpenCodeOptions = {}) {
    this.#executable = nativeOpenCode(options.executable);
    this.#settingsFile = options.settingsFile;
  }

  /** The running server (tests and diagnostics), if any. */
  get server(): OpenCodeServer | undefined {
    for (const supervisor of this.#supervisors.values()) if (supervisor.current) return supervisor.current;
    return undefined;
  }

  validateConfig(config: LaunchConfig): void {
    const refuse = (field: string, why: string) => {
      throw new HotplexError("invalid_argument", `config.${field} is not supported by provider ${this.name}: ${why}`);
    };
    if (config.model && !MODEL.test(config.model)) {
      throw new HotplexError(
        "invalid_argument",
        `config.model ${JSON.stringify(config.model.slice(0, 100))} is not a model of provider ${this.name}: use "provider/model", e.g. "anthropic/claude-sonnet-4-5"`,
      );
    }
    if (config.permissionMode) refuse("permission_mode", "OpenCode has no permission modes (the server sets its permissions)");
    if (config.allowedTools.length > 0) refuse("allowed_tools", "OpenCode's tool rules are the shared server's");
    if (config.disallowedTools.length > 0) refuse("disallowed_tools", "OpenCode's tool rules are the shared server's");
    if (config.systemPrompt) refuse("system_prompt", "OpenCode keeps its own system prompt; use append_system_prompt, which it adds to each prompt");
  }

  async connect(start: AgentStart): Promise<AgentConnection> {
    if (start.config.disallowedTools.length > 0) {
      throw new LaunchError(`the tenant's policy disallows tools (${start.config.disallowedTools.join(", ")}), which provider ${this.name} cannot enforce`);
    }
    const operator: OperatorSettings = this.#settingsFile ? readOperatorSettings(this.#settingsFile) : {};
    const config = configContent(start.env, operator);
    // A tenant's server sees that tenant's work dirs and keeps its conversations apart:
    // what one session's tools can reach through it (the server's rights, its password,
    // the other sessions on it) stays within the tenant.
    let supervisor = this.#supervisors.get(start.tenant);
    if (!supervisor) {
      supervisor = new OpenCodeSupervisor(this.#executable);
      this.#supervisors.set(start.tenant, supervisor);
    }
    const serverPaths = {
      workRoot: path.join(start.daemonPaths.workRoot, start.tenant),
      stateRoot: path.join(start.daemonPaths.stateRoot, ".opencode-tenants", start.tenant),
    };
    const tenantSupervisor = supervisor;
    const acquire = () =>
      tenantSupervisor.acquire({ launcher: start.launcher, daemonPaths: serverPaths, env: start.env, maxLineBytes: start.maxLineBytes, config });
    return OpenCodeConnection.open(start, acquire, this.capabilities);
  }

  /** `opencode --version`, with a private HOME and XDG dirs (it creates cache dirs even for that). */
  async version(): Promise<string> {
    const home = await mkdtemp(path.join(tmpdir(), "hotplex-opencode-version-"));
    try {
      const result = await execa(this.#executable, ["--version"], {
        reject: false,
        timeout: VERSION_TIMEOUT_MS,
        stdin: "ignore",
        extendEnv: false,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: home,
          XDG_CONFIG_HOME: path.join(home, "config"),
          XDG_DATA_HOME: path.join(home, "data"),
          XDG_CACHE_HOME: path.join(home, "cache"),
          XDG_STATE_HOME: path.join(home, "state"),
          OPENCODE_DISABLE_AUTOUPDATE: "1",
          OPENCODE_DISABLE_MODELS_FETCH: "1",
        },
      });
      if (result.exitCode !== 0) return "";
      return String(result.stdout).split("\n")[0]?.trim().slice(0, 200) ?? "";
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }

  transcriptFiles(): string[] {
    // Conversations live in the shared server's database, not in the session's HOME.
    return [];
  }

  classifyStartupFailure(_stderr: string, fatalMessage: string | undefined): StartupFailure | undefined {
    return fatalMessage?.includes(SESSION_MISSING) ? "resume_missing" : undefined;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#supervisors.values()].map((supervisor) => supervisor.close()));
  }
}

/** The exit of a run that ended by itself (closed, or the server gone: then the server's). */
const CLOSED: ProcessExit = { exitCode: 0, signal: undefined, spawnError: undefined, stderrTail: "" };

/** One hotplex session's conversation on the shared server. */
class OpenCodeConnection implements AgentConnection {
  readonly pid = 0;
  readonly identity = "";
  readonly capabilities: ProviderCapabilities;
  readonly exited: Promise<ProcessExit>;
  readonly #start: AgentStart;
  #resolveExit: ((exit: ProcessExit) => void) | undefined;
  #alive = true;
  // Outputs wait until the session has the connection (its first prompt).
  #gate: ParsedOutput[] | undefined = [];
  #ready: Promise<boolean> = Promise.resolve(false);
  #server: OpenCodeServer | undefined;
  #sessionID = "";
  #events: OpenCodeEvents | undefined;
  #unsubscribe: (() => void) | undefined;
  #interruptWanted = false;
  // A prompt waits for the setup; an interrupt meanwhile cancels it.
  #promptPending = false;
  #cancelPending = false;
  #abortSent = false;
  #turnEnded: (() => void)[] = [];
  // Until the server shows the run's first prompt, what it says is the echo of the setup
  // (a fork's copied messages, a resumed conversation's last updates), no turn's.
  #settled = false;
  // The model of the next prompts ("" for the server's default): the session's, until
  // applySettings changes it (OpenCode takes a model with each prompt).
  #model: string;

  private constructor(start: AgentStart, capabilities: ProviderCapabilities) {
    this.#start = start;
    this.#model = start.config.model;
    this.capabilities = capabilities;
    this.exited = new Promise((resolve) => (this.#resolveExit = resolve));
  }

  static open(start: AgentStart, acquire: () => Promise<OpenCodeServer>, capabilities: ProviderCapabilities): OpenCodeConnection {
    const connection = new OpenCodeConnection(start, capabilities);
    connection.#ready = connection.#setup(acquire);
    return connection;
  }

  get alive(): boolean {
    return this.#alive;
  }

  prompt(text: string): void {
    this.#openGate();
    this.#promptPending = true;
    this.#cancelPending = false;
    void this.#ready.then(async (ready) => {
      this.#promptPending = false;
      const server = this.#server;
      const events = this.#events;
      if (!ready || !this.#alive || !server || !events) return;
      if (this.#cancelPending) {
        // Interrupted while the server was being set up: the prompt never goes out.
        this.#emitAll([{ type: "turn_end", turnEnded: create(TurnEndedSchema, { outcome: TurnOutcome.INTERRUPTED, errorMessage: "interrupted before the prompt was sent" }) }]);
        return;
      }
      const messageID = ascendingMessageId();
      this.#interruptWanted = false;
      this.#abortSent = false;
      events.begin(messageID);
      const { config, paths } = this.#start;
      const model = MODEL.exec(this.#model);
      const body = {
        messageID,
        parts: [{ type: "text", text }],
        ...(model ? { model: { providerID: model[1], modelID: model[2] } } : {}),
        ...(config.appendSystemPrompt ? { system: config.appendSystemPrompt } : {}),
      };
      let failure: string | undefined;
      try {
        const reply = await server.client.request("POST", `/session/${this.#sessionID}/prompt_async`, { query: { directory: paths.workDir }, body });
        if (reply.status !== 204 && reply.status !== 200) failure = `the opencode server refused the prompt: HTTP ${reply.status} ${errorText(reply.body)}`;
      } catch (error) {
        failure = `cannot send the prompt to the opencode server: ${(error as Error).message}`;
      }
      // A server that died takes the run with it; that exit tells the session.
      if (failure && this.#alive && server.alive) this.#emitAll(events.fail(failure));
    });
  }

  interrupt(): void {
    if (this.#promptPending) this.#cancelPending = true;
    if (!this.#events?.running) return;
    this.#interruptWanted = true;
    this.#abortIfWanted();
  }

  refuse(requestId: string, message: string): void {
    const server = this.#server;
    if (!server?.alive) return;
    const directory = this.#start.paths.workDir;
    const request = requestId.startsWith("que_")
      ? server.client.request("POST", `/question/${encodeURIComponent(requestId)}/reject`, { query: { directory } })
      : server.client.request("POST", `/permission/${encodeURIComponent(requestId)}/reply`, { query: { directory }, body: { reply: "reject", message } });
    request.catch(() => {});
  }

  answer(requestId: string, decision: AgentDecision): void {
    // Forgotten first: whatever becomes of the reply, the request no longer waits on us.
    const request = this.#events?.answered(requestId);
    const server = this.#server;
    if (!server?.alive || !ITEM_ID.test(requestId)) return;
    const call = answerCall(requestId, request, decision);
    server.client.request("POST", call.path, { query: { directory: this.#start.paths.workDir }, body: call.body }).catch(() => {});
  }

  async applySettings(settings: LiveSettings): Promise<void> {
    if (settings.permissionMode) throw new Error("OpenCode has no permission modes");
    const model = settings.model;
    if (model === undefined) return;
    if (model && !MODEL.test(model)) throw new Error(`${JSON.stringify(model.slice(0, 100))} is not "provider/model"`);
    if (model && !(await this.listModels()).some((known) => known.id === model)) {
      throw new Error(`the opencode server offers no model ${JSON.stringify(model.slice(0, 100))}`);
    }
    // The next prompt carries it: nothing to tell the server before.
    this.#model = model;
  }

  async listModels(): Promise<AgentModel[]> {
    const server = (await this.#ready) ? this.#server : undefined;
    if (!server?.alive) throw new Error("the opencode server is gone");
    const reply = await server.client.request("GET", "/config/providers", { query: { directory: this.#start.paths.workDir }, maxBytes: 16 * 1024 * 1024 });
    if (reply.status !== 200) throw new Error(`the opencode server did not list its models: HTTP ${reply.status} ${errorText(reply.body)}`);
    return modelsOf(jsonOf(reply));
  }

  async close(graceMs: number): Promise<ProcessExit> {
    if (!this.#alive) return this.exited;
    if (this.#promptPending) this.#cancelPending = true;
    if (this.#events?.running) {
      // Nothing of the turn may run on: abort it (once the server has it) and wait for
      // its end, within the grace.
      const ended = new Promise<void>((resolve) => this.#turnEnded.push(resolve));
      this.#interruptWanted = true;
      this.#abortIfWanted();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([ended, this.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      if (this.#events.running && this.#alive) void this.#abort();
    }
    this.#end(CLOSED);
    return this.exited;
  }

  // The server (started when there is none), then the conversation: a new one in the
  // session's work dir, or the one to continue.
  async #setup(acquire: () => Promise<OpenCodeServer>): Promise<boolean> {
    let server: OpenCodeServer;
    try {
      server = await acquire();
    } catch (error) {
      const message = error instanceof LaunchError ? error.message : String(error);
      this.#end({ exitCode: undefined, signal: undefined, spawnError: message, stderrTail: "" });
      return false;
    }
    if (!this.#alive) return false;
    this.#server = server;
    void server.exited.then((exit) => this.#end(exit));
    const { mode, providerSessionId } = this.#start;
    try {
      const sessionID = mode === "resume" ? await this.#attach(server, providerSessionId) : mode === "fork" ? await this.#fork(server) : await this.#create(server);
      if (!this.#alive) return false;
      this.#sessionID = sessionID;
      this.#events = new OpenCodeEvents(sessionID);
      const sink: ServerSink = {
        onEvent: (type, properties) => this.#onEvent(type, properties),
        onFault: (code, message) => this.#start.handlers.onFault(code, message),
      };
      this.#unsubscribe = server.subscribe(sessionID, sink);
      return true;
    } catch (error) {
      if (!this.#alive || !server.alive) return false;
      // The server could not begin the conversation: say why and end the run (the session
      // then starts it the other way, or fails the turn with this message).
      this.#emit({ type: "fatal_startup", message: (error as Error).message.slice(0, 4096) });
      this.#end({ exitCode: 1, signal: undefined, spawnError: undefined, stderrTail: "" });
      return false;
    }
  }

  async #create(server: OpenCodeServer): Promise<string> {
    const { paths } = this.#start;
    // A title of our own: without one, OpenCode asks the model for one next to the first turn.
    const title = `hotplex ${path.basename(paths.workDir)}`.slice(0, 200);
    // With approvals the conversation's own rules ask before the tools that change things.
    const permission = this.#start.config.approvals ? APPROVAL_RULES : undefined;
    const reply = await server.client.request("POST", "/session", { query: { directory: paths.workDir }, body: { title, ...(permission ? { permission } : {}) } });
    const id = sessionIdOf(reply);
    if (!id) throw new Error(`the opencode server did not create a session: HTTP ${reply.status} ${errorText(reply.body)}`);
    return id;
  }

  // A new conversation that starts as a copy of `forkFrom` (up to the turn `forkAt` ended,
  // when given), moved into this session's work dir.
  async #fork(server: OpenCodeServer): Promise<string> {
    const { forkFrom = "", forkAt, paths } = this.#start;
    const why = `cannot fork opencode session ${JSON.stringify(forkFrom.slice(0, 80))}`;
    if (!SESSION_ID.test(forkFrom)) throw new Error(`${why}: it is no opencode session id`);
    const parentReply = await server.client.request("GET", `/session/${forkFrom}`, { query: { directory: paths.workDir } });
    const parent = objectOf(jsonOf(parentReply));
    if (parentReply.status !== 200 || parent.id !== forkFrom || typeof parent.directory !== "string") {
      throw new Error(`${why}: HTTP ${parentReply.status} ${errorText(parentReply.body)}`);
    }
    let messageID: string | undefined;
    if (forkAt) {
      if (!MESSAGE_ID.test(forkAt)) throw new Error(`${why}: ${JSON.stringify(forkAt.slice(0, 80))} is no opencode message id`);
      messageID = await findCut(server.client, forkFrom, parent.directory, forkAt);
    }
    const reply = await server.client.request("POST", `/session/${forkFrom}/fork`, { query: { directory: parent.directory }, body: messageID ? { messageID } : {} });
    const id = sessionIdOf(reply);
    if (!id) throw new Error(`${why}: HTTP ${reply.status} ${errorText(reply.body)}`);
    try {
      // OpenCode puts a fork in its parent's directory; this session has one of its own.
      if (!sameDir(parent.directory, paths.workDir)) {
        const moved = await server.client.request("POST", "/experimental/control-plane/move-session", {
          query: { directory: paths.workDir },
          body: { sessionID: id, destination: { directory: paths.workDir }, moveChanges: false },
        });
        if (moved.status !== 204 && moved.status !== 200) throw new Error(`${why}: the fork cannot move into its work dir: HTTP ${moved.status} ${errorText(moved.body)}`);
      }
      // A fork copies no permission rules.
      await this.#applyRules(server, id, []);
    } catch (error) {
      await server.client.request("DELETE", `/session/${id}`, { query: { directory: paths.workDir } }).catch(() => undefined);
      throw error;
    }
    return id;
  }

  // Makes a conversation's own rules ask (approvals) or not, as this run's config says.
  async #applyRules(server: OpenCodeServer, id: string, current: unknown): Promise<void> {
    const permission = rulesToAdd(this.#start.config.approvals, current);
    if (permission.length === 0) return;
    const reply = await server.client.request("PATCH", `/session/${id}`, { query: { directory: this.#start.paths.workDir }, body: { permission } });
    if (reply.status !== 200) throw new Error(`the opencode server did not take the session's permission rules: HTTP ${reply.status} ${errorText(reply.body)}`);
  }

  async #attach(server: OpenCodeServer, id: string): Promise<string> {
    if (!SESSION_ID.test(id)) throw new Error(`${SESSION_MISSING}: ${JSON.stringify(id.slice(0, 80))} is no opencode session id`);
    const reply = await server.client.request("GET", `/session/${id}`, { query: { directory: this.#start.paths.workDir } });
    if (reply.status === 404) throw new Error(`${SESSION_MISSING}: ${id}`);
    const body = jsonOf(reply);
    const session = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
    if (reply.status !== 200 || session.id !== id) throw new Error(`the opencode server cannot give session ${id}: HTTP ${reply.status} ${errorText(reply.body)}`);
    // OpenCode runs a session in the directory it was created in, whatever it is asked.
    if (!sameDir(session.directory, this.#start.paths.workDir)) throw new Error(`${SESSION_MISSING} in this work dir: ${id} belongs to another directory`);
    await this.#applyRules(server, id, session.permission);
    return id;
  }

  #onEvent(type: string, properties: unknown): void {
    const events = this.#events;
    if (!this.#alive || !events) return;
    let outputs: ParsedOutput[];
    try {
      outputs = events.map(type, properties);
    } catch {
      outputs = [{ type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line: type, reason: "parser_error" }) } }];
    }
    if (!this.#settled) {
      this.#settled = events.acknowledged;
      // The setup's echo: it would come before the turn's start and be taken for its first words.
      if (!this.#settled) outputs = outputs.filter((item) => item.type !== "event");
    }
    this.#emitAll(outputs);
    this.#abortIfWanted();
  }

  #emitAll(outputs: ParsedOutput[]): void {
    for (const item of outputs) {
      if (item.type === "agent_request_cancelled") this.#release(item.requestId);
      this.#emit(item);
      if (item.type === "turn_end") for (const resolve of this.#turnEnded.splice(0)) resolve();
    }
  }

  // A request the agent withdrew: an abort leaves it listed on the server, waiting for
  // nobody; refusing it clears it (one the server settled already answers 404).
  #release(requestId: string): void {
    const server = this.#server;
    if (!server?.alive) return;
    const call = answerCall(requestId, undefined, { behavior: "deny", message: "withdrawn" });
    server.client.request("POST", call.path, { query: { directory: this.#start.paths.workDir }, body: call.body }).catch(() => {});
  }

  // An interrupt reaches the server once it has the turn's message: an abort before
  // that would find the session idle and the prompt would run anyway.
  #abortIfWanted(): void {
    if (!this.#interruptWanted || this.#abortSent || !this.#events?.acknowledged) return;
    this.#abortSent = true;
    void this.#abort();
  }

  async #abort(): Promise<void> {
    const server = this.#server;
    if (!server?.alive || !this.#sessionID) return;
    await server.client
      .request("POST", `/session/${this.#sessionID}/abort`, { query: { directory: this.#start.paths.workDir }, timeoutMs: 10_000 })
      .catch(() => undefined);
  }

  #emit(item: ParsedOutput): void {
    if (this.#gate) {
      if (this.#gate.length < 1000) this.#gate.push(item);
      return;
    }
    this.#start.handlers.onOutput(item);
  }

  #openGate(): void {
    const queued = this.#gate;
    if (!queued) return;
    this.#gate = undefined;
    for (const item of queued) this.#start.handlers.onOutput(item);
  }

  #end(exit: ProcessExit): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#unsubscribe?.();
    for (const resolve of this.#turnEnded.splice(0)) resolve();
    this.#resolveExit?.(exit);
  }
}

// The server may keep a directory by its real path.
function sameDir(stored: unknown, workDir: string): boolean {
  if (typeof stored !== "string") return false;
  if (stored === workDir) return true;
  try {
    return realpathSync(stored) === realpathSync(workDir);
  } catch {
    return false;
  }
}

function objectOf(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

// The id of a session the server answered with, when it is one.
function sessionIdOf(reply: Reply): string | undefined {
  const id = objectOf(jsonOf(reply)).id;
  return reply.status === 200 && typeof id === "string" && SESSION_ID.test(id) ? id : undefined;
}

// The message of an OpenCode error body ({name, data: {message}}), bounded.
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { name?: unknown; data?: { message?: unknown } };
    const name = typeof parsed.name === "string" ? parsed.name.slice(0, 100) : "";
    const message = typeof parsed.data?.message === "string" ? parsed.data.message.slice(0, 1000) : "";
    if (name || message) return `${name}${name && message ? ": " : ""}${message}`;
  } catch {
    // not JSON
  }
  return body.slice(0, 500);
}
