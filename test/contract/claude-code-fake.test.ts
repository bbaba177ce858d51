// The provider contract against the Claude Code provider, driving the fake CLI (its exact
// stream-json protocol) as a real child process in the sandbox, over a real socket.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe } from "vitest";
import { startTestDaemon as startDaemon, type TestDaemon } from "../harness.js";
import { processAgentHooks, providerContract } from "./contract.js";

let daemon: TestDaemon;
let scratch: string;
let dirs: { workRoot: string; home: string };

beforeAll(async () => {
  // Dirs of our own, kept over the restart (the store lives in the work root's parent).
  scratch = mkdtempSync(path.join(tmpdir(), "hotplex-contract-"));
  dirs = { workRoot: path.join(scratch, "work"), home: path.join(scratch, "home") };
  daemon = await startDaemon({ storeKind: "sqlite", dirs });
});

afterAll(async () => {
  await daemon.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe("provider contract: claude-code (fake CLI, real processes)", () => {
  providerContract(() => ({
    provider: "claude-code",
    client: () => daemon.client,
    restart: async () => {
      await daemon.close();
      daemon = await startDaemon({ storeKind: "sqlite", dirs });
    },
    plain: (word) => `say ${word}`,
    recall: () => "[[history]]",
    hang: () => "[[hang]]",
    talkThenHang: () => "[[chunks:2:60000]]",
    ...processAgentHooks(() => daemon.client),
  }));
});
