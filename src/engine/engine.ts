import { clone, create, equals } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
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
import { readEventBatches } from "../events/follow.js";
import { GroupCommitter } from "../events/group-committer.js";
import { ClaudeCodeProvider } from "../providers/claude-code/provider.js";
import type { LaunchConfig, Provider } from "../providers/provider.js";
import { resolveWorkDir } from "../security/work-dir.js";
import { endOrphanGroup } from "../session/orphans.js";
import { keyString, Pool, type SessionKey } from "../session/pool.js";
import { catchUpRecord } from "../session/catch-up.js";
import { Session } from "../session/session.js";
import { MemoryStore } from "../store/memory-store.js";
import { SqliteStore } from "../store/sqlite-store.js";
import type { SessionRecord, Store } from "../store/store.js";
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
  incarnation: string;
  firstSeq: number;
  lastSeq: number;
  /** Events in order, in batches of what was available at once. */
  events: AsyncIterable<Event[]>;
}

/**
 * The engine facade: everything the API offers, in domain terms. It owns the pool of
 * sessions and their logs; the server only translates requests and errors.
 */
export class Engine {
  readonly pool: Pool;
  readonly store: Store;
  readonly #committer: GroupCommitter;
  readonly #config: EngineConfig;
  #compactor: NodeJS.Timeout | undefined;
  readonly #provider: Provider;
  readonly #logger: Logger;
  // Aborted at shutdown so that following streams end instead of holding the server open.
  readonly #shutdown = new AbortController();

  private constructor(config: EngineConfig, logger: Logger, store: Store, provider: Provider) {
    this.#config = config;
    this.#logger = logger;
    this.#provider = provider;
    this.store = store;
    this.#committer = new GroupCommitter(store, logger);
    this.pool = new Pool(config.maxLiveSessions);
  }

  /**
   * Opens the store, brings back every stored session and cleans up after a daemon
   * that stopped without a shutdown: agent process groups it left running are ended,
   * turns it left running end INTERRUPTED. Throws StoreOpenError for an unusable store.
   */
  static async open(config: EngineConfig, logger: Logger, provider?: Provider): Promise<Engine> {
    const store =
      config.store.kind === "sqlite" ? new SqliteStore(config.store.dataDir, config.store.durability) : new MemoryStore(config.retention);
    const engine = new Engine(config, logger, store, provider ?? new ClaudeCodeProvider(config.claudePath));
    await engine.#recover();
    engine.#compactor = setInterval(() => engine.compact(), config.compactIntervalMs);
    engine.#compactor.unref();
    return engine;
  }

