import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import { signalProcessGroup } from "./agent-process.js";

/**
 * Ends an agent process group left behind by a daemon that stopped without a shutdown
 * (killed, crashed). Only a group whose leader still runs the recorded agent executable
 * is touched: after a reboot the pid may belong to something else entirely.
 */
export async function endOrphanGroup(pgid: number, agentCommand: string, graceMs: number, logger: Logger): Promise<void> {
  if (!agentCommand || !runsCommand(pgid, agentCommand)) return;
  logger.warn({ pgid, agentCommand }, "ending an agent process group left by the previous daemon");
  signalProcessGroup(pgid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  // Not our child: its exit cannot be awaited, only observed.
  while (isAlive(pgid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
  signalProcessGroup(pgid, "SIGKILL");
}

function runsCommand(pid: number, command: string): boolean {
  try {
    // argv[0] or argv[1] (an interpreter running a script) is the recorded executable.
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.slice(0, 2).some((arg) => arg === command || arg.endsWith(`/${command}`));
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
