import { describe, expect, it } from "vitest";
import { LineSplitter, TailBuffer } from "./line-splitter.js";

function splitter(): { lines: string[]; s: LineSplitter } {
  const lines: string[] = [];
  return { lines, s: new LineSplitter((line) => lines.push(line)) };
}

const bytes = (text: string) => Buffer.from(text, "utf8");

describe("LineSplitter", () => {
  it("emits each complete line of a chunk and holds back the unfinished one", () => {
    const { lines, s } = splitter();
    s.push(bytes("one\ntwo\nthr"));
    expect(lines).toEqual(["one", "two"]);
    s.push(bytes("ee\n"));
    expect(lines).toEqual(["one", "two", "three"]);
  });

  it("joins a line split across several chunks", () => {
    const { lines, s } = splitter();
    for (const piece of ['{"a"', ":", "1", "}\n", '{"b":2}', "\n"]) s.push(bytes(piece));
    expect(lines).toEqual(['{"a":1}', '{"b":2}']);
  });

  it("strips the \\r of CRLF line ends, also when \\r and \\n arrive in different chunks", () => {
    const { lines, s } = splitter();
    s.push(bytes("a\r\nb\r"));
    s.push(bytes("\nc\r\n"));
    expect(lines).toEqual(["a", "b", "c"]);
  });

  it("keeps a \\r that is not at the end of a line", () => {
    const { lines, s } = splitter();
    s.push(bytes("a\rb\n\r\n"));
    expect(lines).toEqual(["a\rb", ""]);
  });

  it("keeps a multi-byte UTF-8 character split across two chunks whole", () => {
    const { lines, s } = splitter();
    const euro = bytes("€"); // 3 bytes
    const emoji = bytes("😀"); // 4 bytes
    s.push(Buffer.concat([bytes("price: "), euro.subarray(0, 1)]));
    s.push(Buffer.concat([euro.subarray(1), bytes(" "), emoji.subarray(0, 2)]));
    s.push(Buffer.concat([emoji.subarray(2), bytes("\n")]));
    expect(lines).toEqual(["price: € 😀"]);
    expect(lines.join("")).not.toContain("\ufffd");
  });

  it("handles a UTF-8 character split one byte per chunk", () => {
    const { lines, s } = splitter();
    for (const byte of bytes("é😀\n")) s.push(Buffer.from([byte]));
    expect(lines).toEqual(["é😀"]);
  });

  it("emits a 5 MB line arriving in many small chunks as one line", { timeout: 5_000 }, () => {
    const { lines, s } = splitter();
    const size = 5 * 1024 * 1024;
    const chunk = Buffer.alloc(1024, "x");
    s.push(bytes("short\n"));
    for (let sent = 0; sent < size; sent += chunk.length) s.push(chunk);
    s.push(bytes("\nafter\n"));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe("short");
    expect(lines[1]).toHaveLength(size);
    expect(lines[1]).toBe("x".repeat(size));
    expect(lines[2]).toBe("after");
  });

  it("preserves empty lines as empty strings", () => {
    const { lines, s } = splitter();
    s.push(bytes("\n\na\n\n"));
    s.push(bytes("\n"));
    expect(lines).toEqual(["", "", "a", "", ""]);
  });

  it("end() flushes a last line that had no newline", () => {
    const { lines, s } = splitter();
    s.push(bytes("first\nla"));
    s.push(bytes("st"));
    expect(lines).toEqual(["first"]);
    s.end();
    expect(lines).toEqual(["first", "last"]);
  });

  it("end() emits nothing when the input ended with a newline, or was empty", () => {
    const { lines, s } = splitter();
    s.push(bytes("only\n"));
    s.end();
    expect(lines).toEqual(["only"]);

    const empty = splitter();
    empty.s.end();
    expect(empty.lines).toEqual([]);
  });

  it("end() flushes an incomplete UTF-8 sequence as a replacement character instead of dropping it", () => {
    const { lines, s } = splitter();
    s.push(Buffer.concat([bytes("cut "), bytes("€").subarray(0, 2)]));
    s.end();
    expect(lines).toEqual(["cut \ufffd"]);
  });
});

describe("TailBuffer", () => {
  it("returns everything while under the limit", () => {
    const tail = new TailBuffer(10);
    tail.push("abc");
    tail.push("def");
    expect(tail.toString()).toBe("abcdef");
  });

  it("keeps only the last N characters", () => {
    const tail = new TailBuffer(5);
    for (const piece of ["hello ", "wor", "ld", "!"]) tail.push(piece);
    expect(tail.toString()).toBe("orld!");
  });

  it("keeps the last N characters of a single push larger than N", () => {
    const tail = new TailBuffer(4);
    tail.push("0123456789");
    expect(tail.toString()).toBe("6789");
  });

  it("stays correct and bounded over many pushes", () => {
    const tail = new TailBuffer(100);
    let all = "";
    for (let i = 0; i < 10_000; i++) {
      const piece = `${i},`;
      tail.push(piece);
      all += piece;
    }
    expect(tail.toString()).toBe(all.slice(-100));
  });

  it("defaults to 8 KiB", () => {
    const tail = new TailBuffer();
    tail.push("a".repeat(10_000));
    tail.push("end");
    expect(tail.toString()).toHaveLength(8 * 1024);
    expect(tail.toString().endsWith("aend")).toBe(true);
  });
});
