// Events as a person reads them: the assistant's text as it streams, everything else one
// line each. Whatever the agent or a client put in an event is made terminal-safe here.
import type { Event, TurnEnded } from "../../../gen/hotplex/v1/event_pb.js";
import { TurnOutcome } from "../../../gen/hotplex/v1/event_pb.js";
import { Decider, PermissionDecision, RequestKind, type PermissionRequested } from "../../../gen/hotplex/v1/interaction_pb.js";
import type { Colors } from "./colors.js";
import { formatCost, formatCount, formatDuration, outcomeName, statusName } from "./format.js";
import { clip, TerminalFilter, terminalSafe } from "./sanitize.js";

export interface RenderOptions {
  colors: Colors;
  /** Line width for one-line summaries. */
  width: number;
  /** Also show turn starts and status changes (tail). */
  verbose: boolean;
  /** Show the model's thinking (dim). */
  thinking: boolean;
}

// Keys whose value says best what a tool call does, in order of preference.
const SUMMARY_KEYS = ["command", "cmd", "file_path", "path", "pattern", "url", "query", "description", "prompt"];
const MAX_JSON_PARSE = 64 * 1024;

export class EventRenderer {
  readonly #write: (text: string) => void;
  readonly #o: RenderOptions;
  #atLineStart = true;
  // One filter per stream of pieces, so that a sequence split between two deltas is caught.
  readonly #textFilter = new TerminalFilter();
  readonly #subAgentFilter = new TerminalFilter();
  readonly #thinkingFilter = new TerminalFilter();

  constructor(write: (text: string) => void, options: RenderOptions) {
    this.#write = write;
    this.#o = options;
  }

  /** Whether the cursor is at the start of a line (no streamed text pending). */
  get atLineStart(): boolean {
    return this.#atLineStart;
  }

