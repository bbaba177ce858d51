/**
 * A call one node forwards to the node that runs the session: it carries the caller's
 * identity (as the first node authenticated it), signed with the secret every node of the
 * deployment shares. The signature covers the identity, the method and an expiry, so a
 * captured header is good for one method and a short while only, and no client can claim
 * to be a node without the secret.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createPrincipal, isTenantName, type Principal, ROLES, type Role } from "./principal.js";

/** The identity a forwarded call acts for. */
export const FORWARDED_HEADER = "hotplex-forwarded";
/** HMAC-SHA256 (hex) of the identity header and the method, with the node secret. */
export const FORWARDED_SIGNATURE_HEADER = "hotplex-forwarded-signature";

/** The shortest node secret accepted (bytes). */
export const MIN_NODE_SECRET_BYTES = 32;
// How long a signed identity is good for: a forward is sent at once.
const VALID_MS = 30_000;
// The longest identity header read (a tenant, a credential name, roles, a node id).
const MAX_HEADER_BYTES = 1024;

interface ForwardedJson {
  /** Tenant. */
  t: string;
  /** The credential's name. */
  n: string;
  r: Role[];
  /** The node that forwarded the call. */
  f: string;
  /** Expires at (ms since the epoch). */
  e: number;
}

/** A forwarded call's caller, as the forwarding node authenticated it. */
export interface ForwardedCaller {
  principal: Principal;
  /** The node that forwarded the call. */
  from: string;
}

/** The headers that forward a call of `method` ("hotplex.v1.SessionService/Execute") for `principal`. */
export function forwardedHeaders(secret: Buffer, principal: Principal, method: string, fromNode: string, nowMs = Date.now()): [string, string][] {
  const json: ForwardedJson = { t: principal.tenant, n: principal.name, r: [...principal.roles], f: fromNode, e: nowMs + VALID_MS };
  const identity = Buffer.from(JSON.stringify(json), "utf8").toString("base64url");
  return [
    [FORWARDED_HEADER, identity],
    [FORWARDED_SIGNATURE_HEADER, sign(secret, identity, method)],
  ];
}

/**
 * The caller of a forwarded call, or why the headers are not a valid forward: a wrong or
 * missing signature, another method, an expired or malformed identity.
 */
export function verifyForwarded(
  secret: Buffer | undefined,
  identity: string,
  signature: string | undefined,
  method: string,
  nowMs = Date.now(),
): ForwardedCaller | { refused: string } {
  if (!secret) return { refused: "this node accepts no forwarded calls (it has no node secret)" };
  if (identity.length > MAX_HEADER_BYTES) return { refused: "the forwarded identity is too long" };
  const expected = Buffer.from(sign(secret, identity, method), "hex");
  const given = Buffer.from(/^[0-9a-f]{64}$/.test(signature ?? "") ? (signature as string) : "", "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { refused: "the forwarded call's signature is not valid" };
  let json: ForwardedJson;
  try {
    json = JSON.parse(Buffer.from(identity, "base64url").toString("utf8")) as ForwardedJson;
  } catch {
    return { refused: "the forwarded identity is malformed" };
  }
  const roles = Array.isArray(json.r) ? json.r : [];
  const wellFormed =
    typeof json.t === "string" &&
    (json.t === "" || isTenantName(json.t)) &&
    typeof json.n === "string" &&
    json.n.length <= 128 &&
    typeof json.f === "string" &&
    json.f.length <= 64 &&
    roles.length > 0 &&
    roles.every((role) => ROLES.includes(role)) &&
    Number.isSafeInteger(json.e);
  if (!wellFormed) return { refused: "the forwarded identity is malformed" };
  if (json.e < nowMs || json.e > nowMs + 2 * VALID_MS) return { refused: "the forwarded call has expired (are the nodes' clocks apart?)" };
  return { principal: createPrincipal(json.n, json.t, roles), from: json.f };
}

function sign(secret: Buffer, identity: string, method: string): string {
  return createHmac("sha256", secret).update(identity).update("\n").update(method).digest("hex");
}
