import { clone, create, equals } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { randomUUID } from "node:crypto";
import { chmodSync, chownSync, mkdirSync } from "node:fs";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { v5 as uuidv5 } from "uuid";
import {
  ApprovalMode,
  type ProviderCapabilities as ProviderCapabilitiesInfo,
  ProviderCapabilitiesSchema,
  type SandboxInfo,
  SandboxInfoSchema,
  type SessionConfig,
  SessionConfigSchema,
  type SessionInfo,
  type SessionStats,
  SessionStatsSchema,
  type SessionStatus,
} from "../../gen/hotplex/v1/session_pb.js";
import {
  type ProviderInfo,
  ProviderInfoSchema,
  type SessionSummary,
  SessionSummarySchema,
} from "../../gen/hotplex/v1/session_service_pb.js";
import { HotplexError, OutOfRangeError } from "../errors.js";
import { SessionForkedSchema, TitleChangedSchema } from "../../gen/hotplex/v1/event_pb.js";
import type { Event, TurnOutcome } from "../events/event.js";
import { EventLog } from "../events/event-log.js";
import { readEventBatches } from "../events/follow.js";
import { followStoredLog, type StoredLog } from "../events/store-follow.js";
import { GroupCommitter } from "../events/group-committer.js";
import type { AgentDecision, AgentModel, LaunchConfig, LiveSettings, Provider, ProviderCapabilities } from "../providers/provider.js";
import { ProviderRegistry, unavailableProvider } from "../providers/registry.js";
import { environmentFor } from "../security/env.js";
import { AgentLauncher } from "../process/launcher.js";
import { checkSessionPolicy, effectiveDisallowedTools } from "../security/session-policy.js";
import type { SessionPolicy, TenantDirectory } from "../security/tenant-policy.js";
import { WorkDirClaims } from "../security/work-dir-claims.js";
import { resolveWorkDir } from "../security/work-dir.js";
import { catchUpRecord } from "../session/catch-up.js";
import { endOrphanGroup } from "../process/orphans.js";
import { EgressProxy, parseEgressRule } from "../process/egress-proxy.js";
import { Sandbox, type SandboxState } from "../process/sandbox.js";
import { keyString, Pool, type SessionKey } from "../session/pool.js";
import { AgentLogBudget, type AgentLogPage, DEFAULT_SESSION_LOG_BYTES, MAX_LOG_PAGE, readAgentLog } from "../session/agent-log.js";
import { Session } from "../session/session.js";
import type { RequestedTurn } from "../session/interaction-state.js";
import { MAX_INPUT_JSON_BYTES } from "../session/permission-request.js";
import { ruleMatched } from "../session/rule-matched.js";
import { TenantRules } from "./tenant-rules.js";
import { openStore } from "../store/open-store.js";
import { type Retained, SessionHeldError, type SessionRecord, type Store } from "../store/store.js";
import { isTenantName } from "../security/principal.js";
import { Admission } from "./admission.js";
import { PREWARMED_PREFIX, PrewarmPool, type PrewarmSpec } from "./prewarm.js";
import { type AuditEntry, type AuditKind, AuditLog } from "./audit-log.js";
import type { ApprovalDefault, EngineConfig } from "./config.js";
import { ServingPhase, ServingState } from "./serving-state.js";
import { validateConfig, validateJsonObject, validatePrompt, validateRequestId, validateSessionId, validateTitle } from "./validate.js";

export interface ExecuteInput {
  sessionId: string;
  prompt: string;
  requestId: string;
  config: SessionConfig | undefined;
  queue: boolean;
}

/** A client's answer to a permission request or question (RespondPermission). */
export type ClientDecision =
  | { behavior: "allow"; updatedInputJson: string; forSession: boolean }
  | { behavior: "deny"; message: string; interrupt: boolean }
  | { behavior: "answer"; answers: Record<string, string> };

/** Who makes a call: the tenant it acts for and the credential's name (for the audit log). */
export interface Caller {
  tenant: string;
  name: string;
}

export interface Subscription {
  status: SessionStatus;
  incarnation: string;
  firstSeq: number;
  lastSeq: number;
  /** Events in order, in batches of what was available at once. */
  events: AsyncIterable<Event[]>;
}

/** A session of any tenant, for the admin view. */
export interface TenantSession {
  tenant: string;
  summary: SessionSummary;
}

/** An open Execute or Subscribe stream and the last seq it handed out. */
interface OpenReader {
  kind: "execute" | "subscribe";
  log: EventLog;
  seq: number;
}

/** Another node a command goes to (a store many nodes share). */
export interface PeerNode {
  node: string;
  /** Where its API listens; undefined when it advertises none. */
  url: string | undefined;
  /** It runs the session (rather than having the most room for a session no node runs). */
  runs: boolean;
}

/** What Drain did. */
export interface DrainResult {
  turnsFinished: number;
  sessionsStopped: number;
}

// The longest deny message or answer a client may send.
const MAX_DECISION_TEXT = 4096;

// How often a node looks for sessions whose node died holding them (a store many nodes share).
const ORPHAN_SWEEP_MS = 500;

// How long shutdown waits for open streams to send their last events before cutting them.
const STREAM_DRAIN_MS = 2_000;

/**
 * The engine facade: everything the API offers, in domain terms. It owns the pool of
 * sessions and their logs, admission and the tenants' policies; the server only
 * authenticates, translates requests and maps errors.
 */
export class Engine {
  readonly pool: Pool;
  readonly store: Store;
  readonly audit: AuditLog;
  readonly sandbox: Sandbox;
  readonly startedAtMs = Date.now();
  readonly #committer: GroupCommitter;
  readonly #config: EngineConfig;
  #tenants: TenantDirectory;
  readonly #admission: Admission;
  readonly #claims = new WorkDirClaims();
  readonly #rules: TenantRules;
  #compactor: NodeJS.Timeout | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;
  /** The orphans the last sweep saw: one is taken when the next sweep sees it again. */
  #suspects = new Set<string>();
  #compaction: Promise<void> | undefined;
  /** Sessions being taken from the store (a store many nodes share), by store key. */
  readonly #taking = new Map<string, Promise<void>>();
  /** Copies being brought up to date with the store (a store many nodes share), by store key. */
  readonly #refreshing = new Map<string, Promise<void>>();
  /**
   * Sessions copied from a store many nodes share that this node has not run since: what
   * another node left open in them (a turn, a request) is closed only when this node takes them.
   */
  readonly #copies = new WeakSet<Session>();
  /** This node's sessions from before its restart, not taken back yet (a store many nodes share), by store key. */
  readonly #unrecovered = new Map<string, SessionRecord>();
  /** Per store key with readers following it in the store: aborted when this node deletes it. */
  readonly #rechecks = new Map<string, { deleted: AbortController; readers: number }>();
  readonly providers: ProviderRegistry;
  readonly #launcher: AgentLauncher;
  /** Every session's agent log together: bounded per session and over the sessions whose agent is gone. */
  readonly #agentLogs: AgentLogBudget;
  #versions: Promise<string[]> | undefined;
  readonly #logger: Logger;
  #draining = false;
  /** Serving, draining or stopping: what health checks and readiness probes report. */
  readonly serving = new ServingState();
  #egress: EgressProxy | undefined;
  // Shutdown, in two steps: `closing` once the last events are logged (following readers
  // end after reading them), `cut` when readers that are still not done are ended.
  readonly #closing = new AbortController();
  readonly #cut = new AbortController();
  #openStreams = 0;
  /** Where each open stream is in its log; kept only with an observer (see openStreams). */
  readonly #readers = new Set<OpenReader>();
  #streamsClosed: (() => void) | undefined;
  /** Agents started ahead of demand (EngineConfig.prewarm). */
  readonly prewarmed: PrewarmPool;

  private constructor(config: EngineConfig, logger: Logger, store: Store, providers: ProviderRegistry) {
    this.#config = config;
    this.#logger = logger;
    this.providers = providers;
    this.#tenants = config.tenants;
    this.store = store;
    this.audit = new AuditLog(store, logger);
    this.sandbox = Sandbox.open(config.sandbox, logger);
    this.#launcher = new AgentLauncher(this.sandbox);
    this.#agentLogs = new AgentLogBudget(config.limits.sessionLogBytes ?? DEFAULT_SESSION_LOG_BYTES);
    this.#committer = new GroupCommitter(store, logger, config.observer?.commit);
    this.pool = new Pool();
    this.#rules = new TenantRules(() => this.#tenants, config.workRoot);
    this.prewarmed = new PrewarmPool({
      provider: (name) => (this.providers.has(name) ? this.providers.get(name) : undefined),
      launcher: this.#launcher,
      sandbox: this.sandbox,
      workRoot: config.workRoot,
      stateRoot: config.stateRoot,
      ...(config.agentHomeTemplate ? { homeTemplate: config.agentHomeTemplate } : {}),
      envFor: (provider) => this.#envFor(provider),
      launchFor: (tenant, sessionConfig) => {
        const { policy } = this.#tenants.settingsOf(tenant);
        checkSessionPolicy(sessionConfig, policy);
        return launchConfig(sessionConfig, config.approvals.defaultMode, policy, this.#rules.active(tenant));
      },
      hasRoom: (tenant) => !this.#draining && this.#admission.whyNoProcess(tenant, true) === undefined,
      claim: (key, tenant, dir) => this.#claims.claim(key, tenant, "", dir),
      release: (key) => this.#claims.release(key),
      newLog: () => this.#agentLogs.create(),
      maxLineBytes: config.limits.maxLineBytes,
      stopGraceMs: config.limits.stopGraceMs,
      logger,
    });
    this.#admission = new Admission(
      this.pool,
      { maxLiveSessions: config.maxLiveSessions, maxStoredSessions: config.maxStoredSessions },
      () => this.#tenants,
      (tenant) => this.prewarmed.count(tenant),
    );
  }

