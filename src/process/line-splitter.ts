import { StringDecoder } from "node:string_decoder";

/**
 * Splits a byte stream into lines. A line may be long (a 5 MB tool result is one line like
 * any other) but not unbounded: a stream that never sends a newline would grow one string
 * until V8 gives up ("Invalid string length" at ~512 MiB) and take the daemon with it. A
 * line longer than `maxLineBytes` is dropped, `onOverlong` is told once, and splitting goes
 * on after the next newline. Partial UTF-8 sequences across chunks are kept whole by the
 * decoder.
 */
export class LineSplitter {
  #decoder = new StringDecoder("utf8");
  #pending = "";
  /** Bytes of the unfinished line (the text after the last newline). */
  #pendingBytes = 0;
  /** Dropping the rest of an overlong line, up to its newline. */
  #discarding = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLineBytes = Number.POSITIVE_INFINITY,
    private readonly onOverlong: (bytes: number) => void = () => {},
  ) {}

  push(chunk: Buffer): void {
    const lastNewline = chunk.lastIndexOf(10);
    if (lastNewline === -1) {
      this.#pendingBytes += chunk.length;
      if (this.#discarding) return;
      if (this.#pendingBytes > this.maxLineBytes) {
        this.#overlong();
        return;
      }
    }
    // Only the new text is searched for newlines: rescanning the pending part on every
    // chunk made a long line cost O(length²) (a 5 MB line in 1 KB chunks took ~15 s).
    const text = this.#decoder.write(chunk);
    let start = 0;
    let newline = text.indexOf("\n");
    while (newline !== -1) {
      if (this.#discarding) {
        // The newline that ends the dropped line.
        this.#discarding = false;
      } else {
        let line = this.#pending + text.slice(start, newline);
        this.#pending = "";
        if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
        this.onLine(line);
      }
      start = newline + 1;
      newline = text.indexOf("\n", start);
    }
    if (lastNewline !== -1) {
      this.#pendingBytes = chunk.length - lastNewline - 1;
      if (this.#pendingBytes > this.maxLineBytes) {
        this.#overlong();
        return;
      }
    }
    if (!this.#discarding) this.#pending += start === 0 ? text : text.slice(start);
  }

  /** Emits a last line that had no newline. */
  end(): void {
    const rest = this.#pending + this.#decoder.end();
    this.#pending = "";
    if (rest.length > 0 && !this.#discarding) this.onLine(rest);
  }

  #overlong(): void {
    this.#pending = "";
    this.#discarding = true;
    this.onOverlong(this.#pendingBytes);
  }
}

/** Keeps the last `maxChars` characters written, for error reports. */
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
