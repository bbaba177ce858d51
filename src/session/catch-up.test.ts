import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { SessionConfigSchema, SessionStatsSchema, SessionStatus } from "../../gen/hotplex/v1/session_pb.js";
import {
  type Event,
  EventSchema,
  type EventPayload,
  SessionEndedSchema,
  SessionStartedSchema,
  TextDeltaSchema,
  TurnEndedSchema,
  TurnOutcome,
  TurnStartedSchema,
  UsageSchema,
} from "../events/event.js";
import { ConfigChangedSchema, ConversationResetSchema, StatusChangedSchema, TitleChangedSchema } from "../../gen/hotplex/v1/event_pb.js";
import type { SessionRecord } from "../store/store.js";
import { catchUpRecord } from "./catch-up.js";

const T0 = 1_700_000_000_000;

function checkpoint(overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    key: "default/s",
    tenant: "default",
    sessionId: "s",
    incarnation: "inc",
    provider: "claude-code",
    providerSessionId: "p-1",
    workDir: "/srv/work/s",
    config: create(SessionConfigSchema, {}),
    status: SessionStatus.READY,
    createdAtMs: T0,
    lastActiveMs: T0 + 1_000,
    stats: create(SessionStatsSchema, { turns: 1, inputTokens: 10n }),
    pgid: 4242,
    agentCommand: "claude",
    hasConversation: true,
    currentTurnId: "",
    lastSeq: 3,
    extras: "",
    ...overrides,
  };
}

let nextSeq = 4;
function event(turnId: string, payload: EventPayload, seq = nextSeq++): Event {
  return create(EventSchema, { seq: BigInt(seq), sessionId: "s", turnId, time: timestampFromMs(T0 + seq * 1_000), payload });
}

// The session logs a StatusChanged on every transition; the fold takes the status from it.
const status = (turnId: string, value: SessionStatus) =>
  event(turnId, { case: "statusChanged", value: create(StatusChangedSchema, { status: value }) });
const started = (turnId: string) => event(turnId, { case: "turnStarted", value: create(TurnStartedSchema, { prompt: "go" }) });
const delta = (turnId: string, seq?: number) => event(turnId, { case: "textDelta", value: create(TextDeltaSchema, { text: "hi" }) }, seq);
const ended = (turnId: string) =>
  event(turnId, {
    case: "turnEnded",
    value: create(TurnEndedSchema, { outcome: TurnOutcome.COMPLETED, usage: create(UsageSchema, { inputTokens: 5n }) }),
  });

describe("catchUpRecord", () => {
  it("folds the turns stored after the checkpoint into its state, statistics and last seq", () => {
    nextSeq = 4;
    const events = [started("t2"), delta("t2"), ended("t2"), started("t3"), status("t3", SessionStatus.BUSY), delta("t3")];
    const record = catchUpRecord(checkpoint(), events);
    expect(record).toMatchObject({ lastSeq: 9, status: SessionStatus.BUSY, currentTurnId: "t3", lastActiveMs: T0 + 9_000, pgid: 4242 });
    expect(record.stats.turns).toBe(2);
    expect(record.stats.inputTokens).toBe(15n);
  });

  it("closes the turn the checkpoint was taken in when its end was stored after it", () => {
    nextSeq = 4;
    const record = catchUpRecord(checkpoint({ status: SessionStatus.BUSY, currentTurnId: "t2" }), [
      delta("t2"),
      ended("t2"),
      status("", SessionStatus.READY),
    ]);
    expect(record).toMatchObject({ lastSeq: 6, status: SessionStatus.READY, currentTurnId: "" });
    expect(record.stats.turns).toBe(2);
  });

  it("forgets the process group once the stored events say the process ended", () => {
    nextSeq = 4;
    const record = catchUpRecord(checkpoint(), [
      event("", { case: "sessionEnded", value: create(SessionEndedSchema, { reason: "idle" }) }),
      status("", SessionStatus.DEAD),
    ]);
    expect(record).toMatchObject({ status: SessionStatus.DEAD, pgid: 0, agentCommand: "", lastSeq: 5 });
  });

  it("takes a start's conversation and provider session id", () => {
    nextSeq = 4;
    const start = event("t2", {
      case: "sessionStarted",
      value: create(SessionStartedSchema, { providerSessionId: "p-2", workDir: "/srv/work/s", pid: 77 }),
    });
    const record = catchUpRecord(checkpoint({ hasConversation: false, status: SessionStatus.STARTING }), [start, status("t2", SessionStatus.READY)]);
    expect(record).toMatchObject({ hasConversation: true, providerSessionId: "p-2", status: SessionStatus.READY });
  });

  it("takes settings changed, a reset conversation and the interactive state from events stored after the checkpoint", () => {
    nextSeq = 4;
    const record = catchUpRecord(checkpoint({ hasConversation: true }), [
      event("", { case: "configChanged", value: create(ConfigChangedSchema, { model: "opus", permissionMode: "plan" }) }),
      event("", { case: "conversationReset", value: create(ConversationResetSchema, { previousProviderSessionId: "p-1", providerSessionId: "p-new" }) }),
      event("", { case: "titleChanged", value: create(TitleChangedSchema, { title: "Later" }) }),
    ]);
    expect(record.config).toMatchObject({ model: "opus", permissionMode: "plan" });
    expect(record).toMatchObject({ hasConversation: false, providerSessionId: "p-new", lastSeq: 6 });
    expect(JSON.parse(record.extras).title).toBe("Later");
  });

  it("returns the checkpoint itself when nothing was stored after it, ignoring older events", () => {
    const stored = checkpoint();
    expect(catchUpRecord(stored, [delta("t1", 2), delta("t1", 3)])).toBe(stored);
    expect(catchUpRecord(stored, [])).toBe(stored);
  });
});
