import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "./harness.js";

const buf = path.join(repoRoot, "node_modules", ".bin", "buf");

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

describe("the API contract", () => {
  const out = mkdtempSync(path.join(tmpdir(), "hotplex-gen-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("passes buf lint (STANDARD)", () => {
    expect(() => execFileSync(buf, ["lint"], { cwd: repoRoot, stdio: "pipe" })).not.toThrow();
  });

  it("has gen/ exactly as buf generate writes it from proto/", () => {
    execFileSync(buf, ["generate", "--output", out], { cwd: repoRoot, stdio: "pipe" });
    const committed = path.join(repoRoot, "gen");
    const generated = path.join(out, "gen");
    expect(filesUnder(committed)).toEqual(filesUnder(generated));
    for (const file of filesUnder(generated)) {
      expect(readFileSync(path.join(committed, file), "utf8"), `gen/${file} is stale: run npm run generate`).toBe(
        readFileSync(path.join(generated, file), "utf8"),
      );
    }
  });
});
