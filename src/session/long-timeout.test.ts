import { afterEach, describe, expect, it, vi } from "vitest";
import { setLongTimeout } from "./long-timeout.js";

describe("setLongTimeout", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each([1, 2 ** 31 - 1, 2 ** 31, 30 * 24 * 3_600_000, 4_294_967_295_000])("fires after exactly %d ms, not before", (ms) => {
    vi.useFakeTimers();
    const fired = vi.fn();
    setLongTimeout(fired, ms);
    vi.advanceTimersByTime(ms - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("never fires once cleared, also between its steps", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const timer = setLongTimeout(fired, 2 ** 32);
    vi.advanceTimersByTime(2 ** 31);
    timer.clear();
    vi.advanceTimersByTime(2 ** 33);
    expect(fired).not.toHaveBeenCalled();
  });
});
