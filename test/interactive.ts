// What the interactive-control tests of every provider share: decisions, the requests and
// resolutions in an event list, and a turn whose first permission request a client answers.
import type { Event } from "../gen/hotplex/v1/event_pb.js";
import type { PermissionRequested, PermissionResolved } from "../gen/hotplex/v1/interaction_pb.js";
import { executeEvents, followUntil, type TestDaemon } from "./harness.js";

type Client = TestDaemon["client"];
export type Decision = Parameters<Client["respondPermission"]>[0]["decision"];
export type TurnConfig = NonNullable<Parameters<Client["execute"]>[0]["config"]>;

export const allow = (forSession = false, updatedInputJson = "") => ({ case: "allow" as const, value: { forSession, updatedInputJson } });
export const deny = (message = "", interrupt = false) => ({ case: "deny" as const, value: { message, interrupt } });

export const requestsIn = (events: Event[]): PermissionRequested[] =>
  events.flatMap((e) => (e.payload.case === "permissionRequested" ? [e.payload.value] : []));
export const resolutionsIn = (events: Event[]): PermissionResolved[] =>
  events.flatMap((e) => (e.payload.case === "permissionResolved" ? [e.payload.value] : []));

/** The session's last seq; 0 for a session that does not exist yet. */
export async function lastSeqOf(client: Client, sessionId: string): Promise<bigint> {
  return (await client.getSnapshot({ sessionId }).catch(() => ({ lastSeq: 0n }))).lastSeq;
}

/** The next PermissionRequested of a session after `afterSeq`. */
export async function nextRequest(client: Client, sessionId: string, afterSeq: bigint): Promise<PermissionRequested> {
  const last = (await followUntil(client, sessionId, (e) => e.payload.case === "permissionRequested", afterSeq)).at(-1);
  if (last?.payload.case !== "permissionRequested") throw new Error("no permission request");
  return last.payload.value;
}

/** Runs a turn whose first permission request the client answers with `decision`. */
export async function answeredTurn(
  client: Client,
  sessionId: string,
  prompt: string,
  config: TurnConfig | undefined,
  decision: Decision,
): Promise<{ request: PermissionRequested; events: Event[] }> {
  const from = await lastSeqOf(client, sessionId);
  const turn = executeEvents(client.execute({ sessionId, prompt, config }));
  const request = await nextRequest(client, sessionId, from);
  await client.respondPermission({ sessionId, requestId: request.requestId, decision });
  return { request, events: await turn };
}

/** Runs one turn; `onRequest` sees each PermissionRequested as the Execute stream brings it. */
export async function turnSeeing(
  client: Client,
  sessionId: string,
  prompt: string,
  config: TurnConfig | undefined,
  onRequest?: (request: PermissionRequested) => Promise<void>,
): Promise<Event[]> {
  const events: Event[] = [];
  for await (const message of client.execute({ sessionId, prompt, config })) {
    for (const event of message.events) {
      events.push(event);
      if (event.payload.case === "permissionRequested" && onRequest) await onRequest(event.payload.value);
    }
  }
  return events;
}

/** An `onRequest` for turnSeeing that answers each request with `decide(request)`. */
export const answering = (client: Client, sessionId: string, decide: (request: PermissionRequested) => Decision) => async (request: PermissionRequested) => {
  await client.respondPermission({ sessionId, requestId: request.requestId, decision: decide(request) });
};
