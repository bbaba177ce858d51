import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TurnOutcome } from "../../gen/hotplex/v1/event_pb.js";
import { AdminService } from "../../gen/hotplex/v1/admin_service_pb.js";
import { SessionService } from "../../gen/hotplex/v1/session_service_pb.js";
import { type DaemonProcess, killDaemonProcesses, startDaemonProcess } from "../daemon-process.js";
import { awaitHostPid, executeEvents, isAlive, rssBytes, testToken, transportFor, turnEndOf, waitUntil } from "../harness.js";

const TOKEN = testToken("contain");
const ADMIN_TOKEN = testToken("contain-admin");
// Secrets of the daemon's environment an agent must never see.
const SECRET = "ghp_containment0123456789secret";

type Client = ReturnType<typeof createClient<typeof SessionService>>;

/** Runs `command` as a Bash tool step of the fake agent (really executed) and returns its output. */
async function run(client: Client, sessionId: string, command: string): Promise<string> {
  const prompt = `[[exec]] [[tool:Bash:${JSON.stringify({ command })}]] probe`;
  const events = await executeEvents(client.execute({ sessionId, prompt, queue: true }));
  const result = events.find((e) => e.payload.case === "toolResult");
  return result?.payload.case === "toolResult" ? result.payload.value.content : `(no tool result: ${turnEndOf(events).errorMessage})`;
}

interface Dirs {
  tokenFile: string;
  data: string;
  work: string;
  otherWork: string;
  otherHome: string;
}

interface Probe {
  name: string;
  /** Whether the agent was kept in: checked against the daemon and the host. */
  contained: () => Promise<boolean>;
}