  // An agent's environment: the daemon's allow-listed variables for its provider.
  #envFor(provider: Provider): Record<string, string> {
    return environmentFor(
      this.#config.agentEnv,
      provider.envAllowList,
      this.providers.all.filter((other) => other !== provider).flatMap((other) => other.envAllowList),
    );
  }

  // Pre-warmed agents make way for a cold start while live and pre-warmed agents together
  // are past a limit: the tenant's own first, any for the node's.
  #makeRoom(tenant: string): void {
    for (let over = this.#admission.overLimit(tenant); over; over = this.#admission.overLimit(tenant)) {
      if (!this.prewarmed.evict(over === "tenant" ? tenant : undefined)) return;
    }
  }

  /**
   * Opens the store, brings back every stored session and cleans up after a daemon
   * that stopped without a shutdown: agent process groups it left running are ended,
   * turns it left running end INTERRUPTED. Throws StoreOpenError for an unusable store.
   * `providers` replaces the ones the config names (tests, embedding).
   */
  static async open(config: EngineConfig, logger: Logger, providers?: readonly Provider[]): Promise<Engine> {
    const registry = providers
      ? new ProviderRegistry(providers, providers[0]?.name ?? config.providers.defaultProvider)
      : ProviderRegistry.fromSettings(config.providers);
    const store = await openStore(config.store, config.retention);
    const engine = new Engine(config, logger, store, registry);
    store.onLost = (key, why) => engine.#lost(key, why);
    store.keep = (key) => {
      const [tenant = "", sessionId = ""] = splitKey(key);
      const session = engine.pool.get({ tenant, sessionId });
      // A registry entry still to be stored counts too: its commit would take the hold again
      // right after it was given up, and another node's Execute would find it held.
      return session !== undefined && (session.live || session.busy || session.log.pendingCount > 0 || session.log.recordDue);
    };
    if (config.sandbox.network === "allow" && engine.sandbox.enabled) {
      const rules = (config.sandbox.allowedHosts ?? []).map(parseEgressRule);
      engine.#egress = await EgressProxy.start(path.join(config.stateRoot, ".egress.sock"), rules, logger);
      engine.sandbox.egressSocket = engine.#egress.socketPath;
      const { uid, gid } = config.sandbox;
      if (uid !== undefined) chownSync(engine.#egress.socketPath, uid, gid ?? uid);
      chmodSync(engine.#egress.socketPath, 0o600);
    }
    // Checked before anything is recovered: a bad spec fails the start.
    const prewarm = engine.#checkPrewarm(config.prewarm ?? []);
    await engine.#recover();
    engine.prewarmed.configure(prewarm);
    engine.#compactor = setInterval(() => void engine.compact(), config.compactIntervalMs);
    engine.#compactor.unref();
    if (store.orphans && config.store.kind === "redis") {
      // A session whose node died mid-turn is taken (and its turn ended owner_lost) within
      // about a second of its hold expiring, without waiting for anyone's next call.
      engine.#sweeper = setInterval(() => void engine.sweepOrphans(), Math.min(ORPHAN_SWEEP_MS, Math.floor(config.store.leaseTtlMs / 3)));
      engine.#sweeper.unref();
    }
    return engine;
  }

  get config(): Readonly<EngineConfig> {
    return this.#config;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get tenants(): TenantDirectory {
    return this.#tenants;
  }

  /**
   * Keeps agents ready for these launch configs (replacing the ones before). Each config is
   * validated as a session's would be; its provider defaults to the daemon's default.
   */
  configurePrewarm(specs: readonly PrewarmSpec[]): void {
    this.prewarmed.configure(this.#checkPrewarm(specs));
  }

  #checkPrewarm(specs: readonly PrewarmSpec[]): PrewarmSpec[] {
    return specs.map((spec, i) => {
      const config = clone(SessionConfigSchema, spec.config);
      try {
        if (!isTenantName(spec.tenant)) throw new HotplexError("invalid_argument", `tenant ${JSON.stringify(String(spec.tenant).slice(0, 80))} is not a tenant name (1-63 of [a-z0-9_-])`);
        if (config.workDir) throw new HotplexError("invalid_argument", "work_dir must be empty: each pre-warmed agent has a work dir of its own");
        validateConfig(config);
        const provider = this.providers.get(config.provider);
        config.provider = provider.name;
        provider.validateConfig(launchConfig(config, this.#config.approvals.defaultMode));
      } catch (error) {
        throw new HotplexError("invalid_argument", `prewarm.${i}: ${(error as Error).message}`);
      }
      if (!Number.isSafeInteger(spec.size) || spec.size < 0) throw new HotplexError("invalid_argument", `prewarm.${i}: size must be a whole number ≥ 0`);
      if (!Number.isSafeInteger(spec.idleMs) || spec.idleMs < 0) throw new HotplexError("invalid_argument", `prewarm.${i}: idleMs must be a whole number of milliseconds ≥ 0`);
      return { ...spec, config };
    });
  }

  /** Puts new tenant settings in force (a config reload); running sessions keep their config. */
  updateTenants(tenants: TenantDirectory): void {
    this.#tenants = tenants;
    // A policy change may change what pre-warmed agents are launched with.
    this.prewarmed.refill();
  }

  async #recover(): Promise<void> {
    const stored = await this.store.loadSessions();
    const records: SessionRecord[] = [];
    const orphans: Promise<void>[] = [];
    // One session at a time: only one session's events since its checkpoint are held at once.
    for (const checkpoint of stored) {
      const opened = await this.#openStored(checkpoint);
      if (!opened) continue;
      const { record, session } = opened;
      records.push(record);
      // Another node's session (a store many nodes share): its agent and its turn are that
      // node's; this one keeps a copy and runs it only once it holds it (Store.own).
      if (record.owner !== undefined && record.owner.node !== this.store.node) {
        this.#copies.add(session);
        continue;
      }
      if (record.pgid > 0) {
        orphans.push(
          endOrphanGroup(record.pgid, record.agentCommand, this.#config.limits.stopGraceMs, this.#logger, (launch) => this.sandbox.leftover(launch)),
        );
      }
      if (this.store.own) {
        // A store many nodes share: this node's hold from before the restart lasts until it
        // expires, and another node may take the session meanwhile. It is recovered once this
        // node holds it again, from whichever copy is current then (#takeNow).
        this.#unrecovered.set(record.key, record);
        continue;
      }
      session.recoverFromRestart(record);
      // Store the caught-up entry with the recovery's own events.
      session.log.touch();
    }
    await Promise.all(orphans);
    for (const record of this.#unrecovered.values()) {
      void this.#take({ tenant: record.tenant, sessionId: record.sessionId }).catch((error: unknown) => {
        // Another node took it meanwhile: that node closed what was left open.
        if (!(error instanceof HotplexError && error.code === "unavailable")) this.#logger.warn({ err: error, session: record.sessionId, tenant: record.tenant }, "could not take back a session after the restart");
      });
    }
    // Pre-warmed agents the previous daemon left: their processes end and their dirs go,
    // but for those a session took (its dirs now).
    const taken = new Set(this.pool.all().flatMap((session) => [session.stateDir, session.view.workDir]));
    await PrewarmPool.sweep(this.#config.workRoot, this.#config.stateRoot, taken, this.#config.limits.stopGraceMs, this.sandbox, this.#logger);
    await this.#committer.flush();
    if (records.length > 0) this.#logger.info({ sessions: records.length }, "sessions restored from the store");
  }

  // A session's stored events after `afterSeq`, in order, a page at a time.
  async *#storedAfter(key: string, afterSeq: number): AsyncGenerator<Event> {
    for (let page = await this.store.readEvents(key, afterSeq, 256); page.length > 0; page = await this.store.readEvents(key, afterSeq, 256)) {
      yield* page;
      afterSeq = Number(page[page.length - 1]?.seq);
    }
  }

  // Stores every registry entry that is behind its log, so that what the entries miss
  // is in the stored events (retention must not drop those before they are folded in).
  // False when some entry could not be stored (the commit failed and will be retried).
  async #checkpoint(): Promise<boolean> {
    const behind = (session: Session) => session.log.recordedSeq < session.log.assignedSeq;
    for (const session of this.pool.all()) if (behind(session)) session.log.touch();
    await this.#committer.flush();
    return !this.pool.all().some(behind);
  }

  /**
   * Enforces retention now (also runs periodically); never throws. A call while one runs
   * waits for that one and returns: one compaction at a time.
   */
  compact(nowMs = Date.now()): Promise<void> {
    this.#compaction ??= this.#compact(nowMs).finally(() => {
      this.#compaction = undefined;
    });
    return this.#compaction;
  }

  async #compact(nowMs: number): Promise<void> {
    try {
      if (!(await this.#checkpoint())) {
        this.#logger.warn("retention postponed: the session registry could not be stored");
        return;
      }
      const moved = await this.store.compact(this.#config.retention, nowMs);
      for (const [key, retained] of moved) {
        const [tenant = "", sessionId = ""] = splitKey(key);
        this.pool.get({ tenant, sessionId })?.log.retainedFrom(retained);
      }
    } catch (error) {
      this.#logger.error({ err: error }, "compaction failed");
    }
  }

  /**
   * Starts a turn (or finds the turn an earlier call with the same request id started)
   * and returns its events, in batches. Validation, the tenant's policy and admission
   * all happen before anything is created, so a refused call leaves nothing behind and
   * fails before it streams anything.
   */
  execute(caller: Caller, input: ExecuteInput, signal?: AbortSignal, owned = false): AsyncIterable<Event[]> {
    const { tenant } = caller;
    validateSessionId(input.sessionId);
    validatePrompt(input.prompt, this.#config.maxPromptBytes);
    validateRequestId(input.requestId);
    const config = input.config ? clone(SessionConfigSchema, input.config) : create(SessionConfigSchema);
    if (input.config) {
      validateConfig(config);
      const provider = this.providers.get(config.provider);
      // One spelling per provider, so that naming the default equals naming none.
      config.provider = provider.name;
      provider.validateConfig(launchConfig(config, this.#config.approvals.defaultMode));
      this.#checkApprovals(provider, config);
    }
    const key = { tenant, sessionId: input.sessionId };
    // A store many nodes share: this node takes the session first (and the store's copy of
    // it, when another node ran it since), before anything is created or started.
    if (!owned && this.store.holds && !this.store.holds(keyString(key))) return this.#executeOwned(caller, input, signal);
    const existing = this.pool.get(key);
    if (existing && input.config && existing.providerName !== config.provider) {
      throw new HotplexError(
        "failed_precondition",
        `session "${input.sessionId}" runs provider ${existing.providerName}; a session's provider cannot change: use another session id`,
      );
    }
    const retried = existing?.turnForRequest(input.requestId);
    if (existing && retried) return this.#turnEvents(existing, retried, signal);
    if (this.#draining) throw new HotplexError("unavailable", "the daemon is draining: it starts no more turns");
    const refusal = this.sandbox.refusal;
    if (refusal) throw new HotplexError("failed_precondition", refusal);

    const { policy } = this.#tenants.settingsOf(tenant);
    if (input.config) this.#checkPolicy(caller, input.sessionId, config, policy);
    const ruled = this.#judgePrompt(caller, input.sessionId, input.prompt);
    this.#admission.admitTurn(tenant, existing, Buffer.byteLength(input.prompt, "utf8"), existing?.busy ?? false);

    let session = existing;
    if (!session) {
      const workDir = this.#workDirFor(key, config, policy);
      session = this.pool.getOrCreate(key, () => this.#createSession(key, config, workDir));
      this.#claims.claim(keyString(key), tenant, key.sessionId, workDir);
    } else if (input.config && !equals(SessionConfigSchema, session.config, config)) {
      // The work dir is resolved (realpath syscalls) only when a session is created or
      // reconfigured, not on every turn of a warm session.
      session.checkReconfigurable();
      // The same work_dir keeps the dir the session has (a pre-warmed agent's, say).
      const workDir = config.workDir === session.config.workDir ? session.view.workDir : this.#workDirFor(key, config, policy);
      session.reconfigure(config, workDir);
      this.#claims.claim(keyString(key), tenant, key.sessionId, workDir);
    }
    let turn: RequestedTurn;
    try {
      const submitted = session.submit(input.prompt, input.requestId, input.queue);
      turn = { turnId: submitted.id, fromSeq: submitted.fromSeq };
    } catch (error) {
      // A session this call created and could not use is not kept.
      if (!existing) this.#forget(key, session);
      throw error;
    }
    this.#admission.turnAdmitted(tenant);
    for (const match of ruled.matches) session.log.append(turn.turnId, { case: "ruleMatched", value: ruleMatched(match, ruled.bypassed) });
    return this.#turnEvents(session, turn, signal);
  }

  // The tenant's rules on a prompt: a block (not bypassed) fails the call, naming the rule,
  // and is audited; what else matched is logged in the turn.
  #judgePrompt(caller: Caller, sessionId: string, prompt: string) {
    const verdict = this.#rules.judge(caller.tenant, keyString({ tenant: caller.tenant, sessionId }), { kind: "prompt", text: prompt });
    const audit = (kind: AuditKind, detail: string) =>
      this.audit.record({ kind, principal: caller.name, tenant: caller.tenant, sessionId, method: "hotplex.v1.SessionService/Execute", detail });
    for (const match of verdict.matches) {
      if (match.severity === "warn") continue;
      audit(verdict.bypassed ? "rule_bypassed" : match.severity === "block" ? "rule_blocked" : "rule_asked", `${match.ruleId}: ${prompt.slice(0, 512)}`);
    }
    const block = verdict.bypassed ? undefined : verdict.matches.find((match) => match.severity === "block");
    if (block) {
      throw new HotplexError(
        "permission_denied",
        `the prompt is blocked by rule ${block.ruleId} (${block.description}): ${JSON.stringify(block.evidence.slice(0, 120))}`,
      );
    }
    return verdict;
  }

  /** Lifts the tenant's rules for one session for `seconds` (0 ends it); returns when it ends. */
  setRuleBypass(caller: Caller, sessionId: string, seconds: number): number | undefined {
    this.#session(caller.tenant, sessionId);
    return this.#rules.setBypass(keyString({ tenant: caller.tenant, sessionId }), seconds);
  }

  // The tenant's policy; a refusal is audited.
  #checkPolicy(caller: Caller, sessionId: string, config: SessionConfig, policy: SessionPolicy, method = "hotplex.v1.SessionService/Execute"): void {
    try {
      checkSessionPolicy(config, policy);
    } catch (error) {
      if (error instanceof HotplexError) {
        this.audit.record({
          kind: "policy_denied",
          principal: caller.name,
          tenant: caller.tenant,
          sessionId,
          method,
          detail: error.message,
        });
      }
      throw error;
    }
  }

  // Resolves and checks a work dir inside the tenant's root; it must not be another session's.
  #workDirFor(key: SessionKey, config: SessionConfig, policy: SessionPolicy): string {
    const tenantRoot = path.join(this.#config.workRoot, key.tenant);
    // Traversable, not listable: an agent of its own user reaches its dir by name only.
    mkdirSync(tenantRoot, { recursive: true, mode: 0o711 });
    mkdirSync(path.join(this.#config.stateRoot, key.tenant), { recursive: true, mode: 0o711 });
    const workDir = resolveWorkDir(tenantRoot, config.workDir, key.sessionId);
    this.#claims.check(keyString(key), key.tenant, key.sessionId, workDir, policy.shareWorkDirs);
    return workDir;
  }

  /**
   * Events after `afterSeq`, then live ones if `follow`. `afterSeq` is any uint64 a client
   * sent: one beyond the log (up to 2^64 - 1) is an exact OUT_OF_RANGE, never rounded.
   * With `afterEpoch` (the epoch of the event at afterSeq as the client got it), a log that
   * no longer holds that event is FAILED_PRECONDITION (a store lost it in a failover).
   */
  async subscribe(
    caller: Caller,
    sessionId: string,
    afterSeq: bigint | number,
    follow: boolean,
    incarnation = "",
    signal?: AbortSignal,
    afterEpoch: bigint | number = 0n,
  ): Promise<Subscription> {
    const session = await this.#current(caller.tenant, sessionId);
    if (incarnation && incarnation !== session.incarnation) {
      throw new HotplexError(
        "failed_precondition",
        `session "${sessionId}" was deleted and created again: incarnation ${incarnation} is gone (now ${session.incarnation}); ` +
          "read it from after_seq 0 with the new incarnation",
      );
    }
    const { log } = session;
    const requested = BigInt(afterSeq);
    if (BigInt(afterEpoch) > 0n && requested > 0n) await this.#checkResumePoint(session, requested, BigInt(afterEpoch));
    const retained = log.retained > 0;
    const firstSeq = retained ? log.firstSeq : 0;
    if (requested > BigInt(log.lastSeq) || requested < BigInt(log.firstSeq - 1)) {
      throw new OutOfRangeError(sessionId, requested, log.firstSeq, log.lastSeq);
    }
    const from = Number(requested);
    // A store many nodes share: a follower reads the store, which has what any node runs
    // of the session, now or after it moves to another node.
    const events =
      follow && this.store.watch
        ? this.#followStored(session, from, Number(afterEpoch), signal)
        : readEventBatches(log, from, { follow, signal, closing: this.#closing.signal, cut: this.#cut.signal });
    return {
      status: session.view.status,
      incarnation: session.incarnation,
      firstSeq,
      lastSeq: log.lastSeq,
      events: this.#tracked(this.#positioned(events, "subscribe", log, from)),
    };
  }

  // A resume token (seq, epoch): the log must still hold that event, under that epoch. A log
  // that ends before it, or whose event there has another epoch, lost events the client saw
  // (an asynchronous Redis replica promoted in a failover) and gave their numbers again.
  async #checkResumePoint(session: Session, seq: bigint, epoch: bigint): Promise<void> {
    const { log } = session;
    let found: bigint | undefined;
    if (seq <= BigInt(log.lastSeq)) {
      // Dropped by retention: nothing to compare; the range check below says OUT_OF_RANGE.
      if (seq < BigInt(log.firstSeq)) return;
      found = (await log.read(Number(seq) - 1, 1))[0]?.epoch;
      if (found === epoch) return;
    }
    throw new HotplexError(
      "failed_precondition",
      `the event at seq ${seq} of session "${session.sessionId}" that you received (epoch ${epoch}) is not in its log any more ` +
        (found === undefined ? `(the log ends at seq ${log.lastSeq})` : `(seq ${seq} is of epoch ${found} now)`) +
        ": the store lost events in a failover; read the session again (GetSnapshot, or Subscribe from after_seq 0)",
    );
  }

  /** The session's state and the seq it reflects, read in one synchronous step (once the copy is current). */
  async snapshot(caller: Caller, sessionId: string): Promise<{ session: SessionInfo; lastSeq: number }> {
    const session = await this.#current(caller.tenant, sessionId);
    const info = session.view.toInfo(session.config, session.incarnation);
    info.sandbox = sandboxInfo(this.sandbox.state);
    info.capabilities = capabilitiesInfo(session.provider.capabilities);
    return { session: info, lastSeq: session.log.lastSeq };
  }

  /** The enabled providers with their agents' versions (asked once, then remembered). */
  async listProviders(): Promise<ProviderInfo[]> {
    this.#versions ??= Promise.all(this.providers.all.map((provider) => provider.version().catch(() => "")));
    const versions = await this.#versions;
    return this.providers.all.map((provider, i) =>
      create(ProviderInfoSchema, {
        name: provider.name,
        version: versions[i] ?? "",
        capabilities: capabilitiesInfo(provider.capabilities),
        isDefault: provider.name === this.providers.defaultProvider,
      }),
    );
  }

  async stop(caller: Caller, sessionId: string): Promise<{ session: SessionInfo; lastSeq: number }> {
    const session = this.#session(caller.tenant, sessionId);
    await session.stop("stopped");
    // The SessionEnded event is in the answer's last_seq: commit it first.
    await this.#committer.flush();
    return this.snapshot(caller, sessionId);
  }

  /**
   * Interrupts the session's running turn (optionally only if it is `turnId`) and returns
   * once it has ended. FAILED_PRECONDITION when the provider cannot, or no such turn runs.
   */
  async interrupt(caller: Caller, sessionId: string, turnId: string): Promise<{ turnId: string; outcome: TurnOutcome; lastSeq: number }> {
    const session = this.#session(caller.tenant, sessionId);
    if (turnId) validateRequestId(turnId, "turn_id");
    if (!session.provider.capabilities.interrupt) {
      throw new HotplexError("failed_precondition", `provider ${session.providerName} cannot interrupt a turn; use StopSession to end the agent`);
    }
    const turn = session.interrupt(turnId);
    await turn.done;
    // The TurnEnded event is in the answer's last_seq: commit it first.
    await this.#committer.flush();
    return { turnId: turn.id, outcome: turn.outcome, lastSeq: session.log.lastSeq };
  }

  // A session that asks the client needs a provider that can.
  #checkApprovals(provider: Provider, config: SessionConfig): void {
    if (config.approvalMode === ApprovalMode.CLIENT && !provider.capabilities.approvals) {
      throw new HotplexError("failed_precondition", `provider ${provider.name} cannot ask the client for approvals: use approval_mode AGENT`);
    }
  }

  /** Answers a pending permission request or question; returns the last seq, PermissionResolved included. */
  async respondPermission(caller: Caller, sessionId: string, requestId: string, decision: ClientDecision | undefined): Promise<number> {
    const session = this.#session(caller.tenant, sessionId);
    if (!requestId) throw new HotplexError("invalid_argument", "request_id is empty: send PermissionRequested.request_id");
    validateRequestId(requestId);
    if (!decision) throw new HotplexError("invalid_argument", "decision is not set: send allow, deny or answer");
    let agentDecision: AgentDecision & { interrupt?: boolean };
    switch (decision.behavior) {
      case "allow":
        if (decision.updatedInputJson) validateJsonObject(decision.updatedInputJson, "decision.allow.updated_input_json", MAX_INPUT_JSON_BYTES);
        agentDecision = { behavior: "allow", forSession: decision.forSession, ...(decision.updatedInputJson ? { updatedInputJson: decision.updatedInputJson } : {}) };
        break;
      case "deny":
        if (decision.message.length > MAX_DECISION_TEXT) throw new HotplexError("invalid_argument", `decision.deny.message is longer than ${MAX_DECISION_TEXT} characters`);
        agentDecision = { behavior: "deny", message: decision.message || "denied by the client", interrupt: decision.interrupt };
        break;
      case "answer": {
        const entries = Object.entries(decision.answers);
        if (entries.length === 0) throw new HotplexError("invalid_argument", "decision.answer.answers is empty: answer every question");
        for (const [id, text] of entries) {
          if (text.length > MAX_DECISION_TEXT) throw new HotplexError("invalid_argument", `decision.answer.answers[${JSON.stringify(id.slice(0, 64))}] is longer than ${MAX_DECISION_TEXT} characters`);
        }
        agentDecision = { behavior: "answer", answers: decision.answers };
        break;
      }
    }
    session.respond(requestId, agentDecision, caller.name);
    // The PermissionResolved event is in the answer's last_seq: commit it first.
    await this.#committer.flush();
    return session.log.lastSeq;
  }

  /** Delivers a message into the running turn. */
  async steer(caller: Caller, sessionId: string, prompt: string, turnId: string): Promise<{ turnId: string; seq: number }> {
    const session = this.#session(caller.tenant, sessionId);
    validatePrompt(prompt, this.#config.maxPromptBytes);
    if (turnId) validateRequestId(turnId, "turn_id");
    if (!session.provider.capabilities.steer) {
      throw new HotplexError("failed_precondition", `provider ${session.providerName} cannot take a message into a running turn; queue it with Execute instead`);
    }
    // A message into a turn is a prompt like any other: the tenant's rules judge it first.
    const ruled = this.#judgePrompt(caller, sessionId, prompt);
    const steered = await session.steer(prompt, turnId);
    for (const match of ruled.matches) session.log.append(steered.turnId, { case: "ruleMatched", value: ruleMatched(match, ruled.bypassed) });
    await this.#committer.flush();
    return steered;
  }

  /** Cancels a queued turn. */
  async cancelTurn(caller: Caller, sessionId: string, turnId: string): Promise<number> {
    const session = this.#session(caller.tenant, sessionId);
    if (!turnId) throw new HotplexError("invalid_argument", "turn_id is empty: name the queued turn (SessionInfo.queued)");
    validateRequestId(turnId, "turn_id");
    session.cancelQueued(turnId);
    await this.#committer.flush();
    return session.log.lastSeq;
  }

  /** Changes the model and/or permission mode between turns. */
  async changeSettings(caller: Caller, sessionId: string, settings: LiveSettings): Promise<{ session: SessionInfo; lastSeq: number }> {
    const session = this.#session(caller.tenant, sessionId);
    if (settings.model === undefined && settings.permissionMode === undefined) {
      throw new HotplexError("invalid_argument", "nothing to change: set model and/or permission_mode");
    }
    const config = clone(SessionConfigSchema, session.config);
    if (settings.model !== undefined) config.model = settings.model;
    if (settings.permissionMode !== undefined) config.permissionMode = settings.permissionMode;
    validateConfig(config);
    session.provider.validateConfig(launchConfig(config, this.#config.approvals.defaultMode));
    const { policy } = this.#tenants.settingsOf(caller.tenant);
    this.#checkPolicy(caller, sessionId, config, policy, "hotplex.v1.SessionService/ChangeSettings");
    await session.changeSettings(settings, config);
    await this.#committer.flush();
    return this.snapshot(caller, sessionId);
  }

  /** The models the session's running agent offers. */
  async listModels(caller: Caller, sessionId: string): Promise<AgentModel[]> {
    const session = this.#session(caller.tenant, sessionId);
    if (!session.provider.capabilities.listModels) throw new HotplexError("failed_precondition", `provider ${session.providerName} cannot list its models`);
    return session.listModels();
  }

  /** The session's next turn starts a new conversation. */
  async resetSession(caller: Caller, sessionId: string): Promise<{ providerSessionId: string; lastSeq: number }> {
    const session = this.#session(caller.tenant, sessionId);
    const providerSessionId = await session.reset();
    await this.#committer.flush();
    return { providerSessionId, lastSeq: session.log.lastSeq };
  }

  /** Sets a session's title. */
  async setTitle(caller: Caller, sessionId: string, title: string): Promise<number> {
    const session = this.#session(caller.tenant, sessionId);
    validateTitle(title);
    session.setTitle(title);
    await this.#committer.flush();
    return session.log.lastSeq;
  }

  /**
   * A new session whose conversation starts as a copy of `sessionId`'s (up to the end of
   * `upToTurnId` where the provider can): the parent's transcript is copied into the
   * fork's own HOME, and its first start forks it there.
   */
  async forkSession(
    caller: Caller,
    sessionId: string,
    newSessionId: string,
    upToTurnId: string,
    title: string,
  ): Promise<{ session: SessionInfo; lastSeq: number }> {
    const { tenant } = caller;
    const parent = this.#session(tenant, sessionId);
    validateSessionId(newSessionId);
    validateTitle(title);
    if (upToTurnId) validateRequestId(upToTurnId, "up_to_turn_id");
    const { provider } = parent;
    if (!provider.capabilities.fork) throw new HotplexError("failed_precondition", `provider ${provider.name} cannot fork a conversation`);
    if (upToTurnId && !provider.capabilities.forkAtTurn) {
      throw new HotplexError("failed_precondition", `provider ${provider.name} cannot fork up to a turn: fork the whole history (no up_to_turn_id)`);
    }
    const key = { tenant, sessionId: newSessionId };
    if (this.pool.get(key)) throw new HotplexError("already_exists", `session "${newSessionId}" exists: choose another id for the fork`);
    if (this.#draining) throw new HotplexError("unavailable", "the daemon is draining: it creates no more sessions");
    if (parent.busy) throw new HotplexError("failed_precondition", `session "${sessionId}" has a turn running or queued: fork it between turns`);
    if (!parent.hasConversation) throw new HotplexError("failed_precondition", `session "${sessionId}" has no conversation yet: run a turn first`);
    const { at, last } = await this.#forkRefs(parent, upToTurnId);
    this.#admission.admitTurn(tenant, undefined, 0, false);
    const config = clone(SessionConfigSchema, parent.config);
    // The fork's own work dir (the parent's files stay the parent's).
    config.workDir = "";
    const { policy } = this.#tenants.settingsOf(tenant);
    const workDir = this.#workDirFor(key, config, policy);
    const parentConversation = parent.view.providerSessionId;
    const child = this.pool.getOrCreate(key, () => this.#createSession(key, config, workDir));
    this.#claims.claim(keyString(key), tenant, newSessionId, workDir);
    const transcripts = parent.provider.transcriptFiles(parentConversation, parent.view.workDir, parent.home);
    try {
      // An agent may write its transcript a moment after it ends a turn (tens of ms, more
      // than a turn behind on hot turns, seen): copy it once it holds the turns copied.
      await transcriptHolding(transcripts, at || last, FORK_TRANSCRIPT_WAIT_MS);
      await child.prepareFork(transcripts, { providerSessionId: parentConversation, at });
    } catch (error) {
      this.#forget(key, child);
      await this.store.deleteSession(keyString(key));
      throw new HotplexError("internal", `cannot copy the parent's conversation: ${(error as Error).message}`);
    }
    child.log.append("", {
      case: "sessionForked",
      value: create(SessionForkedSchema, { parentSessionId: sessionId, parentTurnId: upToTurnId, parentProviderSessionId: parentConversation }),
    });
    if (title) child.log.append("", { case: "titleChanged", value: create(TitleChangedSchema, { title }) });
    child.log.touch();
    await this.#committer.flush();
    this.#logger.info({ session: newSessionId, parent: sessionId, tenant, upToTurnId }, "session forked");
    return this.snapshot(caller, newSessionId);
  }

  // The provider's reference to the end of turn `upToTurnId` of the session (its
  // TurnEnded's; "" for none asked), and to the end of its last turn that has one.
  async #forkRefs(session: Session, upToTurnId: string): Promise<{ at: string; last: string }> {
    let at: string | undefined;
    let last = "";
    for await (const event of this.#storedAfter(keyString({ tenant: session.tenant, sessionId: session.sessionId }), 0)) {
      if (event.payload.case !== "turnEnded") continue;
      const ref = event.payload.value.providerTurnRef;
      if (ref) last = ref;
      if (upToTurnId && event.turnId === upToTurnId) {
        if (!ref) throw new HotplexError("failed_precondition", `turn ${upToTurnId} has no reference to fork at (it ended before the agent answered)`);
        at = ref;
      }
    }
    if (upToTurnId && at === undefined) {
      throw new HotplexError("not_found", `session "${session.sessionId}" has no ended turn ${JSON.stringify(upToTurnId.slice(0, 128))} (retained in its log)`);
    }
    return { at: at ?? "", last };
  }

  /** Stops and removes a session, its events and (optionally) the agent's transcript. */
  async delete(caller: Caller, sessionId: string, deleteTranscript: boolean): Promise<{ lastSeq: number }> {
    const { tenant } = caller;
    await this.#current(tenant, sessionId);
    const key = { tenant, sessionId };
    // A store many nodes share: only the node that holds the session deletes it (UNAVAILABLE
    // while another node runs it), so no node's agent goes on writing a deleted log.
    if (this.store.holds && !this.store.holds(keyString(key))) await this.#take(key);
    const session = this.#session(tenant, sessionId);
    await session.stop("deleted");
    await this.#committer.flush();
    this.#forget(key, session);
    await this.store.deleteSession(keyString(key));
    this.#rechecks.get(keyString(key))?.deleted.abort();
    this.#rules.forget(keyString(key));
    // The session's HOME holds the agent's transcript: kept unless asked, so that the id,
    // used again, continues that conversation.
    // A session that took a pre-warmed agent keeps that agent's dirs (the id, used again,
    // starts a new conversation: nothing links it to them any more).
    const stateDir = session.stateDir;
    const home = session.home;
    await Promise.all(
      (await readdir(stateDir).catch(() => [] as string[]))
        .filter((entry) => entry !== "home" || deleteTranscript)
        .map((entry) => rm(path.join(stateDir, entry), { recursive: true, force: true })),
    );
    if (deleteTranscript) {
      // Also where transcripts lived before sessions had their own HOME.
      const legacy = this.#config.agentEnv.HOME;
      const files = legacy ? session.provider.transcriptFiles(session.view.providerSessionId, session.view.workDir, legacy) : [];
      await Promise.all([...files.map((file) => rm(file, { force: true })), rm(home, { recursive: true, force: true })]);
    }
    this.#logger.info({ session: sessionId, tenant, deleteTranscript }, "session deleted");
    return { lastSeq: session.log.lastSeq };
  }

  async stats(caller: Caller, sessionId: string): Promise<SessionStats> {
    return clone(SessionStatsSchema, (await this.#current(caller.tenant, sessionId)).view.stats.stats);
  }

  async list(caller: Caller): Promise<SessionSummary[]> {
    await this.#refreshAll(caller.tenant);
    return this.pool
      .list(caller.tenant)
      .sort((a, b) => b.view.lastActiveMs - a.view.lastActiveMs)
      .map(summaryOf);
  }

  /** Every tenant's sessions (or one tenant's), most recently active first: for admins. */
  async listAll(tenant = ""): Promise<TenantSession[]> {
    await this.#refreshAll(tenant);
    return this.pool
      .all()
      .filter((session) => tenant === "" || session.tenant === tenant)
      .sort((a, b) => b.view.lastActiveMs - a.view.lastActiveMs)
      .map((session) => ({ tenant: session.tenant, summary: summaryOf(session) }));
  }

  /**
   * A session's agent log (for admins): the entries after `afterIndex` in pages of at most
   * `limit` (0 for the default); without `follow` one page, with it more as entries are
   * written, until the session is deleted, the daemon shuts down or `signal` aborts.
   */
  sessionLogs(tenant: string, sessionId: string, afterIndex: bigint, limit: number, follow: boolean, signal?: AbortSignal): AsyncIterable<AgentLogPage> {
    const session = this.#session(tenant, sessionId);
    if (limit > MAX_LOG_PAGE) throw new HotplexError("invalid_argument", `limit ${limit} is more than ${MAX_LOG_PAGE}`);
    // An index past any there can be reads as "after the newest": an empty page, then what comes.
    const after = afterIndex > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(afterIndex);
    const stop = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    return this.#tracked(readAgentLog(session.agentLog, after, limit, follow, stop));
  }

  /**
   * The other node a command on the session must run on (a store many nodes share), with
   * where its API listens (undefined when it advertises none): the node that runs the
   * session now; with `place` (a turn), when no node does, the live node with the most room
   * if it has more than this one. Undefined when the command runs here.
   */
  async peerFor(tenant: string, sessionId: string, place = false): Promise<PeerNode | undefined> {
    validateSessionId(sessionId);
    const key = keyString({ tenant, sessionId });
    if (!this.store.holder || this.store.holds?.(key)) return undefined;
    try {
      const node = await this.store.holder(key);
      if (node === this.store.node) return undefined;
      if (node) return { node, url: await this.store.addressOf?.(node), runs: true };
      return place ? await this.#roomier() : undefined;
    } catch (error) {
      throw new HotplexError("unavailable", `cannot tell which node runs session "${sessionId}": ${(error as Error).message}`, { cause: error });
    }
  }

  // The live node with the most room for another agent, when it has more than this node.
  async #roomier(): Promise<PeerNode | undefined> {
    const nodes = (await this.store.liveNodes?.()) ?? [];
    let best: { node: string; url: string; free: number } | undefined;
    for (const { node, url, load, capacity } of nodes) {
      const free = capacity - load;
      if (node !== this.store.node && free > (best?.free ?? 0)) best = { node, url, free };
    }
    const here = this.#config.maxLiveSessions - this.pool.liveCount();
    return best && best.free > here ? { node: best.node, url: best.url, runs: false } : undefined;
  }

  /** This node's id in a store many nodes share; undefined for a store of one node. */
  get node(): string | undefined {
    return this.store.node;
  }

  /** Tells the other nodes (a store many nodes share) that this node's API is at `url`, and how loaded it is. */
  advertise(url: string): void {
    this.store.advertise?.(url, () => ({ load: this.pool.liveCount(), capacity: this.#config.maxLiveSessions }));
  }

  /** Records an admin action or a refusal in the audit log. */
  recordAudit(entry: AuditEntry): void {
    this.audit.record(entry);
  }

  /**
   * Starts no more turns; lets running and queued ones finish for up to `graceMs`, then
   * stops every session that still runs an agent. Health reports NOT_SERVING before
   * anything else happens; `cutShort` ends the grace period early (a second signal).
   */
  async drain(graceMs: number, cutShort?: AbortSignal): Promise<DrainResult> {
    this.serving.enter(ServingPhase.DRAINING);
    this.#draining = true;
    // No session will take them now.
    await this.prewarmed.close();
    const busy = this.pool.all().filter((session) => session.busy);
    let finished = 0;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
      cutShort?.addEventListener("abort", () => resolve(), { once: true });
    });
    await Promise.race([
      Promise.all(busy.map((session) => session.whenIdle().then(() => (finished += 1)))),
      grace,
    ]);
    clearTimeout(timer);
    // Counted now: a turn the stop below ends becomes idle too, but it did not finish.
    const turnsFinished = finished;
    const running = this.pool.all().filter((session) => session.live);
    await Promise.all(running.map((session) => session.stop("drained")));
    await this.#committer.flush();
    this.#logger.info({ turnsFinished, sessionsStopped: running.length }, "drained");
    return { turnsFinished, sessionsStopped: running.length };
  }

  /**
   * Ends every agent process group, then every open stream: each Execute stream gets its
   * turn's last events (every turn ends STOPPED), each following Subscribe the events
   * logged so far, then UNAVAILABLE. Streams still open after a short wait are cut with
   * UNAVAILABLE.
   */
  async shutdown(): Promise<void> {
    this.serving.enter(ServingPhase.STOPPING);
    clearInterval(this.#compactor);
    clearInterval(this.#sweeper);
    await this.#sweeping;
    this.#draining = true;
    await this.prewarmed.close();
    await this.pool.shutdown();
    // Shared agent servers end once no session uses them.
    await this.providers.close();
    await this.#checkpoint();
    this.#closing.abort();
    await this.#streamsDone(STREAM_DRAIN_MS);
    this.#cut.abort();
    await this.#compaction;
    await this.#checkpoint();
    await this.#committer.close();
    await this.store.close();
    await this.#egress?.close();
  }

  #session(tenant: string, sessionId: string): Session {
    validateSessionId(sessionId);
    const session = this.pool.get({ tenant, sessionId });
    // Another tenant's session is as missing as one that never existed.
    if (!session) throw new HotplexError("not_found", `session "${sessionId}" does not exist`);
    return session;
  }

  // The session as the store has it now. A store many nodes share may hold what another
  // node wrote since this node's copy was made, or a session this node never saw: a node
  // that does not hold the session brings its copy up to date first.
  async #current(tenant: string, sessionId: string): Promise<Session> {
    validateSessionId(sessionId);
    const key = { tenant, sessionId };
    const storeKey = keyString(key);
    if (this.store.holds) {
      // An Execute taking it here: the copy it leaves is the current one.
      await this.#taking.get(storeKey)?.catch(() => {});
      if (!this.store.holds(storeKey)) await this.#refresh(key);
    }
    return this.#session(tenant, sessionId);
  }

  // One refresh at a time per session; concurrent reads share it.
  #refresh(key: SessionKey, known?: SessionRecord): Promise<void> {
    const storeKey = keyString(key);
    let refreshing = this.#refreshing.get(storeKey);
    if (!refreshing) {
      refreshing = this.#refreshNow(key, known).finally(() => this.#refreshing.delete(storeKey));
      this.#refreshing.set(storeKey, refreshing);
    }
    return refreshing;
  }

  async #refreshNow(key: SessionKey, known: SessionRecord | undefined): Promise<void> {
    const storeKey = keyString(key);
    const local = this.pool.get(key);
    let record: SessionRecord | undefined;
    let newer: Event[];
    try {
      [record, newer] = await Promise.all([known ?? this.store.loadSession(storeKey), local ? this.store.readEvents(storeKey, local.log.assignedSeq, 1) : []]);
    } catch (error) {
      throw new HotplexError("unavailable", `session "${key.sessionId}" cannot be read from the store: ${(error as Error).message}`, { cause: error });
    }
    // Taken meanwhile, or in use here: this node's copy is the one that counts.
    if (this.store.holds?.(storeKey) || this.pool.get(key) !== local || local?.live || local?.busy) return;
    if (!record) {
      // Deleted by another node: its readers here are told so.
      if (local) this.#forget(key, local);
      return;
    }
    if (local && local.incarnation === record.incarnation && newer.length === 0 && local.log.assignedSeq >= record.lastSeq) return;
    if (local) this.#forget(key, local, new HotplexError("unavailable", `session "${key.sessionId}" was written by another node since this node's copy: read it again`));
    const opened = await this.#openStored(record);
    if (opened) this.#copies.add(opened.session);
  }

  // Every stored session of a tenant (or of all, for "") brought up to date, so that a list
  // shows what any node ran; copies of sessions the store no longer has are forgotten.
  async #refreshAll(tenant: string): Promise<void> {
    if (!this.store.holds) return;
    let records: SessionRecord[];
    try {
      records = (await this.store.loadSessions()).filter((record) => tenant === "" || record.tenant === tenant);
    } catch (error) {
      throw new HotplexError("unavailable", `the sessions cannot be read from the store: ${(error as Error).message}`, { cause: error });
    }
    const stored = new Set(records.map((record) => record.key));
    for (const session of this.pool.all()) {
      const key = { tenant: session.tenant, sessionId: session.sessionId };
      const storeKey = keyString(key);
      if ((tenant !== "" && session.tenant !== tenant) || stored.has(storeKey) || this.store.holds(storeKey) || this.#taking.has(storeKey)) continue;
      if (!session.live && !session.busy) this.#forget(key, session);
    }
    // A page of sessions at a time, their reads in flight together.
    for (let at = 0; at < records.length; at += 100) {
      await Promise.all(
        records.slice(at, at + 100).map(async (record) => {
          const key = { tenant: record.tenant, sessionId: record.sessionId };
          await this.#taking.get(record.key)?.catch(() => {});
          if (!this.store.holds!(record.key)) await this.#refresh(key, record);
        }),
      );
    }
  }

  // A following reader of a store many nodes share: the session's events as any node
  // stores them, for as long as the session (this incarnation of it) exists.
  async *#followStored(session: Session, afterSeq: number, epoch: number, signal?: AbortSignal): AsyncGenerator<Event[]> {
    const storeKey = keyString({ tenant: session.tenant, sessionId: session.sessionId });
    const { sessionId, incarnation } = session;
    let recheck = this.#rechecks.get(storeKey);
    if (!recheck) {
      recheck = { deleted: new AbortController(), readers: 0 };
      this.#rechecks.set(storeKey, recheck);
    }
    recheck.readers += 1;
    try {
      yield* followStoredLog(this.store as StoredLog, storeKey, afterSeq, {
        follow: true,
        signal,
        closing: this.#closing.signal,
        cut: this.#cut.signal,
        sessionId,
        epoch,
        recheck: recheck.deleted.signal,
        check: () => this.#stillStored(storeKey, sessionId, incarnation),
      });
    } finally {
      recheck.readers -= 1;
      if (recheck.readers === 0 && this.#rechecks.get(storeKey) === recheck) this.#rechecks.delete(storeKey);
    }
  }

  // Throws when the session a reader follows is no longer in the store (deleted, or
  // deleted and created again).
  async #stillStored(storeKey: string, sessionId: string, incarnation: string): Promise<void> {
    let record: SessionRecord | undefined;
    try {
      record = await this.store.loadSession(storeKey);
    } catch (error) {
      throw new HotplexError("unavailable", `session "${sessionId}" cannot be read from the store (${(error as Error).message}): resume after the last seq received`, { cause: error });
    }
    if (!record) throw new HotplexError("not_found", `session "${sessionId}" was deleted`);
    if (record.incarnation !== incarnation) {
      throw new HotplexError(
        "failed_precondition",
        `session "${sessionId}" was deleted and created again: incarnation ${incarnation} is gone (now ${record.incarnation}); read it from after_seq 0 with the new incarnation`,
      );
    }
  }

  async *#executeOwned(caller: Caller, input: ExecuteInput, signal?: AbortSignal): AsyncGenerator<Event[]> {
    await this.#take({ tenant: caller.tenant, sessionId: input.sessionId });
    yield* this.execute(caller, input, signal, true);
  }

  /**
   * Takes every session whose node died (or stalled) holding it, closing what that node left
   * open (a turn, a request: owner_lost), then gives it up again: the next Execute on any
   * node resumes it. Runs periodically on a store many nodes share; a session is taken when
   * two sweeps in a row found it orphaned. Resolves with how many it took. One sweep at a
   * time; never throws.
   */
  sweepOrphans(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    if (this.#draining || !this.store.orphans) return 0;
    let orphans: string[];
    try {
      orphans = await this.store.orphans();
    } catch (error) {
      this.#logger.warn({ err: error }, "could not look for sessions of nodes that died");
      return 0;
    }
    // Seen twice, a sweep apart: a node that is taking a session right now (its lease on its
    // way to Redis) is not mistaken for one that died.
    const confirmed = orphans.filter((key) => this.#suspects.has(key));
    this.#suspects = new Set(orphans);
    let taken = 0;
    for (const storeKey of confirmed) {
      if (this.#draining) break;
      const [tenant = "", sessionId = ""] = splitKey(storeKey);
      try {
        await this.#take({ tenant, sessionId });
        taken += 1;
      } catch (error) {
        // Another node took it first (or it is this node's own from before a restart, which
        // its hold brings back once it expired): nothing to do.
        if (!(error instanceof HotplexError && error.code === "unavailable")) this.#logger.warn({ err: error, session: sessionId, tenant }, "could not take the session of a node that died");
      }
    }
    return taken;
  }

  // Makes this node the one that runs the session (a store many nodes share); when another
  // node ran it since this node's copy was made, the copy is replaced by the store's, and
  // what that node left open (a turn, a request) is closed as owner_lost. One at a time per
  // session: concurrent Executes share it.
  #take(key: SessionKey): Promise<void> {
    const storeKey = keyString(key);
    let taking = this.#taking.get(storeKey);
    if (!taking) {
      taking = this.#takeNow(key).finally(() => this.#taking.delete(storeKey));
      this.#taking.set(storeKey, taking);
    }
    return taking;
  }

  async #takeNow(key: SessionKey): Promise<void> {
    const storeKey = keyString(key);
    // A read bringing the copy up to date finishes first: the copy it leaves is the one taken.
    await this.#refreshing.get(storeKey);
    let stored: number;
    try {
      stored = await this.store.own!(storeKey);
    } catch (error) {
      if (error instanceof SessionHeldError) {
        throw new HotplexError("unavailable", `session "${key.sessionId}" runs on another node now (${error.message}); try again once its agent there has ended`);
      }
      throw error;
    }
    const local = this.pool.get(key);
    const restarted = this.#unrecovered.get(storeKey);
    this.#unrecovered.delete(storeKey);
    // A copy this node wrote last is current; a copy of what another node wrote is replaced
    // (even when current), so that what that node left open is closed.
    if (local && !this.#copies.has(local) && local.log.assignedSeq >= stored) {
      // Nobody ran it since this node's restart: what the restart cut is closed now.
      if (restarted) {
        local.recoverFromRestart(restarted);
        local.log.touch();
      }
      return;
    }
    if (!local && stored === 0) return;
    const record = await this.store.loadSession(storeKey);
    if (local) {
      local.fence("another node ran the session since; this node takes the store's copy");
      this.#forget(key, local, new HotplexError("unavailable", `session "${key.sessionId}" was run by another node since this node's copy: read it again`));
    }
    const opened = record ? await this.#openStored(record) : undefined;
    if (!opened) return;
    const { record: caughtUp, session } = opened;
    session.recoverFromRestart(caughtUp, "owner_lost");
    session.log.touch();
    this.#logger.info({ session: key.sessionId, tenant: key.tenant, from: caughtUp.owner?.node, lastSeq: caughtUp.lastSeq }, "took the session over from the store");
  }

  // A stored session brought into the pool: its entry caught up with the events stored
  // after it, its log opened on what the store retains. Undefined when the pool has the
  // session already (opened meanwhile).
  async #openStored(checkpoint: SessionRecord): Promise<{ record: SessionRecord; session: Session } | undefined> {
    const record = catchUpRecord(checkpoint, await collect(this.#storedAfter(checkpoint.key, checkpoint.lastSeq)));
    const retained = { firstSeq: (await this.store.firstSeq(record.key)) ?? record.lastSeq + 1, bytes: await this.store.sessionBytes(record.key) };
    const key = { tenant: record.tenant, sessionId: record.sessionId };
    if (this.pool.get(key)) return undefined;
    const session = this.#createSession(key, record.config, record.workDir, record, retained);
    // Only ever a pre-warmed agent's dir of the session's own tenant (the registry is ours, but be sure).
    const taken = session.view.interaction.stateDir;
    if (taken && (path.dirname(taken) !== path.join(this.#config.stateRoot, key.tenant) || !path.basename(taken).startsWith(PREWARMED_PREFIX))) {
      this.#logger.warn({ session: key.sessionId, tenant: key.tenant, stateDir: taken }, "ignoring a stored state dir outside the tenant's");
      session.view.interaction.stateDir = "";
    }
    this.pool.getOrCreate(key, () => session);
    this.#claims.claim(keyString(key), key.tenant, key.sessionId, record.workDir);
    return { record, session };
  }

  // Right before an agent of the session starts: this node must hold it, and its copy must
  // be current (another node may have run it since the Execute that queued this turn).
  async #ownForStart(key: SessionKey, log: EventLog): Promise<void> {
    const stored = await this.store.own!(keyString(key));
    if (stored > log.assignedSeq) {
      throw new SessionHeldError(`another node ran the session since this node's copy (seq ${log.assignedSeq}, the store's ${stored}): run the turn again`);
    }
  }

  // Forgets a session: the pool, its work dir claim, its log's readers (ended with `reason`,
  // or told the session was deleted).
  #forget(key: SessionKey, session: Session, reason?: HotplexError): void {
    this.pool.remove(key);
    this.#claims.release(keyString(key));
    session.log.close(reason);
    session.agentLog.close();
  }

  // The store lost this node's hold on a session: another node runs it (or may at any
  // moment). Its agent ends at once and this node forgets its copy; its readers end with
  // UNAVAILABLE and may read it again from the node that runs it.
  #lost(storeKey: string, why: string): void {
    const [tenant = "", sessionId = ""] = splitKey(storeKey);
    const key = { tenant, sessionId };
    const session = this.pool.get(key);
    if (!session) return;
    this.#logger.warn({ session: sessionId, tenant, why }, "another node runs the session now; its agent here is ended");
    session.fence(why);
    this.#forget(key, session, new HotplexError("unavailable", `session "${sessionId}" is run by another node now (${why}); this node no longer serves it`));
  }

  /**
   * Each open Execute and Subscribe stream: its kind and how many events its session's log
   * is ahead of it. Kept only with an observer (EngineConfig.observer); empty otherwise.
   */
  openStreams(): { kind: OpenReader["kind"]; lag: number }[] {
    return [...this.#readers].map((reader) => ({ kind: reader.kind, lag: Math.max(0, reader.log.lastSeq - reader.seq) }));
  }

  #stateDir(key: SessionKey): string {
    return path.join(this.#config.stateRoot, key.tenant, key.sessionId);
  }

  #createSession(key: SessionKey, config: SessionConfig, workDir: string, restored?: SessionRecord, retained?: Retained): Session {
    // The log asks the session for its registry entry at each commit; the session
    // needs the log to exist first.
    let session: Session | undefined;
    const log = new EventLog(key.sessionId, this.#config.logBounds, restored?.lastSeq ?? 0, {
      store: this.store,
      key: keyString(key),
      committer: this.#committer,
      record: (pending) => session?.record(pending),
      ...(retained ? { retained } : {}),
    });
    const providerName = restored?.provider || config.provider || this.providers.defaultProvider;
    const provider = this.providers.has(providerName) ? this.providers.get(providerName) : unavailableProvider(providerName);
    log.onPublish = this.#config.observer?.session?.({ tenant: key.tenant, sessionId: key.sessionId, provider: provider.name });
    if (!config.provider) {
      // Sessions stored before configs named their provider.
      config = clone(SessionConfigSchema, config);
      config.provider = provider.name;
    }
    session = new Session({
      ...key,
      provider,
      providerSessionId: restored?.providerSessionId ?? uuidv5(`${key.tenant}/${key.sessionId}`, this.#config.namespace),
      workDir,
      workRoot: this.#config.workRoot,
      stateDir: this.#stateDir(key),
      stateRoot: this.#config.stateRoot,
      home: path.join(this.#stateDir(key), "home"),
      homeTemplate: this.#config.agentHomeTemplate,
      legacyHome: this.#config.agentEnv.HOME,
      sandbox: this.sandbox,
      config,
      prepareLaunch: (current) => {
        // The policy in force now: a reload may have narrowed it since the config was accepted.
        const { policy } = this.#tenants.settingsOf(key.tenant);
        checkSessionPolicy(current, policy);
        return launchConfig(current, this.#config.approvals.defaultMode, policy, this.#rules.active(key.tenant));
      },
      launcher: this.#launcher,
      agentLog: this.#agentLogs.create(),
      env: this.#envFor(provider),
      log,
      limits: { ...this.#config.limits, approvalTimeoutMs: this.#config.approvals.timeoutMs },
      logger: this.#logger,
      hasConversation: restored?.hasConversation ?? false,
      incarnation: restored?.incarnation ?? randomUUID(),
      restored,
      whyNoProcess: () => this.#admission.whyNoProcess(key.tenant),
      ...(this.store.own ? { own: () => this.#ownForStart(key, log) } : {}),
      takeWarm: (launch) => {
        const warm = this.prewarmed.take(key.tenant, provider.name, launch);
        // The session's dir is the agent's from now on: its claim moves there.
        if (warm) this.#claims.claim(keyString(key), key.tenant, key.sessionId, warm.paths.workDir);
        return warm;
      },
      makeRoom: () => this.#makeRoom(key.tenant),
      rules: {
        judge: (input) => this.#rules.judge(key.tenant, keyString(key), input),
        audit: (kind, match, what) =>
          this.audit.record({
            kind,
            principal: "agent",
            tenant: key.tenant,
            sessionId: key.sessionId,
            method: "tool_call",
            detail: `${match.ruleId} (${match.severity}): ${what.slice(0, 512)}`,
          }),
      },
    });
    // A new session is registered at once, before its first event.
    if (!restored) log.touch();
    return session;
  }

  // One turn's events: read from the log (never from the process), so a client that
  // disconnects loses nothing and the turn runs on without it. A shutdown does not end
  // it early: the shutdown ends the turn, and the stream carries that end.
  async *#turnEvents(session: Session, turn: RequestedTurn, signal?: AbortSignal): AsyncGenerator<Event[]> {
    const batches = this.#tracked(
      this.#positioned(readEventBatches(session.log, turn.fromSeq, { follow: true, signal, cut: this.#cut.signal }), "execute", session.log, turn.fromSeq),
    );
    for await (const batch of batches) {
      const mine: Event[] = [];
      let ended = false;
      for (const event of batch) {
        if (event.turnId !== turn.turnId) continue;
        mine.push(event);
        if (event.payload.case === "turnEnded") {
          ended = true;
          break;
        }
      }
      if (mine.length > 0) yield mine;
      if (ended) return;
    }
  }

  // Counts a stream as open until it ends, so shutdown can wait for the last events to go out.
  async *#tracked<T>(stream: AsyncGenerator<T>): AsyncGenerator<T> {
    this.#openStreams += 1;
    try {
      yield* stream;
    } finally {
      this.#openStreams -= 1;
      if (this.#openStreams === 0) this.#streamsClosed?.();
    }
  }

  // With an observer (metrics): keeps where an open stream is in its log, for openStreams().
  #positioned(stream: AsyncGenerator<Event[]>, kind: OpenReader["kind"], log: EventLog, fromSeq: number): AsyncGenerator<Event[]> {
    return this.#config.observer ? this.#readFrom(stream, { kind, log, seq: fromSeq }) : stream;
  }

  async *#readFrom(stream: AsyncGenerator<Event[]>, reader: OpenReader): AsyncGenerator<Event[]> {
    this.#readers.add(reader);
    try {
      for await (const batch of stream) {
        reader.seq = Number(batch[batch.length - 1]?.seq ?? reader.seq);
        yield batch;
      }
    } finally {
      this.#readers.delete(reader);
    }
  }

  #streamsDone(timeoutMs: number): Promise<void> {
    if (this.#openStreams === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#streamsClosed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** Whether a session asks the client before tool calls: its config, else the daemon's default. */
function asksClient(config: SessionConfig, defaultMode: ApprovalDefault): boolean {
  return config.approvalMode === ApprovalMode.CLIENT || (config.approvalMode === ApprovalMode.UNSPECIFIED && defaultMode === "client");
}

// How long a fork waits for the parent's transcript to hold the turns it copies.
const FORK_TRANSCRIPT_WAIT_MS = 5_000;

/**
 * Waits until one of `files` contains `ref` (the agent has written the turn), at most
 * `timeoutMs`; at once when there is nothing to wait for (no ref, no files). A timeout is
 * not an error: the fork copies what there is, and a fork at a missing turn fails to start.
 */
async function transcriptHolding(files: readonly string[], ref: string, timeoutMs: number): Promise<void> {
  if (!ref || files.length === 0) return;
  // Only for an agent that keeps a conversation in one file (a directory holds no one turn).
  const kinds = await Promise.all(files.map((file) => stat(file).catch(() => undefined)));
  if (kinds.some((kind) => kind?.isDirectory())) return;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const contents = await Promise.all(files.map((file) => readFile(file, "utf8").catch(() => "")));
    if (contents.some((text) => text.includes(ref)) || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What the provider launches with: the session's config under its tenant's policy. */
function launchConfig(config: SessionConfig, defaultMode: ApprovalDefault, policy?: SessionPolicy, gateToolCalls = false): LaunchConfig {
  return {
    approvals: asksClient(config, defaultMode),
    gateToolCalls,
    model: config.model,
    permissionMode: config.permissionMode,
    allowedTools: config.allowedTools,
    disallowedTools: policy ? effectiveDisallowedTools(config, policy) : config.disallowedTools,
    systemPrompt: config.systemPrompt,
    appendSystemPrompt: config.appendSystemPrompt,
  };
}

function capabilitiesInfo(capabilities: ProviderCapabilities): ProviderCapabilitiesInfo {
  return create(ProviderCapabilitiesSchema, { ...capabilities });
}

/** The sandbox's state as the API shows it. */
export function sandboxInfo(state: SandboxState): SandboxInfo {
  return create(SandboxInfoSchema, {
    enabled: state.enabled,
    mode: state.mode,
    reason: state.reason,
    network: state.network,
    memoryBytes: BigInt(state.memoryBytes),
    processes: state.processes,
    openFiles: state.openFiles,
    limitsBy: state.limitsBy,
  });
}

function summaryOf(session: Session): SessionSummary {
  return create(SessionSummarySchema, {
    sessionId: session.sessionId,
    status: session.view.status,
    createdAt: session.view.createdAt,
    lastActiveAt: timestampFromMs(session.view.lastActiveMs),
    lastSeq: BigInt(session.log.lastSeq),
    incarnation: session.incarnation,
    title: session.view.interaction.title,
    provider: session.view.provider,
    turns: session.view.stats.stats.turns,
  });
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}

/** Every item of an async iterable, in an array. */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}
