import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { minuteStamp, msToNextMinute, prepareGeminiLoad } from "./gemini-chats.js";

const ID = "5260ddda-b678-4f28-b385-f40b9cd0daf2";
const NOW = Date.parse("2026-12-02T01:01:30.000Z");
const header = (sessionId: string) => `${JSON.stringify({ sessionId, projectHash: "h", startTime: "2026-12-02T01:01:00.000Z", kind: "main" })}\n`;
const conversation = `${header(ID)}{"type":"user","content":[{"text":"remember MANGO"}]}\n`;

describe("Gemini CLI session/load guard", () => {
  let scratch: string;
  let paths: { home: string; workDir: string; stateDir: string };
  let chats: string;

  beforeEach(() => {
    scratch = mkdtempSync(path.join(tmpdir(), "hotplex-gemini-chats-"));
    paths = { home: path.join(scratch, "home"), workDir: path.join(scratch, "work", "s1"), stateDir: path.join(scratch, "state") };
    chats = path.join(paths.home, ".gemini", "tmp", "s1", "chats");
    mkdirSync(chats, { recursive: true });
    mkdirSync(paths.stateDir, { recursive: true });
    writeFileSync(path.join(paths.home, ".gemini", "projects.json"), JSON.stringify({ projects: { [paths.workDir]: "s1" } }));
  });
  afterEach(() => rmSync(scratch, { recursive: true, force: true }));

  it("stamps like the CLI and counts to the next minute", () => {
    expect(minuteStamp(NOW)).toBe("2026-12-02T01-01");
    expect(msToNextMinute(NOW)).toBe(30_000);
  });

  it("moves a conversation created this minute out of the load's way, and restores it after a failed load", async () => {
    const own = path.join(chats, "session-2026-12-02T01-01-5260ddda.jsonl");
    writeFileSync(own, conversation);
    // Another conversation with the same first 8 characters is not touched.
    writeFileSync(path.join(chats, "session-2026-12-02T01-01-5260ddda.json"), header("5260ddda-0000-0000-0000-000000000000"));
    const guard = await prepareGeminiLoad(paths, ID, () => NOW);
    expect(guard.missing).toBe(false);
    expect(guard.waitMs).toBe(0);
    expect(readdirSync(chats).sort()).toEqual(["session-2026-12-02T01-01-5260ddda.json", "session-2026-12-02T01-01-hx-5260ddda.jsonl"]);
    // The buggy load appends a header that empties the history; the restore undoes it.
    const moved = path.join(chats, "session-2026-12-02T01-01-hx-5260ddda.jsonl");
    writeFileSync(moved, `${conversation}${header(ID)}{"$set":{"messages":[]}}\n`);
    await guard.restore();
    expect(readFileSync(moved, "utf8")).toBe(conversation);
    await guard.discard();
    expect(readdirSync(paths.stateDir)).toEqual([]);
  });

  it("leaves a conversation of an earlier minute where it is", async () => {
    writeFileSync(path.join(chats, "session-2026-12-02T01-00-5260ddda.jsonl"), conversation);
    const guard = await prepareGeminiLoad(paths, ID, () => NOW);
    expect(guard.missing).toBe(false);
    expect(readdirSync(chats)).toEqual(["session-2026-12-02T01-00-5260ddda.jsonl"]);
  });

  it("says when there is no conversation to load", async () => {
    expect((await prepareGeminiLoad(paths, ID, () => NOW)).missing).toBe(true);
    writeFileSync(path.join(chats, "session-2026-12-02T01-01-5260ddda.jsonl"), "not json\n");
    expect((await prepareGeminiLoad(paths, ID, () => NOW)).missing).toBe(true);
    rmSync(path.join(paths.home, ".gemini"), { recursive: true });
    expect((await prepareGeminiLoad(paths, ID, () => NOW)).missing).toBe(true);
  });

  it("finds the chats without a usable projects.json, and follows no link the agent planted", async () => {
    writeFileSync(path.join(paths.home, ".gemini", "projects.json"), JSON.stringify({ projects: { [paths.workDir]: "../../../etc" } }));
    writeFileSync(path.join(chats, "session-2026-12-02T01-00-5260ddda.jsonl"), conversation);
    expect((await prepareGeminiLoad(paths, ID, () => NOW)).missing).toBe(false);
    // A chats dir that is a link elsewhere is not read.
    const elsewhere = path.join(scratch, "elsewhere");
    mkdirSync(elsewhere);
    writeFileSync(path.join(elsewhere, "session-2026-12-02T01-01-5260ddda.jsonl"), conversation);
    rmSync(chats, { recursive: true });
    symlinkSync(elsewhere, chats);
    expect((await prepareGeminiLoad(paths, ID, () => NOW)).missing).toBe(true);
    expect(readdirSync(elsewhere)).toEqual(["session-2026-12-02T01-01-5260ddda.jsonl"]);
    // Nor a chat file that is a link.
    rmSync(chats);
    mkdirSync(chats);
    symlinkSync(path.join(elsewhere, "session-2026-12-02T01-01-5260ddda.jsonl"), path.join(chats, "session-2026-12-02T01-01-5260ddda.jsonl"));
    expect((await prepareGeminiLoad(paths, ID, () => NOW)).missing).toBe(true);
  });
});
