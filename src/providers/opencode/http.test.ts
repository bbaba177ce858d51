import { describe, expect, it } from "vitest";
import { SseParser } from "./http.js";
import { ascendingMessageId } from "./ids.js";

function parse(max: number, chunks: (string | Buffer)[]) {
  const events: string[] = [];
  const overlong: [number, string][] = [];
  const parser = new SseParser(max, (data) => events.push(data), (bytes, head) => overlong.push([bytes, head]));
  for (const chunk of chunks) parser.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  return { events, overlong };
}

describe("SseParser", () => {
  it("reads data events across chunk borders, joining multi-line data and skipping other fields", () => {
    const { events } = parse(1024, ['data: {"a"', ":1}\n\n: comment\nevent: x\nid: 3\ndata:one\r\ndata: two\r\n\r\n", "data: last\n", "\n"]);
    expect(events).toEqual(['{"a":1}', "one\ntwo", "last"]);
  });

  it("keeps multi-byte characters split between chunks", () => {
    const bytes = Buffer.from("data: héllo ✓\n\n");
    const { events } = parse(1024, [bytes.subarray(0, 8), bytes.subarray(8, 15), bytes.subarray(15)]);
    expect(events).toEqual(["héllo ✓"]);
  });

  it("drops an overlong line with its event, tells its start, and goes on", () => {
    const long = `data: {"sessionID":"ses_abcdefgh12345678",${"x".repeat(5000)}}\n`;
    const { events, overlong } = parse(100, [long.slice(0, 60), long.slice(60), "data: after\n\n", "data: ok\n\n"]);
    expect(events).toEqual(["ok"]);
    expect(overlong).toHaveLength(1);
    expect(overlong[0]![0]).toBeGreaterThan(100);
    expect(overlong[0]![1]).toContain('"sessionID":"ses_abcdefgh12345678"');
  });

  it("bounds an event made of many short data lines", () => {
    const { events, overlong } = parse(50, [`${"data: 0123456789\n".repeat(10)}\n`, "data: next\n\n"]);
    expect(events).toEqual(["next"]);
    expect(overlong).toHaveLength(1);
  });

  it("ignores events without data", () => {
    expect(parse(100, ["\n\n\nevent: x\n\n"]).events).toEqual([]);
  });
});

describe("message ids", () => {
  it("have OpenCode's format and sort in creation order", () => {
    const now = Date.now() + 60_000;
    const ids = [ascendingMessageId(now), ascendingMessageId(now), ascendingMessageId(now + 1), ascendingMessageId(now + 1)];
    for (const id of ids) expect(id).toMatch(/^msg_[0-9a-f]{12}[0-9A-Za-z]{14}$/);
    expect([...ids].sort()).toEqual(ids);
    // The same instant as an id of the server's: 12 hex digits of ms * 4096 + counter.
    expect(ids[0]!.slice(4, 16)).toBe(((BigInt(now) * 4096n + 1n) & 0xffffffffffffn).toString(16).padStart(12, "0"));
  });
});
