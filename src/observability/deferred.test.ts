import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { DeferredCounter, DeferredHistogram } from "./deferred.js";

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe("deferred metrics", () => {
  it("expose exactly what prom-client's own counter and histogram do for the same observations", async () => {
    const deferred = new Registry();
    const direct = new Registry();
    const counter = new DeferredCounter<"provider" | "outcome">({ name: "t_turns_total", help: "h", labelNames: ["provider", "outcome"], registers: [deferred] });
    const histogram = new DeferredHistogram<"provider" | "outcome">({ name: "t_turn_seconds", help: "h", labelNames: ["provider", "outcome"], buckets: BUCKETS, registers: [deferred] });
    const plainCounter = new Counter({ name: "t_turns_total", help: "h", labelNames: ["provider", "outcome"], registers: [direct] });
    const plainHistogram = new Histogram({ name: "t_turn_seconds", help: "h", labelNames: ["provider", "outcome"], buckets: BUCKETS, registers: [direct] });
    const outcomes = ["completed", "failed", "timed_out"];
    for (let i = 0; i < 5_000; i += 1) {
      const provider = i % 3 === 0 ? "a" : "b";
      const outcome = outcomes[i % outcomes.length] as string;
      const seconds = (i % 97) / 50;
      counter.inc(`${provider}\u0000${outcome}`, () => ({ provider, outcome }), i % 4 === 0 ? 2 : 1);
      histogram.observe(`${provider}\u0000${outcome}`, () => ({ provider, outcome }), seconds);
      plainCounter.inc({ provider, outcome }, i % 4 === 0 ? 2 : 1);
      plainHistogram.observe({ provider, outcome }, seconds);
      // Reading in between hands over what waited; nothing is counted twice.
      if (i === 1_234) expect(await deferred.metrics()).toContain("t_turns_total");
    }
    expect(await deferred.metrics()).toBe(await direct.metrics());
    // A second read with nothing new shows the same.
    expect(await deferred.metrics()).toBe(await direct.metrics());
  });

  it("hand observations over by themselves when many wait, with nobody reading", async () => {
    const registry = new Registry();
    const histogram = new DeferredHistogram<never>({ name: "t_commit_seconds", help: "h", buckets: BUCKETS, registers: [registry] });
    const counter = new DeferredCounter<"code">({ name: "t_errors_total", help: "h", labelNames: ["code"], registers: [registry] });
    for (let i = 0; i < 3_000; i += 1) {
      histogram.observe("", () => ({}), 0.005);
      counter.inc(String(i), () => ({ code: String(i) }));
    }
    // Peek at prom-client's own state without its collect (which would flush): the pending
    // observations were handed over in bounded batches already.
    const plain = (registry.getSingleMetric("t_commit_seconds") as unknown as { hashMap: Record<string, { count: number }> }).hashMap;
    expect(Object.values(plain)[0]?.count).toBeGreaterThanOrEqual(2_048);
    const counted = (registry.getSingleMetric("t_errors_total") as unknown as { hashMap: Record<string, unknown> }).hashMap;
    expect(Object.keys(counted).length).toBeGreaterThanOrEqual(2_048);
    const text = await registry.metrics();
    expect(text).toContain("t_commit_seconds_count 3000");
    expect(text).toContain('t_errors_total{code="2999"} 1');
  });
});
