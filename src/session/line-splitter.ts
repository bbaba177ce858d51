import { StringDecoder } from "node:string_decoder";

/**
 * Splits a byte stream into lines with no length limit: a 5 MB tool result is one line
 * like any other. (An earlier system killed the session on any line over 512 KB.)
 * Partial UTF-8 sequences across chunks are kept whole by the decoder.
 */
export class LineSplitter {
  #decoder = new StringDecoder("utf8");
  #pending = "";

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    // Only the new text is searched for newlines: rescanning the pending part on every
    // chunk made a long line cost O(length²) (a 5 MB line in 1 KB chunks took ~15 s).
    const text = this.#decoder.write(chunk);
    let start = 0;
    let newline = text.indexOf("\n");
    while (newline !== -1) {
      let line = this.#pending + text.slice(start, newline);
      this.#pending = "";
      if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
      this.onLine(line);
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    this.#pending += start === 0 ? text : text.slice(start);
  }

  /** Emits a last line that had no newline. */
  end(): void {
    const rest = this.#pending + this.#decoder.end();
    this.#pending = "";
    if (rest.length > 0) this.onLine(rest);
  }
}

/** Keeps the last `maxBytes` characters written, for error reports. */
export class TailBuffer {
  #chunks: string[] = [];
  #length = 0;

  constructor(private readonly maxChars = 8 * 1024) {}

  push(text: string): void {
    this.#chunks.push(text);
    this.#length += text.length;
    while (this.#length > this.maxChars * 2 && this.#chunks.length > 1) {
      this.#length -= this.#chunks.shift()?.length ?? 0;
    }
  }

  toString(): string {
    const all = this.#chunks.join("");
    return all.length > this.maxChars ? all.slice(all.length - this.maxChars) : all;
  }
}
