import { clone, create, equals } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { v5 as uuidv5 } from "uuid";
import {
  type SessionConfig,
  SessionConfigSchema,
  type SessionInfo,
  type SessionStats,
  SessionStatsSchema,
  type SessionStatus,
} from "../../gen/hotplex/v1/session_pb.js";
import { type SessionSummary, SessionSummarySchema } from "../../gen/hotplex/v1/session_service_pb.js";
import { HotplexError, OutOfRangeError } from "../errors.js";
import type { Event } from "../events/event.js";
import { EventLog } from "../events/event-log.js";
import { readEvents } from "../events/follow.js";
import { ClaudeCodeProvider } from "../providers/claude-code/provider.js";
import type { LaunchConfig, Provider } from "../providers/provider.js";
import { resolveWorkDir } from "../security/work-dir.js";
import { Pool, type SessionKey } from "../session/pool.js";
import { Session } from "../session/session.js";
import type { Turn } from "../session/turn.js";
import type { EngineConfig } from "./config.js";
import { validateConfig, validatePrompt, validateRequestId, validateSessionId } from "./validate.js";

export interface ExecuteInput {
  sessionId: string;
  prompt: string;
  requestId: string;
  config: SessionConfig | undefined;
  queue: boolean;
}

export interface Subscription {
  status: SessionStatus;
  firstSeq: number;
  lastSeq: number;
  events: AsyncIterable<Event>;
}

/**
 * The engine facade: everything the API offers, in domain terms. It owns the pool of
 * sessions and their logs; the server only translates requests and errors.
 */
export class Engine {
  readonly pool: Pool;
  readonly #config: EngineConfig;
  readonly #provider: Provider;
  readonly #logger: Logger;
  // Aborted at shutdown so that following streams end instead of holding the server open.
  readonly #shutdown = new AbortController();

  constructor(config: EngineConfig, logger: Logger, provider?: Provider) {
    this.#config = config;
    this.#logger = logger;
    this.#provider = provider ?? new ClaudeCodeProvider(config.claudePath);
    this.pool = new Pool(config.maxLiveSessions);
  }

  /**
   * Starts a turn (or finds the turn an earlier call with the same request id started)
   * and returns its events. Validation and admission happen before this returns, so a
   * refused call fails before it streams anything.
   */
  execute(tenant: string, input: ExecuteInput, signal?: AbortSignal): AsyncIterable<Event> {
    validateSessionId(input.sessionId);
    validatePrompt(input.prompt);
    validateRequestId(input.requestId);
    if (input.config) validateConfig(input.config);
    const key = { tenant, sessionId: input.sessionId };

    const existing = this.pool.get(key);
    const retried = existing?.turnForRequest(input.requestId);
    if (existing && retried) return this.#turnEvents(existing, retried, signal);

    const config = input.config ? clone(SessionConfigSchema, input.config) : create(SessionConfigSchema);
    const workDir = resolveWorkDir(this.#config.workRoot, config.workDir, input.sessionId);
    const session = this.pool.getOrCreate(key, () => this.#createSession(key, config, workDir));
    if (session !== existing || !input.config) {
      // New session (config taken as is), or no config sent: keep the session's.
    } else if (!equals(SessionConfigSchema, session.config, config)) {
      session.reconfigure(config, launchConfig(config), workDir);
    }
    const turn = session.submit(input.prompt, input.requestId, input.queue);
    return this.#turnEvents(session, turn, signal);
  }

  /** Events after `afterSeq`, then live ones if `follow`. */
  subscribe(tenant: string, sessionId: string, afterSeq: number, follow: boolean, signal?: AbortSignal): Subscription {
    const session = this.#session(tenant, sessionId);
    const { log } = session;
    const firstSeq = log.size === 0 ? 0 : log.firstSeq;
    if (afterSeq > log.lastSeq || (log.size > 0 && afterSeq < log.firstSeq - 1) || (log.size === 0 && afterSeq < log.lastSeq)) {
      throw new OutOfRangeError(sessionId, afterSeq, log.size === 0 ? log.lastSeq + 1 : log.firstSeq, log.lastSeq);
    }
    return {
      status: session.view.status,
      firstSeq,
      lastSeq: log.lastSeq,
      events: readEvents(log, afterSeq, { follow, signal: this.#streamSignal(signal) }),
    };
  }

  /** The session's state and the seq it reflects, read in one synchronous step. */
  snapshot(tenant: string, sessionId: string): { session: SessionInfo; lastSeq: number } {
    const session = this.#session(tenant, sessionId);
    return { session: session.view.toInfo(session.config, session.queuedTurns), lastSeq: session.log.lastSeq };
  }

  async stop(tenant: string, sessionId: string): Promise<{ session: SessionInfo; lastSeq: number }> {
    const session = this.#session(tenant, sessionId);
    await session.stop("stopped");
    return this.snapshot(tenant, sessionId);
  }

  stats(tenant: string, sessionId: string): SessionStats {
    return clone(SessionStatsSchema, this.#session(tenant, sessionId).view.stats.stats);
  }

  list(tenant: string): SessionSummary[] {
    return this.pool
      .list(tenant)
      .sort((a, b) => b.view.lastActiveMs - a.view.lastActiveMs)
      .map((session) =>
        create(SessionSummarySchema, {
          sessionId: session.sessionId,
          status: session.view.status,
          createdAt: session.view.createdAt,
          lastActiveAt: timestampFromMs(session.view.lastActiveMs),
          lastSeq: BigInt(session.log.lastSeq),
        }),
      );
  }

  /** Ends every agent process group and every open stream. */
  async shutdown(): Promise<void> {
    await this.pool.shutdown();
    this.#shutdown.abort();
  }

  #session(tenant: string, sessionId: string): Session {
    validateSessionId(sessionId);
    const session = this.pool.get({ tenant, sessionId });
    if (!session) throw new HotplexError("not_found", `session "${sessionId}" does not exist`);
    return session;
  }

  #createSession(key: SessionKey, config: SessionConfig, workDir: string): Session {
    return new Session({
      ...key,
      provider: this.#provider,
      providerSessionId: uuidv5(`${key.tenant}/${key.sessionId}`, this.#config.namespace),
      workDir,
      config,
      launch: launchConfig(config),
      env: this.#config.agentEnv,
      log: new EventLog(key.sessionId, this.#config.logBounds),
      limits: this.#config.limits,
      logger: this.#logger,
      hasConversation: false,
      mayStartProcess: () => this.pool.mayStartProcess(),
    });
  }

  // One turn's events: read from the log (never from the process), so a client that
  // disconnects loses nothing and the turn runs on without it.
  async *#turnEvents(session: Session, turn: Turn, signal?: AbortSignal): AsyncGenerator<Event> {
    for await (const event of readEvents(session.log, turn.fromSeq, { follow: true, signal: this.#streamSignal(signal) })) {
      if (event.turnId !== turn.id) continue;
      yield event;
      if (event.payload.case === "turnEnded") return;
    }
  }

  #streamSignal(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([signal, this.#shutdown.signal]) : this.#shutdown.signal;
  }
}

function launchConfig(config: SessionConfig): LaunchConfig {
  return {
    model: config.model,
    permissionMode: config.permissionMode,
    allowedTools: config.allowedTools,
    disallowedTools: config.disallowedTools,
    systemPrompt: config.systemPrompt,
    appendSystemPrompt: config.appendSystemPrompt,
  };
}
