import { describe, expect, it } from "vitest";
import { AfterTick } from "./after-tick.js";

const nextImmediate = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("AfterTick", () => {
  it("runs nothing now, then everything queued in this tick in order, once", async () => {
    const errors: unknown[] = [];
    const later = new AfterTick((error) => errors.push(error));
    const ran: number[] = [];
    for (let i = 0; i < 5; i += 1) later.run(() => ran.push(i));
    expect(ran).toEqual([]);
    await nextImmediate();
    expect(ran).toEqual([0, 1, 2, 3, 4]);
    await nextImmediate();
    expect(ran).toEqual([0, 1, 2, 3, 4]);
    expect(errors).toEqual([]);
  });

  it("hands a task's error to onError and still runs the tasks after it, and those a task queues", async () => {
    const errors: unknown[] = [];
    const later = new AfterTick((error) => errors.push(error));
    const ran: string[] = [];
    later.run(() => {
      throw new Error("broken observer");
    });
    later.run(() => {
      ran.push("second");
      later.run(() => ran.push("queued by second"));
    });
    await nextImmediate();
    await nextImmediate();
    expect(ran).toEqual(["second", "queued by second"]);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe("broken observer");
  });
});
