import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { toJsonString } from "@bufbuild/protobuf";
import { SessionService } from "../gen/hotplex/v1/session_service_pb.js";
import { type Event, EventSchema } from "../gen/hotplex/v1/event_pb.js";
import { type EngineConfig, engineConfig } from "../src/engine/config.js";
import { Engine } from "../src/engine/engine.js";
import { type CredentialSpec, CredentialTable, hashToken } from "../src/security/credentials.js";
import { agentEnvironment } from "../src/security/env.js";
import { type ProviderSettings, providerSettings } from "../src/providers/registry.js";
import type { Provider } from "../src/providers/provider.js";
import type { HttpRoutes } from "../src/server/http-routes.js";
import type { ConnectionLimits, TlsFiles } from "../src/server/listener.js";
import { createServer, type HotplexServer, type RequestLimits } from "../src/server/server.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const fakeClaudePath = path.join(repoRoot, "test", "fixtures", "fake-claude.mjs");

export type Protocol = "connect" | "grpc";

/** Where a test daemon listens. */
export interface TestServer {
  url: string;
  host: string;
  port: number;
  /** The server itself (connections, close). */
  server: HotplexServer;
}

export interface TestDaemon {
  server: TestServer;
  engine: Engine;
  workRoot: string;
  home: string;
  client: Client<typeof SessionService>;
  clientFor(protocol: Protocol, token?: string): Client<typeof SessionService>;
  /** Puts other credentials in force, as a config reload does. */
  setCredentials(next: CredentialSpec[]): void;
  /** The HOME a session's agent runs with (its transcripts are there). */
  homeOf(sessionId: string, tenant?: string): string;
  close(): Promise<void>;
}

export interface TestDaemonOptions {
  protocol?: Protocol;
  /** The store to run on (default memory); sqlite keeps its file in the test's scratch dir. */
  storeKind?: "memory" | "sqlite";
  /** Collects the daemon's log records (info and up) here instead of discarding them. */
  logRecords?: Record<string, unknown>[];
  /** Reuse the work root and HOME of an earlier daemon (a daemon restart); kept on close. */
  dirs?: { workRoot: string; home: string };
  claudePath?: string;
  /** The providers to enable (instead of the fake Claude Code at `claudePath`). */
  providers?: ProviderSettings;
  /** Provider objects to run instead of those the settings name (the first is the default). */
  providerInstances?: Provider[];
  /** A bearer token: the one credential, for the tenant "default" with the client role. */
  token?: string;
  /** The credentials (instead of `token`); the table can be swapped with `setCredentials`. */
  credentials?: CredentialSpec[];
  env?: Record<string, string>;
  engine?: Partial<Omit<EngineConfig, "limits">> & { limits?: Partial<EngineConfig["limits"]> };
  requestLimits?: RequestLimits;
  connectionLimits?: ConnectionLimits;
  tls?: TlsFiles;
  /** The secret the nodes share (a Redis store): commands on another node's session are forwarded there, and this node advertises its URL. */
  nodeSecret?: Buffer;
  /** Plain HTTP routes on the API's port (ServerOptions.extraRoutes), given the daemon's credentials. */
  extraRoutes?: (credentials: () => CredentialTable) => HttpRoutes;
}

/** A transport for the given protocol: Connect over HTTP/1.1, gRPC over HTTP/2. */
export function transportFor(baseUrl: string, protocol: Protocol, token?: string): Transport {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const interceptors = token ? [bearer] : [];
  return protocol === "grpc"
    ? createGrpcTransport({ baseUrl, interceptors })
    : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
}

