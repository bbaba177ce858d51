import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HotplexError } from "../errors.js";
import { resolveWorkDir } from "./work-dir.js";

let base: string; // real path of a fresh temp dir holding the root and an "outside" dir
let root: string;
let outside: string;

beforeEach(() => {
  base = realpathSync(mkdtempSync(path.join(tmpdir(), "hotplex-work-dir-")));
  root = path.join(base, "root");
  outside = path.join(base, "outside");
  mkdirSync(root);
  mkdirSync(outside);
});

afterEach(() => {
  rmSync(base, { recursive: true, force: true });
});

function rejection(workRoot: string, requested: string, sessionId = "s1"): HotplexError {
  try {
    resolveWorkDir(workRoot, requested, sessionId);
  } catch (error) {
    expect(error).toBeInstanceOf(HotplexError);
    return error as HotplexError;
  }
  throw new Error(`expected ${JSON.stringify(requested)} to be rejected`);
}

describe("resolveWorkDir", () => {
  it("defaults to <root>/<session id> when no work dir is requested", () => {
    expect(resolveWorkDir(root, "", "session-1")).toBe(path.join(root, "session-1"));
  });

  it("takes a relative work dir from the root", () => {
    expect(resolveWorkDir(root, "projects/a", "s1")).toBe(path.join(root, "projects", "a"));
  });

  it("accepts an absolute work dir inside the root", () => {
    mkdirSync(path.join(root, "existing"));
    expect(resolveWorkDir(root, path.join(root, "existing"), "s1")).toBe(path.join(root, "existing"));
  });

  it("accepts a name that merely starts with two dots, such as the session id '..x'", () => {
    expect(resolveWorkDir(root, "", "..x")).toBe(path.join(root, "..x"));
    expect(resolveWorkDir(root, "..cache/a", "s1")).toBe(path.join(root, "..cache", "a"));
  });

  it("rejects a relative path that escapes with '..'", () => {
    const error = rejection(root, "../outside");
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toContain("config.work_dir");
    expect(error.message).toContain("../outside");
    expect(() => resolveWorkDir(root, "a/../../outside", "s1")).toThrow(HotplexError);
    expect(() => resolveWorkDir(root, "..", "s1")).toThrow(HotplexError);
  });

  it("rejects an absolute path outside the root", () => {
    expect(rejection(root, outside).code).toBe("invalid_argument");
    expect(rejection(root, "/").code).toBe("invalid_argument");
  });

  it("rejects a symlink inside the root that points outside", () => {
    symlinkSync(outside, path.join(root, "link"));
    expect(rejection(root, "link").message).toContain(outside);
  });

  it("rejects a missing path under a symlink that points outside", () => {
    symlinkSync(outside, path.join(root, "link"));
    expect(rejection(root, "link/not/yet/there").message).toContain(path.join(outside, "not", "yet", "there"));
  });

  it("rejects a dangling symlink whose target would be outside the root", () => {
    symlinkSync(path.join(outside, "missing"), path.join(root, "dangling"));
    expect(rejection(root, "dangling").code).toBe("invalid_argument");
    expect(rejection(root, "dangling/sub").code).toBe("invalid_argument");
  });

  it("follows a dangling symlink that stays inside the root to its real target", () => {
    symlinkSync("later", path.join(root, "dangling"));
    expect(resolveWorkDir(root, "dangling/sub", "s1")).toBe(path.join(root, "later", "sub"));
  });

  it("accepts a symlink inside the root that points inside it, and returns the target", () => {
    mkdirSync(path.join(root, "real"));
    symlinkSync(path.join(root, "real"), path.join(root, "alias"));
    expect(resolveWorkDir(root, "alias", "s1")).toBe(path.join(root, "real"));
    expect(resolveWorkDir(root, "alias/new", "s1")).toBe(path.join(root, "real", "new"));
  });

  it("uses the real path of a root that is itself a symlink", () => {
    const linkedRoot = path.join(base, "root-link");
    symlinkSync(root, linkedRoot);
    expect(resolveWorkDir(linkedRoot, "", "s1")).toBe(path.join(root, "s1"));
    expect(resolveWorkDir(linkedRoot, path.join(linkedRoot, "a"), "s1")).toBe(path.join(root, "a"));
    expect(resolveWorkDir(linkedRoot, path.join(root, "b"), "s1")).toBe(path.join(root, "b"));
    expect(rejection(linkedRoot, "../outside").message).toContain(root);
  });

  it("returns the real path, without '.', '..' or duplicate separators", () => {
    mkdirSync(path.join(root, "a", "b"), { recursive: true });
    const resolved = resolveWorkDir(root, "./a//b/../b/.", "s1");
    expect(resolved).toBe(path.join(root, "a", "b"));
    expect(resolved).toBe(realpathSync(resolved));
  });
});
