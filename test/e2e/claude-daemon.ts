// The set-up the real-Claude-Code suites share: the mock Messages API, a scratch work root and
// HOME, and a daemon running the real CLI against the mock.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { claudeEnv, type MockAnthropic, startMockAnthropic } from "../fixtures/mock-anthropic.js";
import { repoRoot, startTestDaemon, type TestDaemon, type TestDaemonOptions } from "../harness.js";

export const claudePath = path.join(repoRoot, "node_modules", ".bin", "claude");

export interface ClaudeE2E {
  mock: MockAnthropic;
  daemon: TestDaemon;
  /** A directory of the test's own, removed by close(). */
  scratch: string;
  close(): Promise<void>;
}

/** Starts the mock and a daemon on the real CLI; `engine` adds to a 60 s turn timeout and 5 s stop grace. */
export async function startClaudeE2E(name: string, engine: TestDaemonOptions["engine"] = {}): Promise<ClaudeE2E> {
  const mock = await startMockAnthropic();
  const scratch = mkdtempSync(path.join(tmpdir(), `hotplex-e2e-${name}-`));
  const dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
  mkdirSync(dirs.workRoot, { recursive: true });
  mkdirSync(dirs.home, { recursive: true });
  const daemon = await startTestDaemon({
    claudePath,
    dirs,
    env: claudeEnv({ home: dirs.home, baseUrl: mock.url }),
    engine: { ...engine, limits: { turnTimeoutMs: 60_000, stopGraceMs: 5_000, ...engine.limits } },
  });
  return {
    mock,
    daemon,
    scratch,
    async close() {
      await daemon.close();
      await mock.close();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