/** Starts hotplex in this process on a free loopback port, running the fake agent. */
export async function startTestDaemon(options: TestDaemonOptions = {}): Promise<TestDaemon> {
  const scratch = options.dirs ? undefined : mkdtempSync(path.join(tmpdir(), "hotplex-test-"));
  const workRoot = options.dirs?.workRoot ?? path.join(scratch!, "work");
  const home = options.dirs?.home ?? path.join(scratch!, "home");
  const { limits, ...engineRest } = options.engine ?? {};
  const config = engineConfig(
    {
      workRoot,
      stateRoot: path.join(path.dirname(workRoot), "state"),
      store:
        options.storeKind === "sqlite"
          ? { kind: "sqlite", dataDir: path.join(scratch ?? workRoot, "data"), durability: "normal" }
          : { kind: "memory" },
      agentEnv: { ...agentEnvironment(process.env), HOME: home, ...options.env },
    },
    {
      providers: options.providers ?? providerSettings({ "claude-code": options.claudePath ?? fakeClaudePath }),
      maxLiveSessions: 16,
      logBounds: { maxEvents: 1024, maxBytes: 16 * 1024 * 1024 },
      retention: { maxEvents: 0, maxBytes: 0, maxAgeMs: 0, totalMaxBytes: 0 },
      ...engineRest,
      limits: { queueLimit: 4, turnTimeoutMs: 20_000, idleTimeoutMs: 0, stopGraceMs: 1_000, ...limits },
    },
  );
  mkdirSync(workRoot, { recursive: true });
  mkdirSync(home, { recursive: true });
  const records = options.logRecords;
  const logger = records
    ? pino({ level: "info" }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) })
    : pino({ level: process.env.HOTPLEX_TEST_LOG ?? "silent" });
  const engine = await Engine.open(config, logger, options.providerInstances);
  const specs =
    options.credentials ?? (options.token ? [{ name: "token", tenant: "default", roles: ["client" as const], tokenSha256: hashToken(options.token) }] : []);
  let credentials = new CredentialTable(specs);
  const server = createServer({
    engine,
    logger,
    credentials: () => credentials,
    requestLimits: options.requestLimits,
    connectionLimits: options.connectionLimits,
    tls: options.tls,
    version: "test",
    ...(options.extraRoutes ? { extraRoutes: options.extraRoutes(() => credentials) } : {}),
    ...(options.nodeSecret ? { nodeSecret: options.nodeSecret } : {}),
  });
  const address = await server.listen("127.0.0.1", 0);
  if (options.nodeSecret) engine.advertise(address.url);
  const clientFor = (protocol: Protocol, token = options.token) =>
    createClient(SessionService, transportFor(address.url, protocol, token));
  return {
    server: { ...address, server },
    engine,
    workRoot,
    home,
    client: clientFor(options.protocol ?? "connect"),
    clientFor,
    setCredentials(next: CredentialSpec[]) {
      credentials = new CredentialTable(next);
    },
    homeOf: (sessionId, tenant = "default") => path.join(config.stateRoot, tenant, sessionId, "home"),
    async close() {
      await engine.shutdown();
      await server.close();
      if (scratch) rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** Collects a stream into an array. */
export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

/** The events of an Execute stream. */
export async function executeEvents(stream: AsyncIterable<{ events: Event[] }>): Promise<Event[]> {
  const events: Event[] = [];
  for await (const message of stream) events.push(...message.events);
  return events;
}

/** Every logged event of a session (a Subscribe without follow), without the header. */
export async function subscribedEvents(daemon: TestDaemon, sessionId: string, afterSeq = 0n): Promise<Event[]> {
  const events: Event[] = [];
  for await (const message of daemon.client.subscribe({ sessionId, afterSeq })) events.push(...message.events);
  return events;
}

/**
 * Follows a session's log from `afterSeq` and returns the events up to and including
 * the first that `done` accepts. The call is cancelled afterwards (breaking out of a
 * stream alone would leave the request open).
 */
export async function followUntil(
  client: TestDaemon["client"],
  sessionId: string,
  done: (event: Event) => boolean,
  afterSeq = 0n,
): Promise<Event[]> {
  const abort = new AbortController();
  const events: Event[] = [];
  try {
    for await (const message of client.subscribe({ sessionId, afterSeq, follow: true }, { signal: abort.signal })) {
      for (const event of message.events) {
        events.push(event);
        if (done(event)) return events;
      }
    }
    throw new Error(`the stream of session ${sessionId} ended before the awaited event`);
  } finally {
    abort.abort();
  }
}

/** The text of an event list's text deltas, joined. */
export function textOf(events: Event[]): string {
  return events.map((e) => (e.payload.case === "textDelta" ? e.payload.value.text : "")).join("");
}

/** The turnEnded payload of an event list. */
export function turnEndOf(events: Event[]) {
  const last = events.at(-1);
  if (last?.payload.case !== "turnEnded") throw new Error(`last event is ${last?.payload.case}, not turnEnded`);
  return last.payload.value;
}

/** Whether a process is alive (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls a condition with setImmediate-free waits; for conditions no event announces (process death). */
/**
 * Resolves once the work an in-process daemon deferred to after the current tick (RPC log
 * lines, event observers: see AfterTick) has run: it was queued before the response that
 * the caller has just read went out, and setImmediate callbacks run in order.
 */
export function afterDeferred(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

export async function waitUntil(condition: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A process's resident memory, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kib * 1024;
}

/** A token long enough for the daemon, distinct per name. */
export function testToken(name: string): string {
  return `${name}-token-0123456789abcdef`;
}

/**
 * The host pid of a process the fake agent reported ("grandchild pid N (sleep 600.123)"):
 * found by its unique command line, since inside a sandbox the agent's pids are its PID
 * namespace's. 0 when no such process runs.
 */
export function hostPidOf(text: string, label: "grandchild" | "setsid"): number {
  const command = new RegExp(`${label} pid \\d+ \\(([^)]+)\\)`).exec(text)?.[1];
  if (!command) return 0;
  const wanted = command.split(" ").join("\0");
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0$/, "") === wanted) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return 0;
}

/**
 * hostPidOf for a process a shell started in the background: it may not have exec'd its
 * command yet when the turn ends, so wait for it (0 if it never shows).
 */
export async function awaitHostPid(text: string, label: "grandchild" | "setsid", timeoutMs = 5_000): Promise<number> {
  let pid = 0;
  await waitUntil(() => (pid = hostPidOf(text, label)) > 0, timeoutMs, `the ${label} process`).catch(() => undefined);
  return pid;
}

/** Host processes whose working directory lies in `dir` (an agent of that work dir, sandboxed or not). */
export function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${entry}/status`, "utf8"))?.[1];
      if ((cwd === dir || cwd.startsWith(`${dir}/`)) && state !== "Z") pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

/**
 * What a client received across reconnects: each event must follow the last one seen by
 * exactly one seq (checked as it arrives); `seen` holds each event's JSON by seq, to compare
 * with what the store holds afterwards.
 */
export function seqRecorder(): { seen: Map<number, string>; readonly lastSeen: number; remember(event: Event): void } {
  const seen = new Map<number, string>();
  let lastSeen = 0;
  return {
    seen,
    get lastSeen() {
      return lastSeen;
    },
    remember(event: Event) {
      const seq = Number(event.seq);
      if (seq !== lastSeen + 1) throw new Error(`received seq ${seq} after ${lastSeen}: a gap or a duplicate`);
      lastSeen = seq;
      seen.set(seq, toJsonString(EventSchema, event));
    },
  };
}