  async #recover(): Promise<void> {
    const records = this.store.loadSessions().map((record) => catchUpRecord(record, this.#storedAfter(record.key, record.lastSeq)));
    const orphans: Promise<void>[] = [];
    for (const record of records) {
      const session = this.#createSession({ tenant: record.tenant, sessionId: record.sessionId }, record.config, record.workDir, record);
      this.pool.getOrCreate({ tenant: record.tenant, sessionId: record.sessionId }, () => session);
      if (record.pgid > 0) {
        orphans.push(endOrphanGroup(record.pgid, record.agentCommand, this.#config.limits.stopGraceMs, this.#logger));
      }
      session.recoverFromRestart(record);
      // Store the caught-up entry with the recovery's own events.
      session.log.touch();
    }
    await Promise.all(orphans);
    this.#committer.flush();
    if (records.length > 0) this.#logger.info({ sessions: records.length }, "sessions restored from the store");
  }

  // A session's stored events after `afterSeq`, in order, a page at a time.
  *#storedAfter(key: string, afterSeq: number): Generator<Event> {
    for (let page = this.store.readEvents(key, afterSeq, 256); page.length > 0; page = this.store.readEvents(key, afterSeq, 256)) {
      yield* page;
      afterSeq = Number(page[page.length - 1]?.seq);
    }
  }

  // Stores every registry entry that is behind its log, so that what the entries miss
  // is in the stored events (retention must not drop those before they are folded in).
  // False when some entry could not be stored (the commit failed and will be retried).
  #checkpoint(): boolean {
    const behind = (session: Session) => session.log.recordedSeq < session.log.assignedSeq;
    for (const session of this.pool.all()) if (behind(session)) session.log.touch();
    this.#committer.flush();
    return !this.pool.all().some(behind);
  }

  /** Enforces retention now (also runs periodically). */
  compact(nowMs = Date.now()): void {
    try {
      if (!this.#checkpoint()) {
        this.#logger.warn("retention postponed: the session registry could not be stored");
        return;
      }
      const moved = this.store.compact(this.#config.retention, nowMs);
      for (const [key, firstSeq] of moved) {
        const [tenant = "", sessionId = ""] = splitKey(key);
        this.pool.get({ tenant, sessionId })?.log.retainedFrom(firstSeq);
      }
    } catch (error) {
      this.#logger.error({ err: error }, "compaction failed");
    }
  }

  /**
   * Starts a turn (or finds the turn an earlier call with the same request id started)
   * and returns its events, in batches. Validation and admission happen before this
   * returns, so a refused call fails before it streams anything.
   */
  execute(tenant: string, input: ExecuteInput, signal?: AbortSignal): AsyncIterable<Event[]> {
    validateSessionId(input.sessionId);
    validatePrompt(input.prompt);
    validateRequestId(input.requestId);
    if (input.config) validateConfig(input.config);
    const key = { tenant, sessionId: input.sessionId };

    const existing = this.pool.get(key);
    const retried = existing?.turnForRequest(input.requestId);
    if (existing && retried) return this.#turnEvents(existing, retried, signal);

    const config = input.config ? clone(SessionConfigSchema, input.config) : create(SessionConfigSchema);
    // The work dir is resolved (realpath syscalls) only when a session is created or
    // reconfigured, not on every turn of a warm session.
    const workDirOf = () => resolveWorkDir(this.#config.workRoot, config.workDir, input.sessionId);
    const session = this.pool.getOrCreate(key, () => this.#createSession(key, config, workDirOf()));
    if (session !== existing || !input.config) {
      // New session (config taken as is), or no config sent: keep the session's.
    } else if (!equals(SessionConfigSchema, session.config, config)) {
      session.reconfigure(config, launchConfig(config), workDirOf());
    }
    const turn = session.submit(input.prompt, input.requestId, input.queue);
    return this.#turnEvents(session, turn, signal);
  }

  /** Events after `afterSeq`, then live ones if `follow`. */
  subscribe(
    tenant: string,
    sessionId: string,
    afterSeq: number,
    follow: boolean,
    incarnation = "",
    signal?: AbortSignal,
  ): Subscription {
    const session = this.#session(tenant, sessionId);
    if (incarnation && incarnation !== session.incarnation) {
      throw new HotplexError(
        "failed_precondition",
        `session "${sessionId}" was deleted and created again: incarnation ${incarnation} is gone (now ${session.incarnation}); ` +
          "read it from after_seq 0 with the new incarnation",
      );
    }
    const { log } = session;
    const retained = log.retained > 0;
    const firstSeq = retained ? log.firstSeq : 0;
    if (afterSeq > log.lastSeq || afterSeq < log.firstSeq - 1) {
      throw new OutOfRangeError(sessionId, afterSeq, log.firstSeq, log.lastSeq);
    }
    return {
      status: session.view.status,
      incarnation: session.incarnation,
      firstSeq,
      lastSeq: log.lastSeq,
      events: this.#disposing(signal, (streamSignal) => readEventBatches(log, afterSeq, { follow, signal: streamSignal })),
    };
  }

  /** The session's state and the seq it reflects, read in one synchronous step. */
  snapshot(tenant: string, sessionId: string): { session: SessionInfo; lastSeq: number } {
    const session = this.#session(tenant, sessionId);
    return {
      session: session.view.toInfo(session.config, session.queuedTurns, session.incarnation),
      lastSeq: session.log.lastSeq,
    };
  }

  async stop(tenant: string, sessionId: string): Promise<{ session: SessionInfo; lastSeq: number }> {
    const session = this.#session(tenant, sessionId);
    await session.stop("stopped");
    // The SessionEnded event is in the answer's last_seq: commit it first.
    this.#committer.flush();
    return this.snapshot(tenant, sessionId);
  }

  /** Stops and removes a session, its events and (optionally) the agent's transcript. */
  async delete(tenant: string, sessionId: string, deleteTranscript: boolean): Promise<{ lastSeq: number }> {
    const session = this.#session(tenant, sessionId);
    await session.stop("deleted");
    this.#committer.flush();
    const key = { tenant, sessionId };
    this.pool.remove(key);
    session.log.close();
    this.store.deleteSession(keyString(key));
    if (deleteTranscript) {
      const files = this.#provider.transcriptFiles(session.view.providerSessionId, session.view.workDir, this.#config.agentEnv.HOME ?? "");
      await Promise.all(files.map((file) => rm(file, { force: true })));
    }
    this.#logger.info({ session: sessionId, tenant, deleteTranscript }, "session deleted");
    return { lastSeq: session.log.lastSeq };
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
          incarnation: session.incarnation,
        }),
      );
  }

  /** Ends every agent process group and every open stream. */
  async shutdown(): Promise<void> {
    clearInterval(this.#compactor);
    await this.pool.shutdown();
    this.#shutdown.abort();
    this.#checkpoint();
    this.#committer.close();
    this.store.close();
  }

  #session(tenant: string, sessionId: string): Session {
    validateSessionId(sessionId);
    const session = this.pool.get({ tenant, sessionId });
    if (!session) throw new HotplexError("not_found", `session "${sessionId}" does not exist`);
    return session;
  }

  #createSession(key: SessionKey, config: SessionConfig, workDir: string, restored?: SessionRecord): Session {
    // The log asks the session for its registry entry at each commit; the session
    // needs the log to exist first.
    let session: Session | undefined;
    const log = new EventLog(key.sessionId, this.#config.logBounds, restored?.lastSeq ?? 0, {
      store: this.store,
      key: keyString(key),
      committer: this.#committer,
      record: () => session?.record(),
    });
    session = new Session({
      ...key,
      provider: this.#provider,
      providerSessionId: restored?.providerSessionId ?? uuidv5(`${key.tenant}/${key.sessionId}`, this.#config.namespace),
      workDir,
      config,
      launch: launchConfig(config),
      env: this.#config.agentEnv,
      log,
      limits: this.#config.limits,
      logger: this.#logger,
      hasConversation: restored?.hasConversation ?? false,
      incarnation: restored?.incarnation ?? randomUUID(),
      restored,
      mayStartProcess: () => this.pool.mayStartProcess(),
    });
    // A new session is registered at once, before its first event.
    if (!restored) log.touch();
    return session;
  }

