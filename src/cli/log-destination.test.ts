import { execFileSync } from "node:child_process";
import { constants, createReadStream, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { logDestination, reportDrops } from "./log-destination.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// A pipe nobody reads yet: a FIFO opened read-write (so opening it does not wait for a reader).
function unreadPipe(): { fd: number; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), "hotplex-log-"));
  dirs.push(dir);
  const file = path.join(dir, "stdout");
  execFileSync("mkfifo", [file]);
  return { fd: openSync(file, constants.O_RDWR | constants.O_NONBLOCK), file };
}

describe("hotplexd's log destination", () => {
  it("holds at most its buffer for a reader that does not read, drops the rest, and says how many once read again", async () => {
    const { fd, file } = unreadPipe();
    const bufferBytes = 64 * 1024;
    const destination = logDestination(fd, { bufferBytes, chunkBytes: 1024, flushMs: 20 });
    const logger = pino({ base: {} }, destination);
    reportDrops(destination, logger, 100);
    let drops = 0;
    destination.on("drop", () => (drops += 1));
    const line = "x".repeat(200);
    // ~2 MiB of lines against a 64 KiB pipe and a 64 KiB buffer: never blocks, never grows.
    for (let i = 0; i < 10_000; i += 1) logger.info({ i, line }, "flood");
    expect(drops).toBeGreaterThan(9_000);
    expect((destination as unknown as { _len: number })._len).toBeLessThanOrEqual(bufferBytes);

    // A reader comes: what was kept arrives, then the warning with the count.
    const reader = createReadStream(file);
    let text = "";
    const warning = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no drop warning")), 10_000);
      reader.on("data", (chunk) => {
        text += chunk.toString();
        const found = text.split("\n").find((l) => l.includes("log lines dropped"));
        if (found) {
          clearTimeout(timer);
          resolve(JSON.parse(found) as Record<string, unknown>);
        }
      });
    });
    reader.destroy();
    expect(warning).toMatchObject({ level: 40, msg: "log lines dropped: stdout was not read fast enough" });
    expect(warning.dropped).toBe(drops);
    // Every line that arrived is whole (nothing cut mid-line by the drops).
    const lines = text.split("\n").filter((l) => l.length > 0 && !l.includes("log lines dropped"));
    for (const l of lines.slice(0, -1)) expect(() => JSON.parse(l)).not.toThrow();
    destination.destroy(); // closes the fd too
  });
});
