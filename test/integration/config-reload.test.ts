// SIGHUP against the real hotplexd process: a credential whose token file changed is read
// again (the old token stops working at once, the new one works), a tenant added takes
// effect, and a file with a mistake is reported with its line while the old config stays.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { codeOf, type DaemonProcess, killDaemonProcesses, logLine, startDaemonProcess } from "../daemon-process.js";
import { testToken, transportFor } from "../harness.js";

const dirs: string[] = [];
afterEach(() => {
  killDaemonProcesses();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});


async function reload(daemon: DaemonProcess, outcome: "config reloaded" | "config reload failed; the running config stays") {
  const line = logLine(daemon, (r) => r.msg === "config reloaded" || r.msg === "config reload failed; the running config stays");
  daemon.child.kill("SIGHUP");
  const record = await line;
  expect(record.msg).toBe(outcome);
  return record;
}

describe("SIGHUP reloads the config file of a running hotplexd", () => {
  it("reads a changed token file again: the old token is UNAUTHENTICATED, the new one works; a bad file changes nothing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-sighup-"));
    dirs.push(dir);
    const file = path.join(dir, "hotplex.yaml");
    const opsToken = path.join(dir, "ops-token");
    const [first, second, app] = [testToken("ops-a"), testToken("ops-b"), testToken("app")];
    writeFileSync(opsToken, `${first}\n`);
    writeFileSync(path.join(dir, "app-token"), app);
    const config = (tenants: string) =>
      "store: memory\n" +
      "credentials:\n" +
      `  - { name: ops, roles: [admin], token-file: ${opsToken} }\n` +
      `  - { name: app, tenant: acme, roles: [client], token-file: ${path.join(dir, "app-token")} }\n` +
      `tenants:\n  acme:\n    limits: { live-agents: 2 }\n${tenants}`;
    writeFileSync(file, config(""));
    const daemon = await startDaemonProcess(dir, ["--config", file]);
    const admin = (token: string) => createClient(AdminService, transportFor(daemon.url, "connect", token));
    const info = (token: string) => admin(token).getServerInfo({});
    expect(await codeOf(info(first))).toBe("ok");
    expect(await codeOf(info(second))).toBe(Code.Unauthenticated);

    expect((await info(first)).tenants).toEqual(["acme"]);

    // The token file now holds another token, and the file names another tenant.
    const beta = "  beta:\n    limits: { live-agents: 1 }\n";
    writeFileSync(opsToken, `${second}\n`);
    writeFileSync(file, config(beta));
    expect(await reload(daemon, "config reloaded")).toMatchObject({ credentials: 2, tenants: 2 });
    expect(await codeOf(info(first))).toBe(Code.Unauthenticated);
    expect((await info(second)).tenants).toEqual(["acme", "beta"]);
    // The client credential was untouched by the reload.
    const client = createClient(SessionService, transportFor(daemon.url, "connect", app));
    expect(await codeOf(client.listSessions({}))).toBe("ok");

    // A mistake deep in the file: reported with its line, and the config in force stays.
    writeFileSync(file, config(beta).replace("live-agents: 1", "live-agent: 1"));
    const failed = await reload(daemon, "config reload failed; the running config stays");
    expect(String(failed.err)).toMatch(/hotplex\.yaml:9: tenants\.beta\.limits\.live-agent: unknown key "live-agent"/);
    expect((await info(second)).tenants).toEqual(["acme", "beta"]);
    expect(await codeOf(client.listSessions({}))).toBe("ok");
    // An unreadable token file is a mistake too: the old credentials stay.
    rmSync(opsToken);
    writeFileSync(file, config(""));
    const unreadable = await reload(daemon, "config reload failed; the running config stays");
    expect(String(unreadable.err)).toContain("ops-token");
    expect((await info(second)).tenants).toEqual(["acme", "beta"]);
  });
});