function probesFor(daemon: () => DaemonProcess, client: () => Client, dirs: () => Dirs): Probe[] {
  const daemonPid = () => daemon().child.pid!;
  return [
    {
      name: "read the daemon's environment (/proc/<pid>/environ of every process)",
      contained: async () => {
        const out = await run(client(), "probe", "cat /proc/$PPID/environ /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ghp_ || true");
        return out.trim().startsWith("0");
      },
    },
    {
      name: "read the daemon's command line",
      contained: async () => !(await run(client(), "probe", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")).includes("hotplexd"),
    },
    {
      name: "read the daemon's token file",
      contained: async () => !(await run(client(), "probe", `cat ${dirs().tokenFile} 2>&1`)).includes(TOKEN),
    },
    {
      name: "read the daemon's store",
      contained: async () => !(await run(client(), "probe", `head -c 16 ${dirs().data}/hotplex.db 2>&1`)).includes("SQLite format"),
    },
    {
      name: "read another session's work dir and HOME",
      contained: async () => {
        const out = await run(client(), "probe", `cat ${dirs().otherWork}/marker ${dirs().otherHome}/marker 2>&1`);
        return !out.includes("other-session-secret");
      },
    },
    {
      name: "write outside its work dir",
      contained: async () => {
        // Names of this run only: other suites look for their own.
        const name = `escaped-${process.pid}-${Date.now()}`;
        const targets = [path.join(dirs().work, "default", name), `/usr/${name}`, `/etc/${name}`];
        await run(client(), "probe", `touch ${targets.join(" ")} 2>&1; echo done`);
        const escaped = targets.filter((file) => existsSync(file));
        for (const file of escaped) rmSync(file, { force: true });
        return escaped.length === 0;
      },
    },
    {
      name: "see the daemon's and other processes",
      contained: async () => {
        const out = await run(client(), "probe", `ls /proc/${daemonPid()}/cmdline 2>/dev/null && echo VISIBLE; ls /proc | grep -c '^[0-9]'`);
        return !out.includes("VISIBLE") && Number(out.trim().split("\n").at(-1)) < 20;
      },
    },
    {
      name: "leave a setsid'd process running after StopSession",
      contained: async () => {
        const token = `600.${Date.now() % 1_000_000_000}1`;
        await run(client(), "leaver", `setsid sleep ${token} >/dev/null 2>&1 </dev/null & echo started`);
        const pid = await awaitHostPid(`setsid pid 0 (sleep ${token})`, "setsid");
        if (!pid) return false;
        await client().stopSession({ sessionId: "leaver" });
        try {
          await waitUntil(() => !isAlive(pid), 5_000, "the setsid'd process to end");
          return true;
        } catch {
          process.kill(pid, "SIGKILL");
          return false;
        }
      },
    },
  ];
}

describe.each([
  ["on", "required"],
  ["off", "off"],
] as const)("an agent's reach, with the sandbox %s", (label, mode) => {
  let scratch: string;
  let daemon: DaemonProcess;
  let client: Client;
  let admin: ReturnType<typeof createClient<typeof AdminService>>;
  let dirs: Dirs;
  const results: [string, boolean][] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-contain-"));
    const tokenFile = path.join(scratch, "token");
    writeFileSync(tokenFile, TOKEN);
    const adminTokenFile = path.join(scratch, "admin-token");
    writeFileSync(adminTokenFile, ADMIN_TOKEN);
    // An admin too: the fork bomb runs with the rules lifted (the sandbox must hold alone).
    const config = path.join(scratch, "hotplex.yaml");
    writeFileSync(
      config,
      "credentials:\n" +
        `  - { name: app, tenant: default, roles: [client], token-file: ${tokenFile} }\n` +
        `  - { name: ops, roles: [admin], token-file: ${adminTokenFile} }\n`,
    );
    daemon = await startDaemonProcess(scratch, ["--config", config], {
      HOTPLEX_SANDBOX: mode,
      HOTPLEX_SANDBOX_MEMORY: String(256 * 1024 * 1024),
      HOTPLEX_SANDBOX_PROCESSES: "64",
      HOTPLEX_STATE_DIR: path.join(scratch, "state"),
      GITHUB_TOKEN: SECRET,
      HOTPLEX_AGENT_ENV: "GITHUB_NOTHING",
    });
    client = createClient(SessionService, transportFor(daemon.url, "connect", TOKEN));
    admin = createClient(AdminService, transportFor(daemon.url, "connect", ADMIN_TOKEN));
    // Another session, with a secret in its work dir and its HOME.
    await run(client, "other", "echo other-session-secret > marker; echo other-session-secret > $HOME/marker; echo ok");
    const other = await client.getSnapshot({ sessionId: "other" });
    dirs = {
      tokenFile,
      data: path.join(scratch, "data"),
      work: path.join(scratch, "work"),
      otherWork: other.session!.workDir,
      otherHome: path.join(scratch, "state", "default", "other", "home"),
    };
    expect((await client.getSnapshot({ sessionId: "other" })).session?.sandbox?.enabled).toBe(mode === "required");
  });
  afterAll(() => {
    if (results.length > 0) {
      const lines = results.map(([name, contained]) => `  ${contained ? "contained    " : "NOT contained"}  ${name}`);
      process.stdout.write(`\nWith the sandbox ${label}, what an agent can do:\n${lines.join("\n")}\n`);
    }
    killDaemonProcesses();
    rmSync(scratch, { recursive: true, force: true });
  });

  for (const probe of probesFor(() => daemon, () => client, () => dirs)) {
    it(`${mode === "required" ? "cannot" : "is checked whether it can"} ${probe.name}`, async () => {
      const contained = await probe.contained();
      results.push([probe.name, contained]);
      if (mode === "required") expect(contained).toBe(true);
    });
  }

  it.runIf(mode === "required")("keeps a fork bomb and a memory hog inside their limits, the daemon unaffected", async () => {
    const before = rssBytes(daemon.child.pid!);
    // The bomb runs for 3 s in a process group of timeout's, which then SIGKILLs the whole
    // group: while it runs it holds every process slot the limit allows, so nothing may
    // need a fork until it is gone. Its shell execs (no fork) into the sleep that keeps
    // timeout waiting; echo is a builtin.
    // The rules would block it (fork-bomb.fork-bomb): lifted for this session, as an admin may.
    expect(await run(client, "bomb", "echo ready")).toContain("ready");
    await admin.setRuleBypass({ tenant: "default", sessionId: "bomb", seconds: 120 });
    const bomb = await run(client, "bomb", "timeout -s KILL 3 sh -c 'b() { b | b & }; b & exec sleep 30' 2>/dev/null; echo bomb-done $?");
    // 137: timeout's own SIGKILL of the group reached it too (it ran to the end of its 3 s).
    expect(bomb).toMatch(/bomb-done (124|137)\b/);
    const hog = await run(client, "hog", "node -e 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))' 2>&1; echo hog-exit $?");
    expect(hog).toMatch(/hog-exit (137|134|1)\b/);
    expect(rssBytes(daemon.child.pid!) - before).toBeLessThan(64 * 1024 * 1024);
    const after = await executeEvents(client.execute({ sessionId: "after-bomb", prompt: "hi" }));
    expect(turnEndOf(after).outcome).toBe(TurnOutcome.COMPLETED);
  });
});

