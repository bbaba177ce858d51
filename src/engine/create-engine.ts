/**
 * hotplex as a library: `createEngine(options)` opens the same engine hotplexd serves, in
 * the caller's process, without any RPC server. Calls act for one tenant ("default" unless
 * the options say; `forTenant` gives a view for another), take and return the API's own
 * types (generated from proto/), and stream events as async iterables.
 */
import { homedir } from "node:os";
import path from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { pino, type Logger } from "pino";
import type { Event, TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { type SessionConfig, SessionConfigSchema, type SessionInfo, type SessionStats, type SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import type { ProviderInfo, SessionSummary } from "../../gen/hotplex/v1/session_service_pb.js";
import type { SandboxSettings } from "../process/sandbox.js";
import type { AgentModel, LiveSettings } from "../providers/provider.js";
import { HotplexError } from "../errors.js";
import { agentEnvironment } from "../security/env.js";
import { isTenantName } from "../security/principal.js";
import type { Durability } from "../store/sqlite-store.js";
import { DEFAULT_SANDBOX, type EngineConfig, type EngineLimits, engineConfig, type StoreConfig } from "./config.js";
import { type Caller, type ClientDecision, Engine } from "./engine.js";

/** A session config as a plain object (`{ model: "…", permissionMode: "plan" }`) or the message itself. */
export type SessionConfigInit = MessageInitShape<typeof SessionConfigSchema>;

/** How `createEngine` opens an engine; everything has a default. */
export interface EngineOptions extends Partial<Omit<EngineConfig, "workRoot" | "stateRoot" | "store" | "agentEnv" | "limits" | "sandbox" | "prewarm">> {
  /** Where every session's work dir is made (one directory per tenant in it). Default `~/.hotplex/work`. */
  workRoot?: string;
  /** The engine's private per-session files (agent HOMEs, launch files). Default `~/.hotplex/sessions`. */
  stateRoot?: string;
  /**
   * Where sessions and events are kept: "memory" (gone with the process), or SQLite files
   * in `dataDir` (the default, `~/.hotplex/data`: sessions survive a restart or a crash).
   */
  store?: "memory" | { dataDir: string; durability?: Durability } | StoreConfig;
  /** The agents' environment. Default: this process's, through the allow-list (PATH, locale, proxies, the agents' own keys). */
  agentEnv?: Record<string, string>;
  limits?: Partial<EngineLimits>;
  /** The OS sandbox (bubblewrap where it works: mode "auto"); fields not given keep their defaults. */
  sandbox?: Partial<SandboxSettings>;
  /** Agents started ahead of demand, per launch config (see hotplex.yaml `prewarm`). */
  prewarm?: readonly { tenant?: string; config?: SessionConfigInit; size: number; idleMs?: number }[];
  /** Where the engine logs (pino). Default: nothing. */
  logger?: Logger;
  /** The tenant calls act for (default "default"). */
  tenant?: string;
}

/** How a turn is started. */
export interface ExecuteOptions {
  /** The session's config, on its first turn or to change it between runs (see SessionConfig). */
  config?: SessionConfigInit;
  /** Makes the call safe to retry: the same id returns the same turn's events. */
  requestId?: string;
  /** Wait behind a running turn instead of failing with FAILED_PRECONDITION. */
  queue?: boolean;
  /** Stops reading (the turn runs on; StopSession or interrupt ends it). */
  signal?: AbortSignal;
}

/** Where a subscription starts. */
export interface SubscribeOptions {
  /** Events with a seq above this one (default 0: the whole log). */
  afterSeq?: bigint | number;
  /** Keep following live events (default true). */
  follow?: boolean;
  /** The incarnation `afterSeq` belongs to: a session deleted and created again then fails the call. */
  incarnation?: string;
  /** The epoch of the event at `afterSeq` as received (Event.epoch): a log that lost that event fails the call. */
  afterEpoch?: bigint;
  signal?: AbortSignal;
}

/** A subscription: where the log stood when it began, and its events. */
export interface EventSubscription {
  status: SessionStatus;
  incarnation: string;
  firstSeq: bigint;
  lastSeq: bigint;
  events: AsyncIterable<Event>;
}

/** A session's state and the last seq it reflects. */
export interface Snapshot {
  session: SessionInfo;
  lastSeq: bigint;
}

/** The engine, for one tenant. Errors are HotplexError with the API's codes (`error.code`). */
export class HotplexEngine {
  /** The engine itself (what hotplexd serves over RPC). */
  readonly engine: Engine;
  readonly #caller: Caller;

  /** @internal Use createEngine (or forTenant). */
  constructor(engine: Engine, caller: Caller) {
    // A tenant names directories (its work root) and registry keys: never a path.
    checkTenant(caller.tenant);
    this.engine = engine;
    this.#caller = caller;
  }

  get tenant(): string {
    return this.#caller.tenant;
  }

  /** The same engine acting for another tenant (its sessions never meet this one's). */
  forTenant(tenant: string, name = this.#caller.name): HotplexEngine {
    return new HotplexEngine(this.engine, { tenant, name });
  }

  /**
   * Runs a turn (creating the session on its first) and streams its events up to its
   * TurnEnded. Bad input throws at once; the events are read from the session's log, so
   * a reader that stops loses nothing (subscribe gets them back).
   */
  execute(sessionId: string, prompt: string, options: ExecuteOptions = {}): AsyncIterable<Event> {
    const batches = this.engine.execute(
      this.#caller,
      {
        sessionId,
        prompt,
        requestId: options.requestId ?? "",
        config: options.config === undefined ? undefined : sessionConfig(options.config),
        queue: options.queue ?? false,
      },
      options.signal,
    );
    return flatten(batches);
  }

  /** Events after `afterSeq` (replayed from the log), then live ones while `follow`. */
  async subscribe(sessionId: string, options: SubscribeOptions = {}): Promise<EventSubscription> {
    const afterSeq = options.afterSeq ?? 0;
    if (typeof afterSeq === "number" ? !Number.isSafeInteger(afterSeq) || afterSeq < 0 : afterSeq < 0n) {
      throw new HotplexError("invalid_argument", `afterSeq ${String(afterSeq)} is not a sequence number (a whole number from 0)`);
    }
    const subscription = await this.engine.subscribe(this.#caller, sessionId, afterSeq, options.follow ?? true, options.incarnation ?? "", options.signal, options.afterEpoch ?? 0n);
    return {
      status: subscription.status,
      incarnation: subscription.incarnation,
      firstSeq: BigInt(subscription.firstSeq),
      lastSeq: BigInt(subscription.lastSeq),
      events: flatten(subscription.events),
    };
  }

  async snapshot(sessionId: string): Promise<Snapshot> {
    const { session, lastSeq } = await this.engine.snapshot(this.#caller, sessionId);
    return { session, lastSeq: BigInt(lastSeq) };
  }

  stats(sessionId: string): Promise<SessionStats> {
    return this.engine.stats(this.#caller, sessionId);
  }

  /** This tenant's sessions, most recently active first. */
  list(): Promise<SessionSummary[]> {
    return this.engine.list(this.#caller);
  }

  listProviders(): Promise<ProviderInfo[]> {
    return this.engine.listProviders();
  }

  /** Ends the session's agent (a running turn ends STOPPED); the session stays, its next turn resumes. */
  async stop(sessionId: string): Promise<Snapshot> {
    const { session, lastSeq } = await this.engine.stop(this.#caller, sessionId);
    return { session, lastSeq: BigInt(lastSeq) };
  }

  /** Stops the running turn (or `turnId`) and keeps the agent warm; resolves once it ended. */
  async interrupt(sessionId: string, turnId = ""): Promise<{ turnId: string; outcome: TurnOutcome; lastSeq: bigint }> {
    const result = await this.engine.interrupt(this.#caller, sessionId, turnId);
    return { ...result, lastSeq: BigInt(result.lastSeq) };
  }

  /** Answers a PermissionRequested event (allow, deny, or a question's answers); returns the seq of its PermissionResolved. */
  async respond(sessionId: string, requestId: string, decision: ClientDecision): Promise<bigint> {
    return BigInt(await this.engine.respondPermission(this.#caller, sessionId, requestId, decision));
  }

  /** Adds input to the running turn (providers with the steer capability). */
  async steer(sessionId: string, prompt: string, turnId = ""): Promise<{ turnId: string; seq: bigint }> {
    const result = await this.engine.steer(this.#caller, sessionId, prompt, turnId);
    return { turnId: result.turnId, seq: BigInt(result.seq) };
  }

  /** Drops a queued turn before it starts. */
  async cancelTurn(sessionId: string, turnId: string): Promise<bigint> {
    return BigInt(await this.engine.cancelTurn(this.#caller, sessionId, turnId));
  }

  /** Changes the model or permission mode of a live agent between turns. */
  async changeSettings(sessionId: string, settings: LiveSettings): Promise<Snapshot> {
    const { session, lastSeq } = await this.engine.changeSettings(this.#caller, sessionId, settings);
    return { session, lastSeq: BigInt(lastSeq) };
  }

  listModels(sessionId: string): Promise<AgentModel[]> {
    return this.engine.listModels(this.#caller, sessionId);
  }

  /** Starts the session's conversation over (the log goes on). */
  async reset(sessionId: string): Promise<{ providerSessionId: string; lastSeq: bigint }> {
    const result = await this.engine.resetSession(this.#caller, sessionId);
    return { ...result, lastSeq: BigInt(result.lastSeq) };
  }

  async setTitle(sessionId: string, title: string): Promise<bigint> {
    return BigInt(await this.engine.setTitle(this.#caller, sessionId, title));
  }

  /** A new session whose conversation starts as a copy of this one's (up to `upToTurnId` when given). */
  async fork(sessionId: string, newSessionId: string, options: { upToTurnId?: string; title?: string } = {}): Promise<Snapshot> {
    const { session, lastSeq } = await this.engine.forkSession(this.#caller, sessionId, newSessionId, options.upToTurnId ?? "", options.title ?? "");
    return { session, lastSeq: BigInt(lastSeq) };
  }

  /** Deletes the session and its log (its HOME too with `deleteTranscript`). */
  async delete(sessionId: string, options: { deleteTranscript?: boolean } = {}): Promise<{ lastSeq: bigint }> {
    const { lastSeq } = await this.engine.delete(this.#caller, sessionId, options.deleteTranscript ?? false);
    return { lastSeq: BigInt(lastSeq) };
  }

  /** Ends every agent, then every stream (each ends with its last events), and closes the store. */
  close(): Promise<void> {
    return this.engine.shutdown();
  }
}

/**
 * Opens an engine: the store (sessions of an earlier run come back, as after a daemon
 * restart), the sandbox, the providers. Throws StoreOpenError for an unusable store and a
 * HotplexError (invalid_argument) for options no session could run with.
 */
export async function createEngine(options: EngineOptions = {}): Promise<HotplexEngine> {
  const { workRoot, stateRoot, store, agentEnv, limits, sandbox, prewarm, logger, tenant, ...rest } = options;
  if (tenant !== undefined) checkTenant(tenant);
  const home = homedir();
  const config = engineConfig(
    {
      workRoot: path.resolve(workRoot ?? path.join(home, ".hotplex", "work")),
      stateRoot: path.resolve(stateRoot ?? path.join(home, ".hotplex", "sessions")),
      store: storeConfig(store, home),
      agentEnv: agentEnv ?? agentEnvironment(process.env),
    },
    {
      ...rest,
      ...(limits ? { limits } : {}),
      ...(sandbox ? { sandbox: { ...DEFAULT_SANDBOX, ...sandbox } } : {}),
      ...(prewarm
        ? { prewarm: prewarm.map((spec) => ({ tenant: spec.tenant ?? tenant ?? "default", config: sessionConfig(spec.config ?? {}), size: spec.size, idleMs: spec.idleMs ?? 0 })) }
        : {}),
    },
  );
  const engine = await Engine.open(config, logger ?? pino({ level: "silent" }));
  return new HotplexEngine(engine, { tenant: tenant ?? "default", name: "embedded" });
}

function checkTenant(tenant: string): void {
  if (!isTenantName(tenant)) throw new HotplexError("invalid_argument", `tenant ${JSON.stringify(tenant.slice(0, 80))} is invalid: use 1-63 of [a-z0-9_-], starting with a letter or digit`);
}

function storeConfig(store: EngineOptions["store"], home: string): StoreConfig {
  if (store === "memory") return { kind: "memory" };
  if (store === undefined) return { kind: "sqlite", dataDir: path.join(home, ".hotplex", "data"), durability: "normal" };
  if ("kind" in store) return store;
  return { kind: "sqlite", dataDir: path.resolve(store.dataDir), durability: store.durability ?? "normal" };
}

function sessionConfig(init: SessionConfigInit): SessionConfig {
  return create(SessionConfigSchema, init);
}

async function* flatten(batches: AsyncIterable<Event[]>): AsyncGenerator<Event> {
  for await (const batch of batches) yield* batch;
}
