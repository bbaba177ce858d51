import type { AgentDecision, AgentQuestion, AgentRequest } from "../provider.js";
import { isObject } from "../transport/jsonrpc.js";

// What the app-server asks its client (server requests) and how each is answered. Only
// approvals and questions go to the host; anything else is refused at once by the caller.

/** A server request put to the host, with what its answer must look like. */
export interface MappedRequest {
  request: AgentRequest;
  /** The JSON-RPC result that answers it with `decision`. */
  respond(decision: AgentDecision): unknown;
}

// Bounds on what one request may hold (an agent's output is hostile; the session clips
// again before logging).
const MAX_TEXT = 64 * 1024;
const MAX_LIST = 64;
const MAX_CHANGES = 1000;

const str = (value: unknown, max = MAX_TEXT): string => (typeof value === "string" ? value.slice(0, max) : "");
const list = (value: unknown, max = MAX_LIST): unknown[] => (Array.isArray(value) ? value.slice(0, max) : []);

/** One file of a file change, as the tool_use event names it. */
export interface FileChangeEntry {
  path: string;
  kind: string;
}

/** The file changes of an item, from `item/started` (its approval request names only the item). */
export function fileChangesOf(item: Record<string, unknown>): FileChangeEntry[] {
  return list(item.changes, MAX_CHANGES)
    .filter(isObject)
    .map((change) => ({ path: str(change.path), kind: isObject(change.kind) ? str(change.kind.type, 100) : "" }));
}

/**
 * The host's view of a server request, or undefined when the host does not handle its
 * method. `fileChanges` gives the changes of a file-change item by its id.
 */
export function mapServerRequest(
  requestId: string,
  method: string,
  params: unknown,
  fileChanges: (itemId: string) => FileChangeEntry[] | undefined,
): MappedRequest | undefined {
  const p = isObject(params) ? params : {};
  switch (method) {
    case "item/commandExecution/requestApproval": {
      const command = str(p.command);
      const cwd = str(p.cwd);
      return {
        // The same tool name and input as the call's tool_use event, so that "allow for the
        // session" matches the identical call later.
        request: permission(requestId, p.kind === "writeStdin" ? "write_stdin" : "shell", str(p.itemId, 256), { command, cwd }, {
          description: str(p.reason),
          path: cwd,
          command,
          suggestions: [
            ...(Array.isArray(p.proposedExecpolicyAmendment) ? [{ execpolicyAmendment: list(p.proposedExecpolicyAmendment).map((s) => str(s)) }] : []),
            ...list(p.proposedNetworkPolicyAmendments).map((amendment) => ({ networkPolicyAmendment: amendment })),
          ],
        }),
        respond: (decision) => ({ decision: v2Decision(decision) }),
      };
    }
    case "item/fileChange/requestApproval": {
      const itemId = str(p.itemId, 256);
      const changes = fileChanges(itemId) ?? [];
      const grantRoot = str(p.grantRoot);
      return {
        request: permission(requestId, "apply_patch", itemId, { changes }, {
          description: str(p.reason),
          path: changes[0]?.path ?? grantRoot,
          command: "",
          suggestions: grantRoot ? [{ grantRoot }] : [],
        }),
        respond: (decision) => ({ decision: v2Decision(decision) }),
      };
    }
    case "execCommandApproval": {
      // The legacy form (older app-servers): the command as argv.
      const command = list(p.command, 1000)
        .map((s) => str(s))
        .join(" ")
        .slice(0, MAX_TEXT);
      const cwd = str(p.cwd);
      return {
        request: permission(requestId, "shell", str(p.callId, 256), { command, cwd }, { description: str(p.reason), path: cwd, command, suggestions: [] }),
        respond: (decision) => ({ decision: legacyDecision(decision) }),
      };
    }
    case "applyPatchApproval": {
      const files = isObject(p.fileChanges) ? Object.keys(p.fileChanges).slice(0, MAX_CHANGES) : [];
      const changes = files.map((file) => {
        const change = isObject(p.fileChanges) && isObject(p.fileChanges[file]) ? p.fileChanges[file] : {};
        return { path: file.slice(0, MAX_TEXT), kind: str(change.type, 100) };
      });
      const grantRoot = str(p.grantRoot);
      return {
        request: permission(requestId, "apply_patch", str(p.callId, 256), { changes }, {
          description: str(p.reason),
          path: changes[0]?.path ?? grantRoot,
          command: "",
          suggestions: grantRoot ? [{ grantRoot }] : [],
        }),
        respond: (decision) => ({ decision: legacyDecision(decision) }),
      };
    }
    case "item/tool/requestUserInput":
      return userInput(requestId, p);
    default:
      return undefined;
  }
}

function permission(
  requestId: string,
  toolName: string,
  toolUseId: string,
  input: unknown,
  details: { description: string; path: string; command: string; suggestions: unknown[] },
): AgentRequest {
  return {
    requestId,
    kind: "permission",
    toolName,
    toolUseId,
    inputJson: JSON.stringify(input),
    description: details.description,
    path: details.path,
    command: details.command,
    suggestionsJson: details.suggestions.map((s) => JSON.stringify(s)),
    questions: [],
  };
}

// Codex takes no edited input (editApprovedInput is off) and no message with a refusal.
// "acceptForSession" makes Codex itself run identical commands without asking again.
function v2Decision(decision: AgentDecision): string {
  if (decision.behavior === "allow") return decision.forSession ? "acceptForSession" : "accept";
  return "decline";
}

function legacyDecision(decision: AgentDecision): unknown {
  if (decision.behavior === "allow") return decision.forSession ? "approved_for_session" : "approved";
  return { denied: { rejection: decision.behavior === "deny" ? decision.message.slice(0, 4096) : "not allowed" } };
}

// request_user_input: questions with ids, each with options (and a free answer, `isOther`).
function userInput(requestId: string, p: Record<string, unknown>): MappedRequest {
  const questions: AgentQuestion[] = list(p.questions)
    .filter(isObject)
    .map((q) => ({
      id: str(q.id, 256),
      question: str(q.question),
      header: str(q.header, 256),
      options: list(q.options)
        .filter(isObject)
        .map((o) => ({ label: str(o.label, 4096), description: str(o.description, 4096) })),
      // Codex's questions take one answer each.
      multiSelect: false,
    }))
    .filter((q) => q.id !== "");
  const ids = new Set(questions.map((q) => q.id));
  return {
    request: {
      requestId,
      kind: "question",
      toolName: "request_user_input",
      toolUseId: str(p.itemId, 256),
      inputJson: JSON.stringify({ questions }),
      description: questions.map((q) => q.question).join("\n").slice(0, 4096),
      path: "",
      command: "",
      suggestionsJson: [],
      questions,
    },
    respond: (decision) => {
      // Only the answers to questions asked; a refusal answers none (the model reads that
      // the user gave no answer).
      const given = decision.behavior === "answer" ? Object.entries(decision.answers) : [];
      // fromEntries: an id such as "__proto__" stays an own key.
      return { answers: Object.fromEntries(given.filter(([id, answer]) => ids.has(id) && typeof answer === "string").map(([id, answer]) => [id, { answers: [answer] }])) };
    },
  };
}
