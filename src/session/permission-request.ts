import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type PermissionRequested,
  PermissionRequestedSchema,
  QuestionOptionSchema,
  QuestionSchema,
  RequestKind,
} from "../../gen/hotplex/v1/interaction_pb.js";
import type { AgentRequest } from "../providers/provider.js";

// Bounds on what an agent's request may put in the log: an agent's output is hostile, and
// a request is shown to every subscriber and kept in every snapshot while it waits.
const MAX_NAME_CHARS = 256;
const MAX_TEXT_CHARS = 4096;
const MAX_COMMAND_CHARS = 64 * 1024;
/** The largest tool input a client is asked about; a larger one is denied at once. */
export const MAX_INPUT_JSON_BYTES = 1024 * 1024;
const MAX_SUGGESTIONS = 16;
const MAX_QUESTIONS = 16;
const MAX_OPTIONS = 32;

/** Why a request cannot be put to a client (it is denied at once), or undefined. */
export function unaskable(request: AgentRequest): string | undefined {
  if (Buffer.byteLength(request.inputJson, "utf8") > MAX_INPUT_JSON_BYTES) {
    return `the tool input is larger than ${MAX_INPUT_JSON_BYTES} bytes: too large to ask a client about`;
  }
  if (request.kind === "question" && request.questions.length === 0) return "the question has no questions";
  return undefined;
}

/** The PermissionRequested event for an agent's request, every field bounded. */
export function permissionRequested(
  request: AgentRequest,
  requestId: string,
  deadlineMs: number | undefined,
  inputEditable: boolean,
): PermissionRequested {
  return create(PermissionRequestedSchema, {
    requestId,
    kind: request.kind === "question" ? RequestKind.QUESTION : RequestKind.PERMISSION,
    toolName: clip(request.toolName, MAX_NAME_CHARS),
    toolUseId: clip(request.toolUseId, MAX_NAME_CHARS),
    inputJson: request.inputJson || "{}",
    description: clip(request.description, MAX_TEXT_CHARS),
    path: clip(request.path, MAX_TEXT_CHARS),
    command: clip(request.command, MAX_COMMAND_CHARS),
    suggestionsJson: request.suggestionsJson.slice(0, MAX_SUGGESTIONS).map((s) => clip(s, MAX_TEXT_CHARS)),
    questions: request.questions.slice(0, MAX_QUESTIONS).map((q) =>
      create(QuestionSchema, {
        id: clip(q.id, MAX_TEXT_CHARS),
        question: clip(q.question, MAX_TEXT_CHARS),
        header: clip(q.header, MAX_NAME_CHARS),
        multiSelect: q.multiSelect,
        options: q.options
          .slice(0, MAX_OPTIONS)
          .map((o) => create(QuestionOptionSchema, { label: clip(o.label, MAX_TEXT_CHARS), description: clip(o.description, MAX_TEXT_CHARS) })),
      }),
    ),
    deadline: deadlineMs === undefined ? undefined : timestampFromMs(deadlineMs),
    inputEditable: request.kind === "permission" && inputEditable,
  });
}

function clip(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) : text;
}
