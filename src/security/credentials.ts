import { createHash, timingSafeEqual } from "node:crypto";
import { ANONYMOUS, createPrincipal, type Principal, type Role } from "./principal.js";

/** One credential of the server config. Exactly one of the token or certificate fields is set. */
export interface CredentialSpec {
  /** Shown in logs and the audit log in place of the secret. */
  name: string;
  /** The tenant it acts for; empty for admin credentials. */
  tenant: string;
  roles: readonly Role[];
  /** Hex SHA-256 of the bearer token (the token itself is never stored). */
  tokenSha256?: string;
  /** Hex SHA-256 fingerprint of a TLS client certificate (colons allowed). */
  clientCertSha256?: string;
}

/** Why a call has no principal. */
export type AuthFailure = "missing" | "wrong";

export type AuthResult = { principal: Principal; failure?: undefined } | { principal?: undefined; failure: AuthFailure };

/** What the connection proved about the client, if it presented a verified certificate. */
export interface PeerIdentity {
  /** Hex SHA-256 of the certificate (DER), lowercase, no colons. */
  certSha256: string;
}

/** Tokens shorter than this are refused: they can be guessed. */
export const MIN_TOKEN_LENGTH = 16;

/** The hex SHA-256 of a token, as the server config stores it. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A fingerprint in the form the table compares: lowercase hex, no colons. */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.replaceAll(":", "").toLowerCase();
}

interface TokenEntry {
  digest: Buffer;
  principal: Principal;
}

// `Authorization: Bearer <token>`, the scheme in any case (RFC 9110: schemes are
// case-insensitive), one or more spaces or tabs before the token.
const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The credentials of the server config, ready to check calls against. Tokens are kept
 * only as SHA-256 digests and compared in constant time against every entry, so neither
 * the secret nor which entry matched shows in memory dumps, logs or response timing.
 */
export class CredentialTable {
  readonly #tokens: TokenEntry[];
  readonly #certs: Map<string, Principal>;
  readonly #anonymous: boolean;

  /**
   * `specs` must be validated (see the config loader). With no specs at all every caller
   * is the anonymous client of the tenant "default" (the daemon then listens on loopback
   * only).
   */
  constructor(specs: readonly CredentialSpec[]) {
    this.#tokens = [];
    this.#certs = new Map();
    for (const spec of specs) {
      const principal = createPrincipal(spec.name, spec.tenant, spec.roles);
      if (spec.tokenSha256) this.#tokens.push({ digest: Buffer.from(spec.tokenSha256, "hex"), principal });
      if (spec.clientCertSha256) this.#certs.set(normalizeFingerprint(spec.clientCertSha256), principal);
    }
    this.#anonymous = specs.length === 0;
  }

  /** How many credentials the table holds. */
  get size(): number {
    return this.#tokens.length + this.#certs.size;
  }

  /** Whether callers without a credential are let in (no credentials configured). */
  get allowsAnonymous(): boolean {
    return this.#anonymous;
  }

  /**
   * The principal of a call: anonymous when the table is empty; else its bearer token if
   * it sends an Authorization header, else its verified client certificate.
   */
  authenticate(authorization: string | undefined, peer?: PeerIdentity): AuthResult {
    // Nothing to check against: the daemon runs open on loopback, whatever a caller sends.
    if (this.#anonymous) return { principal: ANONYMOUS };
    if (authorization !== undefined && authorization !== "") {
      const match = BEARER.exec(authorization);
      if (!match?.[1]) return { failure: "wrong" };
      const digest = createHash("sha256").update(match[1], "utf8").digest();
      let found: Principal | undefined;
      // Every entry is compared, and each comparison takes the same time: no early exit.
      for (const entry of this.#tokens) {
        if (timingSafeEqual(entry.digest, digest)) found ??= entry.principal;
      }
      return found ? { principal: found } : { failure: "wrong" };
    }
    if (peer) {
      const principal = this.#certs.get(peer.certSha256);
      return principal ? { principal } : { failure: "wrong" };
    }
    return { failure: "missing" };
  }
}
