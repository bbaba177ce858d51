import { randomBytes } from "node:crypto";
import { chown, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { pino } from "pino";
import type { ProcessExit } from "../../process/agent-process.js";
import { type AgentLauncher, type LaunchedAgent, LaunchError } from "../../process/launcher.js";
import { endOrphanGroup } from "../../process/orphans.js";
import { SESSION_ID } from "./ids.js";
import { jsonOf, ServerClient, SseParser } from "./http.js";

/** What a server start needs from the session that asks for it first. */
export interface ServerStart {
  launcher: AgentLauncher;
  daemonPaths: { workRoot: string; stateRoot: string };
  /** The session's environment: the server keeps only the common variables of it. */
  env: Record<string, string>;
  /** The longest event accepted from the server. */
  maxLineBytes: number;
  /** OPENCODE_CONFIG_CONTENT: the settings every session on the server shares. */
  config: string;
}

/** Where one session's events go. */
export interface ServerSink {
  onEvent(type: string, properties: unknown): void;
  onFault(code: string, message: string): void;
}

// Variables of the session's environment the server inherits (its tools run with them).
const INHERITED = ["PATH", "LANG", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"];

// Switches of OpenCode's that keep it offline but for the model API, and out of the
// work dirs' own config (a repo's `opencode.json` or `.opencode/` plugins would run in
// the shared server, next to every other session).
const SWITCHES = {
  OPENCODE_DISABLE_AUTOUPDATE: "1",
  OPENCODE_DISABLE_MODELS_FETCH: "1",
  OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
  OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
  OPENCODE_DISABLE_SHARE: "1",
  OPENCODE_DISABLE_CLAUDE_CODE: "1",
  OPENCODE_DISABLE_EXTERNAL_SKILLS: "1",
  OPENCODE_DISABLE_PROJECT_CONFIG: "1",
};

const USERNAME = "opencode";
const LISTENING = /^opencode server listening on http:\/\/127\.0\.0\.1:(\d{1,5})\/?$/;
const START_TIMEOUT_MS = 60_000;
const START_ATTEMPTS = 3;
const HEALTH_INTERVAL_MS = 20_000;
const HEALTH_TIMEOUT_MS = 10_000;
const HEALTH_FAILURES = 3;
const STOP_GRACE_MS = 3_000;

/** The server's directories: all of them under the daemon's state root. */
export function serverDirs(stateRoot: string) {
  const base = path.join(stateRoot, ".opencode");
  const home = path.join(base, "home");
  return {
    base,
    home,
    /** Read-only inside the sandbox: the launch files. */
    launch: path.join(base, "launch"),
    identity: path.join(base, "server.json"),
    xdg: {
      XDG_CONFIG_HOME: path.join(home, ".config"),
      XDG_DATA_HOME: path.join(home, ".local", "share"),
      XDG_CACHE_HOME: path.join(home, ".cache"),
      XDG_STATE_HOME: path.join(home, ".local", "state"),
    },
  };
}

/**
 * One run of `opencode serve`: its process (started through the launcher, in the
 * sandbox), its HTTP client and its one event stream, demultiplexed by session id.
 */
export class OpenCodeServer {
  readonly client: ServerClient;
  readonly exited: Promise<ProcessExit>;
  readonly version: string;
  readonly #agent: LaunchedAgent;
  readonly #sinks = new Map<string, Set<ServerSink>>();
  #why = "";
  #gone = false;
  #closeStream: (() => void) | undefined;
  #health: NodeJS.Timeout | undefined;

  constructor(agent: LaunchedAgent, client: ServerClient, version: string) {
    this.#agent = agent;
    this.client = client;
    this.version = version;
    this.exited = agent.exited.then((exit) => {
      this.#gone = true;
      clearInterval(this.#health);
      this.#closeStream?.();
      client.destroy();
      const why = this.#why || describeExit(exit);
      return { ...exit, stderrTail: `the shared opencode server ended (${why})${exit.stderrTail ? `: ${exit.stderrTail}` : ""}`.slice(-8192) };
    });
  }

  /** The server's process group (the sandbox's, when it runs in one). */
  get pid(): number {
    return this.#agent.process.pid;
  }

  get identity(): string {
    return this.#agent.identity;
  }

  get alive(): boolean {
    return !this.#gone && this.#agent.process.alive;
  }

  /** Sends this session's events to `sink` until the returned function is called. */
  subscribe(sessionID: string, sink: ServerSink): () => void {
    let sinks = this.#sinks.get(sessionID);
    if (!sinks) this.#sinks.set(sessionID, (sinks = new Set()));
    sinks.add(sink);
    return () => {
      sinks.delete(sink);
      if (sinks.size === 0 && this.#sinks.get(sessionID) === sinks) this.#sinks.delete(sessionID);
    };
  }

  /** Ends the server at once (it is broken); its exit ends every session run on it. */
  kill(why: string): void {
    this.#why ||= why;
    this.#agent.process.signalGroup("SIGKILL");
  }

  async terminate(graceMs: number): Promise<ProcessExit> {
    this.#why ||= "stopped";
    await this.#agent.process.terminate(graceMs);
    return this.exited;
  }

  /** Reads `/global/event` until the server goes; resolves once the server said hello. */
  async openEvents(maxBytes: number): Promise<void> {
    let hello: (() => void) | undefined;
    const said = new Promise<void>((resolve) => (hello = resolve));
    const parser = new SseParser(
      maxBytes,
      (data) => {
        hello?.();
        this.#dispatch(data);
      },
      (bytes, head) => this.#overlong(bytes, head, maxBytes),
    );
    const stream = await this.client.stream("/global/event", (chunk) => parser.push(chunk));
    this.#closeStream = stream.close;
    // Events are not replayed: a stream lost while the server runs loses turns' ends.
    void stream.ended.then(() => {
      if (!this.#gone) this.kill("its event stream ended");
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new LaunchError("the opencode server sent no events")), 10_000)));
    try {
      await Promise.race([said, late, this.exited.then(() => Promise.reject(new LaunchError("the opencode server ended while starting")))]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Asks the server how it is, now and then; one that stops answering is ended. */
  watchHealth(): void {
    let failures = 0;
    this.#health = setInterval(() => {
      void healthOf(this.client, HEALTH_TIMEOUT_MS).then((version) => {
        failures = version === undefined ? failures + 1 : 0;
        if (failures >= HEALTH_FAILURES && this.alive) this.kill("it stopped answering its health check");
      });
    }, HEALTH_INTERVAL_MS);
    this.#health.unref();
  }

  #dispatch(data: string): void {
    let envelope: unknown;
    try {
      envelope = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObject(envelope)) return;
    // /global/event wraps each bus event: {directory, project, payload}.
    const payload = isObject(envelope.payload) ? envelope.payload : envelope;
    const type = typeof payload.type === "string" ? payload.type.slice(0, 100) : "";
    // Every bus event comes again as a "sync" envelope (for the server's replay log).
    if (!type || type === "sync") return;
    const properties = payload.properties;
    const sessionID = sessionOf(properties);
    // Events of no session (heartbeats, catalogs, plugins, projects) are the server's own.
    if (!sessionID) return;
    for (const sink of [...(this.#sinks.get(sessionID) ?? [])]) sink.onEvent(type, properties);
  }

  #overlong(bytes: number, head: string, maxBytes: number): void {
    const message = `the opencode server sent an event of more than ${maxBytes} bytes (${bytes} so far); it was dropped and the session's run ended`;
    const named = /"sessionID"\s*:\s*"(ses_[0-9A-Za-z]{8,64})"/.exec(head)?.[1];
    const targets = named ? [this.#sinks.get(named) ?? new Set<ServerSink>()] : [...this.#sinks.values()];
    for (const sinks of targets) for (const sink of [...sinks]) sink.onFault("output_line_too_long", message);
  }
}

/**
 * The one OpenCode server of a daemon: started by the first session that needs it, again
 * after it died (its sessions live on in its state dirs, and sessions re-attach to them
 * by id), ended at daemon shutdown. The password is new for each daemon run and travels
 * in the environment only.
 */
export class OpenCodeSupervisor {
  readonly #executable: string;
  readonly #password = randomBytes(24).toString("base64url");
  #current: OpenCodeServer | undefined;
  #starting: Promise<OpenCodeServer> | undefined;
  #leftoverChecked = false;

  constructor(executable: string) {
    this.#executable = executable;
  }

  /** The running server, if any (for diagnostics and tests). */
  get current(): OpenCodeServer | undefined {
    return this.#current?.alive ? this.#current : undefined;
  }

  /** The running server, started first when there is none. */
  acquire(start: ServerStart): Promise<OpenCodeServer> {
    if (this.#current?.alive) return Promise.resolve(this.#current);
    this.#starting ??= this.#start(start).finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  async close(): Promise<void> {
    const starting = this.#starting;
    const server = starting ? await starting.catch(() => undefined) : this.#current;
    this.#current = undefined;
    if (server?.alive) await server.terminate(STOP_GRACE_MS);
  }

  async #start(start: ServerStart): Promise<OpenCodeServer> {
    const { launcher } = start;
    if (launcher.sandbox.enabled && launcher.sandbox.settings.network !== "on") {
      throw new LaunchError(
        `provider opencode runs one shared server that hotplex reaches on loopback; it needs the sandbox network "on" (it is "${launcher.sandbox.settings.network}")`,
      );
    }
    const dirs = serverDirs(start.daemonPaths.stateRoot);
    await this.#endLeftover(dirs.identity);
    await prepareDirs(launcher, dirs);
    let lastError: unknown;
    for (let attempt = 0; attempt < START_ATTEMPTS; attempt += 1) {
      try {
        const server = await this.#launch(start, dirs);
        this.#current = server;
        void server.exited.then(() => {
          if (this.#current === server) this.#current = undefined;
          return rm(dirs.identity, { force: true });
        });
        return server;
      } catch (error) {
        lastError = error;
        // Another process took the port between our check and the server's bind: again.
        if (!(error instanceof EarlyExit)) break;
      }
    }
    throw lastError instanceof LaunchError ? lastError : new LaunchError(`cannot start the opencode server: ${String(lastError)}`);
  }

  async #launch(start: ServerStart, dirs: ReturnType<typeof serverDirs>): Promise<OpenCodeServer> {
    const port = await freePort();
    let listening: ((port: number) => void) | undefined;
    const heard = new Promise<number>((resolve) => (listening = resolve));
    let lines = 0;
    const env: Record<string, string> = {};
    for (const name of INHERITED) if (start.env[name] !== undefined) env[name] = start.env[name]!;
    for (const [name, value] of Object.entries(start.env)) if (name.startsWith("LC_")) env[name] = value;
    const agent = await start.launcher.launch({
      command: {
        file: this.#executable,
        args: ["serve", "--hostname=127.0.0.1", `--port=${port}`],
        env: {
          HOME: dirs.home,
          ...dirs.xdg,
          ...SWITCHES,
          OPENCODE_CONFIG_CONTENT: start.config,
          OPENCODE_SERVER_USERNAME: USERNAME,
          OPENCODE_SERVER_PASSWORD: this.#password,
        },
      },
      // The work root, so that it reaches every session's work dir; its HOME and state
      // (the conversations of all sessions) under the daemon's state root.
      paths: { workDir: start.daemonPaths.workRoot, home: dirs.home, stateDir: dirs.launch },
      env,
      maxLineBytes: 64 * 1024,
      onLine: (line) => {
        lines += 1;
        if (lines > 100) return;
        const match = LISTENING.exec(line.trim());
        if (match) listening?.(Number(match[1]));
      },
      onOverlongLine: () => {},
      // The server speaks HTTP; its stdout only ever says where it listens.
      onOutputClosed: () => {},
    });
    const client = new ServerClient(port, `Basic ${Buffer.from(`${USERNAME}:${this.#password}`).toString("base64")}`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const said = await Promise.race([
        heard,
        agent.exited.then((exit) => Promise.reject(new EarlyExit(`the opencode server exited before it listened (${describeExit(exit)}): ${exit.spawnError ?? exit.stderrTail.slice(-2000)}`))),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new LaunchError(`the opencode server did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS))),
      ]);
      if (said !== port) throw new LaunchError(`the opencode server listens on port ${said}, not on ${port} as told`);
      const version = await waitHealthy(client, agent);
      const server = new OpenCodeServer(agent, client, version);
      await writeIdentity(dirs.identity, agent);
      await server.openEvents(start.maxLineBytes);
      server.watchHealth();
      return server;
    } catch (error) {
      agent.process.signalGroup("SIGKILL");
      await agent.exited;
      client.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  // A server a crashed daemon left running holds the state dirs: end it (only if it is
  // provably that process, by its recorded identity).
  async #endLeftover(file: string): Promise<void> {
    if (this.#leftoverChecked) return;
    this.#leftoverChecked = true;
    const recorded = await readFile(file, "utf8").catch(() => "");
    if (!recorded) return;
    try {
      const { pgid, identity } = JSON.parse(recorded) as { pgid?: unknown; identity?: unknown };
      if (typeof pgid === "number" && pgid > 0 && typeof identity === "string") {
        await endOrphanGroup(pgid, identity, STOP_GRACE_MS, pino({ level: "silent" }));
      }
    } catch {
      // not ours
    }
    await rm(file, { force: true });
  }
}

class EarlyExit extends LaunchError {}

async function prepareDirs(launcher: AgentLauncher, dirs: ReturnType<typeof serverDirs>): Promise<void> {
  await mkdir(dirs.base, { recursive: true, mode: 0o700 });
  for (const dir of [dirs.home, ...Object.values(dirs.xdg)]) await launcher.ensureAgentDir(dir);
  // OpenCode installs its plugin package into each config dir it loads (from the npm
  // registry) unless the dir already lists it as installed: say it is.
  const config = path.join(dirs.xdg.XDG_CONFIG_HOME, "opencode");
  await launcher.ensureAgentDir(path.join(config, "node_modules"));
  const dependencies = { "@opencode-ai/plugin": "*" };
  const files = {
    [path.join(config, "package.json")]: JSON.stringify({ dependencies }),
    [path.join(config, "package-lock.json")]: JSON.stringify({ lockfileVersion: 3, packages: { "": { dependencies } } }),
  };
  const { uid, gid } = launcher.sandbox.settings;
  for (const [file, content] of Object.entries(files)) {
    const exists = await stat(file).then(
      () => true,
      () => false,
    );
    if (exists) continue;
    await writeFile(file, content, { mode: 0o600 });
    if (uid !== undefined) await chown(file, uid, gid ?? uid);
  }
}

async function writeIdentity(file: string, agent: LaunchedAgent): Promise<void> {
  await writeFile(file, JSON.stringify({ pgid: agent.process.pid, identity: agent.identity }), { mode: 0o600 });
}

/** The server's version, when it says it is healthy. */
async function healthOf(client: ServerClient, timeoutMs: number): Promise<string | undefined> {
  try {
    const reply = await client.request("GET", "/global/health", { timeoutMs, maxBytes: 4096 });
    const body = jsonOf(reply);
    if (reply.status !== 200 || !isObject(body) || body.healthy !== true) return undefined;
    return typeof body.version === "string" ? body.version.slice(0, 50) : "";
  } catch {
    return undefined;
  }
}

// Right after its "listening" line the server answers; give it a few tries anyway.
async function waitHealthy(client: ServerClient, agent: LaunchedAgent): Promise<string> {
  for (let attempt = 0; attempt < 50 && agent.process.alive; attempt += 1) {
    const version = await healthOf(client, 5_000);
    if (version !== undefined) return version;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new LaunchError("the opencode server listens but does not answer its health check (or refuses our password)");
}

/** A loopback port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => (port ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

function sessionOf(properties: unknown): string | undefined {
  if (!isObject(properties)) return undefined;
  const candidates = [properties.sessionID, isObject(properties.info) ? properties.info.sessionID : undefined, isObject(properties.part) ? properties.part.sessionID : undefined];
  for (const candidate of candidates) if (typeof candidate === "string" && SESSION_ID.test(candidate)) return candidate;
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function describeExit(exit: ProcessExit): string {
  if (exit.spawnError) return `it could not start: ${exit.spawnError}`;
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exit code ${exit.exitCode ?? "unknown"}`;
}