  // One turn's events: read from the log (never from the process), so a client that
  // disconnects loses nothing and the turn runs on without it.
  async *#turnEvents(session: Session, turn: Turn, signal?: AbortSignal): AsyncGenerator<Event[]> {
    const batches = this.#disposing(signal, (streamSignal) =>
      readEventBatches(session.log, turn.fromSeq, { follow: true, signal: streamSignal }),
    );
    for await (const batch of batches) {
      const mine: Event[] = [];
      let ended = false;
      for (const event of batch) {
        if (event.turnId !== turn.id) continue;
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

  // Runs a stream with #streamSignal and releases the signal's listeners when it ends.
  async *#disposing<T>(signal: AbortSignal | undefined, stream: (signal: AbortSignal) => AsyncGenerator<T>): AsyncGenerator<T> {
    const combined = this.#streamSignal(signal);
    try {
      yield* stream(combined.signal);
    } finally {
      combined.dispose();
    }
  }

  // A signal that aborts with the caller's or at shutdown. Not AbortSignal.any: on Node 20
  // it leaves a WeakRef per call in the long-lived shutdown signal, a leak per stream.
  #streamSignal(signal: AbortSignal | undefined): { signal: AbortSignal; dispose: () => void } {
    const shutdown = this.#shutdown.signal;
    if (!signal) return { signal: shutdown, dispose: () => {} };
    const both = new AbortController();
    const abort = () => both.abort();
    if (signal.aborted || shutdown.aborted) both.abort();
    signal.addEventListener("abort", abort, { once: true });
    shutdown.addEventListener("abort", abort, { once: true });
    return {
      signal: both.signal,
      dispose: () => {
        signal.removeEventListener("abort", abort);
        shutdown.removeEventListener("abort", abort);
      },
    };
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

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}
