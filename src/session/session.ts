import { randomUUID } from "node:crypto";
import { chownSync, existsSync, mkdirSync } from "node:fs";
import { copyFile, cp, mkdir } from "node:fs/promises";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { Decider, PermissionDecision, type PermissionResolved, PermissionResolvedSchema } from "../../gen/hotplex/v1/interaction_pb.js";
import { type SessionConfig, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import { HotplexError } from "../errors.js";
import {
  ConfigChangedSchema,
  ConversationResetSchema,
  StatusChangedSchema,
  TitleChangedSchema,
  TurnQueuedSchema,
  TurnSteeredSchema,
} from "../../gen/hotplex/v1/event_pb.js";
import {
  ErrorEventSchema,
  type Event,
  type EventPayload,
  RawOutputSchema,
  SessionEndedSchema,
  SessionStartedSchema,
  StartKind,
  type TurnEnded,
  TurnEndedSchema,
  TurnOutcome,
  TurnStartedSchema,
} from "../events/event.js";
import type { EventLog } from "../events/event-log.js";
import type { AgentConnection, AgentExit, ConnectionHandlers } from "../providers/connection.js";
import type { AgentDecision, AgentModel, AgentRequest, LaunchConfig, LiveSettings, ParsedOutput, Provider } from "../providers/provider.js";
import type { SessionRecord } from "../store/store.js";
import { workDirChanged } from "../security/work-dir.js";
import { type AgentLauncher, chownTree, LaunchError } from "../process/launcher.js";
import type { Sandbox } from "../process/sandbox.js";
import { AgentLog, observedLauncher } from "./agent-log.js";
import { catchUpRecord } from "./catch-up.js";
import { AgentRun, AgentRunState, startKindFor } from "./agent-run.js";
import { type LongTimeout, setLongTimeout } from "./long-timeout.js";
import { type PendingFork, REMEMBERED_REQUEST_IDS, type RequestedTurn } from "./interaction-state.js";
import { type OpenPermission, OpenPermissions, PendingRequests } from "./pending-requests.js";
import { permissionRequested, unaskable } from "./permission-request.js";
import type { RuleMatch } from "../security/rules/index.js";
import { ruleMatched, type ToolCallRules } from "./rule-matched.js";
import { SessionView } from "./session-view.js";
import type { Turn } from "./turn.js";
import { TurnQueue } from "./turn-queue.js";
import type { WarmAgent } from "./warm-agent.js";

/** Timing and size limits of one session. */
export interface SessionLimits {
  /** Turns that may wait behind the running one. */
  queueLimit: number;
  /** A turn running longer is interrupted and ends TIMED_OUT. 0 disables. */
  turnTimeoutMs: number;
  /** An idle agent process is ended after this long. 0 disables. */
  idleTimeoutMs: number;
  /** Time between SIGTERM (or an interrupt) and SIGKILL. */
  stopGraceMs: number;
  /** Bytes of the session's agent log (stderr and lifecycle, in memory; 0 keeps none). */
  sessionLogBytes?: number;
  /** The longest line of agent output; a longer one fails the turn and ends the agent. */
  maxLineBytes: number;
  /** A permission request or question with no answer after this long is denied. 0 disables. */
  approvalTimeoutMs: number;
}

export interface SessionOptions {
  tenant: string;
  sessionId: string;
  provider: Provider;
  providerSessionId: string;
  workDir: string;
  /** The daemon's work root: the work dir is checked against it again before every start. */
  workRoot: string;
  /** A directory of the daemon's, private to this session, for the agent's launch files. */
  stateDir: string;
  /** The daemon's private directory (every session's state dir lies in it). */
  stateRoot: string;
  /** The session's own HOME: only its agent's settings and transcripts are there. */
  home: string;
  /** Copied into the HOME when it is created (the operator's agent settings and credentials). */
  homeTemplate?: string;
  /** Where agents kept their transcripts before each session had its own HOME; adopted on first use. */
  legacyHome?: string;
  /** The OS sandbox and limits every agent process runs under. */
  sandbox: Sandbox;
  /** Starts agent processes (in the sandbox); handed to the provider. */
  launcher: AgentLauncher;
  /** The session's agent log (stderr and lifecycle); one of its own, bounded by the limits, when not given. */
  agentLog?: AgentLog;
  config: SessionConfig;
  /**
   * The launch settings of a config under the tenant's policy as it is now; throws a
   * HotplexError when the policy no longer allows the config. Asked at every start.
   */
  prepareLaunch: (config: SessionConfig) => LaunchConfig;
  env: Record<string, string>;
  log: EventLog;
  limits: SessionLimits;
  logger: Logger;
  /** The provider already holds this conversation: start the agent with resume. */
  hasConversation: boolean;
  /** Changes when the session id is deleted and created again. */
  incarnation: string;
  /** The registry entry of a session brought back after a daemon restart. */
  restored?: SessionRecord;
  /**
   * Asked before a new agent process starts: undefined when it may, else why not (the
   * daemon's or the tenant's limit of live agents).
   */
  whyNoProcess: () => string | undefined;
  /**
   * Makes this node the session's runner right before an agent starts (a store many nodes
   * share); rejects, saying why, when another node runs it. Unset: always this node's.
   */
  own?: () => Promise<void>;
  /** The tenant's rules for the agent's tool calls (none: every call goes on as asked). */
  rules?: ToolCallRules;
  /**
   * A pre-warmed agent started for exactly these launch settings, taken for this session
   * for the rest of the agent's life (undefined: none is ready, start one cold).
   */
  takeWarm?: (launch: LaunchConfig) => WarmAgent | undefined;
  /** Before a cold start: pre-warmed agents make way when they would hold the limits. */
  makeRoom?: () => void;
}

// How long after a turn ends its session's registry entry is stored.
const CHECKPOINT_DELAY_MS = 100;

/**
 * One conversation: its turns (TurnQueue), the run of its agent when one runs (AgentRun),
 * the requests open between them (PendingRequests) and its state (SessionView, the fold
 * of its events). This class wires them together: a turn starts a run when none takes
 * prompts, the agent's outputs become events, the run's exit ends what it leaves open.
 *
 * Exactly one turn runs at a time: a prompt is written to the agent only when the
 * previous turn has ended, because an agent may fold a message sent mid-turn into the
 * running turn without a result of its own.
 */
export class Session {
  readonly tenant: string;
  readonly sessionId: string;
  readonly log: EventLog;
  readonly view: SessionView;
  readonly incarnation: string;
  /** What the agent wrote to stderr and what happened to its processes (AdminService.GetSessionLogs). */
  readonly agentLog: AgentLog;
  config: SessionConfig;
  /** The launch settings of the running (or last) run. */
  #launch: LaunchConfig | undefined;
  readonly #options: SessionOptions;
  readonly #logger: Logger;
  /** The launcher handed to the provider: the session's own processes feed its agent log. */
  readonly #launcher: AgentLauncher;
  #hasConversation: boolean;

  readonly #turns: TurnQueue;
  /** The agent's current (or last) run. */
  #run: AgentRun | undefined;
  readonly #requests = new PendingRequests();
  /** The agent's requests waiting for a client (PermissionRequested logged, not yet resolved). */
  readonly #permissions = new OpenPermissions();
  /** The status as last logged (a StatusChanged event); the view follows it at commit. */
  #status: SessionStatus;
  /** While above 0, transitions are logged later, at once (see #onExit). */
  #statusHeld = 0;
  /** Request ids of recent turns, for retried Executes (seeded from the log after a restart). */
  readonly #requestTurns = new Map<string, RequestedTurn>();

  #pumping = false;
  #turnTimer: LongTimeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #idleTimer: LongTimeout | undefined;
  #checkpointTimer: NodeJS.Timeout | undefined;
  #idleWaiters: (() => void)[] = [];
  #closed = false;

  constructor(options: SessionOptions) {
    this.#options = options;
    this.tenant = options.tenant;
    this.sessionId = options.sessionId;
    this.log = options.log;
    this.config = options.config;
    this.#hasConversation = options.hasConversation;
    this.#logger = options.logger.child({ session: options.sessionId, tenant: options.tenant });
    this.incarnation = options.incarnation;
    this.agentLog = options.agentLog ?? new AgentLog(options.limits.sessionLogBytes);
    this.#launcher = observedLauncher(options.launcher, this.agentLog, () => this.stateDir);
    this.#turns = new TurnQueue(options.sessionId, options.limits.queueLimit);
    this.view = new SessionView(options.sessionId, options.provider.name, options.providerSessionId, options.workDir);
    if (options.restored) this.view.restore(options.restored);
    this.#status = this.view.status;
    // The view follows the log: it takes each event as it is committed, so it always
    // reflects exactly the events up to the log's lastSeq.
    this.log.onCommit = (events) => {
      for (const event of events) this.view.apply(event);
    };
  }

  get provider(): Provider {
    return this.#options.provider;
  }

  /** The session's private dir: the default for its id, or the pre-warmed agent's it took. */
  get stateDir(): string {
    return this.view.interaction.stateDir || this.#options.stateDir;
  }

  /** The session's own HOME (its agent's settings and transcripts). */
  get home(): string {
    return this.view.interaction.stateDir ? path.join(this.view.interaction.stateDir, "home") : this.#options.home;
  }

  get providerName(): string {
    return this.#options.provider.name;
  }

  /** The agent's connection while a run has one and has not ended. */
  get #agent(): AgentConnection | undefined {
    const run = this.#run;
    return run && run.state !== AgentRunState.ENDED ? run.connection : undefined;
  }

  /** True while an agent process runs or is being started. */
  get live(): boolean {
    return this.#agent !== undefined || this.#status === SessionStatus.STARTING;
  }

  /** The requests the agent has open (answered at once today; see PendingRequests). */
  get pendingRequests(): PendingRequests {
    return this.#requests;
  }

  /**
   * The session's registry entry as of the events published so far followed by `pending`
   * (those about to be stored with it, not applied to the view yet), with the agent
   * process, config and conversation as they are now.
   */
  record(pending: readonly Event[] = []): SessionRecord {
    const published = this.#publishedRecord();
    // A checkpoint with no events of its own (a touch) needs no fold: no view to rebuild.
    return pending.length === 0 ? published : catchUpRecord(published, pending, "current");
  }

  #publishedRecord(): SessionRecord {
    const view = this.view;
    const agent = this.#agent;
    return {
      key: `${this.tenant}/${this.sessionId}`,
      tenant: this.tenant,
      sessionId: this.sessionId,
      incarnation: this.incarnation,
      provider: this.#options.provider.name,
      providerSessionId: view.providerSessionId,
      workDir: view.workDir,
      config: this.config,
      status: view.status,
      createdAtMs: timestampMs(view.createdAt),
      lastActiveMs: view.lastActiveMs,
      stats: view.stats.stats,
      pgid: agent?.alive ? agent.pid : 0,
      agentCommand: agent?.alive ? agent.identity : "",
      hasConversation: this.#hasConversation,
      currentTurnId: view.currentTurn?.turnId ?? "",
      lastSeq: this.log.lastSeq,
      extras: view.interaction.toJson(),
    };
  }

  /**
   * Closes what a daemon that stopped without a shutdown left open: the turn that was
   * running ends INTERRUPTED and, if a process was running, the session ends "restart".
   * With "owner_lost", what another node left open when it lost the session (it died, or
   * stopped renewing its hold): the same, saying so, and the session ends "owner_lost".
   */
  recoverFromRestart(record: SessionRecord, cause: "restart" | "owner_lost" = "restart"): void {
    const by = cause === "restart" ? "daemon restart" : "the loss of the node that ran it (owner_lost)";
    for (const request of this.view.interaction.pendingIn()) {
      this.#appendResolved(this.view.interaction.pending.get(request.requestId)?.turnId ?? "", {
        requestId: request.requestId,
        decision: PermissionDecision.DENY,
        decidedBy: Decider.DAEMON_RESTART,
        message: cause === "restart" ? "the daemon restarted while the request waited" : "the node running the session was lost while the request waited",
      });
    }
    for (const queued of this.view.interaction.queued.values()) {
      this.log.append(queued.turnId, {
        case: "turnEnded",
        value: create(TurnEndedSchema, { outcome: TurnOutcome.INTERRUPTED, errorMessage: `interrupted by ${by} before it started` }),
      });
    }
    if (record.currentTurnId) {
      this.log.append(record.currentTurnId, {
        case: "turnEnded",
        value: create(TurnEndedSchema, { outcome: TurnOutcome.INTERRUPTED, errorMessage: `interrupted by ${by}` }),
      });
    }
    if (record.status !== SessionStatus.DEAD) {
      this.log.append("", { case: "sessionEnded", value: create(SessionEndedSchema, { reason: cause }) });
    }
    this.#syncStatus("");
  }

  get queuedTurns(): number {
    return this.#turns.waiting;
  }

  /** A turn runs or waits. */
  get busy(): boolean {
    return this.#turns.busy;
  }

  /** Resolves once no turn runs or waits (at once if none does). */
  whenIdle(): Promise<void> {
    if (!this.busy && !this.#pumping) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** The turn an earlier Execute with this request id started, if remembered. */
  turnForRequest(requestId: string): RequestedTurn | undefined {
    if (!requestId) return undefined;
    const live = this.#turns.forRequest(requestId);
    return live ? { turnId: live.id, fromSeq: live.fromSeq } : (this.#requestTurns.get(requestId) ?? this.view.interaction.turnForRequest(requestId));
  }

  /** Throws FAILED_PRECONDITION while a process runs: its config cannot change under it. */
  checkReconfigurable(): void {
    if (this.live) {
      throw new HotplexError(
        "failed_precondition",
        `session "${this.sessionId}" is running with a different config; omit config, send the same one, or StopSession first`,
      );
    }
  }

  /** Replaces the config for the next process start; refused while a process runs. */
  reconfigure(config: SessionConfig, workDir: string): void {
    this.checkReconfigurable();
    this.config = config;
    this.view.workDir = workDir;
    this.log.touch();
  }

  /**
   * Accepts a prompt. Runs it now if the session is idle; otherwise queues it when
   * `queue` is set, else fails with failed_precondition.
   */
  submit(prompt: string, requestId: string, queue: boolean): Turn {
    if (this.#closed) throw new HotplexError("unavailable", "the daemon is shutting down");
    const needsStart = !this.live;
    if (needsStart) {
      const refused = this.#options.whyNoProcess();
      if (refused && !this.#turns.busy) throw new HotplexError("resource_exhausted", refused);
    }
    const ahead = (this.#turns.current ? 1 : 0) + this.#turns.waiting;
    const turn = this.#turns.accept(prompt, requestId, queue, this.log.lastSeq);
    if (requestId) this.#rememberRequest(requestId, turn);
    if (turn.wasQueued) {
      this.#record(turn.id, { case: "turnQueued", value: create(TurnQueuedSchema, { prompt, requestId, position: ahead }) });
    }
    // STARTING counts against the live-session cap from now on, before the process exists.
    this.#syncStatus(turn.id);
    clearTimeout(this.#checkpointTimer);
    this.#clearIdleTimer();
    void this.#pump();
    return turn;
  }

  /**
   * Ends the agent process group (SIGTERM, grace, SIGKILL). The running turn and every
   * queued turn end STOPPED; a SessionEnded event with `reason` is logged.
   */
  async stop(reason = "stopped"): Promise<void> {
    this.#clearIdleTimer();
    for (const open of this.#permissions.all()) {
      this.#decide(open, { behavior: "deny", message: `the session was ${reason}` }, Decider.STOP, "");
    }
    for (const turn of this.#turns.takeWaiting()) {
      this.#finishTurn(turn, this.#daemonTurnEnd(TurnOutcome.STOPPED, `session ${reason} before the turn started`));
    }
    const current = this.#turns.current;
    if (current && !current.ended) {
      current.endedBy = "stop";
      current.stopReason = reason;
    }
    const run = this.#run;
    const agent = this.#agent;
    if (!run || !agent) {
      // Stopped while the agent was still being set up: nothing runs yet.
      if (current && !current.ended) {
        this.#announce(current);
        this.#finishTurn(current, this.#daemonTurnEnd(TurnOutcome.STOPPED, ""));
      }
      this.#syncStatus("");
      return;
    }
    if (run.state !== AgentRunState.STOPPING) this.agentLog.lifecycle(`stopping the agent: ${reason}`, agent.pid);
    run.stopping(reason);
    this.#syncStatus(current?.id ?? "");
    await agent.close(this.#options.limits.stopGraceMs);
    await run.exitHandled;
  }

  /**
   * Asks the agent to end the running turn (optionally only if it is `turnId`); the turn
   * ends INTERRUPTED and the agent stays warm. An agent that does not end it within the
   * stop grace is ended, and the next turn resumes the conversation.
   */
  interrupt(turnId: string): Turn {
    const turn = this.#turns.current;
    if (!turn || turn.ended) throw new HotplexError("failed_precondition", `session "${this.sessionId}" has no running turn to interrupt`);
    if (turnId && turn.id !== turnId) {
      throw new HotplexError("failed_precondition", `turn ${JSON.stringify(turnId.slice(0, 128))} is not running in session "${this.sessionId}" (turn ${turn.id} is)`);
    }
    if (!turn.endedBy) this.#interruptTurn(turn, "interrupt");
    return turn;
  }

  /**
   * Answers a request the agent put to the client (PermissionRequested.request_id). The
   * decision was checked by the caller for its shape; here against the request: NOT_FOUND
   * for an unknown id, FAILED_PRECONDITION once decided, INVALID_ARGUMENT for an answer
   * that does not fit the request.
   */
  respond(requestId: string, decision: AgentDecision & { interrupt?: boolean }, principal: string): number {
    const open = this.#permissions.get(requestId);
    if (!open) {
      if (this.view.interaction.decided(requestId) || this.#decidedHere.has(requestId)) {
        throw new HotplexError("failed_precondition", `request ${JSON.stringify(requestId)} was already decided (see its PermissionResolved event)`);
      }
      throw new HotplexError("not_found", `session "${this.sessionId}" has no request ${JSON.stringify(requestId.slice(0, 128))}`);
    }
    let toAgent: AgentDecision = decision;
    if (decision.behavior === "answer") {
      if (open.kind !== "question") throw new HotplexError("invalid_argument", "decision.answer answers questions only: allow or deny a permission request");
      const answers: Record<string, string> = {};
      for (const [id, answer] of Object.entries(decision.answers)) {
        const agentId = open.questionIds.get(id);
        if (agentId === undefined) throw new HotplexError("invalid_argument", `decision.answer.answers: the request has no question ${JSON.stringify(id.slice(0, 128))}`);
        answers[agentId] = answer;
      }
      const missing = [...open.questionIds.keys()].filter((id) => !Object.hasOwn(decision.answers, id));
      if (missing.length > 0) throw new HotplexError("invalid_argument", `decision.answer.answers: no answer to ${missing.map((id) => JSON.stringify(id.slice(0, 128))).join(", ")}`);
      toAgent = { behavior: "answer", answers };
    } else if (decision.behavior === "allow") {
      if (open.kind === "question") throw new HotplexError("invalid_argument", "decision.allow: answer a question with decision.answer (or decline it with deny)");
      if (decision.updatedInputJson && !open.inputEditable) {
        throw new HotplexError(
          "failed_precondition",
          `provider ${this.providerName} cannot run a changed tool input: allow without updated_input_json, or deny`,
        );
      }
    }
    const seq = this.#decide(open, toAgent, Decider.CLIENT, principal, decision.behavior === "deny" && decision.interrupt === true);
    if (decision.behavior === "deny" && decision.interrupt) {
      const turn = this.#turns.current;
      if (turn && turn.id === open.turnId && !turn.ended && !turn.endedBy) this.#interruptTurn(turn, "interrupt");
    }
    return seq;
  }

  /** Cancels a turn waiting in the queue: it ends CANCELLED without starting. */
  cancelQueued(turnId: string): void {
    const turn = this.#turns.takeWaitingTurn(turnId);
    if (!turn) {
      if (this.#turns.current?.id === turnId) {
        throw new HotplexError("failed_precondition", `turn ${turnId} is running, not queued: use Interrupt to stop it`);
      }
      throw new HotplexError("not_found", `session "${this.sessionId}" has no queued turn ${JSON.stringify(turnId.slice(0, 128))}`);
    }
    this.#finishTurn(turn, this.#daemonTurnEnd(TurnOutcome.CANCELLED, "cancelled by the client before it started"));
  }

  /** Delivers a message into the running turn; returns the TurnSteered event's seq. */
  async steer(text: string, turnId: string): Promise<{ turnId: string; seq: number }> {
    const turn = this.#runningTurn(turnId, "steer");
    const agent = this.#agent;
    if (!agent?.steer || !agent.capabilities.steer) {
      throw new HotplexError("failed_precondition", `provider ${this.providerName} cannot take a message into a running turn; queue it with Execute instead`);
    }
    await agent.steer(text).catch((error: unknown) => {
      throw new HotplexError("failed_precondition", `the agent refused the message: ${(error as Error).message}`);
    });
    if (turn.ended) throw new HotplexError("failed_precondition", `turn ${turn.id} ended before the message reached it`);
    return { turnId: turn.id, seq: this.#record(turn.id, { case: "turnSteered", value: create(TurnSteeredSchema, { prompt: text }) }) };
  }

  /**
   * Changes model and/or permission mode between turns (`config` is the whole new config,
   * checked by the caller). A live agent takes them through its protocol.
   */
  async changeSettings(settings: LiveSettings, config: SessionConfig): Promise<void> {
    if (this.busy) throw new HotplexError("failed_precondition", `session "${this.sessionId}" has a turn running or queued: change settings between turns`);
    const agent = this.#agent;
    const live = agent !== undefined && agent.alive;
    if (live) {
      const missing = [
        settings.model !== undefined && !agent.capabilities.setModel ? "the model" : "",
        settings.permissionMode !== undefined && !agent.capabilities.setPermissionMode ? "the permission mode" : "",
      ].filter(Boolean);
      if (missing.length > 0 || !agent.applySettings) {
        throw new HotplexError(
          "failed_precondition",
          `provider ${this.providerName} cannot change ${missing.join(" and ") || "settings"} of a running agent: StopSession first, then change it`,
        );
      }
      await agent.applySettings(settings).catch((error: unknown) => {
        throw new HotplexError("failed_precondition", `the agent refused the change: ${(error as Error).message}`);
      });
    }
    this.config = config;
    if (this.#launch) {
      if (settings.model !== undefined) this.#launch.model = settings.model;
      if (settings.permissionMode !== undefined) this.#launch.permissionMode = settings.permissionMode;
    }
    this.#record("", {
      case: "configChanged",
      value: create(ConfigChangedSchema, { model: config.model, permissionMode: config.permissionMode, appliedLive: live }),
    });
    this.log.touch();
  }

  /** The models the running agent offers. */
  async listModels(): Promise<AgentModel[]> {
    const agent = this.#agent;
    if (!agent?.alive) throw new HotplexError("failed_precondition", `no agent runs in session "${this.sessionId}": run a turn first, then list its models`);
    if (!agent.listModels || !agent.capabilities.listModels) throw new HotplexError("failed_precondition", `provider ${this.providerName} cannot list its models`);
    try {
      return await agent.listModels();
    } catch (error) {
      // The agent exited while it was asked (a stop or a crash at that moment).
      if (!agent.alive) throw new HotplexError("failed_precondition", `the agent of session "${this.sessionId}" exited before it listed its models: run a turn first, then list them`);
      throw error;
    }
  }

  /**
   * The next turn starts a new conversation: the agent (if any) is ended, and the session
   * gets a new conversation id (an agent that names its own replaces it at its start).
   */
  async reset(): Promise<string> {
    if (this.busy) throw new HotplexError("failed_precondition", `session "${this.sessionId}" has a turn running or queued: reset between turns`);
    if (this.live) await this.stop("reset");
    const previous = this.view.providerSessionId;
    const next = randomUUID();
    this.#hasConversation = false;
    this.view.interaction.pendingFork = undefined;
    this.#record("", { case: "conversationReset", value: create(ConversationResetSchema, { previousProviderSessionId: previous, providerSessionId: next }) });
    this.log.touch();
    return next;
  }

  /** Sets the title (checked by the caller); returns the TitleChanged event's seq. */
  setTitle(title: string): number {
    const seq = this.#record("", { case: "titleChanged", value: create(TitleChangedSchema, { title }) });
    this.log.touch();
    return seq;
  }

  /**
   * Makes this (new) session a fork: its HOME gets the parent's transcript files (`from`,
   * in the provider's transcriptFiles order), and its first start forks `fork`.
   */
  async prepareFork(from: string[], fork: PendingFork): Promise<void> {
    await this.#prepareHome();
    const { provider, sandbox } = this.#options;
    const home = this.home;
    const to = provider.transcriptFiles(fork.providerSessionId, this.view.workDir, home);
    await Promise.all(
      from.map(async (file, i) => {
        const target = to[i];
        if (!target) return;
        await mkdir(path.dirname(target), { recursive: true });
        await cp(file, target, { recursive: true });
      }),
    );
    const { uid, gid } = sandbox.settings;
    if (uid !== undefined) await chownTree(home, uid, gid ?? uid);
    this.view.interaction.pendingFork = fork;
  }

  /** The agent holds a conversation (a fork needs one to copy). */
  get hasConversation(): boolean {
    return this.#hasConversation;
  }

  // The running turn (optionally only if it is `turnId`), for a call that acts on it.
  #runningTurn(turnId: string, what: string): Turn {
    const turn = this.#turns.current;
    if (!turn || turn.ended || !turn.announced || turn.endedBy) throw new HotplexError("failed_precondition", `session "${this.sessionId}" has no running turn to ${what}`);
    if (turnId && turn.id !== turnId) {
      throw new HotplexError("failed_precondition", `turn ${JSON.stringify(turnId.slice(0, 128))} is not running in session "${this.sessionId}" (turn ${turn.id} is)`);
    }
    return turn;
  }

  // An agent's permission request or question: decided by a session rule, refused when no
  // client is asked, or put to the client (PermissionRequested) until an answer, the
  // timeout, the agent or the run's end decides it.
  #onAgentRequest(agent: AgentConnection, request: AgentRequest): void {
    if (request.kind === "check") return this.#checkCall(agent, request);
    const turn = this.#turns.current;
    const id = randomUUID();
    const { approvalTimeoutMs } = this.#options.limits;
    const deadline = approvalTimeoutMs > 0 ? Date.now() + approvalTimeoutMs : undefined;
    const logged = permissionRequested(request, id, deadline, agent.capabilities.editApprovedInput);
    const open: OpenPermission = {
      id,
      agentRequestId: request.requestId,
      kind: request.kind,
      toolName: logged.toolName,
      inputJson: logged.inputJson,
      inputEditable: logged.inputEditable,
      questionIds: new Map(logged.questions.map((q, i) => [q.id, request.questions[i]?.id ?? q.id])),
      turnId: turn?.id ?? "",
      timer: undefined,
    };
    const refuse = (why: string) => agent.answer(request.requestId, { behavior: "deny", message: why });
    if (!turn || turn.ended || !turn.announced) return refuse("no turn is running");
    const why = unaskable(request);
    if (why) return refuse(why);
    if (!this.#permissions.add(open)) {
      this.#record(turn.id, {
        case: "error",
        value: create(ErrorEventSchema, { code: "request_refused", message: "the agent sent a request with an id still open, or too many requests at once" }),
      });
      if (!this.#permissions.get(id)) return;
    }
    this.#record(turn.id, { case: "permissionRequested", value: logged });
    // The tenant's rules judge the call before any rule of the session or any human.
    const ruled = request.kind === "permission" ? this.#judgeCall(turn.id, request, id) : "pass";
    if (ruled === "block") return;
    if (ruled !== "ask" && request.kind === "permission" && this.view.interaction.allowedForSession(logged.toolName, logged.inputJson)) {
      this.#decide(open, { behavior: "allow", forSession: false }, Decider.SESSION_RULE, "");
      return;
    }
    if (!this.#launch?.approvals) {
      // No client approves calls here: what a rule wants a human for is refused, naming it.
      if (ruled === "ask") {
        const rule = this.#lastAsk;
        this.#decide(open, { behavior: "deny", message: `rule ${rule?.ruleId} asks a human (${rule?.description}), and no client approves tool calls in this session` }, Decider.RULE, "");
        return;
      }
      this.#decide(open, { behavior: "deny", message: "no client approves tool calls in this session (its approval mode is agent)" }, Decider.APPROVAL_MODE, "");
      return;
    }
    // The agent is blocked until a client answers: publish the request now.
    this.log.commitNow();
    if (deadline !== undefined) {
      open.timer = setTimeout(() => {
        if (this.#permissions.get(id) !== open) return;
        this.#decide(open, { behavior: "deny", message: `no answer within the approval timeout (${approvalTimeoutMs} ms)` }, Decider.TIMEOUT, "");
      }, approvalTimeoutMs);
      open.timer.unref?.();
    }
  }

  // A call the agent is about to run whatever its settings say (its host hook): the tenant's
  // rules may veto it or make the agent ask; nothing else is logged or asked here.
  #checkCall(agent: AgentConnection, request: AgentRequest): void {
    const turn = this.#turns.current;
    const verdict = turn && !turn.ended ? this.#judgeRules(turn.id, request, "") : "pass";
    if (verdict === "block") {
      const rule = this.#lastBlock;
      agent.answer(request.requestId, { behavior: "deny", message: `blocked by rule ${rule?.ruleId}: ${rule?.description}` });
      return;
    }
    agent.answer(request.requestId, { behavior: "defer", ask: verdict === "ask" });
  }

  // Judges a tool call by the tenant's rules and logs what matched: "block" when it was
  // denied (decided here), "ask" when a client must decide, "pass" otherwise.
  #judgeCall(turnId: string, request: AgentRequest, id: string): "block" | "ask" | "pass" {
    const verdict = this.#judgeRules(turnId, request, id);
    if (verdict !== "block") return verdict;
    const rule = this.#lastBlock;
    const open = this.#permissions.get(id);
    if (open) {
      this.#decide(open, { behavior: "deny", message: `blocked by rule ${rule?.ruleId}: ${rule?.description}` }, Decider.RULE, "");
    }
    return "block";
  }

  /** The rule the last judgment that blocked (or asked) named. */
  #lastBlock: RuleMatch | undefined;
  #lastAsk: RuleMatch | undefined;

  // The tenant's rules on a call: what matched is logged (RuleMatched) and blocks, asks and
  // bypasses are audited; "block" and "ask" only when not bypassed.
  #judgeRules(turnId: string, request: AgentRequest, id: string): "block" | "ask" | "pass" {
    const rules = this.#options.rules;
    if (!rules || (!request.command && !request.path)) return "pass";
    const { workDir } = this.view;
    const home = this.home;
    const input = request.command
      ? ({ kind: "command", command: request.command, cwd: workDir, home } as const)
      : ({ kind: "file", operation: "write", path: request.path, cwd: workDir, home } as const);
    const verdict = rules.judge(input);
    const what = request.command || request.path;
    for (const match of verdict.matches) {
      this.#record(turnId, { case: "ruleMatched", value: ruleMatched(match, verdict.bypassed, id, request.toolUseId) });
      if (verdict.bypassed && match.severity !== "warn") rules.audit("rule_bypassed", match, what);
      else if (match.severity === "block") rules.audit("rule_blocked", match, what);
      else if (match.severity === "ask") rules.audit("rule_asked", match, what);
    }
    if (verdict.bypassed || verdict.severity === "pass" || verdict.severity === "warn") return "pass";
    if (verdict.severity === "ask") {
      this.#lastAsk = verdict.matches.find((match) => match.severity === "ask");
      return "ask";
    }
    this.#lastBlock = verdict.matches.find((match) => match.severity === "block");
    return "block";
  }

  // Decides an open request once: answers the agent, logs PermissionResolved.
  #decide(open: OpenPermission, decision: AgentDecision, decidedBy: Decider, principal: string, interrupt = false): number {
    this.#permissions.take(open.id);
    this.#rememberDecided(open.id);
    this.#agent?.answer(open.agentRequestId, decision);
    return this.#recordResolved(open.turnId, {
      requestId: open.id,
      decision: decision.behavior === "allow" ? PermissionDecision.ALLOW : decision.behavior === "answer" ? PermissionDecision.ANSWERED : PermissionDecision.DENY,
      decidedBy,
      principal,
      forSession: decision.behavior === "allow" && decision.forSession,
      message: decision.behavior === "deny" ? decision.message : "",
      updatedInputJson: decision.behavior === "allow" ? (decision.updatedInputJson ?? "") : "",
      answers: decision.behavior === "answer" ? this.#loggedAnswers(open, decision.answers) : {},
      interrupt,
    });
  }

  // The answers by the question ids the client saw.
  #loggedAnswers(open: OpenPermission, byAgentId: Record<string, string>): Record<string, string> {
    const logged: Record<string, string> = {};
    for (const [loggedId, agentId] of open.questionIds) if (Object.hasOwn(byAgentId, agentId)) logged[loggedId] = byAgentId[agentId] ?? "";
    return logged;
  }

  // Without a status update: recovery logs what a restart ended, then the status once.
  #appendResolved(turnId: string, fields: Partial<Omit<PermissionResolved, "$typeName">>): void {
    this.log.append(turnId, { case: "permissionResolved", value: create(PermissionResolvedSchema, fields) });
  }

  #recordResolved(turnId: string, fields: Partial<Omit<PermissionResolved, "$typeName">>): number {
    return this.#record(turnId, { case: "permissionResolved", value: create(PermissionResolvedSchema, fields) });
  }

  // Decided here, until the view (at commit) remembers it too.
  readonly #decidedHere = new Set<string>();
  #rememberDecided(id: string): void {
    this.#decidedHere.add(id);
    if (this.#decidedHere.size > 64) {
      const oldest = this.#decidedHere.values().next().value;
      if (oldest !== undefined) this.#decidedHere.delete(oldest);
    }
  }

  /**
   * Another node runs the session now: its agent is ended at once (no grace: it must be
   * gone before the other node's hold starts) and the session takes no more turns; the
   * caller forgets it.
   */
  fence(why: string): void {
    this.#closed = true;
    this.#clearIdleTimer();
    this.#clearTurnTimers();
    clearTimeout(this.#checkpointTimer);
    const agent = this.#agent;
    if (!agent) return;
    this.agentLog.lifecycle(`killing the agent: ${why}`, agent.pid);
    // No grace: its process group is killed right after the signal to end (a shared agent
    // server ends only this session's part).
    void agent.close(0).catch(() => undefined);
  }

  /** Stops the session and refuses new turns (daemon shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#checkpointTimer);
    await this.stop("shutdown");
  }

  // Runs queued turns one after another until the queue is empty.
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (;;) {
        // An agent that exited while idle may still have its exit handled (its pipes drain
        // for a moment): finish that first, or its end would be taken for the next turn's.
        // The turn waits in the queue meanwhile, where a stop still finds it.
        const run = this.#run;
        if (run && run.state !== AgentRunState.ENDED && run.connection && !run.connection.alive) await run.exitHandled;
        const turn = this.#turns.startNext();
        if (!turn) break;
        await this.#runTurn(turn);
      }
    } catch (error) {
      this.#logger.error({ err: error }, "turn loop failed");
    } finally {
      this.#pumping = false;
    }
    // Idle now: the store serves replays, so the in-memory tail can go.
    this.log.shrinkTail();
    this.#armIdleTimer();
    this.#armCheckpoint();
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  async #runTurn(turn: Turn): Promise<void> {
    this.#armTurnTimer(turn);
    const run = this.#run;
    if (run?.takesPrompts && run.connection) {
      this.#announce(turn);
      run.warmTurn = { turn, answered: false };
      run.connection.prompt(turn.prompt);
    } else {
      const refused = this.#status === SessionStatus.STARTING ? undefined : this.#options.whyNoProcess();
      if (refused) {
        this.#finishTurn(turn, this.#daemonTurnEnd(TurnOutcome.FAILED, refused));
        return;
      }
      await this.#startRun(turn, startKindFor(this.#hasConversation), false);
    }
    await turn.done;
  }

  // Starts a run of the agent for `turn`: work dir, HOME, the provider's connection.
  async #startRun(turn: Turn, kind: StartKind, retried: boolean): Promise<void> {
    const { provider } = this.#options;
    const run = new AgentRun(kind, retried, turn);
    this.#run = run;
    this.agentLog.lifecycle(
      `starting the agent: provider ${provider.name}, ${StartKind[kind].toLowerCase()} start${this.view.interaction.pendingFork && kind === StartKind.COLD ? " (a fork)" : ""}${retried ? ", the one retry the other way" : ""}, for turn ${turn.id}`,
    );
    this.#syncStatus(turn.id);
    let launch: LaunchConfig;
    try {
      launch = this.#options.prepareLaunch(this.config);
    } catch (error) {
      this.#failStart(run, `the session's config is no longer allowed: ${(error as Error).message}`);
      return;
    }
    const warm = this.#warmFor(run, launch);
    if (warm) return this.#adopt(run, turn, warm, launch);
    this.#options.makeRoom?.();
    try {
      // Synchronous: a metadata call on a local dir takes tens of µs, where a thread-pool
      // round trip costs a millisecond or more on a busy loop, on the cold start's path.
      mkdirSync(this.view.workDir, { recursive: true });
      const { uid, gid } = this.#options.sandbox.settings;
      // An agent running as its own user must be able to write its work dir.
      if (uid !== undefined) chownSync(this.view.workDir, uid, gid ?? uid);
    } catch (error) {
      this.#failStart(run, `cannot create work dir: ${String(error)}`);
      return;
    }
    // Stopped while the work dir was being created.
    if (turn.ended) return this.#failStart(run, "");
    // The dir was checked when the session got it; it may have been replaced since (by a
    // symlink to elsewhere, say, while no agent ran). Checked again right before each start.
    const changed = workDirChanged(this.#options.workRoot, this.view.workDir);
    if (changed) {
      this.#logger.warn({ workDir: this.view.workDir, reason: changed }, "work dir changed; agent not started");
      this.#failStart(run, `refusing to start the agent: ${changed}`);
      return;
    }
    try {
      await this.#prepareHome();
    } catch (error) {
      this.#failStart(run, `cannot prepare the agent's files: ${String(error)}`);
      return;
    }
    if (turn.ended) return this.#failStart(run, "");
    if (this.#options.own) {
      try {
        await this.#options.own();
      } catch (error) {
        this.#failStart(run, `this node cannot run the session: ${(error as Error).message}`);
        return;
      }
      // Fenced while it waited (the store found this node's hold lapsed): no agent here.
      if (turn.ended || this.#closed) return this.#failStart(run, "");
    }
    this.#launch = launch;
    // A fork's first start copies its parent's conversation; every later one resumes its own.
    const fork = kind === StartKind.COLD ? this.view.interaction.pendingFork : undefined;
    let connection: AgentConnection;
    try {
      connection = await provider.connect({
        tenant: this.tenant,
        providerSessionId: this.view.providerSessionId,
        mode: fork ? "fork" : kind === StartKind.RESUMED ? "resume" : "new",
        ...(fork ? { forkFrom: fork.providerSessionId, ...(fork.at ? { forkAt: fork.at } : {}) } : {}),
        config: launch,
        paths: { workDir: this.view.workDir, home: this.home, stateDir: this.stateDir },
        daemonPaths: { workRoot: this.#options.workRoot, stateRoot: this.#options.stateRoot },
        env: this.#options.env,
        maxLineBytes: this.#options.limits.maxLineBytes,
        launcher: this.#launcher,
        handlers: this.#handlersFor(run),
      });
    } catch (error) {
      this.#failStart(run, error instanceof LaunchError ? error.message : `cannot start the agent: ${String(error)}`);
      return;
    }
    this.#connected(run, turn, connection, kind);
  }

  // A connection reports only while its run is this session's current one.
  #handlersFor(run: AgentRun): ConnectionHandlers {
    return {
      onOutput: (item) => {
        if (this.#run === run && run.state !== AgentRunState.ENDED && run.connection) this.#onOutput(run, run.connection, item);
      },
      onFault: (code, message) => {
        if (this.#run === run && run.state !== AgentRunState.ENDED && run.connection) this.#agentFault(run, run.connection, code, message);
      },
    };
  }

  // A pre-warmed agent for this start, when one may serve it: a new conversation (not a
  // resume, a fork or the retry of a refused start) in the default work dir, for an id
  // that never had a HOME (one that had continues its conversation there, started cold).
  #warmFor(run: AgentRun, launch: LaunchConfig): WarmAgent | undefined {
    const take = this.#options.takeWarm;
    if (!take || run.kind !== StartKind.COLD || run.retried || this.#hasConversation || this.view.interaction.pendingFork) return undefined;
    if (this.config.workDir !== "" || this.view.interaction.stateDir !== "" || existsSync(this.#options.home)) return undefined;
    return take(launch);
  }

  // Takes a pre-warmed agent: its dirs and conversation id become the session's for good,
  // its log joins the session's, and the turn's prompt is its first input.
  #adopt(run: AgentRun, turn: Turn, warm: WarmAgent, launch: LaunchConfig): void {
    this.view.workDir = warm.paths.workDir;
    this.view.interaction.stateDir = warm.paths.stateDir;
    this.view.providerSessionId = warm.providerSessionId;
    this.agentLog.absorb(warm.agentLog);
    this.agentLog.lifecycle(`took a pre-warmed agent (pid ${warm.pid}, started ${Date.now() - warm.startedAtMs} ms before)`, warm.pid);
    this.#launch = launch;
    this.#connected(run, turn, warm.adopt(this.#handlersFor(run)), run.kind);
  }

  // The run has its agent: from now on the agent's exit ends the run.
  #connected(run: AgentRun, turn: Turn, connection: AgentConnection, kind: StartKind): void {
    if (turn.ended || this.#run !== run) {
      // Stopped while the agent was being started: it never gets the turn.
      run.ended();
      void connection.close(0).then(() => {
        if (this.#run === run) this.#syncStatus("");
      });
      return;
    }
    run.connected(connection);
    run.exitHandled = connection.exited.then((exit) => this.#onExit(run, connection, exit));
    this.#logger.info({ pid: connection.pid, kind: StartKind[kind] }, "agent process spawned");
    // Persist the process group now, so a daemon that dies can find it at its next start.
    this.log.touch();
    // Some agents print nothing until their first input: readiness comes from the answer
    // to this prompt, not from the process merely being alive.
    connection.prompt(turn.prompt);
  }

  #onOutput(run: AgentRun, agent: AgentConnection, item: ParsedOutput): void {
    if (item.type === "fatal_startup") {
      run.fatalStartupMessage = item.message;
      return;
    }
    // An agent that names its conversation on each turn (its own id, not the one hotplex
    // chose) gets it recorded before SessionStarted, which carries it.
    if (item.type === "turn_start" && item.providerSessionId && item.providerSessionId !== this.view.providerSessionId) {
      this.view.providerSessionId = item.providerSessionId;
      this.log.touch();
    }
    if (run.markAnswered()) this.#markStarted(run, agent);
    if (run.warmTurn) run.warmTurn.answered = true;
    const turn = this.#turns.current;
    switch (item.type) {
      case "event":
        this.#record(turn?.id ?? "", item.payload);
        break;
      case "turn_start":
        break;
      case "turn_end":
        if (turn) {
          this.#finishTurn(turn, item.turnEnded);
        } else {
          this.#record("", {
            case: "error",
            value: create(ErrorEventSchema, {
              code: "unexpected_turn_end",
              message: "the agent ended a turn that hotplex did not start",
            }),
          });
        }
        break;
      case "agent_request":
        this.#onAgentRequest(agent, item.request);
        break;
      case "agent_request_cancelled": {
        const open = this.#permissions.takeByAgentId(item.requestId);
        if (open) {
          this.#recordResolved(open.turnId, {
            requestId: open.id,
            decision: PermissionDecision.DENY,
            decidedBy: Decider.AGENT_CANCELLED,
            message: "the agent withdrew the request",
          });
        }
        break;
      }
      case "control_request":
        // A request hotplex does not handle: answered at once, exactly once, so the agent
        // never waits for ever (a repeated or excess request is refused as well).
        this.#requests.received(item.requestId, item.subtype);
        this.#requests.take(item.requestId);
        agent.refuse(item.requestId, `hotplex does not handle ${item.subtype} requests`);
        break;
      case "control_response":
        break;
    }
  }

  // The session's HOME, created on first use: the operator's template, and the transcripts
  // of a conversation from before sessions had their own HOME (so it resumes there).
  async #prepareHome(): Promise<void> {
    const { homeTemplate, legacyHome, sandbox } = this.#options;
    const home = this.home;
    // Synchronous for the same reason as the work dir's (the common case ends here).
    if (existsSync(home)) return;
    mkdirSync(home, { recursive: true, mode: 0o700 });
    if (homeTemplate) await cp(homeTemplate, home, { recursive: true });
    if (legacyHome && this.#hasConversation) {
      const { provider } = this.#options;
      const from = provider.transcriptFiles(this.view.providerSessionId, this.view.workDir, legacyHome);
      const to = provider.transcriptFiles(this.view.providerSessionId, this.view.workDir, home);
      await Promise.all(
        from.map(async (file, i) => {
          const target = to[i];
          if (!target) return;
          await mkdir(path.dirname(target), { recursive: true });
          await copyFile(file, target).catch(() => undefined);
        }),
      );
    }
    const { uid, gid } = sandbox.settings;
    if (uid !== undefined) await chownTree(home, uid, gid ?? uid);
  }

  // No agent could be started for the run's turn: it fails with `message` (or has already
  // ended, when `message` is empty: stopped while the start was prepared).
  #failStart(run: AgentRun, message: string): void {
    run.ended();
    this.agentLog.lifecycle(message ? `the agent was not started: ${message}` : "the agent was not started: the turn ended first");
    if (this.#run !== run) return;
    const turn = run.firstTurn;
    this.#syncStatus(turn.id);
    if (turn.ended || !message) return;
    this.#announce(turn);
    this.#finishTurn(turn, this.#daemonTurnEnd(TurnOutcome.FAILED, message));
  }

  // The agent broke the protocol in a way the session cannot recover from: tell the
  // client, fail the running turn with the reason and end the process (the next turn
  // starts it again and resumes the conversation).
  #agentFault(run: AgentRun, agent: AgentConnection, code: string, message: string): void {
    this.#logger.warn({ code, pid: agent.pid }, message);
    this.agentLog.lifecycle(`agent fault ${code}: ${message}`, agent.pid);
    const turn = this.#turns.current;
    this.#record(turn?.id ?? "", { case: "error", value: create(ErrorEventSchema, { code, message }) });
    if (turn && !turn.ended && !turn.endedBy) {
      turn.endedBy = "agent_fault";
      turn.fault = message;
    }
    if (run.state !== AgentRunState.STOPPING) run.stopping("crashed");
    void agent.close(this.#options.limits.stopGraceMs);
  }

  // The agent answered: the process is up and the conversation exists.
  #markStarted(run: AgentRun, agent: AgentConnection): void {
    this.#hasConversation = true;
    const turn = this.#turns.current;
    this.#record(turn?.id ?? "", {
      case: "sessionStarted",
      value: create(SessionStartedSchema, {
        kind: run.kind,
        provider: this.#options.provider.name,
        providerSessionId: this.view.providerSessionId,
        pid: agent.pid,
        workDir: this.view.workDir,
        model: this.#launch?.model ?? "",
      }),
    });
    this.#logger.info({ pid: agent.pid, kind: StartKind[run.kind] }, "session started");
    this.agentLog.lifecycle(`the agent answered: conversation ${this.view.providerSessionId}`, agent.pid);
    this.log.touch();
    if (turn) this.#announce(turn);
  }

  #onExit(run: AgentRun, agent: AgentConnection, exit: AgentExit): void {
    if (this.#run !== run) return;
    // What the exit ends is logged first (the turn, the session's end), the new status once after.
    this.#statusHeld += 1;
    try {
      this.#handleExit(run, agent, exit);
    } finally {
      this.#statusHeld -= 1;
      this.#syncStatus("");
    }
  }

  #handleExit(run: AgentRun, agent: AgentConnection, exit: AgentExit): void {
    const stoppedByUs = run.state === AgentRunState.STOPPING;
    const answered = run.answered;
    const warmTurn = run.warmTurn;
    run.ended();
    this.#clearTurnTimers();
    // Whatever the agent asked is moot now.
    this.#requests.clear();
    for (const open of this.#permissions.all()) {
      this.#permissions.take(open.id);
      this.#recordResolved(open.turnId, {
        requestId: open.id,
        decision: PermissionDecision.DENY,
        decidedBy: Decider.AGENT_EXIT,
        message: "the agent exited while the request waited",
      });
    }
    const turn = this.#turns.current;

    if (!answered && turn === run.firstTurn && !turn.endedBy && !run.retried && !stoppedByUs) {
      const failure = this.#options.provider.classifyStartupFailure(exit.stderrTail, run.fatalStartupMessage);
      if (failure) {
        // The registry and the agent disagree on whether the conversation exists (e.g.
        // the daemon restarted with an in-memory registry): start the other way once.
        this.#logger.info({ failure }, "agent refused the start; retrying the other way");
        this.agentLog.lifecycle(`the agent refused the start (${failure}); restarting it the other way`, agent.pid);
        this.#armTurnTimer(turn);
        void this.#startRun(turn, failure === "resume_missing" ? StartKind.COLD : StartKind.RESUMED, true);
        return;
      }
    }

    const reason = run.endReason ?? (exit.exitCode === 0 && !exit.signal ? "exited" : "crashed");
    if (turn && warmTurn?.turn === turn && !warmTurn.answered && !turn.endedBy && !stoppedByUs && !this.#options.whyNoProcess()) {
      // The agent ended without a word about this turn: it was already dying when the
      // turn reached it. Start it again (resuming the conversation) instead of failing.
      this.#record(turn.id, {
        case: "sessionEnded",
        value: create(SessionEndedSchema, { reason, exitCode: exit.exitCode, signal: exit.signal ?? exit.signalSent ?? "" }),
      });
      this.#logger.info({ reason, exitCode: exit.exitCode, signal: exit.signal }, "agent ended before it took the turn; starting it again");
      this.agentLog.lifecycle(`the agent ended (${reason}, ${describeExit(exit)}) before it took turn ${turn.id}; restarting it`, agent.pid);
      this.#armTurnTimer(turn);
      void this.#startRun(turn, startKindFor(this.#hasConversation), false);
      return;
    }
    if (turn) {
      const detail = exit.spawnError
        ? `cannot start the agent: ${exit.spawnError}`
        : `the agent exited in the middle of the turn (${describeExit(exit)})${run.fatalStartupMessage ? `: ${run.fatalStartupMessage}` : ""}`;
      const outcome =
        turn.endedBy === "stop" ? TurnOutcome.STOPPED : turn.endedBy === "timeout" ? TurnOutcome.TIMED_OUT : turn.endedBy === "interrupt" ? TurnOutcome.INTERRUPTED : TurnOutcome.FAILED;
      const ended = this.#daemonTurnEnd(outcome, outcome === TurnOutcome.FAILED ? detail : "");
      if (outcome === TurnOutcome.FAILED) {
        if (exit.exitCode !== undefined) ended.exitCode = exit.exitCode;
        ended.stderrTail = exit.stderrTail;
      }
      this.#announce(turn);
      this.#finishTurn(turn, ended);
    }
    if (answered) {
      this.#record("", {
        case: "sessionEnded",
        value: create(SessionEndedSchema, { reason, exitCode: exit.exitCode, signal: exit.signal ?? exit.signalSent ?? "" }),
      });
    } else {
      this.#syncStatus("");
    }
    // The process group is gone from the registry entry.
    this.log.touch();
    this.#logger.info({ reason, exitCode: exit.exitCode, signal: exit.signal, pid: agent.pid }, "session ended");
    this.agentLog.lifecycle(`the agent run ended: ${reason} (${exit.spawnError ? `cannot start: ${exit.spawnError}` : describeExit(exit)})`, agent.pid);
  }

  // Logs TurnStarted once per turn.
  #announce(turn: Turn): void {
    if (turn.announced) return;
    turn.announced = true;
    // TurnEnded.duration_ms counts from here: from TurnStarted (on a cold turn, once the
    // agent answered), whatever the agent's start cost before it.
    turn.startedAtMs = Date.now();
    this.#record(turn.id, {
      case: "turnStarted",
      value: create(TurnStartedSchema, { prompt: turn.prompt, requestId: turn.requestId, wasQueued: turn.wasQueued }),
    });
  }

  #finishTurn(turn: Turn, ended: TurnEnded): void {
    if (turn.ended) return;
    if (turn.endedBy === "timeout") {
      ended.outcome = TurnOutcome.TIMED_OUT;
      ended.errorMessage = `the turn ran longer than the turn timeout (${this.#options.limits.turnTimeoutMs} ms)`;
    } else if (turn.endedBy === "interrupt") {
      ended.outcome = TurnOutcome.INTERRUPTED;
      ended.errorMessage = "interrupted by the client";
    } else if (turn.endedBy === "stop") {
      ended.outcome = TurnOutcome.STOPPED;
      ended.errorMessage = `session ${turn.stopReason || "stopped"} during the turn`;
    } else if (turn.endedBy === "agent_fault") {
      ended.outcome = TurnOutcome.FAILED;
      ended.errorMessage = turn.fault;
    }
    if (turn.startedAtMs > 0) ended.durationMs = BigInt(Math.max(0, Date.now() - turn.startedAtMs));
    // A request of the turn still open is moot (the agent ended the turn without waiting).
    for (const open of this.#permissions.all()) {
      if (open.turnId === turn.id) this.#decide(open, { behavior: "deny", message: "the turn ended" }, Decider.AGENT_CANCELLED, "");
    }
    this.#record(turn.id, { case: "turnEnded", value: ended });
    if (this.#turns.current === turn) {
      this.#turns.finished(turn);
      this.#clearTurnTimers();
      this.#requests.interruptsSent = 0;
    }
    turn.markEnded(ended.outcome);
    // After the turn's TurnEnded (always its last event): outside the turn.
    this.#syncStatus("");
  }

  #daemonTurnEnd(outcome: TurnOutcome, errorMessage: string): TurnEnded {
    return create(TurnEndedSchema, { outcome, errorMessage });
  }

  #record(turnId: string, payload: EventPayload): number {
    const seq = Number(this.log.append(turnId, payload).seq);
    this.#syncStatus(turnId);
    return seq;
  }

  // The status the session is in now, from its turns, its run and the open requests;
  // undefined for a moment that is no state of its own (the agent answered, its turn is
  // about to be announced).
  #currentStatus(): SessionStatus | undefined {
    const run = this.#run;
    if (run?.state === AgentRunState.STOPPING) return SessionStatus.STOPPING;
    const turn = this.#turns.current;
    if (turn?.announced && !turn.ended) return this.#permissions.size > 0 ? SessionStatus.WAITING : SessionStatus.BUSY;
    const runLive = run !== undefined && run.state !== AgentRunState.ENDED;
    if (runLive && !run.answered) return SessionStatus.STARTING;
    if (this.#turns.busy) return runLive && run.takesPrompts ? undefined : SessionStatus.STARTING;
    return runLive && run.connection?.alive ? SessionStatus.READY : SessionStatus.DEAD;
  }

  // Logs a StatusChanged event when the status moved: every transition is in the log.
  #syncStatus(turnId: string): void {
    if (this.#statusHeld > 0) return;
    const status = this.#currentStatus();
    if (status === undefined || status === this.#status) return;
    const previous = this.#status;
    this.#status = status;
    this.log.append(turnId, { case: "statusChanged", value: create(StatusChangedSchema, { status, previous }) });
  }

  #rememberRequest(requestId: string, turn: Turn): void {
    this.#requestTurns.delete(requestId);
    this.#requestTurns.set(requestId, { turnId: turn.id, fromSeq: turn.fromSeq });
    if (this.#requestTurns.size > REMEMBERED_REQUEST_IDS) {
      const oldest = this.#requestTurns.keys().next().value;
      if (oldest !== undefined) this.#requestTurns.delete(oldest);
    }
  }

  #armTurnTimer(turn: Turn): void {
    this.#clearTurnTimers();
    const { turnTimeoutMs, stopGraceMs } = this.#options.limits;
    if (turnTimeoutMs <= 0) return;
    this.#turnTimer = setLongTimeout(() => {
      if (this.#turns.current !== turn || turn.ended) return;
      this.#logger.warn({ turn: turn.id, turnTimeoutMs }, "turn timed out; interrupting");
      this.#interruptTurn(turn, "timeout");
    }, turnTimeoutMs);
  }

  // The one way a running turn is stopped while the agent is kept: an interrupt through
  // the agent's protocol, then, if the turn has not ended after the stop grace, the agent
  // is ended (its exit ends the turn, and the next turn resumes the conversation). The
  // turn ends with the daemon's outcome: INTERRUPTED, or TIMED_OUT for the turn timeout.
  #interruptTurn(turn: Turn, why: "interrupt" | "timeout"): void {
    const { stopGraceMs } = this.#options.limits;
    turn.endedBy = why;
    this.#turnTimer?.clear();
    this.#turnTimer = undefined;
    const agent = this.#agent;
    if (!agent) {
      // Still being started: no agent has the turn yet, so it ends now.
      this.#announce(turn);
      this.#finishTurn(turn, this.#daemonTurnEnd(TurnOutcome.INTERRUPTED, ""));
      return;
    }
    this.#requests.interruptsSent += 1;
    this.agentLog.lifecycle(`interrupting turn ${turn.id} (${why === "timeout" ? "the turn timeout" : "asked by the client"})`, agent.pid);
    agent.interrupt();
    clearTimeout(this.#killTimer);
    this.#killTimer = setTimeout(() => {
      if (this.#turns.current !== turn || turn.ended) return;
      this.#logger.warn({ turn: turn.id, stopGraceMs }, "the agent did not end the interrupted turn; ending the agent");
      this.agentLog.lifecycle(`the agent did not end the interrupted turn within ${stopGraceMs} ms; ending it`, agent.pid);
      void agent.close(stopGraceMs);
    }, stopGraceMs);
  }

  #clearTurnTimers(): void {
    this.#turnTimer?.clear();
    clearTimeout(this.#killTimer);
    this.#turnTimer = undefined;
    this.#killTimer = undefined;
  }

  // Stores the registry entry once the session has been idle for a moment: off the
  // critical path of the turn that just ended, and not once per turn for back-to-back
  // turns (the log stores it anyway every few thousand events).
  #armCheckpoint(): void {
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = setTimeout(() => {
      if (!this.#turns.busy) this.log.touch();
    }, CHECKPOINT_DELAY_MS);
    this.#checkpointTimer.unref();
  }

  #armIdleTimer(): void {
    this.#clearIdleTimer();
    const idleMs = this.config.idleTimeoutSeconds > 0 ? this.config.idleTimeoutSeconds * 1000 : this.#options.limits.idleTimeoutMs;
    if (idleMs <= 0 || !this.#agent?.alive) return;
    this.#idleTimer = setLongTimeout(() => {
      if (this.#turns.busy) return;
      this.#logger.info({ idleMs }, "reaping idle session");
      void this.stop("idle");
    }, idleMs);
  }

  #clearIdleTimer(): void {
    this.#idleTimer?.clear();
    this.#idleTimer = undefined;
  }
}

function describeExit(exit: AgentExit): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exit code ${exit.exitCode ?? "unknown"}`;
}
