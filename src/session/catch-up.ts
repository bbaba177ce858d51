import { clone, create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { SessionConfigSchema, TurnInfoSchema } from "../../gen/hotplex/v1/session_pb.js";
import type { Event } from "../events/event.js";
import type { SessionRecord } from "../store/store.js";
import { SessionView } from "./session-view.js";

/**
 * A stored registry entry brought up to date with the events stored after it.
 *
 * The entry is a checkpoint: commits store a turn's events without it (saving it with
 * every commit cost a second page write per commit), and it is saved when the session
 * is created, starts or loses its process, changes config, goes idle, before retention
 * runs and at least every few thousand events. What happened since is in the events,
 * and the session's state is their fold: status, current turn, statistics, the last seq.
 *
 * The live fields (config, agent process, whether a conversation exists) are folded too
 * when they are as of the record; a record taken from a running session holds them as
 * they are now, later than any event given, and they stay.
 */
/**
 * "as_of_record": a stored checkpoint's live fields, which the events after it update;
 * "current": taken from the running session after every event given (see Session.record).
 */
export type LiveFields = "as_of_record" | "current";

export function catchUpRecord(record: SessionRecord, events: Iterable<Event>, liveFields: LiveFields = "as_of_record"): SessionRecord {
  const view = new SessionView(record.sessionId, record.provider, record.providerSessionId, record.workDir);
  view.restore(record);
  // The turn the checkpoint was taken in stays open until its TurnEnded.
  if (record.currentTurnId) view.currentTurn = create(TurnInfoSchema, { turnId: record.currentTurnId });
  const caughtUp = { ...record };
  let applied = 0;
  for (const event of events) {
    if (Number(event.seq) <= record.lastSeq) continue;
    applied += 1;
    view.apply(event, event.time ? timestampMs(event.time) : record.lastActiveMs);
    caughtUp.lastSeq = Number(event.seq);
    if (liveFields === "current") continue;
    const { payload } = event;
    if (payload.case === "sessionStarted") caughtUp.hasConversation = true;
    if (payload.case === "conversationReset") {
      caughtUp.hasConversation = false;
    }
    if (payload.case === "configChanged") {
      caughtUp.config = clone(SessionConfigSchema, caughtUp.config);
      caughtUp.config.model = payload.value.model;
      caughtUp.config.permissionMode = payload.value.permissionMode;
    }
    if (payload.case === "sessionEnded") {
      // The process the checkpoint recorded is gone.
      caughtUp.pgid = 0;
      caughtUp.agentCommand = "";
    }
  }
  if (applied === 0) return record;
  return {
    ...caughtUp,
    status: view.status,
    providerSessionId: view.providerSessionId,
    workDir: view.workDir,
    lastActiveMs: view.lastActiveMs,
    stats: view.stats.stats,
    currentTurnId: view.currentTurn?.turnId ?? "",
    extras: view.interaction.toJson(),
  };
}
