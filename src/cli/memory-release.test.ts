import { describe, expect, it } from "vitest";
import { type MemoryRelease, shouldRelease, startMemoryRelease } from "./memory-release.js";

const MiB = 1024 * 1024;

describe("memory release", () => {
  it("releases only when the loop is quiet and the heap holds enough unused space", () => {
    expect(shouldRelease(0.01, 100 * MiB, 30 * MiB, 16 * MiB)).toBe(true);
    expect(shouldRelease(0.5, 100 * MiB, 30 * MiB, 16 * MiB)).toBe(false); // busy
    expect(shouldRelease(0.01, 40 * MiB, 30 * MiB, 16 * MiB)).toBe(false); // little slack
  });

  it("runs a compacting GC once quiet, reports it, and stops when told", async () => {
    // Garbage spread over many pages, a little of it kept alive: slack a compaction frees.
    const kept: unknown[] = [];
    for (let i = 0; i < 200_000; i += 1) {
      const item = { i, text: `item ${i}` };
      if (i % 100 === 0) kept.push(item);
    }
    const releases: MemoryRelease[] = [];
    let stop!: () => void;
    await new Promise<void>((resolve) => {
      stop = startMemoryRelease({
        quietMs: 50,
        minSlackBytes: 0,
        onRelease: (release) => {
          releases.push(release);
          resolve();
        },
      });
    });
    stop();
    const count = releases.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(releases.length).toBe(count);
    const [release] = releases;
    expect(release?.heapCommittedAfter).toBeGreaterThan(0);
    expect(release?.heapUsedAfter).toBeLessThanOrEqual(release?.heapCommittedAfter ?? 0);
    // Whether committed space shrinks is V8's call (other work in this process may grow it):
    // only that both sides were measured.
    expect(release?.heapCommittedBefore).toBeGreaterThan(0);
    expect(release?.rssAfter).toBeGreaterThan(0);
    expect(kept.length).toBe(2000);
  });
});
