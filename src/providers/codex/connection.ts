import { create } from "@bufbuild/protobuf";
import { RawOutputSchema, TurnEndedSchema, TurnOutcome } from "../../events/event.js";
import type { ProcessExit } from "../../process/agent-process.js";
import type { AgentConnection } from "../connection.js";
import type { AgentDecision, AgentModel, AgentStart, Command, LiveSettings, ParsedOutput, ProviderCapabilities } from "../provider.js";
import { isObject, JsonRpcError, type JsonRpcId, JsonRpcPeer } from "../transport/jsonrpc.js";
import { launchStdio, StdioAgentConnection, type StdioLines } from "../transport/stdio-ndjson.js";
import { listCodexModels } from "./models.js";
import { CodexNotifications, THREAD_ID } from "./notifications.js";
import { type FileChangeEntry, fileChangesOf, type MappedRequest, mapServerRequest } from "./requests.js";

/**
 * Codex's approval policy for a session: "untrusted" asks before every command that is not
 * known to be harmless (and before file changes) when the host approves tool calls;
 * "never" lets Codex's own settings decide alone.
 */
export function approvalPolicy(approvals: boolean): "untrusted" | "never" {
  return approvals ? "untrusted" : "never";
}

/** How the fatal_startup of a failed thread/fork begins. */
export const FORK_FAILED = "cannot fork the thread";

// Bounds on what the agent may leave open at once.
const MAX_OPEN_REQUESTS = 1000;
const MAX_FILE_CHANGE_ITEMS = 256;

/** A request of the agent, until it is answered (through the session) or withdrawn. */
interface OpenRequest {
  id: JsonRpcId;
  /** Set for approvals and questions (agent_request); unset for what is refused at once (control_request). */
  mapped: MappedRequest | undefined;
  turnId: string;
}

const text = (value: string) => [{ type: "text", text: value, text_elements: [] }];

