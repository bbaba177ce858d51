import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { hashToken } from "../../src/security/credentials.js";
import { codeOf, type DaemonProcess, killDaemonProcesses, logLine, startDaemonProcess } from "../daemon-process.js";
import { testToken, transportFor } from "../harness.js";

const dirs: string[] = [];
afterEach(() => {
  killDaemonProcesses();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});


const credentials = (name: string, token: string) =>
  `credentials:\n  - name: ${name}\n    tenant: acme\n    roles: [client]\n    token-sha256: ${hashToken(token)}\n`;

describe("hotplexd's config file", () => {
  it("reloads credentials on SIGHUP, and keeps them when the new file is bad", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-reload-"));
    dirs.push(dir);
    const file = path.join(dir, "hotplex.yaml");
    const [first, second] = [testToken("first"), testToken("second")];
    writeFileSync(file, credentials("first", first));
    const daemon = await startDaemonProcess(dir, ["--config", file], { HOTPLEX_STORE: "memory" });
    const as = (token: string) => createClient(SessionService, transportFor(daemon.url, "connect", token));
    expect(await codeOf(as(first).listSessions({}))).toBe("ok");
    expect(await codeOf(as(second).listSessions({}))).toBe(Code.Unauthenticated);

    writeFileSync(file, credentials("second", second));
    const reloaded = logLine(daemon, (r) => r.msg === "config reloaded");
    daemon.child.kill("SIGHUP");
    expect(await reloaded).toMatchObject({ credentials: 1 });
    expect(await codeOf(as(first).listSessions({}))).toBe(Code.Unauthenticated);
    expect(await codeOf(as(second).listSessions({}))).toBe("ok");

    writeFileSync(file, "credentials: [ {name: broken\n");
    const failed = logLine(daemon, (r) => r.msg === "config reload failed; the running config stays");
    daemon.child.kill("SIGHUP");
    expect(String((await failed).err)).toContain("hotplex.yaml");
    expect(await codeOf(as(second).listSessions({}))).toBe("ok");
  });

  it("stops at start with the file, line and key of a mistake", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-badconf-"));
    dirs.push(dir);
    const file = path.join(dir, "hotplex.yaml");
    writeFileSync(file, "store: memory\nturn-timeout: 10 minutes\n");
    await expect(startDaemonProcess(dir, ["--config", file])).rejects.toThrow(/hotplex\.yaml:2: turn-timeout "10 minutes" must be a duration/);
  });

  it("warns at start when the token came on the command line", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotplex-argv-"));
    dirs.push(dir);
    const daemon = await startDaemonProcess(dir, ["--token", testToken("argv")], { HOTPLEX_STORE: "memory" });
    // The warning is logged before the line that says where the daemon listens.
    expect(daemon.earlierLines.some((r) => String(r.msg).includes("/proc/<pid>/cmdline"))).toBe(true);
    expect(JSON.stringify(daemon.earlierLines)).not.toContain(testToken("argv"));
  });
});