describe("an agent's network, with the sandbox's network off", () => {
  it("reaches nothing beyond its own loopback: not even the daemon's port", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-contain-net-"));
    try {
      const daemon = await startDaemonProcess(scratch, [], {
        HOTPLEX_SANDBOX: "required",
        HOTPLEX_SANDBOX_NETWORK: "off",
        HOTPLEX_STATE_DIR: path.join(scratch, "state"),
      });
      const client = createClient(SessionService, transportFor(daemon.url, "connect"));
      const port = new URL(daemon.url).port;
      const script = `require('net').connect(${port}, '127.0.0.1').on('connect', () => { console.log('CONNECTED'); process.exit(0); }).on('error', (e) => { console.log('REFUSED', e.code); process.exit(0); })`;
      const out = await run(client, "net", `node -e "${script}" 2>&1`);
      expect(out).toContain("REFUSED");
      expect(out).not.toContain("CONNECTED");
      // Its own loopback works.
      expect(await run(client, "net", "ip addr 2>/dev/null | grep -c 'inet ' || cat /proc/net/dev | grep -c lo")).toMatch(/\d/);
    } finally {
      killDaemonProcesses();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe("agents of their own user", () => {
  it("run as the configured uid, can use their work dir and HOME, and cannot read the daemon's files", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-contain-uid-"));
    // The agents' user must be able to reach the work root and state dir (the daemon checks).
    chmodSync(scratch, 0o755);
    try {
      const secret = path.join(scratch, "secret");
      writeFileSync(secret, "root-only", { mode: 0o600 });
      for (const mode of ["required", "off"]) {
        const daemon = await startDaemonProcess(path.join(scratch, mode), [], {
          HOTPLEX_SANDBOX: mode,
          HOTPLEX_SANDBOX_UID: "65534",
          HOTPLEX_STATE_DIR: path.join(scratch, mode, "state"),
        });
        const client = createClient(SessionService, transportFor(daemon.url, "connect"));
        const out = await run(client, "uid", `id -u; echo x > in-work && echo work-ok; echo y > $HOME/h && echo home-ok; cat ${secret} 2>&1`);
        expect(out).toContain("65534");
        expect(out).toContain("work-ok");
        expect(out).toContain("home-ok");
        expect(out).not.toContain("root-only");
        killDaemonProcesses();
      }
    } finally {
      killDaemonProcesses();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe("an agent's network, with only allowed destinations", () => {
  it("reaches the allowed ones through the daemon's proxy, and nothing else", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-contain-allow-"));
    const allowed = http.createServer((_req, res) => res.end("allowed-ok"));
    await new Promise<void>((resolve) => allowed.listen(0, "127.0.0.1", resolve));
    const allowedPort = (allowed.address() as AddressInfo).port;
    try {
      const daemon = await startDaemonProcess(scratch, [], {
        HOTPLEX_SANDBOX: "required",
        HOTPLEX_SANDBOX_NETWORK: "allow",
        HOTPLEX_SANDBOX_ALLOWED_HOSTS: `127.0.0.1:${allowedPort}`,
        HOTPLEX_STATE_DIR: path.join(scratch, "state"),
      });
      const client = createClient(SessionService, transportFor(daemon.url, "connect"));
      await run(client, "net", "echo ready");
      const { session } = await client.getSnapshot({ sessionId: "net" });
      expect(session?.sandbox?.network).toBe("allow");
      // A client of the proxy the agent was given (HTTP_PROXY), and a direct connection.
      writeFileSync(
        path.join(session!.workDir, "probe.cjs"),
        `const http = require("http"), net = require("net");
        const proxy = new URL(process.env.HTTP_PROXY);
        const via = (url) => new Promise((resolve) => {
          const req = http.request({ host: proxy.hostname, port: proxy.port, path: url }, (res) => {
            let body = ""; res.on("data", (d) => (body += d)); res.on("end", () => resolve(res.statusCode + " " + body));
          });
          req.on("error", (e) => resolve("error " + e.code)); req.end();
        });
        const direct = (port) => new Promise((resolve) => {
          net.connect(port, "127.0.0.1").on("connect", () => resolve("connected")).on("error", (e) => resolve("error " + e.code));
        });
        (async () => {
          console.log("ALLOWED", await via(process.argv[2]));
          console.log("OTHER", await via(process.argv[3]));
          console.log("DIRECT", await direct(Number(process.argv[4])));
        })();`,
      );
      const daemonPort = new URL(daemon.url).port;
      const out = await run(client, "net", `node probe.cjs http://127.0.0.1:${allowedPort}/ http://127.0.0.1:${daemonPort}/ ${allowedPort} 2>&1`);
      expect(out).toContain("ALLOWED 200 allowed-ok");
      expect(out).toContain("OTHER 403");
      expect(out).toMatch(/DIRECT error ECONNREFUSED/);
    } finally {
      killDaemonProcesses();
      allowed.close();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

// A daemon whose idle agent left a background job in its process group: the job's host pid.
async function daemonWithBackgroundJob(scratch: string, env: Record<string, string>, tag: string): Promise<{ daemon: DaemonProcess; job: number }> {
  const daemon = await startDaemonProcess(scratch, [], env);
  const client = createClient(SessionService, transportFor(daemon.url, "connect"));
  const token = `600.${Date.now() % 1_000_000_000}${tag}`;
  await run(client, "bg", `sleep ${token} >/dev/null 2>&1 </dev/null & echo started`);
  const job = await awaitHostPid(`grandchild pid 0 (sleep ${token})`, "grandchild");
  expect(job).toBeGreaterThan(0);
  return { daemon, job };
}

describe("a daemon killed with SIGKILL, with the sandbox on", () => {
  it("takes its agents with it at once (no restart needed): no agent runs on after its node lost the session", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-contain-die-"));
    try {
      const { daemon, job } = await daemonWithBackgroundJob(scratch, { HOTPLEX_SANDBOX: "required", HOTPLEX_STATE_DIR: path.join(scratch, "state") }, "3");
      daemon.child.kill("SIGKILL");
      await daemon.exit;
      await waitUntil(() => !isAlive(job), 10_000, "the sandboxed agent's background job to end with its daemon");
    } finally {
      killDaemonProcesses();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe("a daemon killed with SIGKILL and started again", () => {
  it.each(["required", "off"])("leaves no agent process behind (sandbox %s)", async (mode) => {
    const scratch = mkdtempSync(path.join(tmpdir(), "hotplex-contain-kill-"));
    try {
      const env = { HOTPLEX_SANDBOX: mode, HOTPLEX_STATE_DIR: path.join(scratch, "state") };
      const { daemon: first, job } = await daemonWithBackgroundJob(scratch, env, "2");
      first.child.kill("SIGKILL");
      await first.exit;
      const second = await startDaemonProcess(scratch, [], env);
      try {
        await waitUntil(() => !isAlive(job), 10_000, "the agent's background job to end");
      } finally {
        second.child.kill("SIGTERM");
        await second.exit;
      }
    } finally {
      killDaemonProcesses();
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
