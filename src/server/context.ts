import { createContextKey } from "@connectrpc/connect";
import type { AuthResult } from "../security/credentials.js";
import type { ForwardedCaller } from "../security/forwarded.js";
import type { Principal } from "../security/principal.js";

/** The call's credential check, made from its headers before its body is read (server/adapter.ts). */
export const authKey = createContextKey<AuthResult>({ failure: "missing" }, { description: "hotplex credential check" });

/** The call was forwarded by another node (its caller authenticated there); set with the principal it acts for. */
export const forwardedKey = createContextKey<ForwardedCaller | undefined>(undefined, { description: "hotplex forwarded call" });

/** Why a call that claims to be forwarded by another node is refused (its credential check fails). */
export const forwardRefusalKey = createContextKey<string | undefined>(undefined, { description: "hotplex forwarded call refused" });

/** A problem found in a unary call's body before connect read it; the call is refused with it. */
export interface BodyProblem {
  code: "invalid_argument" | "resource_exhausted";
  message: string;
}

export const bodyProblemKey = createContextKey<BodyProblem | undefined>(undefined, { description: "hotplex request body check" });

/**
 * The authorized principal. Set by the authorization interceptor, which runs before every
 * handler, so a handler can rely on it.
 */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "hotplex principal" });
