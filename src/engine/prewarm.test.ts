import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Sandbox } from "../process/sandbox.js";
import { DEFAULT_SANDBOX } from "./config.js";
import { PREWARMED_PREFIX, PrewarmPool } from "./prewarm.js";

const logger = pino({ level: "silent" });
const sandbox = Sandbox.open({ ...DEFAULT_SANDBOX, mode: "off", memoryBytes: 0, processes: 0, openFiles: 0 }, logger);
let root = "";
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("PrewarmPool.sweep (what a killed daemon left)", () => {
  it("removes the dirs of agents no session took, whatever their record holds, and keeps taken ones", async () => {
    root = mkdtempSync(path.join(tmpdir(), "hotplex-sweep-"));
    const workRoot = path.join(root, "work");
    const stateRoot = path.join(root, "state");
    const make = (name: string, record: string | undefined) => {
      mkdirSync(path.join(stateRoot, "t", PREWARMED_PREFIX + name, "home"), { recursive: true });
      mkdirSync(path.join(workRoot, "t", PREWARMED_PREFIX + name), { recursive: true });
      if (record !== undefined) writeFileSync(path.join(stateRoot, "t", PREWARMED_PREFIX + name, ".prewarmed.json"), record);
    };
    make("garbage", "{not json");
    make("missing", undefined);
    make("wrong-types", JSON.stringify({ pgid: "1; rm -rf /", identity: 42 }));
    // pid 1 with an identity it does not have: never signalled (the orphan check wants the recorded start time).
    make("not-ours", JSON.stringify({ pgid: 1, identity: JSON.stringify({ pid: 1, start: 1, launch: "" }) }));
    make("adopted", JSON.stringify({ adopted: true }));
    make("registered", "{}");
    // A session's own dir, not a pre-warmed one: never touched.
    mkdirSync(path.join(stateRoot, "t", "session-1"), { recursive: true });
    const taken = new Set([path.join(stateRoot, "t", PREWARMED_PREFIX + "registered")]);
    expect(await PrewarmPool.sweep(workRoot, stateRoot, taken, 100, sandbox, logger)).toBe(4);
    for (const gone of ["garbage", "missing", "wrong-types", "not-ours"]) {
      expect(existsSync(path.join(stateRoot, "t", PREWARMED_PREFIX + gone))).toBe(false);
      expect(existsSync(path.join(workRoot, "t", PREWARMED_PREFIX + gone))).toBe(false);
    }
    for (const kept of ["adopted", "registered"]) {
      expect(existsSync(path.join(stateRoot, "t", PREWARMED_PREFIX + kept))).toBe(true);
      expect(existsSync(path.join(workRoot, "t", PREWARMED_PREFIX + kept))).toBe(true);
    }
    expect(existsSync(path.join(stateRoot, "t", "session-1"))).toBe(true);
    // Nothing there at all is no error.
    expect(await PrewarmPool.sweep(path.join(root, "none"), path.join(root, "none"), new Set(), 100, sandbox, logger)).toBe(0);
  });
});
