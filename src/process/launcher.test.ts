import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgentLauncher, LaunchError } from "./launcher.js";
import type { Sandbox } from "./sandbox.js";

describe("AgentLauncher.ensureAgentDir", () => {
  let dir: string;
  const launcher = new AgentLauncher({ settings: {} } as unknown as Sandbox);
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "hotplex-launcher-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("creates the directory (and keeps one that is there)", async () => {
    await launcher.ensureAgentDir(path.join(dir, "home", ".codex"));
    await launcher.ensureAgentDir(path.join(dir, "home", ".codex"));
  });

  it("refuses a symlink the agent planted, and a file in the directory's place", async () => {
    const outside = path.join(dir, "outside");
    mkdirSync(outside);
    mkdirSync(path.join(dir, "home"));
    symlinkSync(outside, path.join(dir, "home", ".codex"));
    await expect(launcher.ensureAgentDir(path.join(dir, "home", ".codex"))).rejects.toBeInstanceOf(LaunchError);
    writeFileSync(path.join(dir, "home", ".tmp"), "");
    await expect(launcher.ensureAgentDir(path.join(dir, "home", ".tmp"))).rejects.toThrow();
  });
});
