import { describe, expect, it } from "vitest";
import { CredentialTable, hashToken, normalizeFingerprint } from "./credentials.js";

const TOKEN = "acme-token-0123456789abcdef";
const table = new CredentialTable([
  { name: "acme-app", tenant: "acme", roles: ["client"], tokenSha256: hashToken(TOKEN) },
  { name: "ops", tenant: "", roles: ["admin"], tokenSha256: hashToken("ops-token-0123456789abcdef") },
  { name: "cert", tenant: "acme", roles: ["reader"], clientCertSha256: "AB:".repeat(31) + "CD" },
]);

describe("CredentialTable", () => {
  it.each(["Bearer", "bearer", "BEARER", "BeArEr"])("accepts the %s scheme (schemes are case-insensitive)", (scheme) => {
    expect(table.authenticate(`${scheme} ${TOKEN}`).principal?.name).toBe("acme-app");
    expect(table.authenticate(`${scheme}\t  ${TOKEN}  `).principal?.tenant).toBe("acme");
  });

  it.each(["", undefined])("says a call with no credential (%j) is missing one", (header) => {
    expect(table.authenticate(header)).toEqual({ failure: "missing" });
  });

  it.each([`Basic ${TOKEN}`, "Bearer", `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Bearer ${TOKEN} extra`, TOKEN])(
    "refuses %j as a wrong credential",
    (header) => {
      expect(table.authenticate(header)).toEqual({ failure: "wrong" });
    },
  );

  it("maps a verified client certificate by its fingerprint, and refuses an unknown one", () => {
    expect(table.authenticate(undefined, { certSha256: normalizeFingerprint("ab:".repeat(31) + "cd") }).principal?.name).toBe("cert");
    expect(table.authenticate(undefined, { certSha256: "00".repeat(32) })).toEqual({ failure: "wrong" });
  });

  it("gives each role exactly its permissions; an admin cannot use sessions", () => {
    expect([...(table.authenticate(`Bearer ${TOKEN}`).principal?.permissions ?? [])]).toEqual(["session.read", "session.write"]);
    expect([...(table.authenticate("Bearer ops-token-0123456789abcdef").principal?.permissions ?? [])]).toEqual(["admin"]);
  });

  it("lets every caller in as the anonymous client of the tenant default when it holds no credentials", () => {
    const open = new CredentialTable([]);
    expect(open.allowsAnonymous).toBe(true);
    expect(open.authenticate(undefined).principal).toMatchObject({ name: "anonymous", tenant: "default", roles: ["client"] });
    expect(open.authenticate("Bearer anything").principal?.name).toBe("anonymous");
  });

  it("keeps only digests: the token is nowhere in the table", () => {
    expect(JSON.stringify(Object.entries(table))).not.toContain(TOKEN);
  });
});
