import { chownSync, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import path from "node:path";

/** Which cgroup interface the daemon can put agents in, if any. */
export type CgroupKind = "v2" | "v1";

/** Memory and process limits of one agent, and the directories that enforce them. */
export interface AgentCgroup {
  /** The `cgroup.procs` files the agent's first process writes its pid into. */
  procsFiles: string[];
  /** Removes the cgroup directories (once the agent and all it started are gone). */
  remove(): void;
  /** Ends every process still in the cgroup (an agent a crashed daemon left behind). */
  killAll(): void;
}

const ROOT = "/sys/fs/cgroup";
const GROUP = "hotplex";

/**
 * The cgroups the daemon may create for its agents: v2 in a delegated directory, or the v1
 * memory and pids hierarchies (a container run as root often has those writable). When
 * neither works, limits fall back to rlimits.
 */
export class Cgroups {
  readonly kind: CgroupKind;
  readonly #parents: { memory: string; pids: string };

  private constructor(kind: CgroupKind, parents: { memory: string; pids: string }) {
    this.kind = kind;
    this.#parents = parents;
  }

  /**
   * Finds a usable interface by trying to create (and remove) a cgroup in it: cgroup v2
   * under `v2Root` (a directory delegated to the daemon, with memory and pids in its
   * cgroup.subtree_control: the daemon never rearranges a host's cgroup tree by itself),
   * else the v1 memory and pids hierarchies when they are writable.
   */
  static probe(v2Root?: string): Cgroups | undefined {
    if (v2Root) {
      try {
        const controllers = readFileSync(path.join(v2Root, "cgroup.subtree_control"), "utf8");
        if (/\bmemory\b/.test(controllers) && /\bpids\b/.test(controllers) && tryCreate(v2Root)) {
          return new Cgroups("v2", { memory: v2Root, pids: v2Root });
        }
      } catch {
        // not usable
      }
    }
    try {
      const memory = path.join(ROOT, "memory", GROUP);
      const pids = path.join(ROOT, "pids", GROUP);
      if (existsSync(path.join(ROOT, "memory", "memory.limit_in_bytes")) && tryCreate(memory) && tryCreate(pids)) {
        return new Cgroups("v1", { memory, pids });
      }
    } catch {
      // not usable
    }
    return undefined;
  }

  /**
   * A cgroup for one agent, limited to `memoryBytes` and `processes` (0 = no limit). With
   * `owner`, the agent's user may move itself in (it joins before it runs the agent).
   */
  create(name: string, memoryBytes: number, processes: number, owner?: { uid: number; gid: number }): AgentCgroup {
    const dirs =
      this.kind === "v2" ? [path.join(this.#parents.memory, name)] : [path.join(this.#parents.memory, name), path.join(this.#parents.pids, name)];
    for (const dir of dirs) mkdirSync(dir, { recursive: true });
    if (this.kind === "v2") {
      const [dir] = dirs as [string];
      if (memoryBytes > 0) {
        writeFileSync(path.join(dir, "memory.max"), String(memoryBytes));
        // No swap either: a memory hog must be stopped, not paged out.
        if (existsSync(path.join(dir, "memory.swap.max"))) writeFileSync(path.join(dir, "memory.swap.max"), "0");
      }
      if (processes > 0) writeFileSync(path.join(dir, "pids.max"), String(processes));
    } else {
      const [memory, pids] = dirs as [string, string];
      if (memoryBytes > 0) writeFileSync(path.join(memory, "memory.limit_in_bytes"), String(memoryBytes));
      if (processes > 0) writeFileSync(path.join(pids, "pids.max"), String(processes));
    }
    if (owner) for (const dir of dirs) chownSync(path.join(dir, "cgroup.procs"), owner.uid, owner.gid);
    return cgroupOf(dirs);
  }

  /** The cgroup `name` as a crashed daemon left it, to end what still runs in it. */
  existing(name: string): AgentCgroup {
    const dirs =
      this.kind === "v2" ? [path.join(this.#parents.memory, name)] : [path.join(this.#parents.memory, name), path.join(this.#parents.pids, name)];
    return cgroupOf(dirs.filter((dir) => existsSync(dir)));
  }
}

function cgroupOf(dirs: string[]): AgentCgroup {
  return {
    procsFiles: dirs.map((dir) => path.join(dir, "cgroup.procs")),
    remove() {
      for (const dir of dirs) {
        try {
          rmdirSync(dir);
        } catch {
          // still busy or gone; a later start removes it
        }
      }
    },
    killAll() {
      for (const dir of dirs) {
        let pids: number[] = [];
        try {
          pids = readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
        } catch {
          continue;
        }
        for (const pid of pids) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
      }
    },
  };
}

function tryCreate(parent: string): boolean {
  mkdirSync(parent, { recursive: true });
  const probe = path.join(parent, `probe-${process.pid}`);
  mkdirSync(probe);
  rmdirSync(probe);
  return true;
}
