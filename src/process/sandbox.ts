import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readlinkSync, realpathSync, statSync } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { Command } from "./command.js";
import { type AgentCgroup, Cgroups } from "./cgroups.js";
import { EGRESS_FORWARDER, EGRESS_PORT } from "./egress-forwarder.js";

/** Whether agents run in the OS sandbox: "auto" where the probe works, "required" or refuse, "off". */
export type SandboxMode = "auto" | "required" | "off";

/** What the sandbox takes from the daemon's config. */
export interface SandboxSettings {
  mode: SandboxMode;
  /** The bubblewrap executable. */
  bwrap: string;
  /**
   * "on": the host's network; "off": only the sandbox's own loopback; "allow": only the
   * destinations of `allowedHosts`, through the daemon's egress proxy.
   */
  network: "on" | "off" | "allow";
  /** With network "allow": host:port destinations agents may reach. */
  allowedHosts?: readonly string[];
  /** Run agents as this uid and gid (the daemon must be root), in a user namespace; undefined keeps the daemon's. */
  uid?: number;
  gid?: number;
  /** Per agent, with all it starts (0 = no limit). */
  memoryBytes: number;
  processes: number;
  openFiles: number;
  /** Host paths the agents may read besides the system (/usr, /etc, /opt) and their own executable. */
  readOnlyPaths: readonly string[];
  /** Host paths that must stay invisible even under a mounted tree (the daemon's config and secrets). */
  hiddenPaths: readonly string[];
  /** A cgroup v2 directory delegated to the daemon (optional; v1 is found by itself). */
  cgroupRoot?: string;
  /** Directories the agents' user must be able to reach (the work root and the state dir). */
  agentPaths?: readonly string[];
}

/** How agents are contained, for snapshots and server info. */
export interface SandboxState {
  /** Agents run inside bubblewrap. */
  enabled: boolean;
  /** The configured mode, and why the sandbox is off when it is. */
  mode: SandboxMode;
  reason: string;
  network: "on" | "off" | "allow";
  memoryBytes: number;
  processes: number;
  openFiles: number;
  /** "cgroup v1", "cgroup v2", "rlimits" or "none": what enforces the limits. */
  limitsBy: string;
}

/** How to start one agent: the command to run (the agent's, wrapped) and what to do after. */
export interface LaunchPlan {
  file: string;
  args: string[];
  /** Variables the sandbox sets (HOME, TMPDIR inside it). */
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /** Levels of wrapper processes above the agent: its signals go that deep (0 = the leader is the agent). */
  agentDepth: number;
  /** The cgroup of this start, if limits are enforced by one. */
  cgroup?: AgentCgroup;
}

/** The paths of one session that its agent may use. */
export interface SessionPaths {
  /** Read-write: the agent's work dir. */
  workDir: string;
  /** Read-write: the session's own HOME. */
  home: string;
  /** Read-only: the daemon's launch files for the session (system prompts). */
  stateDir: string;
}

/** The launch file the forwarder of an "allow" network is written to (in the session's state dir). */
export const EGRESS_FORWARDER_FILE = "egress-forwarder.mjs";
const EGRESS_SOCKET_INSIDE = "/tmp/.hotplex-egress.sock";

// Linux's system trees, read-only inside; /bin, /lib… are often symlinks into /usr.
const SYSTEM_TREES = ["/usr", "/etc", "/opt"];
const SYSTEM_LINKS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
// Under /etc, what no agent needs to read and some may not: password hashes, host keys.
const HIDDEN_SYSTEM_PATHS = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d"];

/**
 * The OS sandbox around every agent process: bubblewrap with its own PID, IPC, UTS and
 * (optionally) network namespaces, no capabilities, a read-only system, read-write access
 * to its work dir and HOME only, a private /tmp and /proc; plus limits on memory,
 * processes and open files (a cgroup when one is available, else rlimits).
 *
 * The agent is pid 2 inside (bubblewrap's init is pid 1): when it ends, the namespace and
 * everything the agent left running in it (a setsid'd grandchild included) go with it.
 */
export class Sandbox {
  readonly settings: SandboxSettings;
  readonly #enabled: boolean;
  readonly #reason: string;
  readonly #cgroups: Cgroups | undefined;
  readonly #prlimit: boolean;
  /** The egress proxy's socket, with network "allow". */
  egressSocket: string | undefined;

  private constructor(settings: SandboxSettings, enabled: boolean, reason: string, cgroups: Cgroups | undefined, prlimit: boolean) {
    this.settings = settings;
    this.#enabled = enabled;
    this.#reason = reason;
    this.#cgroups = cgroups;
    this.#prlimit = prlimit;
  }

