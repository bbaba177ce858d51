import type { ServerClient } from "./http.js";
import { jsonOf } from "./http.js";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);

/** A message id as TurnEnded.provider_turn_ref carries it. */
export const MESSAGE_ID = /^msg_[0-9A-Za-z]{8,64}$/;

/** One message of a conversation, as far as a fork needs it. */
export interface MessageInfo {
  id: string;
  role: string;
  parentID: string;
}

const PAGE = 50;
const MAX_PAGES = 400;
const PAGE_BYTES = 64 * 1024 * 1024;

/**
 * Where a fork that keeps the turn ending at `ref` must cut: OpenCode's fork copies the
 * messages before the one it is given. The cut is the first message after the turn (its
 * user message and the assistant messages answering it), or none when the turn is the
 * last. `messages` ascend; `found` is false when `ref` is not among them.
 */
export function cutAfter(messages: readonly MessageInfo[], ref: string): { found: boolean; cut: string | undefined } {
  const at = messages.findIndex((message) => message.id === ref);
  if (at === -1) return { found: false, cut: undefined };
  const turnUser = messages[at]!.role === "user" ? ref : messages[at]!.parentID;
  for (let i = at + 1; i < messages.length; i += 1) {
    const message = messages[i]!;
    if (message.role === "assistant" && message.parentID === turnUser) continue;
    return { found: true, cut: message.id };
  }
  return { found: true, cut: undefined };
}

/**
 * Reads a conversation's messages from the newest back (pages of `GET
 * /session/:id/message`, following X-Next-Cursor) until `ref` shows, and returns where a
 * fork at it cuts. Throws when the conversation does not hold `ref`.
 */
export async function findCut(client: ServerClient, sessionID: string, directory: string, ref: string): Promise<string | undefined> {
  const newer: MessageInfo[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const query: Record<string, string> = { directory, limit: String(PAGE), ...(cursor ? { before: cursor } : {}) };
    const reply = await client.request("GET", `/session/${sessionID}/message`, { query, maxBytes: PAGE_BYTES });
    const body = jsonOf(reply);
    if (reply.status !== 200 || !Array.isArray(body)) throw new Error(`cannot read the messages of opencode session ${sessionID}: HTTP ${reply.status}`);
    const messages = body.flatMap((item): MessageInfo[] => {
      const info = isObject(item) && isObject(item.info) ? item.info : undefined;
      if (!info || typeof info.id !== "string") return [];
      return [{ id: info.id.slice(0, 128), role: typeof info.role === "string" ? info.role : "", parentID: typeof info.parentID === "string" ? info.parentID.slice(0, 128) : "" }];
    });
    messages.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    newer.unshift(...messages);
    const { found, cut } = cutAfter(newer, ref);
    if (found) return cut;
    const next = reply.headers["x-next-cursor"];
    cursor = typeof next === "string" && next.length > 0 && next.length <= 1024 ? next : undefined;
    if (!cursor || messages.length === 0) break;
  }
  throw new Error(`the turn to fork at (${ref}) is not in opencode session ${sessionID}`);
}
