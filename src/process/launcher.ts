import { randomUUID } from "node:crypto";
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { lchown, lstat, mkdir, readdir } from "node:fs/promises";
import path from "node:path";
import { AgentProcess, type ProcessExit, processStartTime } from "./agent-process.js";
import type { Command } from "./command.js";
import { identityString } from "./orphans.js";
import type { Sandbox, SessionPaths } from "./sandbox.js";

/** What to start and how to read it. */
export interface LaunchRequest {
  command: Command;
  paths: SessionPaths;
  /** The session's environment (allow-listed); the command's and the sandbox's own variables go on top. */
  env: Record<string, string>;
  /** The longest stdout line read; a longer one is dropped and reported through onOverlongLine. */
  maxLineBytes: number;
  onLine: (line: string) => void;
  onOverlongLine: (bytes: number) => void;
  /** stdout reached its end while the agent still runs. */
  onOutputClosed: () => void;
}

/** A started agent process, in the sandbox and under the limits. */
export interface LaunchedAgent {
  readonly process: AgentProcess;
  /** How a restarted daemon recognizes it (see orphans.ts). */
  readonly identity: string;
  /**
   * Resolves when the process has exited, after everything it left behind (its process
   * group, its cgroup) has been ended too.
   */
  readonly exited: Promise<ProcessExit>;
}

/**
 * Gives a tree the daemon created for an agent (a new HOME from the operator's template) to
 * the agent's user. Links are changed themselves, never followed.
 */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await lchown(dir, uid, gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(file, uid, gid);
    else await lchown(file, uid, gid);
  }
}

/** Thrown when an agent cannot be started; the message says why, for the turn's error. */
export class LaunchError extends Error {}

/**
 * Starts agent processes for every provider the same way: launch files written with
 * owner-only modes, the command wrapped by the sandbox, a process group of its own, and
 * nothing left running once it ends. The one place where an agent process is started.
 */
export class AgentLauncher {
  constructor(readonly sandbox: Sandbox) {}

  /**
   * Creates a directory the agent must write (in its HOME), owned by the agent's user.
   * The agent could have planted a symlink there (its HOME is its own): a link, or
   * anything but a directory, is refused, so nothing outside is created or chowned.
   */
  async ensureAgentDir(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const found = await lstat(dir);
    if (found.isSymbolicLink() || !found.isDirectory()) {
      throw new LaunchError(`refusing to start the agent: ${dir} is not a directory of its own (a link or a file is there)`);
    }
    const { uid, gid } = this.sandbox.settings;
    if (uid !== undefined) await lchown(dir, uid, gid ?? uid);
  }

  async launch(request: LaunchRequest): Promise<LaunchedAgent> {
    const { sandbox } = this;
    const refusal = sandbox.refusal;
    if (refusal) throw new LaunchError(refusal);
    const { command, paths } = request;
    const { uid, gid } = sandbox.settings;
    try {
      const files = { ...command.files, ...sandbox.launchFiles(paths.stateDir) };
      writeLaunchFiles(paths.stateDir, files, uid === undefined ? undefined : { uid, gid: gid ?? uid });
    } catch (error) {
      throw new LaunchError(`cannot prepare the agent's files: ${String(error)}`);
    }
    const launchId = randomUUID();
    let plan;
    try {
      plan = sandbox.prepare(command, paths, launchId);
    } catch (error) {
      throw new LaunchError(`cannot prepare the agent's sandbox: ${String(error)}`);
    }
    const process = new AgentProcess({
      command: { file: plan.file, args: plan.args },
      cwd: paths.workDir,
      env: { ...request.env, ...command.env, ...plan.env },
      uid: plan.uid,
      gid: plan.gid,
      agentDepth: plan.agentDepth,
      onLine: request.onLine,
      maxLineBytes: request.maxLineBytes,
      onOverlongLine: request.onOverlongLine,
      onOutputClosed: request.onOutputClosed,
    });
    const identity = identityString({ pid: process.pid, start: processStartTime(process.pid), launch: launchId });
    const exited = process.exited.then((exit) => {
      // Background jobs the agent left behind die with it.
      process.signalGroup("SIGKILL");
      plan.cgroup?.remove();
      return exit;
    });
    return { process, identity, exited };
  }
}

// The files a command refers to, in the session's private state dir: owner-only modes,
// since they may hold a system prompt the client considers confidential. Synchronous: a
// few small files in a local dir cost tens of µs, a thread-pool round trip each costs a
// millisecond or more on a busy loop, on the path of every cold start.
function writeLaunchFiles(stateDir: string, files: Record<string, string>, owner?: { uid: number; gid: number }): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  // An agent running as its own user reads them (and no other user can).
  if (owner) chownSync(stateDir, owner.uid, owner.gid);
  for (const [file, content] of Object.entries(files)) {
    writeFileSync(file, content, { mode: 0o600 });
    if (owner) chownSync(file, owner.uid, owner.gid);
  }
}