  /** Probes bubblewrap (a trivial command in the same namespaces), cgroups and prlimit. */
  static open(settings: SandboxSettings, logger: Logger): Sandbox {
    let enabled = false;
    let reason = "off in the config";
    if (settings.mode !== "off") {
      const probe = spawnSync(settings.bwrap, [...namespaceArgs(settings), ...systemMounts(), "--", "/bin/true"], {
        timeout: 10_000,
        encoding: "utf8",
        ...(settings.uid === undefined ? {} : { uid: settings.uid, gid: settings.gid }),
      });
      enabled = probe.status === 0;
      reason = enabled
        ? ""
        : `bubblewrap (${settings.bwrap}) does not work here: ${probe.error?.message ?? (probe.stderr.trim() || `exit ${probe.status}`)}`;
      if (!enabled && settings.mode === "auto") logger.warn({ reason }, "agents run without the OS sandbox");
      if (!enabled && settings.mode === "required") logger.error({ reason }, "the sandbox is required and unavailable: every session will be refused");
    }
    if (settings.uid !== undefined) {
      for (const dir of settings.agentPaths ?? []) {
        const reach = spawnSync("/bin/sh", ["-c", 'test -x "$1"', "sh", dir], { uid: settings.uid, gid: settings.gid ?? settings.uid, timeout: 5_000 });
        if (reach.status !== 0) {
          throw new Error(`agents run as uid ${settings.uid} (--sandbox-uid) and cannot reach ${dir}: it or a directory above it is not traversable by that user`);
        }
      }
    }
    const wantsLimits = settings.memoryBytes > 0 || settings.processes > 0;
    const cgroups = wantsLimits ? Cgroups.probe(settings.cgroupRoot) : undefined;
    const prlimit = spawnSync("prlimit", ["--version"], { timeout: 5_000 }).status === 0;
    if (wantsLimits && !cgroups) {
      logger.warn(
        { prlimit },
        process.getuid?.() === 0 && settings.uid === undefined
          ? "no usable cgroup: memory is limited by rlimit (address space); the process limit does not bind root"
          : "no usable cgroup: memory and processes are limited by rlimits",
      );
    }
    return new Sandbox(settings, enabled, reason, cgroups, prlimit);
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Why sessions cannot start at all (the sandbox is required and does not work), or undefined. */
  get refusal(): string | undefined {
    return this.settings.mode === "required" && !this.#enabled
      ? `the sandbox is required but unavailable (${this.#reason}); install bubblewrap or change --sandbox`
      : undefined;
  }

  get state(): SandboxState {
    const { mode, network, memoryBytes, processes, openFiles } = this.settings;
    const limitsBy = this.#cgroups ? `cgroup ${this.#cgroups.kind}` : this.#prlimit ? "rlimits" : "none";
    return { enabled: this.#enabled, mode, reason: this.#reason, network, memoryBytes, processes, openFiles, limitsBy };
  }

  /** Files the wrapped command needs in the session's state dir (the egress forwarder). */
  launchFiles(stateDir: string): Record<string, string> {
    if (!this.#enabled || this.settings.network !== "allow") return {};
    return { [path.join(stateDir, EGRESS_FORWARDER_FILE)]: EGRESS_FORWARDER };
  }

  /** The command that starts `command` for a session: inside the sandbox, under the limits. */
  prepare(command: Command, paths: SessionPaths, launchId: string): LaunchPlan {
    const { settings } = this;
    let file = command.file;
    let args = command.args;
    let agentDepth = 0;
    const env: Record<string, string> = { HOME: paths.home };
    if (this.#enabled) {
      // The executable by its real path: a symlink to it (node_modules/.bin) is not mounted.
      let inner = [realpathOr(command.file), ...command.args];
      const mounts = this.#mounts(command, paths);
      // bubblewrap, then its init (pid 1 inside), then the agent.
      agentDepth = 2;
      if (settings.network === "allow" && this.egressSocket) {
        const forwarder = path.join(paths.stateDir, EGRESS_FORWARDER_FILE);
        mounts.push("--bind", this.egressSocket, EGRESS_SOCKET_INSIDE);
        inner = [realpathOr(process.execPath), forwarder, String(EGRESS_PORT), EGRESS_SOCKET_INSIDE, "--", ...inner];
        const proxy = `http://127.0.0.1:${EGRESS_PORT}`;
        Object.assign(env, { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, http_proxy: proxy, https_proxy: proxy, NO_PROXY: "", no_proxy: "" });
        agentDepth = 3;
      }
      args = [...namespaceArgs(settings), ...mounts, "--chdir", paths.workDir, "--", ...inner];
      file = settings.bwrap;
      env.TMPDIR = "/tmp";
    }
    const limits: string[] = [];
    if (settings.openFiles > 0) limits.push(`--nofile=${settings.openFiles}:${settings.openFiles}`);
    let cgroup: AgentCgroup | undefined;
    if (this.#cgroups && (settings.memoryBytes > 0 || settings.processes > 0)) {
      const owner = settings.uid === undefined ? undefined : { uid: settings.uid, gid: settings.gid ?? settings.uid };
      cgroup = this.#cgroups.create(launchId, settings.memoryBytes, settings.processes, owner);
    } else {
      if (settings.memoryBytes > 0) limits.push(`--as=${settings.memoryBytes}:${settings.memoryBytes}`);
      if (settings.processes > 0) limits.push(`--nproc=${settings.processes}:${settings.processes}`);
    }
    if (limits.length > 0 && this.#prlimit) {
      args = [...limits, "--", file, ...args];
      file = "prlimit";
    }
    if (cgroup) {
      // The first process joins the cgroup before anything else runs, then becomes the
      // command (exec keeps its pid): nothing of the agent ever runs outside it. The paths
      // and the command are positional arguments, never parsed by the shell.
      const joins = cgroup.procsFiles.map(() => 'echo $$ > "$1" && shift && ').join("");
      args = ["-c", `${joins}exec "$@"`, "hotplex-agent", ...cgroup.procsFiles, file, ...args];
      file = "/bin/sh";
    }
    return { file, args, env, uid: settings.uid, gid: settings.gid, agentDepth, cgroup };
  }

  /** The cgroup a start with `launchId` made, to end what a crashed daemon left in it. */
  leftover(launchId: string): AgentCgroup | undefined {
    return this.#cgroups?.existing(launchId);
  }

  #mounts(command: Command, paths: SessionPaths): string[] {
    const args = [...systemMounts()];
    // The agent's own executable (its package, when it comes from npm) and the
    // interpreter of a script, wherever they are installed.
    for (const dir of [...executableDirs(command.file), ...executableDirs(process.execPath), ...this.settings.readOnlyPaths]) {
      if (!underSystem(dir)) args.push("--ro-bind-try", dir, dir);
    }
    // A resolv.conf that points into /run (systemd-resolved) is the one file of /run the agent needs.
    try {
      const resolv = realpathSync("/etc/resolv.conf");
      if (!underSystem(resolv)) args.push("--ro-bind-try", resolv, resolv);
    } catch {
      // none
    }
    args.push("--ro-bind", paths.stateDir, paths.stateDir, "--bind", paths.home, paths.home, "--bind", paths.workDir, paths.workDir);
    for (const hidden of [...HIDDEN_SYSTEM_PATHS, ...this.settings.hiddenPaths]) args.push(...hide(hidden));
    return args;
  }
}

// The namespaces and the sandbox's own /dev, /proc and /tmp.
function namespaceArgs(settings: SandboxSettings): string[] {
  // --die-with-parent: a daemon that dies (SIGKILL, a crash) takes its agents with it, so an
  // agent never runs on after its node lost the session (another node may resume it).
  const args = ["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "hotplex", "--cap-drop", "ALL"];
  if (settings.network !== "on") args.push("--unshare-net");
  if (settings.uid !== undefined) args.push("--unshare-user", "--uid", String(settings.uid), "--gid", String(settings.gid ?? settings.uid));
  args.push("--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp");
  return args;
}

function systemMounts(): string[] {
  const args: string[] = [];
  for (const tree of SYSTEM_TREES) args.push(tree === "/usr" ? "--ro-bind" : "--ro-bind-try", tree, tree);
  for (const link of SYSTEM_LINKS) {
    try {
      if (lstatSync(link).isSymbolicLink()) args.push("--symlink", readlinkSync(link), link);
      else args.push("--ro-bind", link, link);
    } catch {
      // not on this system
    }
  }
  return args;
}

function underSystem(dir: string): boolean {
  return SYSTEM_TREES.some((tree) => dir === tree || dir.startsWith(`${tree}/`));
}

// A path made invisible under a mounted tree: an empty directory or file in its place.
function hide(target: string): string[] {
  if (!existsSync(target) || !SYSTEM_TREES.some((tree) => target.startsWith(`${tree}/`))) return [];
  return statSync(target).isDirectory() ? ["--tmpfs", target] : ["--ro-bind", "/dev/null", target];
}

// The directory an executable needs: its npm package when it lies in node_modules (an
// agent's native binary reads files beside it), else only the directory it is in.
function executableDirs(file: string): string[] {
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    return [];
  }
  const parts = real.split(path.sep);
  const at = parts.lastIndexOf("node_modules");
  if (at !== -1 && parts.length > at + 1) {
    const scoped = parts[at + 1]?.startsWith("@") ? 2 : 1;
    return [parts.slice(0, at + 1 + scoped).join(path.sep) || "/"];
  }
  return [path.dirname(real)];
}

function realpathOr(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}
