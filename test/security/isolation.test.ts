import { Code, type Client, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { METHOD_PERMISSIONS } from "../../src/server/authorization.js";
import { collect, executeEvents, startTestDaemon, type TestDaemon, testToken, transportFor } from "../harness.js";

type Caller = "own tenant" | "other tenant" | "no token" | "wrong token" | "reader" | "admin";
const CALLERS: Caller[] = ["own tenant", "other tenant", "no token", "wrong token", "reader", "admin"];

const TOKENS: Record<Caller, string> = {
  "own tenant": testToken("acme-app"),
  "other tenant": testToken("globex-app"),
  "no token": "",
  "wrong token": testToken("nobody"),
  reader: testToken("acme-reader"),
  admin: testToken("ops"),
};

const CREDENTIALS = [
  { name: "acme-app", tenant: "acme", roles: ["client" as const], tokenSha256: hashToken(TOKENS["own tenant"]) },
  { name: "globex-app", tenant: "globex", roles: ["client" as const], tokenSha256: hashToken(TOKENS["other tenant"]) },
  { name: "acme-reader", tenant: "acme", roles: ["reader" as const], tokenSha256: hashToken(TOKENS.reader) },
  { name: "ops", tenant: "", roles: ["admin" as const], tokenSha256: hashToken(TOKENS.admin) },
];

type Outcome = "ok" | Code;
const OK = "ok";

async function outcome(call: () => unknown): Promise<Outcome> {
  try {
    const result = await call();
    // A server stream fails only once it is read.
    if (result !== null && typeof result === "object" && Symbol.asyncIterator in result) for await (const _ of result as AsyncIterable<unknown>) void _;
    return OK;
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    return error.code;
  }
}

// Each SessionService method on the acme-only session "target" (a fresh one per mutating call).
const SESSION_CALLS: Record<string, (client: Client<typeof SessionService>, id: string) => Promise<unknown>> = {
  Execute: (c, id) => executeEvents(c.execute({ sessionId: id, prompt: "hi", queue: true })),
  Subscribe: (c, id) => collect(c.subscribe({ sessionId: id })),
  GetSnapshot: (c, id) => c.getSnapshot({ sessionId: id }),
  GetSessionStats: (c, id) => c.getSessionStats({ sessionId: id }),
  ListSessions: (c) => c.listSessions({}),
  StopSession: (c, id) => c.stopSession({ sessionId: id }),
  DeleteSession: (c, id) => c.deleteSession({ sessionId: id }),
};

const WRITES = new Set(["Execute", "StopSession", "DeleteSession"]);

function expected(method: string, caller: Caller): Outcome {
  if (caller === "no token" || caller === "wrong token") return Code.Unauthenticated;
  if (caller === "admin") return Code.PermissionDenied;
  if (caller === "reader") return WRITES.has(method) ? Code.PermissionDenied : OK;
  if (caller === "other tenant") {
    // Execute creates the other tenant's own session of that id; ListSessions lists its own.
    return method === "Execute" || method === "ListSessions" ? OK : Code.NotFound;
  }
  return OK;
}

describe.each(["connect", "grpc"] as const)("tenant isolation and roles over %s", (protocol) => {
  let daemon: TestDaemon;
  const sessionClient = (caller: Caller) => createClient(SessionService, transportFor(daemon.server.url, protocol, TOKENS[caller] || undefined));
  const adminClient = (caller: Caller) => createClient(AdminService, transportFor(daemon.server.url, protocol, TOKENS[caller] || undefined));

  beforeAll(async () => {
    daemon = await startTestDaemon({ credentials: CREDENTIALS });
  });
  afterAll(async () => {
    await daemon.close();
  });

  it("lists every method of every service in the permission table", () => {
    const methods = [...SessionService.methods, ...AdminService.methods].map((m) => `${m.parent.typeName}/${m.name}`);
    expect([...METHOD_PERMISSIONS.keys()].sort()).toEqual(methods.sort());
  });

  it.each(Object.keys(SESSION_CALLS))("SessionService.%s answers each caller as its credential allows", async (method) => {
    const call = SESSION_CALLS[method]!;
    for (const caller of CALLERS) {
      // A fresh acme session per caller, so a stop or delete does not change the next row.
      const target = `target-${method}-${caller.replace(" ", "-")}`;
      await executeEvents(sessionClient("own tenant").execute({ sessionId: target, prompt: "hi" }));
      const before = await sessionClient("own tenant").getSnapshot({ sessionId: target });
      expect.soft(await outcome(() => call(sessionClient(caller), target)), `${method} as ${caller}`).toBe(expected(method, caller));
      if (caller !== "own tenant" && caller !== "reader") {
        // Nobody else changed the acme session.
        const after = await sessionClient("own tenant").getSnapshot({ sessionId: target });
        expect(after.lastSeq).toBe(before.lastSeq);
      }
      // Free the agent (and the other tenant's one of the same id) for the next rows.
      await sessionClient("own tenant").stopSession({ sessionId: target }).catch(() => undefined);
      await sessionClient("other tenant").stopSession({ sessionId: target }).catch(() => undefined);
    }
  });

  it.each(AdminService.methods.map((m) => m.localName))("AdminService.%s is for the admin credential only", async (method) => {
    await executeEvents(sessionClient("own tenant").execute({ sessionId: `admin-target-${method}`, prompt: "hi" }));
    await sessionClient("own tenant").stopSession({ sessionId: `admin-target-${method}` });
    const request: Record<string, unknown> = { tenant: "acme", sessionId: `admin-target-${method}`, graceSeconds: 1 };
    for (const caller of CALLERS) {
      const client = adminClient(caller) as unknown as Record<string, (req: unknown) => unknown>;
      const want = caller === "admin" ? OK : caller === "no token" || caller === "wrong token" ? Code.Unauthenticated : Code.PermissionDenied;
      // Drain stops every session: keep it for the last, separate test.
      if (method === "drain" && caller === "admin") continue;
      expect.soft(await outcome(() => client[method]!(request)), `${method} as ${caller}`).toBe(want);
    }
  });

  it("keeps session ids per tenant: both may use one, each sees only its own, and their conversations differ", async () => {
    await executeEvents(sessionClient("own tenant").execute({ sessionId: "chat-1", prompt: "acme" }));
    await executeEvents(sessionClient("other tenant").execute({ sessionId: "chat-1", prompt: "globex" }));
    const acme = await sessionClient("own tenant").getSnapshot({ sessionId: "chat-1" });
    const globex = await sessionClient("other tenant").getSnapshot({ sessionId: "chat-1" });
    expect(acme.session?.providerSessionId).not.toBe(globex.session?.providerSessionId);
    expect(acme.session?.workDir).not.toBe(globex.session?.workDir);
    expect(acme.session?.workDir).toContain(`${"/"}acme${"/"}`);
    const globexIds = (await sessionClient("other tenant").listSessions({})).sessions.map((s) => s.sessionId);
    expect(globexIds).toContain("chat-1");
    // acme's sessions are not listed for globex (only those globex made itself).
    expect(globexIds).not.toContain("target-GetSnapshot-own-tenant");
    expect(globexIds).toContain("target-Execute-other-tenant");
  });

  it("answers another tenant's session exactly as a missing one", async () => {
    await executeEvents(sessionClient("own tenant").execute({ sessionId: "acme-secret", prompt: "hi" }));
    const messageOf = async (id: string) => {
      try {
        await sessionClient("other tenant").getSnapshot({ sessionId: id });
      } catch (error) {
        return (error as ConnectError).rawMessage.replace(id, "<id>");
      }
      return "found";
    };
    expect(await messageOf("acme-secret")).toBe(await messageOf("never-existed"));
  });

  it("lets the admin list, stop and delete any tenant's sessions, and audits every admin action and denial", async () => {
    const admin = adminClient("admin");
    await executeEvents(sessionClient("other tenant").execute({ sessionId: "for-admin", prompt: "hi" }));
    const all = await admin.listAllSessions({});
    expect(new Set(all.sessions.map((s) => s.tenant))).toEqual(new Set(["acme", "globex"]));
    expect((await admin.listAllSessions({ tenant: "globex" })).sessions.every((s) => s.tenant === "globex")).toBe(true);
    const stopped = await admin.stopTenantSession({ tenant: "globex", sessionId: "for-admin" });
    expect(stopped.session?.sessionId).toBe("for-admin");
    await admin.deleteTenantSession({ tenant: "globex", sessionId: "for-admin" });
    expect(await outcome(() => sessionClient("other tenant").getSnapshot({ sessionId: "for-admin" }))).toBe(Code.NotFound);
    expect(await outcome(() => admin.stopTenantSession({ tenant: "../etc", sessionId: "x" }))).toBe(Code.InvalidArgument);

    const info = await admin.getServerInfo({});
    expect(info.providers).toEqual(["claude-code"]);
    expect(info.limits?.maxLiveSessions).toBeGreaterThan(0);

    const { events } = await admin.listAuditEvents({ limit: 1000 });
    const admins = events.filter((e) => e.kind === "admin_action" && e.principal === "ops");
    expect(admins.map((e) => e.method)).toEqual(
      expect.arrayContaining(["hotplex.v1.AdminService/StopTenantSession", "hotplex.v1.AdminService/DeleteTenantSession"]),
    );
    expect(admins.find((e) => e.method.endsWith("/StopTenantSession") && e.sessionId === "for-admin")).toMatchObject({ tenant: "globex" });
    const denials = events.filter((e) => e.kind === "permission_denied");
    expect(denials.some((e) => e.principal === "acme-reader" && e.method === "hotplex.v1.SessionService/Execute")).toBe(true);
    expect(denials.some((e) => e.principal === "ops" && e.method.startsWith("hotplex.v1.SessionService/"))).toBe(true);
    // Ids increase by one; paging continues after the last one seen.
    const ids = events.map((e) => e.id);
    expect(ids).toEqual(ids.map((_, i) => ids[0]! + BigInt(i)));
    const page = await admin.listAuditEvents({ afterId: ids[1]!, limit: 2 });
    expect(page.events.map((e) => e.id)).toEqual([ids[2], ids[3]]);
    // No secret ever reaches the audit log.
    for (const token of Object.values(TOKENS).filter(Boolean)) expect(JSON.stringify(events.map((e) => e.detail))).not.toContain(token);
  });

  it("drains on the admin's word: running turns finish, new ones are refused with UNAVAILABLE", async () => {
    const running = executeEvents(sessionClient("own tenant").execute({ sessionId: "draining", prompt: "[[delay:400]] finishing" }));
    const result = await adminClient("admin").drain({ graceSeconds: 10 });
    expect(result.turnsFinished).toBeGreaterThanOrEqual(1);
    expect((await running).at(-1)?.payload.case).toBe("turnEnded");
    expect(await outcome(() => executeEvents(sessionClient("own tenant").execute({ sessionId: "after", prompt: "hi" })))).toBe(
      Code.Unavailable,
    );
    expect((await adminClient("admin").getServerInfo({})).draining).toBe(true);
    // Reads go on.
    expect((await sessionClient("own tenant").listSessions({})).sessions.length).toBeGreaterThan(0);
  });
});
