/**
 * Pre-warmed agents: for each launch config the server config names (tenant, provider,
 * model, policy), a few agent processes started ahead of demand, in the sandbox, each in a
 * work dir, HOME and state dir no session has used. A new session whose first start has
 * exactly that launch config takes one at once, so its first turn runs on a live agent.
 *
 * What a pre-warmed agent never does: carry anything from one session to another (one
 * process serves one session for life; its dirs are fresh and go with it), or run outside
 * the limits (each one counts as a live agent of its tenant and of the node, and makes way
 * for a cold start that would otherwise be refused).
 */
import { randomUUID } from "node:crypto";
import { chown, cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { equals } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { type SessionConfig, SessionConfigSchema } from "../../gen/hotplex/v1/session_pb.js";
import { type AgentLauncher, chownTree } from "../process/launcher.js";
import { endOrphanGroup } from "../process/orphans.js";
import type { Sandbox } from "../process/sandbox.js";
import type { LaunchConfig, Provider } from "../providers/provider.js";
import { type AgentLog, observedLauncher } from "../session/agent-log.js";
import { WarmAgent, WarmAgentState } from "../session/warm-agent.js";

/** One launch config to keep agents ready for (hotplexd's `prewarm` config). */
export interface PrewarmSpec {
  tenant: string;
  /**
   * The session config it serves: provider, model, permission mode, tools, prompts and
   * approval mode as a client would send them (work_dir stays empty: each agent has its own).
   */
  config: SessionConfig;
  /** Agents kept ready (at most; fewer while the limits leave no room). */
  size: number;
  /** No session took one for this long: the agents are ended until the next demand (0: never). */
  idleMs: number;
}

/** What the pool needs of the engine. */
export interface PrewarmDeps {
  provider(name: string): Provider | undefined;
  launcher: AgentLauncher;
  sandbox: Sandbox;
  workRoot: string;
  stateRoot: string;
  homeTemplate?: string;
  /** The environment of an agent of `provider` (the daemon's allow-listed variables). */
  envFor(provider: Provider): Record<string, string>;
  /** The launch settings of a config under its tenant's policy now; throws when not allowed. */
  launchFor(tenant: string, config: SessionConfig): LaunchConfig;
  /** Whether one more agent process of `tenant` fits the limits (pre-warmed ones counted). */
  hasRoom(tenant: string): boolean;
  /** A work dir claim, so that no session can ask for a pre-warmed agent's dir. */
  claim(key: string, tenant: string, dir: string): void;
  release(key: string): void;
  newLog(): AgentLog;
  maxLineBytes: number;
  stopGraceMs: number;
  logger: Logger;
}

/** Pre-warmed agents' dirs are named so: never a session's default (those are session ids, claimed). */
export const PREWARMED_PREFIX = ".prewarmed-";
// What a pre-warmed agent's state dir records: its process (for the next daemon to end it
// when no session took it), or that a session took it (its dirs are that session's).
const PROCESS_FILE = ".prewarmed.json";
// After a pre-warmed agent fails (could not start, died waiting), the next waits longer.
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 30_000;

/** The agents of one spec. */
class WarmLane {
  readonly agents: WarmAgent[] = [];
  lastDemandMs = Date.now();
  /** Shrunk after idling: nothing is started until the next session asks. */
  dormant = false;
  failures = 0;
  retryTimer: NodeJS.Timeout | undefined;
  /** The launch settings its agents were started with (the policy may change them). */
  launch: LaunchConfig | undefined;

  constructor(readonly spec: PrewarmSpec) {}
}

/** What the pool holds, for ops and tests. */
export interface WarmAgentInfo {
  tenant: string;
  provider: string;
  pid: number;
  state: WarmAgentState;
  startedAtMs: number;
  workDir: string;
}

export class PrewarmPool {
  readonly #deps: PrewarmDeps;
  #lanes: WarmLane[] = [];
  #closed = false;
  #idleTimer: NodeJS.Timeout | undefined;
  /** Discards in flight (their process ends and their dirs go), for close(). */
  readonly #discarding = new Set<Promise<void>>();

  constructor(deps: PrewarmDeps) {
    this.#deps = deps;
  }

  /** Puts specs in force: lanes no longer named end their agents; new ones start filling. */
  configure(specs: readonly PrewarmSpec[]): void {
    const kept: WarmLane[] = [];
    for (const spec of specs) {
      const lane = this.#lanes.find((old) => sameSpec(old.spec, spec) && !kept.includes(old));
      kept.push(lane ?? new WarmLane(spec));
    }
    for (const old of this.#lanes) if (!kept.includes(old)) this.#drop(old, "no longer configured");
    this.#lanes = kept;
    clearInterval(this.#idleTimer);
    const idle = kept.map((lane) => lane.spec.idleMs).filter((ms) => ms > 0);
    if (idle.length > 0) {
      // At most a minute apart (an idle time past 2^31 ms must not overflow the timer).
      this.#idleTimer = setInterval(() => this.shrinkIdle(), Math.min(60_000, Math.max(50, Math.min(...idle) / 4)));
      this.#idleTimer.unref();
    }
    this.refill();
  }

  /** Starts agents wherever a lane has fewer than it keeps and the limits leave room. */
  refill(): void {
    for (const lane of this.#lanes) this.#fill(lane);
  }

  /**
   * A ready agent of `tenant` and `provider` started with exactly `launch`, removed from
   * the pool for the caller to adopt; undefined when none is ready (the lane refills).
   */
  take(tenant: string, provider: string, launch: LaunchConfig): WarmAgent | undefined {
    for (const lane of this.#lanes) {
      if (lane.spec.tenant !== tenant || lane.spec.config.provider !== provider || !lane.launch || !sameLaunch(lane.launch, launch)) continue;
      lane.lastDemandMs = Date.now();
      lane.dormant = false;
      const index = lane.agents.findIndex((agent) => agent.takeable);
      const agent = index < 0 ? undefined : lane.agents.splice(index, 1)[0];
      if (agent) {
        lane.failures = 0;
        this.#deps.release(claimKey(agent));
        void writeFile(path.join(agent.paths.stateDir, PROCESS_FILE), JSON.stringify({ adopted: true }), { mode: 0o600 }).catch(() => undefined);
      }
      // Off the caller's path: the start of a replacement is not the taker's business.
      setImmediate(() => this.#fill(lane));
      if (agent) return agent;
    }
    return undefined;
  }

  /** Pre-warmed agents running or starting, of one tenant or of all. */
  count(tenant?: string): number {
    let count = 0;
    for (const lane of this.#lanes) if (tenant === undefined || lane.spec.tenant === tenant) count += lane.agents.length;
    return count;
  }

  /** Ends one pre-warmed agent (of `tenant` when given) to make room for a cold start; false when there is none. */
  evict(tenant?: string): boolean {
    for (const lane of this.#lanes) {
      if (tenant !== undefined && lane.spec.tenant !== tenant) continue;
      const agent = lane.agents.at(-1);
      if (agent) {
        this.#discard(lane, agent, "it made way for a cold start");
        return true;
      }
    }
    return false;
  }

  list(): WarmAgentInfo[] {
    return this.#lanes.flatMap((lane) =>
      lane.agents.map((agent) => ({
        tenant: agent.tenant,
        provider: agent.provider,
        pid: agent.pid,
        state: agent.state,
        startedAtMs: agent.startedAtMs,
        workDir: agent.paths.workDir,
      })),
    );
  }

  /** Ends every pre-warmed agent and removes its dirs; nothing starts afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#idleTimer);
    for (const lane of this.#lanes) this.#drop(lane, "the daemon is shutting down");
    while (this.#discarding.size > 0) await Promise.all([...this.#discarding]);
  }

  /**
   * Ends what a daemon that stopped without a shutdown left of its pre-warmed agents: the
   * process recorded in each `.prewarmed-*` state dir no session took, then that dir and
   * the work dir of the same name. A dir a session took stays: it is marked so, or a
   * session's registry entry names it (`taken`); deleted sessions' files are kept as they
   * are for any session.
   */
  static async sweep(workRoot: string, stateRoot: string, taken: ReadonlySet<string>, graceMs: number, sandbox: Sandbox, logger: Logger): Promise<number> {
    let swept = 0;
    for (const tenant of await readdir(stateRoot).catch(() => [] as string[])) {
      const tenantDir = path.join(stateRoot, tenant);
      for (const entry of await readdir(tenantDir).catch(() => [] as string[])) {
        if (!entry.startsWith(PREWARMED_PREFIX)) continue;
        const stateDir = path.join(tenantDir, entry);
        const workDir = path.join(workRoot, tenant, entry);
        if (taken.has(stateDir) || taken.has(workDir)) continue;
        const recorded = parseProcessFile(await readFile(path.join(stateDir, PROCESS_FILE), "utf8").catch(() => ""));
        if (recorded.adopted) continue;
        if (recorded.pgid > 0) await endOrphanGroup(recorded.pgid, recorded.identity, graceMs, logger, (launch) => sandbox.leftover(launch));
        await Promise.all([rm(stateDir, { recursive: true, force: true }), rm(workDir, { recursive: true, force: true })]);
        swept += 1;
      }
    }
    if (swept > 0) logger.info({ dirs: swept }, "removed pre-warmed agents' dirs left by the previous daemon");
    return swept;
  }

  #fill(lane: WarmLane): void {
    if (this.#closed || lane.dormant || lane.retryTimer || !this.#lanes.includes(lane)) return;
    const { spec } = lane;
    const provider = this.#deps.provider(spec.config.provider);
    if (!provider) return;
    let launch: LaunchConfig;
    try {
      launch = this.#deps.launchFor(spec.tenant, spec.config);
    } catch (error) {
      this.#deps.logger.warn({ tenant: spec.tenant, err: error }, "pre-warmed agents not started: the tenant's policy refuses their config");
      return;
    }
    if (lane.launch && !sameLaunch(lane.launch, launch)) {
      // The policy changed under the lane: agents started before would not match any session.
      for (const agent of [...lane.agents]) this.#discard(lane, agent, "the tenant's policy changed");
    }
    lane.launch = launch;
    while (lane.agents.length < spec.size && this.#deps.hasRoom(spec.tenant)) void this.#start(lane, provider, launch);
  }

  async #start(lane: WarmLane, provider: Provider, launch: LaunchConfig): Promise<void> {
    const { tenant } = lane.spec;
    const id = randomUUID();
    const stateDir = path.join(this.#deps.stateRoot, tenant, PREWARMED_PREFIX + id);
    const paths = { workDir: path.join(this.#deps.workRoot, tenant, PREWARMED_PREFIX + id), home: path.join(stateDir, "home"), stateDir };
    const log = this.#deps.newLog();
    const agent = new WarmAgent(id, tenant, provider.name, randomUUID(), launch, paths, log);
    agent.onUnusable = (why) => this.#failed(lane, agent, why);
    lane.agents.push(agent);
    this.#deps.claim(claimKey(agent), tenant, paths.workDir);
    try {
      await this.#prepareDirs(paths);
      // Before anything runs: what the next daemon needs to tell a leftover from a taken agent.
      await writeFile(path.join(stateDir, PROCESS_FILE), JSON.stringify({ pgid: 0, identity: "" }), { mode: 0o600 });
      if (agent.state === WarmAgentState.GONE) {
        await Promise.all([rm(paths.workDir, { recursive: true, force: true }), rm(stateDir, { recursive: true, force: true })]);
        return;
      }
      const connection = await provider.connect({
        tenant,
        providerSessionId: agent.providerSessionId,
        mode: "new",
        config: launch,
        paths,
        daemonPaths: { workRoot: this.#deps.workRoot, stateRoot: this.#deps.stateRoot },
        env: this.#deps.envFor(provider),
        maxLineBytes: this.#deps.maxLineBytes,
        launcher: observedLauncher(this.#deps.launcher, log, stateDir),
        handlers: agent.handlers,
      });
      // Evicted or closed while it started (the state changes across the await).
      if ((agent.state as WarmAgentState) === WarmAgentState.GONE) {
        await connection.close(0);
        return;
      }
      agent.connected(connection);
      void connection.exited.then(() => {
        if (agent.state !== WarmAgentState.ADOPTED) this.#failed(lane, agent, "it exited before any session took it");
      });
      if (connection.pid > 0) await writeFile(path.join(stateDir, PROCESS_FILE), JSON.stringify({ pgid: connection.pid, identity: connection.identity }), { mode: 0o600 });
      this.#deps.logger.debug({ tenant, provider: provider.name, pid: connection.pid }, "pre-warmed agent ready");
    } catch (error) {
      this.#failed(lane, agent, `it could not start: ${(error as Error).message}`);
    }
  }

  // Its work dir (owned by the agent's user) and its HOME, from the operator's template.
  async #prepareDirs(paths: { workDir: string; home: string; stateDir: string }): Promise<void> {
    const { uid, gid } = this.#deps.sandbox.settings;
    for (const root of [path.dirname(paths.workDir), path.dirname(paths.stateDir)]) await mkdir(root, { recursive: true, mode: 0o711 });
    await mkdir(paths.workDir, { mode: 0o700 });
    await mkdir(paths.stateDir, { mode: 0o700 });
    await mkdir(paths.home, { mode: 0o700 });
    if (this.#deps.homeTemplate) await cp(this.#deps.homeTemplate, paths.home, { recursive: true });
    if (uid !== undefined) {
      await chown(paths.workDir, uid, gid ?? uid);
      await chownTree(paths.home, uid, gid ?? uid);
    }
  }

  // A pre-warmed agent failed: it goes, and the lane waits longer before the next try.
  #failed(lane: WarmLane, agent: WarmAgent, why: string): void {
    if (agent.state === WarmAgentState.GONE || agent.state === WarmAgentState.ADOPTED) return;
    this.#deps.logger.warn({ tenant: agent.tenant, provider: agent.provider, pid: agent.pid, why }, "pre-warmed agent lost");
    this.#discard(lane, agent, why);
    if (this.#closed || lane.retryTimer) return;
    lane.failures += 1;
    const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (lane.failures - 1));
    lane.retryTimer = setTimeout(() => {
      lane.retryTimer = undefined;
      this.#fill(lane);
    }, delay);
    lane.retryTimer.unref();
  }

  #discard(lane: WarmLane, agent: WarmAgent, why: string): void {
    const index = lane.agents.indexOf(agent);
    if (index >= 0) lane.agents.splice(index, 1);
    if (agent.state === WarmAgentState.GONE || agent.state === WarmAgentState.ADOPTED) return;
    agent.gone();
    agent.agentLog.lifecycle(`pre-warmed agent ended: ${why}`, agent.pid);
    this.#deps.release(claimKey(agent));
    const done = (async () => {
      await agent.connection?.close(this.#deps.stopGraceMs);
      agent.agentLog.close();
      await Promise.all([rm(agent.paths.workDir, { recursive: true, force: true }), rm(agent.paths.stateDir, { recursive: true, force: true })]);
    })().catch((error: unknown) => this.#deps.logger.warn({ err: error }, "a pre-warmed agent's dirs could not be removed"));
    this.#discarding.add(done);
    void done.finally(() => this.#discarding.delete(done));
  }

  #drop(lane: WarmLane, why: string): void {
    clearTimeout(lane.retryTimer);
    lane.retryTimer = undefined;
    for (const agent of [...lane.agents]) this.#discard(lane, agent, why);
  }

  /** Ends the agents of every lane no session asked for within its idle time (runs periodically). */
  shrinkIdle(nowMs = Date.now()): void {
    for (const lane of this.#lanes) {
      const { idleMs } = lane.spec;
      if (idleMs <= 0 || lane.dormant || nowMs - lane.lastDemandMs < idleMs) continue;
      lane.dormant = true;
      if (lane.agents.length > 0) this.#deps.logger.info({ tenant: lane.spec.tenant, agents: lane.agents.length, idleMs }, "pre-warmed agents ended: no session asked for one");
      this.#drop(lane, `no session took one for ${idleMs} ms`);
    }
  }
}

function claimKey(agent: WarmAgent): string {
  // "\0" is in no session id: never a session's claim key.
  return `${agent.tenant}/\u0000prewarmed/${agent.id}`;
}

function parseProcessFile(text: string): { pgid: number; identity: string; adopted: boolean } {
  try {
    const value = JSON.parse(text) as { pgid?: unknown; identity?: unknown; adopted?: unknown };
    if (value.adopted === true) return { pgid: 0, identity: "", adopted: true };
    if (typeof value.pgid === "number" && Number.isSafeInteger(value.pgid) && typeof value.identity === "string") return { pgid: value.pgid, identity: value.identity, adopted: false };
  } catch {
    // nothing recorded (it never started) or a torn write: not taken
  }
  return { pgid: 0, identity: "", adopted: false };
}

function sameSpec(a: PrewarmSpec, b: PrewarmSpec): boolean {
  return a.tenant === b.tenant && a.size === b.size && a.idleMs === b.idleMs && equals(SessionConfigSchema, a.config, b.config);
}

/** Launch settings that start the same agent. */
export function sameLaunch(a: LaunchConfig, b: LaunchConfig): boolean {
  return (
    a.model === b.model &&
    a.permissionMode === b.permissionMode &&
    a.systemPrompt === b.systemPrompt &&
    a.appendSystemPrompt === b.appendSystemPrompt &&
    a.approvals === b.approvals &&
    a.gateToolCalls === b.gateToolCalls &&
    sameList(a.allowedTools, b.allowedTools) &&
    sameList(a.disallowedTools, b.disallowedTools)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}
