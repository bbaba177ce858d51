import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FORWARDED_HEADER, FORWARDED_SIGNATURE_HEADER, forwardedHeaders, verifyForwarded } from "./forwarded.js";
import { createPrincipal } from "./principal.js";

const SECRET = Buffer.from("a-node-secret-of-at-least-32-bytes!!");
const EXECUTE = "hotplex.v1.SessionService/Execute";
const NOW = 1_800_000_000_000;
const alice = createPrincipal("alice", "acme", ["client"]);

function headers(principal = alice, method = EXECUTE, nowMs = NOW): { identity: string; signature: string } {
  const map = new Map(forwardedHeaders(SECRET, principal, method, "node-1", nowMs));
  return { identity: map.get(FORWARDED_HEADER)!, signature: map.get(FORWARDED_SIGNATURE_HEADER)! };
}

const resign = (identity: string, method = EXECUTE) => {
  // What a holder of the secret would send for a made-up identity.
  return createHmac("sha256", SECRET).update(identity).update("\n").update(method).digest("hex");
};

describe("a forwarded call's identity", () => {
  it("is the caller the forwarding node authenticated, with that node's id", () => {
    const { identity, signature } = headers();
    const verdict = verifyForwarded(SECRET, identity, signature, EXECUTE, NOW + 1_000);
    expect(verdict).toMatchObject({ from: "node-1", principal: { name: "alice", tenant: "acme", roles: ["client"] } });
    if (!("principal" in verdict)) throw new Error("refused");
    expect([...verdict.principal.permissions].sort()).toEqual(["session.read", "session.write"]);
  });

  it("is refused with a wrong or missing signature, another secret, or for another method", () => {
    const { identity, signature } = headers();
    expect(verifyForwarded(SECRET, identity, undefined, EXECUTE, NOW)).toEqual({ refused: "the forwarded call's signature is not valid" });
    const flipped = signature.slice(0, -1) + (signature.endsWith("0") ? "1" : "0");
    expect(verifyForwarded(SECRET, identity, flipped, EXECUTE, NOW)).toEqual({ refused: "the forwarded call's signature is not valid" });
    expect(verifyForwarded(SECRET, identity, "zz".repeat(32), EXECUTE, NOW)).toHaveProperty("refused");
    expect(verifyForwarded(Buffer.from("another-secret-of-at-least-32-bytes!!"), identity, signature, EXECUTE, NOW)).toHaveProperty("refused");
    // Captured from an Execute, replayed on another method.
    expect(verifyForwarded(SECRET, identity, signature, "hotplex.v1.SessionService/DeleteSession", NOW)).toEqual({ refused: "the forwarded call's signature is not valid" });
    // An identity changed after signing (another tenant).
    const forged = Buffer.from(Buffer.from(identity, "base64url").toString("utf8").replace('"acme"', '"globex"')).toString("base64url");
    expect(verifyForwarded(SECRET, forged, signature, EXECUTE, NOW)).toHaveProperty("refused");
  });

  it("is refused by a node without the secret", () => {
    const { identity, signature } = headers();
    expect(verifyForwarded(undefined, identity, signature, EXECUTE, NOW)).toEqual({ refused: "this node accepts no forwarded calls (it has no node secret)" });
  });

  it("expires: a captured header is good for a short while only, and one dated far ahead is refused", () => {
    const { identity, signature } = headers();
    expect(verifyForwarded(SECRET, identity, signature, EXECUTE, NOW + 31_000)).toEqual({ refused: "the forwarded call has expired (are the nodes' clocks apart?)" });
    const ahead = headers(alice, EXECUTE, NOW + 10 * 60_000);
    expect(verifyForwarded(SECRET, ahead.identity, ahead.signature, EXECUTE, NOW)).toHaveProperty("refused");
  });

  it("is refused when malformed, even correctly signed: bad JSON, unknown roles, a tenant that is no tenant name, too long", () => {
    const signed = (json: unknown) => {
      const identity = Buffer.from(typeof json === "string" ? json : JSON.stringify(json)).toString("base64url");
      return verifyForwarded(SECRET, identity, resign(identity), EXECUTE, NOW);
    };
    const valid = { t: "acme", n: "alice", r: ["client"], f: "node-1", e: NOW + 1_000 };
    expect(signed(valid)).toHaveProperty("principal");
    expect(signed("{not json")).toEqual({ refused: "the forwarded identity is malformed" });
    expect(signed({ ...valid, r: ["root"] })).toEqual({ refused: "the forwarded identity is malformed" });
    expect(signed({ ...valid, r: [] })).toEqual({ refused: "the forwarded identity is malformed" });
    expect(signed({ ...valid, t: "../etc" })).toEqual({ refused: "the forwarded identity is malformed" });
    expect(signed({ ...valid, e: "soon" })).toEqual({ refused: "the forwarded identity is malformed" });
    expect(signed({ ...valid, n: "x".repeat(2_000) })).toEqual({ refused: "the forwarded identity is too long" });
  });
});
