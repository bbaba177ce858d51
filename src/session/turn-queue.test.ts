import { describe, expect, it } from "vitest";
import { HotplexError } from "../errors.js";
import { MAX_PENDING_AGENT_REQUESTS, PendingRequests } from "./pending-requests.js";
import { TurnQueue } from "./turn-queue.js";

describe("TurnQueue", () => {
  it("runs one turn at a time: a second is refused unless it may queue, up to the limit", () => {
    const turns = new TurnQueue("s1", 2);
    const first = turns.accept("a", "r1", false, 0);
    expect(turns.startNext()).toBe(first);
    const refused = (() => {
      try {
        turns.accept("b", "", false, 0);
      } catch (error) {
        return error as HotplexError;
      }
    })();
    expect(refused?.code).toBe("failed_precondition");
    expect(refused?.message).toContain(`busy with turn ${first.id}; set queue`);
    const second = turns.accept("b", "r2", true, 0);
    turns.accept("c", "", true, 0);
    expect(second.wasQueued).toBe(true);
    expect(() => turns.accept("d", "", true, 0)).toThrow("already has 2 queued turns (the limit)");
    expect(turns.waiting).toBe(2);
    turns.finished(first);
    expect(turns.startNext()).toBe(second);
    // Request ids find the running and the waiting turns (the log remembers ended ones).
    expect(turns.forRequest("r2")).toBe(second);
    expect(turns.forRequest("r1")).toBeUndefined();
    expect(turns.forRequest("")).toBeUndefined();
    expect(turns.takeWaiting()).toHaveLength(1);
  });

  it("takes one waiting turn out by id (a cancel), never the running one", () => {
    const turns = new TurnQueue("s1", 4);
    const running = turns.accept("a", "", false, 0);
    turns.startNext();
    const b = turns.accept("b", "rb", true, 0);
    const c = turns.accept("c", "", true, 0);
    expect(turns.takeWaitingTurn(running.id)).toBeUndefined();
    expect(turns.takeWaitingTurn(b.id)).toBe(b);
    expect(turns.takeWaitingTurn(b.id)).toBeUndefined();
    expect(turns.forRequest("rb")).toBeUndefined();
    expect(turns.waiting).toBe(1);
    turns.finished(running);
    expect(turns.startNext()).toBe(c);
  });
});

describe("PendingRequests", () => {
  it("takes each agent request once, refuses duplicates and excess, and clears at the run's end", () => {
    const pending = new PendingRequests();
    expect(pending.received("1", "can_use_tool", 5)).toBe(true);
    expect(pending.received("1", "can_use_tool")).toBe(false);
    expect(pending.fromAgent).toEqual([{ requestId: "1", subtype: "can_use_tool", receivedAtMs: 5 }]);
    expect(pending.take("1")?.subtype).toBe("can_use_tool");
    expect(pending.take("1")).toBeUndefined();
    for (let i = 0; i < MAX_PENDING_AGENT_REQUESTS; i += 1) expect(pending.received(`x${i}`, "m")).toBe(true);
    expect(pending.received("one-too-many", "m")).toBe(false);
    pending.interruptsSent = 2;
    expect(pending.clear()).toHaveLength(MAX_PENDING_AGENT_REQUESTS);
    expect(pending.fromAgent).toEqual([]);
    expect(pending.interruptsSent).toBe(0);
  });
});