  /** Ends streamed text with a newline, if it did not end with one. */
  endLine(): void {
    if (!this.#atLineStart) this.#emit("\n");
  }

  /** Prints a line of our own (a note, a prompt's outcome), after any pending text. */
  note(text: string): void {
    this.#line(text);
  }

  render(event: Event): void {
    const c = this.#o.colors;
    const p = event.payload;
    switch (p.case) {
      case "textDelta":
        if (p.value.parentToolUseId) return this.#text(this.#subAgentFilter.push(p.value.text), c.dim);
        return this.#text(this.#textFilter.push(p.value.text), (t) => t);
      case "thinkingDelta":
        if (this.#o.thinking) this.#text(this.#thinkingFilter.push(p.value.text), (t) => c.dim(c.italic(t)));
        return;
      case "toolUse":
        return this.#line(`${c.cyan("→")} ${c.bold(clip(p.value.name, 64))} ${this.#clipRest(summarizeInput(p.value.inputJson), p.value.name.length + 3)}`);
      case "toolResult": {
        const { content, isError } = p.value;
        const lines = content.split("\n").filter((l) => l.trim() !== "");
        const more = lines.length > 1 ? c.dim(` (+${lines.length - 1} lines)`) : "";
        const head = isError ? c.red("← error") : c.green("← ok");
        return this.#line(`${head}${lines[0] ? ` ${this.#clipRest(lines[0], 10)}` : ""}${more}`);
      }
      case "turnEnded":
        return this.#line(turnSummary(p.value, c));
      case "permissionRequested":
        return this.#line(describeRequest(p.value, c, this.#o.width));
      case "permissionResolved": {
        const v = p.value;
        const who = (Decider[v.decidedBy] ?? "unknown").toLowerCase().replaceAll("_", " ");
        const by = v.principal ? `${who} ${clip(v.principal, 64)}` : who;
        if (v.decision === PermissionDecision.ALLOW) return this.#line(`${c.green("✓ allowed")} by ${by}${v.forSession ? " (for the session)" : ""}`);
        if (v.decision === PermissionDecision.ANSWERED) return this.#line(`${c.green("✓ answered")} by ${by}`);
        return this.#line(`${c.red("✗ denied")} by ${by}${v.message ? `: ${clip(v.message, 200)}` : ""}${v.interrupt ? " (and interrupted)" : ""}`);
      }
      case "error":
        return this.#line(c.yellow(`! ${clip(p.value.code, 64)}: ${clip(p.value.message, this.#o.width)}`));
      case "sessionStarted": {
        const kind = p.value.kind === 2 ? "resumed" : "cold";
        const model = p.value.model ? `, ${clip(p.value.model, 64)}` : "";
        return this.#line(c.dim(`· agent started (${kind}, ${clip(p.value.provider, 64)}${model})`));
      }
      case "sessionEnded": {
        const details = [
          p.value.exitCode !== undefined ? `exit ${p.value.exitCode}` : "",
          p.value.signal ? clip(p.value.signal, 16) : "",
        ].filter(Boolean);
        return this.#line(c.dim(`· agent ended: ${clip(p.value.reason, 32)}${details.length ? ` (${details.join(", ")})` : ""}`));
      }
      case "raw":
        return this.#line(c.dim(`· raw output (${clip(p.value.reason, 32)}): ${this.#clipRest(p.value.line, 24)}`));
      case "ruleMatched": {
        const v = p.value;
        const severity = ["unspecified", "block", "ask", "warn"][v.severity] ?? "unknown";
        return this.#line(c.yellow(`! rule ${clip(v.ruleId, 64)} (${severity}${v.bypassed ? ", bypassed" : ""}): ${clip(v.description, 120)}${v.evidence ? ` — ${clip(v.evidence, 120)}` : ""}`));
      }
      case "turnQueued":
        return this.#line(c.dim(`· queued behind ${p.value.position} turn(s): ${this.#clipRest(p.value.prompt, 30)}`));
      case "turnSteered":
        return this.#line(`${c.magenta("»")} steered: ${this.#clipRest(p.value.prompt, 12)}`);
      case "configChanged":
        return this.#line(c.dim(`· settings: model ${clip(p.value.model, 64) || "default"}, permission mode ${clip(p.value.permissionMode, 64) || "default"}${p.value.appliedLive ? " (live)" : " (next start)"}`));
      case "conversationReset":
        return this.#line(c.dim("· conversation reset: the next turn starts a new conversation"));
      case "titleChanged":
        return this.#line(c.dim(`· title: ${clip(p.value.title, 256) || "(cleared)"}`));
      case "sessionForked":
        return this.#line(c.dim(`· forked from ${clip(p.value.parentSessionId, 128)}${p.value.parentTurnId ? ` at turn ${clip(p.value.parentTurnId, 64)}` : ""}`));
      case "turnStarted":
        if (this.#o.verbose) this.#line(`${c.bold(c.blue("▶"))} ${c.dim(clip(event.turnId, 64))} ${this.#clipRest(p.value.prompt, 40)}`);
        return;
      case "statusChanged":
        if (this.#o.verbose) this.#line(c.dim(`· status: ${statusName(p.value.status)}`));
        return;
      case undefined:
        // A payload kind newer than this CLI.
        return this.#line(c.dim(`· event ${event.seq} of a kind this hotplex does not know`));
    }
  }

  #clipRest(text: string, used: number): string {
    return clip(text, Math.max(20, this.#o.width - used));
  }

  #text(safe: string, style: (text: string) => string): void {
    if (safe === "") return;
    this.#write(style(safe));
    // Where the cursor ends up depends on the text itself, not on its colors.
    this.#atLineStart = safe.endsWith("\n");
  }

  #line(text: string): void {
    this.endLine();
    this.#emit(`${text}\n`);
  }

  #emit(text: string): void {
    this.#write(text);
    this.#atLineStart = text.endsWith("\n");
  }
}

/** "✓ completed in 1.2s · 10 in / 20 out tokens · $0.0012", or why the turn did not complete. */
export function turnSummary(end: TurnEnded, c: Colors): string {
  const parts = [`in ${formatDuration(Number(end.durationMs))}`];
  const u = end.usage;
  if (u && (u.inputTokens || u.outputTokens || u.cacheReadTokens)) {
    const cached = u.cacheReadTokens ? `, ${formatCount(u.cacheReadTokens)} cached` : "";
    parts.push(`${formatCount(u.inputTokens)} in / ${formatCount(u.outputTokens)} out tokens${cached}`);
  }
  if (end.costUsd > 0) parts.push(formatCost(end.costUsd));
  const stats = parts.join(" · ");
  const why = end.errorMessage ? `: ${clip(end.errorMessage, 300)}` : "";
  const exit = end.exitCode !== undefined ? ` (exit ${end.exitCode})` : "";
  switch (end.outcome) {
    case TurnOutcome.COMPLETED:
      return `${c.green("✓ completed")} ${stats}`;
    case TurnOutcome.INTERRUPTED:
    case TurnOutcome.CANCELLED:
      return `${c.yellow(`⚠ ${outcomeName(end.outcome)}`)} ${stats}${why}`;
    default: {
      const tail = end.stderrTail ? `\n${c.dim(terminalSafe(end.stderrTail).trimEnd())}` : "";
      return `${c.red(`✗ ${outcomeName(end.outcome)}`)} ${stats}${why}${exit}${tail}`;
    }
  }
}

/** One line for a permission request or question. */
export function describeRequest(r: PermissionRequested, c: Colors, width: number): string {
  const id = c.dim(`(request ${clip(r.requestId, 128)})`);
  if (r.kind === RequestKind.QUESTION) {
    const asked = r.questions.map((q) => clip(q.question, 200)).join(" / ");
    return `${c.yellow("?")} ${c.bold("question")} ${id}: ${clip(asked, Math.max(20, width - 40))}`;
  }
  const what = r.command || r.path || r.description || summarizeInput(r.inputJson);
  return `${c.yellow("?")} ${c.bold("permission")} ${id}: ${clip(r.toolName, 64)} ${clip(what, Math.max(20, width - 40))}`;
}

/** The part of a tool call's input JSON that says what it does. */
export function summarizeInput(inputJson: string): string {
  if (inputJson.length > MAX_JSON_PARSE) return inputJson.slice(0, 512);
  try {
    const input = JSON.parse(inputJson) as unknown;
    if (input && typeof input === "object" && !Array.isArray(input)) {
      const record = input as Record<string, unknown>;
      for (const key of SUMMARY_KEYS) {
        const value = record[key];
        if (typeof value === "string" && value !== "") return value;
      }
      if (Object.keys(record).length === 0) return "";
    }
    return JSON.stringify(input);
  } catch {
    return inputJson;
  }
}
