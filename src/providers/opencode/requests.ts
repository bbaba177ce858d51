import type { AgentDecision, AgentQuestion, AgentRequest } from "../provider.js";
import { ITEM_ID } from "./ids.js";

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const str = (value: unknown, max = 4096): string => (typeof value === "string" ? value.slice(0, max) : "");
const id = (value: unknown): string => (typeof value === "string" && ITEM_ID.test(value) ? value : "");

/** One rule of an OpenCode session's permission ruleset (the last matching rule wins). */
export interface PermissionRule {
  permission: string;
  pattern: string;
  action: "allow" | "ask" | "deny";
}

// With approvals the tools that change something or reach out ask; reading stays free.
// `task` asks too: a subagent runs in a child session whose own tool calls would not ask
// (its requests carry the child's id and never reach this session). The question tool
// is allowed, so that its questions reach the client.
const ASKING: readonly string[] = ["bash", "edit", "webfetch", "websearch", "task"];

/** The session rules while the host approves: the shared config allows these tools. */
export const APPROVAL_RULES: readonly PermissionRule[] = [
  ...ASKING.map((permission) => ({ permission, pattern: "*", action: "ask" as const })),
  { permission: "question", pattern: "*", action: "allow" },
];

/** The session rules that give the decisions back to the shared config (what it says for these tools). */
export const CONFIG_RULES: readonly PermissionRule[] = [
  ...ASKING.map((permission) => ({ permission, pattern: "*", action: "allow" as const })),
  { permission: "question", pattern: "*", action: "deny" },
];

/**
 * The rules to add to a session's ruleset so that it asks (approvals) or not, or none
 * when it already does. OpenCode appends the rules a PATCH gives (it never replaces
 * them) and the last match wins, so only the tail of the current ruleset matters.
 */
export function rulesToAdd(approvals: boolean, current: unknown): PermissionRule[] {
  const rules = Array.isArray(current) ? current.filter(isObject) : [];
  const wanted = approvals ? APPROVAL_RULES : CONFIG_RULES;
  // A session that never had rules of ours follows the config already.
  if (!approvals && rules.length === 0) return [];
  const tail = rules.slice(-wanted.length);
  const same =
    tail.length === wanted.length && tail.every((rule, i) => rule.permission === wanted[i]!.permission && rule.pattern === wanted[i]!.pattern && rule.action === wanted[i]!.action);
  return same ? [] : [...wanted];
}

/** What events.ts knows of a tool call when its permission is asked. */
export interface KnownCall {
  input: Json;
}

/**
 * A `permission.asked` as an AgentRequest, or undefined when it has no id to answer by.
 * Its tool and input are what OpenCode asks about: the permission (bash, edit, webfetch,
 * task…) and its metadata (the command, the file and diff, the URL), or its patterns
 * without. They come with the request itself, so identical calls always make identical
 * requests (the session allows those "for the session" by tool and input): the tool
 * call's own input may or may not have arrived before its request does. The call, when
 * known, adds its description.
 */
export function permissionRequest(properties: Json, call: (callID: string) => KnownCall | undefined): AgentRequest | undefined {
  const requestId = id(properties.id);
  if (!requestId) return undefined;
  const permission = str(properties.permission, 200) || "unknown";
  const tool = isObject(properties.tool) ? properties.tool : {};
  const toolUseId = id(tool.callID);
  const known = toolUseId ? call(toolUseId) : undefined;
  const metadata = isObject(properties.metadata) ? properties.metadata : {};
  const patterns = strings(properties.patterns, 64);
  const input: Json = Object.keys(metadata).length > 0 ? metadata : { patterns };
  const callInput = known?.input ?? {};
  const command = str(metadata.command, 64 * 1024);
  const path = str(metadata.filepath, 4096) || str(metadata.filePath, 4096) || (permission === "external_directory" ? (patterns[0] ?? "") : "");
  const description = str(callInput.description, 1024) || `${permission}${patterns.length > 0 ? `: ${patterns.join(" ").slice(0, 2048)}` : ""}`;
  let inputJson: string;
  try {
    inputJson = JSON.stringify(input);
  } catch {
    inputJson = "{}";
  }
  return {
    requestId,
    kind: "permission",
    toolName: permission,
    toolUseId,
    inputJson,
    description,
    path,
    command,
    // What OpenCode would allow from then on with "always" (hotplex never answers so; see answerBody).
    suggestionsJson: strings(properties.always, 16).map((pattern) => JSON.stringify({ permission, pattern })),
    questions: [],
  };
}

/** A `question.asked` as an AgentRequest (questions keyed by their position), or undefined without an id. */
export function questionRequest(properties: Json): AgentRequest | undefined {
  const requestId = id(properties.id);
  if (!requestId) return undefined;
  const tool = isObject(properties.tool) ? properties.tool : {};
  const list = Array.isArray(properties.questions) ? properties.questions.slice(0, 16) : [];
  const questions: AgentQuestion[] = list.map((q, index) => {
    const info = isObject(q) ? q : {};
    const options = Array.isArray(info.options) ? info.options.slice(0, 32).filter(isObject) : [];
    return {
      id: String(index),
      question: str(info.question),
      header: str(info.header, 256),
      options: options.map((o) => ({ label: str(o.label), description: str(o.description) })),
      multiSelect: info.multiple === true,
    };
  });
  return {
    requestId,
    kind: "question",
    toolName: "question",
    toolUseId: id(tool.callID),
    inputJson: JSON.stringify({ questions: questions.map(({ question, header }) => ({ question, header })) }),
    description: questions[0]?.question ?? "",
    path: "",
    command: "",
    suggestionsJson: [],
    questions,
  };
}

/** The HTTP request that answers a request: its route and body. */
export interface AnswerCall {
  path: string;
  body: unknown;
}

/**
 * How a decision goes back to OpenCode. An allow is "once" even for the rest of the
 * session: OpenCode's "always" allows the request's `always` patterns (e.g. `echo *` for
 * one echo command), and for every session of the server in the same directory until
 * it restarts, where hotplex means identical calls of this session only (the session
 * answers those itself). A question is answered by position, each answer a list of
 * labels (multiple choices joined with ", " in hotplex); a decision of the wrong kind
 * refuses.
 */
export function answerCall(requestId: string, request: AgentRequest | undefined, decision: AgentDecision): AnswerCall {
  const encoded = encodeURIComponent(requestId);
  const question = request ? request.kind === "question" : requestId.startsWith("que_");
  if (question) {
    if (decision.behavior !== "answer") return { path: `/question/${encoded}/reject`, body: undefined };
    const questions = request?.questions ?? [];
    const answers = questions.map((q) => {
      const answer = decision.answers[q.id] ?? "";
      const labels = q.multiSelect ? answer.split(", ") : [answer];
      return labels.map((label) => label.trim()).filter((label) => label.length > 0);
    });
    return { path: `/question/${encoded}/reply`, body: { answers } };
  }
  if (decision.behavior === "allow") return { path: `/permission/${encoded}/reply`, body: { reply: "once" } };
  const message = decision.behavior === "deny" ? decision.message.slice(0, 4096) : "";
  return { path: `/permission/${encoded}/reply`, body: { reply: "reject", ...(message ? { message } : {}) } };
}

function strings(value: unknown, max: number): string[] {
  if (!Array.isArray(value)) return [];
  return value
    .filter((item): item is string => typeof item === "string")
    .slice(0, max)
    .map((item) => item.slice(0, 4096));
}
