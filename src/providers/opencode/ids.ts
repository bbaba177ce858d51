import { randomBytes } from "node:crypto";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** An OpenCode session id as the server makes them (e.g. "ses_dcbb72badffe…"). */
export const SESSION_ID = /^ses_[0-9A-Za-z]{8,64}$/;
/** Message, part, permission and tool-call ids: what the server may name in an event. */
export const ITEM_ID = /^[0-9A-Za-z_.:-]{1,128}$/;

let lastMs = 0;
let counter = 0;

/**
 * A message id in OpenCode's own format: `msg_`, 12 hex digits of the low 48 bits of
 * (ms × 4096 + counter), then 14 base62 characters. Messages are ordered by id, so a new
 * one must sort after those the server made before (ascending, like the server's).
 */
export function ascendingMessageId(nowMs: number = Date.now()): string {
  if (nowMs > lastMs) {
    lastMs = nowMs;
    counter = 0;
  }
  counter += 1;
  const value = (BigInt(lastMs) * 4096n + BigInt(counter)) & 0xffffffffffffn;
  const random = Array.from(randomBytes(14), (byte) => BASE62[byte % 62]).join("");
  return `msg_${value.toString(16).padStart(12, "0")}${random}`;
}
