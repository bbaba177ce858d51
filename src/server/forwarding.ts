import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import type { Engine } from "../engine/engine.js";
import { forwardedHeaders } from "../security/forwarded.js";
import { methodKey } from "./authorization.js";
import { forwardedKey, principalKey } from "./context.js";

// Which SessionService methods act on one session's agent and so run on the node that holds
// the session; reads are served by every node from the store. The Record type makes a
// method added to the proto fail the type check until it is placed here.
const RUNS_ON_HOLDER: Record<keyof typeof SessionService.method, boolean> = {
  execute: true,
  subscribe: false,
  getSnapshot: false,
  stopSession: true,
  interrupt: true,
  getSessionStats: false,
  listSessions: false,
  deleteSession: true,
  listProviders: false,
  respondPermission: true,
  steer: true,
  cancelTurn: true,
  changeSettings: true,
  listModels: true,
  resetSession: true,
  forkSession: true,
  setTitle: true,
};

/** The methods forwarded to the node that holds the session, by name ("Execute"). */
export const FORWARDED_METHODS: ReadonlySet<string> = new Set(
  Object.entries(RUNS_ON_HOLDER)
    .filter(([, forwarded]) => forwarded)
    .map(([name]) => SessionService.method[name as keyof typeof RUNS_ON_HOLDER].name),
);

export interface ForwardingOptions {
  engine: Pick<Engine, "peerFor" | "node">;
  /** The secret the nodes share; without it nothing is forwarded (another node's session is refused). */
  secret: Buffer;
}

/**
 * Sends a command on a session another node runs (Execute, Stop, Interrupt, approvals, ...)
 * to that node, acting for the caller (signed with the node secret), and returns that
 * node's answer as it is: a client may call any node. A forwarded call is never forwarded
 * again: a node that no longer holds the session when the call arrives takes it, or
 * refuses it naming the node that does.
 */
export function createForwardingInterceptor(options: ForwardingOptions): Interceptor {
  const transports = new Map<string, Transport>();
  const transportFor = (url: string) => {
    let transport = transports.get(url);
    if (!transport) {
      transport = createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true });
      transports.set(url, transport);
    }
    return transport;
  };
  return (next) => async (req) => {
    if (req.service.typeName !== SessionService.typeName || !FORWARDED_METHODS.has(req.method.name) || req.contextValues.get(forwardedKey)) return next(req);
    const principal = req.contextValues.get(principalKey);
    if (!principal) return next(req);
    // Execute streams its answer: its one request message is read here, and handed on.
    const message = req.stream ? await first(req.message) : req.message;
    if (message === undefined) return next(req);
    const request = req.stream ? { ...req, message: once(message) } : req;
    const sessionId = (message as { sessionId?: unknown }).sessionId;
    if (typeof sessionId !== "string" || sessionId === "") return next(request);
    // A turn of a session no node runs goes to the node with the most room.
    const peer = await options.engine.peerFor(principal.tenant, sessionId, req.method.name === SessionService.method.execute.name);
    // Nobody else holds it (this node runs it, or will), or the holder cannot be reached
    // from here: the call runs here, which refuses it naming the node when it cannot run it.
    if (!peer?.url) return next(request);
    const header = new Headers(forwardedHeaders(options.secret, principal, methodKey(req.method), options.engine.node ?? ""));
    const where = `forwarded to node "${peer.node}" at ${peer.url}, which ${peer.runs ? "runs" : "has the most room for"} session "${sessionId}"`;
    try {
      // An address the node registry holds that is no URL fails the call as the node being unreachable.
      const transport = transportFor(peer.url);
      if (!req.stream) return await transport.unary(req.method as DescMethod & { methodKind: "unary" }, req.signal, undefined, header, message as never);
      const response = await transport.stream(req.method as DescMethod & { methodKind: "server_streaming" }, req.signal, undefined, header, once(message) as never);
      return { ...response, message: explained(response.message, where) };
    } catch (error) {
      throw explain(error, where);
    }
  };
}

async function first<T>(messages: AsyncIterable<T>): Promise<T | undefined> {
  for await (const message of messages) return message;
  return undefined;
}

async function* once<T>(message: T): AsyncIterable<T> {
  yield message;
}

async function* explained<T>(messages: AsyncIterable<T>, where: string): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw explain(error, where);
  }
}

// A node that cannot be reached (or went away mid-call) says which one and why it was asked.
function explain(error: unknown, where: string): unknown {
  const connectError = ConnectError.from(error);
  if (connectError.code === Code.Unknown && !(error instanceof ConnectError)) {
    return new ConnectError(`the call cannot be sent (${where}): ${connectError.rawMessage}`, Code.Unavailable);
  }
  if (connectError.code !== Code.Unavailable) return error;
  return new ConnectError(`${connectError.rawMessage} (${where}; try again: a node that died is replaced once its hold expires)`, Code.Unavailable, connectError.metadata, undefined, connectError);
}
