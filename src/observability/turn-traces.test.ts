import { describe, expect, it } from "vitest";
import { TurnTraces } from "./turn-traces.js";

const trace = (traceId: string) => ({ ids: { traceId, spanId: "0".repeat(15) + "1", sampled: true } });

describe("TurnTraces", () => {
  it("hands each expected trace to one turn, oldest call first, per tenant, session and request id", () => {
    const turns = new TurnTraces();
    turns.expect("a", "s", "", trace("1"));
    turns.expect("a", "s", "", trace("2"));
    turns.expect("b", "s", "", trace("3"));
    turns.expect("a", "s", "r1", trace("4"));
    expect(turns.claim("a", "s", "r1")?.ids.traceId).toBe("4");
    expect(turns.claim("a", "s", "")?.ids.traceId).toBe("1");
    expect(turns.claim("a", "s", "")?.ids.traceId).toBe("2");
    expect(turns.claim("a", "s", "")).toBeUndefined();
    // Another tenant's call with the same session id is not this session's.
    expect(turns.claim("b", "s", "")?.ids.traceId).toBe("3");
    expect(turns.size).toBe(0);
  });

  it("forgets a released (failed) call, and a claimed one stays claimed", () => {
    const turns = new TurnTraces();
    const failed = turns.expect("a", "s", "", trace("1"));
    const ok = turns.expect("a", "s", "", trace("2"));
    turns.release(failed);
    expect(turns.claim("a", "s", "")?.ids.traceId).toBe("2");
    turns.release(ok);
    expect(turns.size).toBe(0);
  });

  it("lets stale expectations age out and stays bounded however many calls never start a turn", () => {
    const turns = new TurnTraces();
    turns.expect("a", "s", "", trace("old"), 0);
    turns.expect("a", "s", "", trace("new"), 2 * 60 * 60_000);
    expect(turns.claim("a", "s", "", 2 * 60 * 60_000)?.ids.traceId).toBe("new");
    for (let i = 0; i < 10_000; i += 1) turns.expect("a", `s${i}`, "retry", trace(String(i)));
    expect(turns.size).toBe(4096);
    expect(turns.claim("a", "s0", "retry")).toBeUndefined();
    expect(turns.claim("a", "s9999", "retry")?.ids.traceId).toBe("9999");
  });
});
