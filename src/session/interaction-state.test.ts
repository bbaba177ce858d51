import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  ConversationResetSchema,
  type Event,
  EventSchema,
  SessionForkedSchema,
  TitleChangedSchema,
  TurnEndedSchema,
  TurnQueuedSchema,
  TurnStartedSchema,
} from "../../gen/hotplex/v1/event_pb.js";
import { PermissionDecision, PermissionRequestedSchema, PermissionResolvedSchema } from "../../gen/hotplex/v1/interaction_pb.js";
import type { EventPayload } from "../events/event.js";
import { InteractionState, REMEMBERED_REQUEST_IDS } from "./interaction-state.js";

let seq = 0;
function event(turnId: string, payload: EventPayload): Event {
  seq += 1;
  return create(EventSchema, { seq: BigInt(seq), sessionId: "s", turnId, time: timestampFromMs(1_700_000_000_000 + seq), payload });
}
const requested = (turnId: string, requestId: string, inputJson = '{"command":"ls"}') =>
  event(turnId, { case: "permissionRequested", value: create(PermissionRequestedSchema, { requestId, toolName: "Bash", inputJson }) });
const resolved = (turnId: string, requestId: string, forSession = false, decision = PermissionDecision.ALLOW) =>
  event(turnId, { case: "permissionResolved", value: create(PermissionResolvedSchema, { requestId, forSession, decision }) });

describe("InteractionState", () => {
  it("folds pending requests, decisions and for-session rules, and forgets a turn's requests at its end", () => {
    const state = new InteractionState();
    state.apply(requested("t1", "a"));
    state.apply(requested("t1", "b", '{"command":"rm x"}'));
    expect([...state.pending.keys()]).toEqual(["a", "b"]);
    expect(state.pending.get("a")?.turnId).toBe("t1");
    state.apply(resolved("t1", "a", true));
    expect(state.decided("a")).toBe(true);
    expect(state.allowedForSession("Bash", '{"command":"ls"}')).toBe(true);
    // Only the exact call: another input, or a denied for-session answer, makes no rule.
    expect(state.allowedForSession("Bash", '{"command":"ls -la"}')).toBe(false);
    state.apply(resolved("t1", "b", true, PermissionDecision.DENY));
    expect(state.allowedForSession("Bash", '{"command":"rm x"}')).toBe(false);
    state.apply(requested("t2", "c"));
    state.apply(event("t2", { case: "turnEnded", value: create(TurnEndedSchema, {}) }));
    expect(state.pending.size).toBe(0);
  });

  it("lists queued turns until they start or end, and remembers a bounded number of request ids", () => {
    const state = new InteractionState();
    state.apply(event("q1", { case: "turnQueued", value: create(TurnQueuedSchema, { prompt: "one", requestId: "r-q1" }) }));
    state.apply(event("q2", { case: "turnQueued", value: create(TurnQueuedSchema, { prompt: "two" }) }));
    expect([...state.queued.values()].map((q) => q.prompt)).toEqual(["one", "two"]);
    state.apply(event("q1", { case: "turnStarted", value: create(TurnStartedSchema, { requestId: "r-q1" }) }));
    state.apply(event("q2", { case: "turnEnded", value: create(TurnEndedSchema, {}) }));
    expect(state.queued.size).toBe(0);
    // The request id points at the turn's first event (TurnQueued), whose seq - 1 a retry reads from.
    expect(state.turnForRequest("r-q1")).toEqual({ turnId: "q1", fromSeq: Number(seq) - 4 });
    for (let i = 0; i < REMEMBERED_REQUEST_IDS + 10; i += 1) {
      state.apply(event(`t${i}`, { case: "turnStarted", value: create(TurnStartedSchema, { requestId: `r${i}` }) }));
    }
    expect(state.turnForRequest("r0")).toBeUndefined();
    expect(state.turnForRequest(`r${REMEMBERED_REQUEST_IDS + 9}`)?.turnId).toBe(`t${REMEMBERED_REQUEST_IDS + 9}`);
  });

  it("survives its stored form: title, pending, queued, decisions, rules, request ids and fork origin", () => {
    const state = new InteractionState();
    state.apply(event("", { case: "titleChanged", value: create(TitleChangedSchema, { title: "Refactor" }) }));
    state.apply(event("", { case: "sessionForked", value: create(SessionForkedSchema, { parentSessionId: "p", parentProviderSessionId: "conv" }) }));
    state.pendingFork = { providerSessionId: "conv", at: "" };
    state.apply(requested("t1", "a"));
    state.apply(requested("t1", "b"));
    state.apply(resolved("t1", "b", true));
    state.apply(event("t2", { case: "turnQueued", value: create(TurnQueuedSchema, { prompt: "later", requestId: "r2" }) }));
    state.apply(event("", { case: "conversationReset", value: create(ConversationResetSchema, {}) }));
    const restored = new InteractionState();
    restored.restore(state.toJson());
    expect(restored.title).toBe("Refactor");
    expect(restored.forkedFrom?.sessionId).toBe("p");
    expect(restored.pendingFork).toEqual({ providerSessionId: "conv", at: "" });
    expect([...restored.pending.keys()]).toEqual(["a"]);
    expect(restored.pending.get("a")?.request?.toolName).toBe("Bash");
    expect(restored.decided("b")).toBe(true);
    expect(restored.allowedForSession("Bash", '{"command":"ls"}')).toBe(true);
    expect([...restored.queued.keys()]).toEqual(["t2"]);
    expect(restored.turnForRequest("r2")?.turnId).toBe("t2");
    // A session stored before this state existed restores to empty.
    const empty = new InteractionState();
    empty.restore("");
    expect(empty.pending.size + empty.queued.size).toBe(0);
  });
});
