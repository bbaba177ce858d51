import { describe, expect, it } from "vitest";
import { AgentLog, AgentLogBudget, AgentLogSource, escapeControls, readAgentLog } from "./agent-log.js";

const texts = (log: AgentLog) => log.read(0, 10_000).map((entry) => entry.text);

describe("AgentLog", () => {
  it("splits stderr into lines per process, across chunks and multi-byte characters", () => {
    const log = new AgentLog();
    const a = log.stderrOf(1);
    const b = log.stderrOf(2);
    const euro = Buffer.from("€");
    a.write(Buffer.from("first "));
    b.write(Buffer.from("other process\n"));
    a.write(Buffer.concat([Buffer.from("half "), euro.subarray(0, 1)]));
    a.write(Buffer.concat([euro.subarray(1), Buffer.from(" line\r\nsecond\n\nlast without newline")]));
    a.end();
    expect(log.read(0, 100).map(({ text, pid, source }) => [pid, text, source])).toEqual([
      [2, "other process", AgentLogSource.STDERR],
      [1, "first half € line", AgentLogSource.STDERR],
      [1, "second", AgentLogSource.STDERR],
      [1, "", AgentLogSource.STDERR],
      [1, "last without newline", AgentLogSource.STDERR],
    ]);
  });

  it("escapes control characters and terminal tricks, keeping the text", () => {
    expect(escapeControls("a\u001b[31mred\u0007\u0000\tb\rc\u202eevil\u2028")).toBe("a\\u001b[31mred\\u0007\\u0000\tb\\rc\\u202eevil\\u2028");
    const log = new AgentLog();
    log.stderrOf(1).write(Buffer.from("\u001b]0;title\u0007 \xff\n", "latin1"));
    expect(texts(log)).toEqual(["\\u001b]0;title\\u0007 \ufffd"]);
  });

  it("cuts a long line to one entry with a marker, without holding the rest of it", () => {
    const log = new AgentLog(64 * 1024);
    const writer = log.stderrOf(7);
    for (let i = 0; i < 100; i += 1) writer.write(Buffer.alloc(100_000, "y"));
    writer.write(Buffer.from("\nnext\n"));
    const [long, next] = log.read(0, 10);
    expect(long?.truncated).toBe(true);
    expect(long?.text.startsWith("y".repeat(4096))).toBe(true);
    expect(long?.text).toContain("[truncated: the line had 10000000 characters]");
    expect(long!.text.length).toBeLessThan(4200);
    expect(next).toMatchObject({ text: "next", truncated: false });
  });

  it("keeps only the newest entries within its bytes, with indexes that go on", () => {
    const log = new AgentLog(4096);
    for (let i = 1; i <= 1000; i += 1) log.lifecycle(`entry ${i}`);
    expect(log.bytes).toBeLessThanOrEqual(4096);
    expect(log.lastIndex).toBe(1000);
    expect(log.firstIndex).toBeGreaterThan(900);
    const kept = log.read(0, 10_000);
    expect(kept.at(-1)?.text).toBe("entry 1000");
    expect(kept[0]?.index).toBe(log.firstIndex);
    expect(log.read(999, 10).map((entry) => entry.text)).toEqual(["entry 1000"]);
    expect(log.read(1000, 10)).toEqual([]);
  });

  it("keeps nothing with 0 bytes", () => {
    const log = new AgentLog(0);
    log.lifecycle("started");
    log.stderrOf(1).write(Buffer.from("line\n"));
    expect(log.read(0, 10)).toEqual([]);
  });

  it("releases the logs of sessions whose agent is gone, least recently written first, never a live one's", () => {
    const budget = new AgentLogBudget(2048, 4096);
    const live = budget.create();
    // Pinned as a running process would pin it.
    const exited = new Promise<never>(() => {});
    live.watch({ process: { pid: 5, onStderr: () => () => true }, exited } as never);
    const older = budget.create();
    const newer = budget.create();
    for (const [log, name] of [[live, "live"], [older, "older"], [newer, "newer"]] as const) {
      for (let i = 0; i < 20; i += 1) log.lifecycle(`${name} ${i} ${"x".repeat(40)}`);
    }
    expect(budget.bytes).toBeLessThanOrEqual(4096);
    expect(older.read(0, 100)).toEqual([]);
    expect(older.lastIndex).toBe(20);
    expect(live.read(0, 100).length).toBeGreaterThan(0);
    expect(newer.read(0, 100).length).toBeGreaterThan(0);
    newer.close();
    expect(budget.bytes).toBe(live.bytes);
  });
});

describe("readAgentLog", () => {
  it("pages after an index, reports what the ring dropped, follows new entries and ends when the log closes", async () => {
    const log = new AgentLog(2048);
    for (let i = 1; i <= 100; i += 1) log.lifecycle(`entry ${i}`);
    const controller = new AbortController();
    const pages = readAgentLog(log, 0, 10, true, controller.signal)[Symbol.asyncIterator]();
    const first = (await pages.next()).value!;
    expect(first.dropped).toBe(log.firstIndex - 1);
    expect(first.entries[0]?.index).toBe(log.firstIndex);
    expect(first.entries).toHaveLength(10);
    // The rest of the backlog, page by page, then a new entry as it is written.
    let last = first.entries.at(-1)!.index;
    while (last < 100) last = (await pages.next()).value!.entries.at(-1)!.index;
    const next = pages.next();
    log.lifecycle("new");
    expect((await next).value!.entries.map((entry: { text: string }) => entry.text)).toEqual(["new"]);
    const ended = pages.next();
    log.close();
    expect((await ended).done).toBe(true);
  });

  it("without follow, sends one page, empty when nothing is after the index", async () => {
    const log = new AgentLog();
    log.lifecycle("one");
    const pages = [];
    for await (const page of readAgentLog(log, 5, 0, false, new AbortController().signal)) pages.push(page);
    expect(pages).toEqual([{ entries: [], firstIndex: 1, lastIndex: 1, dropped: 0 }]);
  });
});
