// Where a Codex thread's rollout is in a session HOME, and where a copy must go.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { rolloutFiles } from "./transcripts.js";

// A UUID v7, as Codex makes thread ids: its first 48 bits are the creation time in ms.
const ID = "01a234db-1137-7e12-bbdc-3e81ed31d2bd";

describe("Codex rollout files", () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(path.join(tmpdir(), "hotplex-codex-rollouts-"));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it("finds the rollout Codex wrote, in whatever date directory", () => {
    const dir = path.join(home, ".codex", "sessions", "2025", "03", "04");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "rollout-2025-03-04T10-00-00-other.jsonl"), "");
    writeFileSync(path.join(dir, `rollout-2025-03-04T10-00-00-${ID}.jsonl`), "{}\n");
    expect(rolloutFiles(ID, home)).toEqual([path.join(dir, `rollout-2025-03-04T10-00-00-${ID}.jsonl`)]);
  });

  it("names the place of a copy from the time in the id when there is none", () => {
    const ms = Number.parseInt(ID.replace(/-/g, "").slice(0, 12), 16);
    const iso = new Date(ms).toISOString();
    expect(rolloutFiles(ID, home)).toEqual([
      path.join(home, ".codex", "sessions", iso.slice(0, 4), iso.slice(5, 7), iso.slice(8, 10), `rollout-${iso.slice(0, 19).replace(/:/g, "-")}-${ID}.jsonl`),
    ]);
    // Not a v7 id: the epoch's directory, still a place Codex searches.
    expect(rolloutFiles("thread-1", home)).toEqual([path.join(home, ".codex", "sessions", "1970", "01", "01", "rollout-1970-01-01T00-00-00-thread-1.jsonl")]);
  });

  it("names nothing for an id that is not one, or without a HOME", () => {
    for (const id of ["", "../x", "a/b", "x".repeat(129), "*"]) expect(rolloutFiles(id, home)).toEqual([]);
    expect(rolloutFiles(ID, "")).toEqual([]);
  });

  it("does not follow links the agent planted in its HOME", () => {
    const outside = mkdtempSync(path.join(tmpdir(), "hotplex-codex-outside-"));
    try {
      const dir = path.join(outside, "2025", "01", "01");
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `rollout-x-${ID}.jsonl`), "secret");
      mkdirSync(path.join(home, ".codex"), { recursive: true });
      symlinkSync(outside, path.join(home, ".codex", "sessions"));
      expect(rolloutFiles(ID, home)[0]).not.toContain(outside);
      rmSync(path.join(home, ".codex", "sessions"));
      const own = path.join(home, ".codex", "sessions", "2025", "01");
      mkdirSync(own, { recursive: true });
      symlinkSync(dir, path.join(own, "01"));
      symlinkSync(path.join(dir, `rollout-x-${ID}.jsonl`), path.join(own, `rollout-y-${ID}.jsonl`));
      expect(rolloutFiles(ID, home)[0]).not.toMatch(/rollout-[xy]-/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});
