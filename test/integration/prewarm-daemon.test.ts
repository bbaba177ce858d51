import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { StartKind } from "../../gen/hotplex/v1/event_pb.js";
import { SessionConfigSchema } from "../../gen/hotplex/v1/session_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { executeEvents, isAlive, textOf, transportFor, waitUntil } from "../harness.js";

const scratch: string[] = [];
afterEach(() => {
  killDaemonProcesses();
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// The pre-warmed agents' state dirs of the default tenant, with the pgid each recorded.
function prewarmedDirs(stateRoot: string): { name: string; pgid: number; adopted: boolean }[] {
  const tenantDir = path.join(stateRoot, "default");
  if (!existsSync(tenantDir)) return [];
  return readdirSync(tenantDir)
    .filter((name) => name.startsWith(".prewarmed-"))
    .map((name) => {
      let recorded: { pgid?: number; adopted?: boolean } = {};
      try {
        recorded = JSON.parse(readFileSync(path.join(tenantDir, name, ".prewarmed.json"), "utf8")) as typeof recorded;
      } catch {
        // not written yet
      }
      return { name, pgid: recorded.pgid ?? 0, adopted: recorded.adopted === true };
    });
}

// A scratch dir for one daemon, with its config file holding `config`.
function daemonDir(config: string): { dir: string; stateRoot: string; configFile: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-prewarm-daemon-"));
  scratch.push(dir);
  const configFile = path.join(dir, "hotplex.yaml");
  writeFileSync(configFile, config);
  return { dir, stateRoot: path.join(dir, "state"), configFile };
}

describe("hotplexd with pre-warmed agents", () => {
  it("takes them from its config file, and after a kill -9 ends the ones no session took and keeps the taken one's dirs", async () => {
    const { dir, stateRoot, configFile } = daemonDir("prewarm:\n  - model: warm-model\n    size: 1\n");
    const env = { HOTPLEX_STATE_DIR: stateRoot };
    const daemon: DaemonProcess = await startDaemonProcess(dir, ["--config", configFile], env);
    const client = createClient(SessionService, transportFor(daemon.url, "connect"));
    const waitingAgent = async () => {
      await waitUntil(() => prewarmedDirs(stateRoot).some((entry) => entry.pgid > 0 && !entry.adopted), 10_000, "a pre-warmed agent");
      return prewarmedDirs(stateRoot).find((entry) => entry.pgid > 0 && !entry.adopted)!;
    };
    const first = await waitingAgent();

    const events = await executeEvents(client.execute({ sessionId: "s1", prompt: "remember FIG", config: create(SessionConfigSchema, { model: "warm-model" }) }));
    const started = events.find((e) => e.payload.case === "sessionStarted");
    if (started?.payload.case !== "sessionStarted") throw new Error("no SessionStarted");
    expect(started.payload.value.pid).toBe(first.pgid);
    await waitUntil(() => prewarmedDirs(stateRoot).find((entry) => entry.name === first.name)?.adopted === true, 5_000, "the taken agent's mark");
    const spare = await waitingAgent();
    expect(spare.name).not.toBe(first.name);

    daemon.child.kill("SIGKILL");
    await daemon.exit;
    const next = await startDaemonProcess(dir, ["--config", configFile], env);
    const nextClient = createClient(SessionService, transportFor(next.url, "connect"));
    // The spare's process is ended and its dirs are gone; the session's stay and it resumes there.
    await waitUntil(() => !isAlive(spare.pgid), 10_000, "the leftover pre-warmed agent to end");
    expect(prewarmedDirs(stateRoot).some((entry) => entry.name === spare.name)).toBe(false);
    expect(existsSync(path.join(dir, "work", "default", spare.name))).toBe(false);
    expect(existsSync(started.payload.value.workDir)).toBe(true);
    const resumed = await executeEvents(nextClient.execute({ sessionId: "s1", prompt: "[[history]]" }));
    const restarted = resumed.find((e) => e.payload.case === "sessionStarted");
    expect(restarted?.payload.value).toMatchObject({ kind: StartKind.RESUMED, workDir: started.payload.value.workDir });
    expect(textOf(resumed)).toContain("remember FIG");
  }, 60_000);

  it("takes a changed pre-warm config on SIGHUP, and keeps the running one when the new one is bad", async () => {
    const { dir, stateRoot, configFile } = daemonDir("prewarm:\n  - size: 1\n");
    const daemon = await startDaemonProcess(dir, ["--config", configFile], { HOTPLEX_STATE_DIR: stateRoot });
    const waiting = () => prewarmedDirs(stateRoot).filter((entry) => entry.pgid > 0 && !entry.adopted).length;
    await waitUntil(() => waiting() === 1, 10_000, "one pre-warmed agent");
    writeFileSync(configFile, "prewarm:\n  - size: 2\n");
    daemon.child.kill("SIGHUP");
    await waitUntil(() => waiting() === 2, 10_000, "two pre-warmed agents after the reload");
    let log = "";
    daemon.child.stdout?.on("data", (chunk: Buffer) => (log += chunk.toString()));
    writeFileSync(configFile, "prewarm:\n  - size: 1\n    provider: nope\n");
    daemon.child.kill("SIGHUP");
    await waitUntil(() => log.includes("config reload failed"), 10_000, "the failed reload's log line");
    expect(log).toContain("prewarm.0:");
    expect(waiting()).toBe(2);
    writeFileSync(configFile, "prewarm: []\n");
    daemon.child.kill("SIGHUP");
    await waitUntil(() => prewarmedDirs(stateRoot).length === 0, 10_000, "no pre-warmed agents once none is configured");
  }, 60_000);

  it("refuses a pre-warm config no session could have, naming the entry", async () => {
    const { dir, configFile } = daemonDir("prewarm:\n  - provider: no-such-agent\n    size: 1\n");
    await expect(startDaemonProcess(dir, ["--config", configFile], { HOTPLEX_STATE_DIR: path.join(dir, "state") })).rejects.toThrow(/prewarm\.0: .*no-such-agent/);
    writeFileSync(configFile, "prewarm:\n  - model: m\n    size: 0\n");
    await expect(startDaemonProcess(dir, ["--config", configFile])).rejects.toThrow(/prewarm\.0\.size/);
  });
});
