import { readdirSync, readFileSync } from "node:fs";
import type { Logger } from "pino";
import { processStartTime, signalProcess, signalProcessGroup } from "./agent-process.js";
import type { AgentCgroup } from "./cgroups.js";

/**
 * What identifies an agent's process group after the daemon that started it is gone: the
 * leader's pid and start time (a pid reused after a reboot or by anything else has another
 * start time), and the launch id naming its cgroup, when it has one.
 */
export interface AgentIdentity {
  pid: number;
  start: number;
  launch: string;
}

/** The registry's form of an identity. */
export function identityString(identity: AgentIdentity): string {
  return JSON.stringify(identity);
}

function parseIdentity(recorded: string): AgentIdentity | undefined {
  if (!recorded.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(recorded) as Partial<AgentIdentity>;
    if (typeof value.pid === "number" && typeof value.start === "number") return { pid: value.pid, start: value.start, launch: value.launch ?? "" };
  } catch {
    // not an identity
  }
  return undefined;
}

/**
 * Ends an agent process group left behind by a daemon that stopped without a shutdown
 * (killed, crashed). Only what is provably that agent's is touched: the group while its
 * leader still has the recorded start time; when the leader is gone, the members of the
 * group started after it (background jobs it left); and everything in its cgroup.
 * `recorded` from registries written before identities existed is the executable's path.
 */
export async function endOrphanGroup(
  pgid: number,
  recorded: string,
  graceMs: number,
  logger: Logger,
  leftover?: (launch: string) => AgentCgroup | undefined,
): Promise<void> {
  const identity = parseIdentity(recorded);
  const cgroup = identity?.launch ? leftover?.(identity.launch) : undefined;
  if (identity ? leaderIs(identity) : legacyLeaderRuns(pgid, recorded)) {
    logger.warn({ pgid }, "ending an agent process group left by the previous daemon");
    signalProcessGroup(pgid, "SIGTERM");
    const deadline = Date.now() + graceMs;
    // Not our child: its exit cannot be awaited, only observed.
    while (isAlive(pgid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    signalProcessGroup(pgid, "SIGKILL");
  } else if (identity && !isAlive(pgid)) {
    // The leader exited (an idle agent ends at stdin EOF when its daemon dies), but what it
    // started in its group may run on: those started after it are its own.
    const members = groupMembers(pgid).filter((pid) => processStartTime(pid) >= identity.start);
    if (members.length > 0) logger.warn({ pgid, members: members.length }, "ending processes an agent left in its group");
    for (const pid of members) signalProcess(pid, "SIGKILL");
  }
  if (cgroup) {
    cgroup.killAll();
    // The kernel empties the cgroup as the processes die.
    for (let tries = 0; tries < 40 && cgroupBusy(cgroup); tries += 1) await new Promise((resolve) => setTimeout(resolve, 25));
    cgroup.remove();
  }
}

function leaderIs(identity: AgentIdentity): boolean {
  return isAlive(identity.pid) && processStartTime(identity.pid) === identity.start;
}

// Registries written before identities: argv[0] or argv[1] (an interpreter running a script) is the executable.
function legacyLeaderRuns(pid: number, command: string): boolean {
  if (!command) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.slice(0, 2).some((arg) => arg === command || arg.endsWith(`/${command}`));
  } catch {
    return false;
  }
}

// Every process whose process group is `pgid` (from /proc).
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // After the command name: state, ppid, pgrp.
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp === pgid) members.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

function cgroupBusy(cgroup: AgentCgroup): boolean {
  return cgroup.procsFiles.some((file) => {
    try {
      return readFileSync(file, "utf8").trim() !== "";
    } catch {
      return false;
    }
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
