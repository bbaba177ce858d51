// The normalized event model is the protobuf one: events are built once, as
// messages, and the same objects are logged, replayed and sent to clients.
export {
  type Event,
  EventSchema,
  type SessionStarted,
  SessionStartedSchema,
  type TurnStarted,
  TurnStartedSchema,
  type TextDelta,
  TextDeltaSchema,
  type ThinkingDelta,
  ThinkingDeltaSchema,
  type ToolUse,
  ToolUseSchema,
  type ToolResult,
  ToolResultSchema,
  type TurnEnded,
  TurnEndedSchema,
  type Usage,
  UsageSchema,
  type ErrorEvent,
  ErrorEventSchema,
  type SessionEnded,
  SessionEndedSchema,
  type RawOutput,
  RawOutputSchema,
  StartKind,
  TurnOutcome,
} from "../../gen/hotplex/v1/event_pb.js";

import type { Event } from "../../gen/hotplex/v1/event_pb.js";

/** The typed payload of an event: `{ case: "textDelta", value: TextDelta }` and so on. */
export type EventPayload = Exclude<Event["payload"], { case: undefined }>;

/** The payload case names, e.g. "turnEnded". */
export type EventKind = EventPayload["case"];