/** One Codex app-server process and its thread. */
export class CodexConnection extends StdioAgentConnection implements AgentConnection {
  readonly capabilities: ProviderCapabilities;
  readonly exited: Promise<ProcessExit>;
  readonly #start: AgentStart;
  readonly #peer: JsonRpcPeer;
  #notes: CodexNotifications | undefined;
  // Notifications before the thread exists (the handshake's), mapped once it does.
  readonly #early: [string, unknown][] = [];
  #ready: Promise<void> = Promise.resolve();
  #interruptWanted = false;
  readonly #requests = new Map<string, OpenRequest>();
  // The changes of file-change items in progress: their approval requests name only the item.
  readonly #fileChanges = new Map<string, FileChangeEntry[]>();
  // Settings for the next turn/start (Codex takes them per turn, and keeps them for later turns).
  #nextTurn: { model?: string } = {};
  // The id of the turn a turn/start is starting (before turn/started names it), for steer.
  #starting: Promise<string> | undefined;

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
        onRequest: (id, method, params) => target?.onRequest(id, method, params),
        onInvalid: (line, reason) => target?.emit({ type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line, reason }) } }),
      },
      { versionField: false },
    );
    const connection = new CodexConnection(start, lines, peer, capabilities);
    target = connection;
    connection.#ready = connection.#handshake();
    // A failed handshake is reported (fatal_startup); whoever waits on it sees it too.
    connection.#ready.catch(() => {});
    return connection;
  }

  prompt(prompt: string): void {
    let turnStarted: (id: string) => void = () => {};
    this.#starting = new Promise<string>((resolve) => (turnStarted = resolve));
    void this.#ready.then(async () => {
      const notes = this.#notes;
      if (!notes) return turnStarted("");
      const settings = this.#nextTurn;
      this.#nextTurn = {};
      try {
        const result = await this.#peer.request("turn/start", { threadId: notes.threadId, input: text(prompt), ...settings });
        const turn = isObject(result) && isObject(result.turn) ? result.turn : {};
        const id = typeof turn.id === "string" && THREAD_ID.test(turn.id) ? turn.id : "";
        if (id && !notes.turnId) notes.turnId = id;
        turnStarted(id);
      } catch (error) {
        turnStarted("");
        // Not taken: the next turn carries the settings again (unless newer ones came).
        this.#nextTurn = { ...settings, ...this.#nextTurn };
        if (!this.alive) return;
        const message = error instanceof JsonRpcError ? error.message : String(error);
        this.emit({ type: "turn_end", turnEnded: create(TurnEndedSchema, { outcome: TurnOutcome.FAILED, errorMessage: `the agent refused the turn: ${message}` }) });
      }
    }, () => turnStarted(""));
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
    const open = this.#take(requestId);
    if (!open) return;
    if (open.mapped) this.#peer.respond(open.id, open.mapped.respond({ behavior: "deny", message }));
    else this.#peer.respondError(open.id, -32601, message);
  }

  answer(requestId: string, decision: AgentDecision): void {
    const open = this.#take(requestId);
    if (!open) return;
    if (open.mapped) this.#peer.respond(open.id, open.mapped.respond(decision));
    else this.#peer.respondError(open.id, -32601, "hotplex does not handle this request");
  }

  async steer(message: string): Promise<void> {
    await this.#ready;
    const notes = this.#notes;
    if (!notes) throw new Error("the agent has no thread");
    // Codex takes input only into the turn it names (expectedTurnId).
    const turnId = notes.turnId || ((await this.#starting) ?? "");
    if (!turnId) throw new Error("no turn is running");
    await this.#peer.request("turn/steer", { threadId: notes.threadId, expectedTurnId: turnId, input: text(message) });
  }

  applySettings(settings: LiveSettings): Promise<void> {
    if (settings.permissionMode !== undefined) {
      return Promise.reject(new Error("Codex has no permission modes (its approvals follow the session's approval mode)"));
    }
    if (settings.model !== undefined) {
      // turn/start takes a model, not a return to the configured default.
      if (!settings.model) return Promise.reject(new Error("Codex cannot go back to its default model on a live thread"));
      this.#nextTurn = { ...this.#nextTurn, model: settings.model };
    }
    return Promise.resolve();
  }

  async listModels(): Promise<AgentModel[]> {
    await this.#ready;
    return listCodexModels((params) => this.#peer.request("model/list", params));
  }

  async close(graceMs: number): Promise<ProcessExit> {
    await this.lines.agent.process.terminate(graceMs);
    return this.exited;
  }

  // initialize, then the thread: a new one, the conversation to continue, or a copy of one.
  async #handshake(): Promise<void> {
    const { config, mode, providerSessionId, forkFrom, forkAt, paths } = this.#start;
    try {
      await this.#peer.request("initialize", { clientInfo: { name: "hotplex", title: "hotplex", version: "1" }, capabilities: null });
      this.#peer.notify("initialized");
      const settings = {
        cwd: paths.workDir,
        approvalPolicy: approvalPolicy(config.approvals),
        sandbox: this.#start.launcher.sandbox.enabled ? "danger-full-access" : "workspace-write",
        model: config.model || null,
        baseInstructions: config.systemPrompt || null,
        developerInstructions: config.appendSystemPrompt || null,
      };
      const result =
        mode === "resume"
          ? await this.#peer.request("thread/resume", { threadId: providerSessionId, excludeTurns: true, ...settings })
          : mode === "fork"
            ? await this.#peer.request("thread/fork", { threadId: forkFrom, ...(forkAt ? { lastTurnId: forkAt } : {}), excludeTurns: true, ...settings })
            : await this.#peer.request("thread/start", settings);
      const thread = isObject(result) && isObject(result.thread) ? result.thread : {};
      const threadId = typeof thread.id === "string" ? thread.id : "";
      if (!THREAD_ID.test(threadId)) throw new JsonRpcError(-32603, `the agent named no usable thread id (${JSON.stringify(threadId.slice(0, 80))})`);
      this.#notes = new CodexNotifications(threadId);
      for (const [method, params] of this.#early.splice(0)) this.onNotification(method, params);
    } catch (error) {
      // The agent could not begin the conversation: say why and end it (the session then
      // starts it the other way, or fails the turn with this message).
      const reason = error instanceof JsonRpcError ? error.message : String(error);
      // A fork that fails is not a conversation to start the other way (FORK_FAILED).
      const message = mode === "fork" ? `${FORK_FAILED} ${JSON.stringify(forkFrom)}: ${reason}` : reason;
      if (this.alive) this.emit({ type: "fatal_startup", message: message.slice(0, 4096) });
      void this.close(0);
      throw error;
    }
  }

  /** From the peer: one notification. */
  onNotification(method: string, params: unknown): void {
    // A request the agent withdrew (a turn interrupted while it waited): whatever its thread.
    if (method === "serverRequest/resolved" && isObject(params)) this.#resolved(params.requestId);
    const notes = this.#notes;
    if (!notes) {
      if (this.#early.length < 1000) this.#early.push([method, params]);
      return;
    }
    if (method === "item/started" || method === "item/completed") this.#trackFileChange(method, params);
    if (method === "turn/completed") this.#withdrawOpenRequests(params);
    for (const item of notes.map(method, params)) this.emit(item);
    if (method === "turn/started" && this.#interruptWanted) this.interrupt();
    if (method === "turn/completed") {
      // A wish to interrupt is for the turn it was made in, never the next one.
      this.#interruptWanted = false;
      this.#starting = undefined;
    }
  }

  /** From the peer: the agent asks something. Approvals and questions go to the host; the rest is refused. */
  onRequest(id: JsonRpcId, method: string, params: unknown): void {
    const requestId = String(id).slice(0, 128);
    if (this.#requests.size >= MAX_OPEN_REQUESTS || this.#requests.has(requestId)) {
      this.#peer.respondError(id, -32000, this.#requests.has(requestId) ? "a request with this id is still open" : "too many open requests");
      return;
    }
    const mapped = mapServerRequest(requestId, method, params, (itemId) => this.#fileChanges.get(itemId));
    const turnId = isObject(params) && typeof params.turnId === "string" ? params.turnId.slice(0, 128) : "";
    this.#requests.set(requestId, { id, mapped, turnId });
    if (mapped) this.emit({ type: "agent_request", request: mapped.request });
    else this.emit({ type: "control_request", requestId, subtype: method.slice(0, 100) });
  }

  emit(item: ParsedOutput): void {
    this.#start.handlers.onOutput(item);
  }

  #take(requestId: string): OpenRequest | undefined {
    const open = this.#requests.get(requestId);
    if (open) this.#requests.delete(requestId);
    return open;
  }

  // serverRequest/resolved: for a request hotplex has not answered, the agent withdrew it.
  #resolved(id: unknown): void {
    if (typeof id !== "number" && typeof id !== "string") return;
    const open = this.#take(String(id).slice(0, 128));
    if (open?.mapped) this.emit({ type: "agent_request_cancelled", requestId: open.mapped.request.requestId });
  }

  // A turn that ends ends its requests: withdrawn before its turn_end (Codex says so only
  // after it), and answered anyway so that nothing of the agent's waits.
  #withdrawOpenRequests(params: unknown): void {
    const turn = isObject(params) && isObject(params.turn) ? params.turn : {};
    const turnId = typeof turn.id === "string" ? turn.id : "";
    for (const [requestId, open] of this.#requests) {
      if (!open.mapped || (open.turnId !== "" && open.turnId !== turnId)) continue;
      this.#requests.delete(requestId);
      this.emit({ type: "agent_request_cancelled", requestId });
      this.#peer.respond(open.id, open.mapped.respond({ behavior: "deny", message: "the turn ended" }));
    }
  }

  #trackFileChange(method: string, params: unknown): void {
    const item = isObject(params) && isObject(params.item) ? params.item : undefined;
    if (item?.type !== "fileChange" || typeof item.id !== "string") return;
    const id = item.id.slice(0, 256);
    if (method === "item/completed") this.#fileChanges.delete(id);
    else if (this.#fileChanges.size < MAX_FILE_CHANGE_ITEMS) this.#fileChanges.set(id, fileChangesOf(item));
  }
}
