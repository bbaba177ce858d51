import path from "node:path";
import { HotplexError } from "../../errors.js";
import type { AgentConnection } from "../connection.js";
import {
  type AgentDecision,
  type AgentModel,
  type AgentRequest,
  type AgentStart,
  type Command,
  capabilities,
  type LaunchConfig,
  type LiveSettings,
  type Provider,
  type StartupFailure,
} from "../provider.js";
import { LaunchError } from "../../process/launcher.js";
import { type ControlRequestBody, type NdjsonEncoder, StdioNdjsonConnection } from "../transport/stdio-ndjson.js";
import { agentVersion } from "../version.js";
import { answerLine, GATE_HOOKS } from "./agent-requests.js";
import { modelsOf, settingsRequests } from "./live-settings.js";
import { ClaudeStreamParser, UUID } from "./parser.js";
import { PERMISSION_MODES } from "./permission-modes.js";

/** Flags every hotplex-run Claude Code process gets: headless, NDJSON both ways, live deltas. */
const BASE_ARGS = ["-p", "--input-format=stream-json", "--output-format=stream-json", "--verbose", "--include-partial-messages"] as const;

export { PERMISSION_MODES } from "./permission-modes.js";

// One tool rule, as the CLI reads a rule list: a tool name, optionally one parenthesized
// specifier ("Bash(git log:*)", "mcp__github__*"). The CLI splits a flag's value at spaces
// and commas outside parentheses, so "Read,Bash" would be two rules: one entry must be
// exactly one rule, or a tenant's allowed tools could be widened inside a single entry.
const TOOL_RULE = /^[A-Za-z0-9_*.:-]+(\([^()]*\))?$/;

function invalid(message: string): HotplexError {
  return new HotplexError("invalid_argument", message);
}

/** What Claude Code needs from the daemon's environment: its API settings and its own switches. */
export const CLAUDE_CODE_ENV: readonly string[] = ["ANTHROPIC_*", "CLAUDE_*", "DISABLE_AUTOUPDATER", "DISABLE_TELEMETRY", "IS_SANDBOX"];

/** Claude Code (`claude -p` in stream-json mode): one process per session, NDJSON both ways. */
export class ClaudeCodeProvider implements Provider, NdjsonEncoder {
  readonly name = "claude-code";
  // No steer: a user message written mid-turn joins the running turn only when the turn
  // makes another model request after it (during a tool or a permission prompt); written
  // during the turn's last model call it runs as a turn of its own, with a result of its
  // own (docs/interactive-control.md).
  readonly capabilities = capabilities({
    interrupt: true,
    approvals: true,
    questions: true,
    editApprovedInput: true,
    fork: true,
    forkAtTurn: true,
    setModel: true,
    setPermissionMode: true,
    listModels: true,
  });
  readonly envAllowList = CLAUDE_CODE_ENV;

  constructor(private readonly executable: string) {}

  connect(start: AgentStart): Promise<AgentConnection> {
    const command = this.command(start);
    // Gated: hotplex's PreToolUse hook sees every tool call before it runs.
    const startup = start.config.gateToolCalls ? { subtype: "initialize", hooks: GATE_HOOKS } : undefined;
    return StdioNdjsonConnection.open(start, command, new ClaudeStreamParser(), this, this.capabilities, undefined, startup);
  }

  version(): Promise<string> {
    return agentVersion(this.executable);
  }

  validateConfig(config: LaunchConfig): void {
    if (config.permissionMode && !PERMISSION_MODES.includes(config.permissionMode)) {
      throw invalid(`config.permission_mode "${config.permissionMode}" is not one of ${PERMISSION_MODES.join(", ")}`);
    }
    for (const [field, rules] of [
      ["allowed_tools", config.allowedTools],
      ["disallowed_tools", config.disallowedTools],
    ] as const) {
      rules.forEach((rule, index) => {
        if (!TOOL_RULE.test(rule)) {
          throw invalid(
            `config.${field}[${index}] ${JSON.stringify(rule.slice(0, 100))} is not one tool rule: use a tool name, ` +
              'optionally with one "(specifier)", e.g. "Bash(git log:*)"; one rule per entry',
          );
        }
      });
    }
  }

  /**
   * The command line. The CLI reads some flags (--settings among them, which can install
   * hooks that run shell commands) from anywhere in its argv, even from an argv entry
   * that was meant as another flag's value. So no client value is ever an entry of its
   * own: short values go in `--flag=value` form (read as that flag's value, never as a
   * flag), and the system prompts go through files, which also keeps them out of
   * /proc/<pid>/cmdline and clear of the kernel's 128 KiB limit per argument.
   */
  command(spec: Pick<AgentStart, "providerSessionId" | "mode" | "forkFrom" | "forkAt" | "config" | "paths">): Command {
    const { config } = spec;
    const resume = spec.mode === "resume";
    const stateDir = spec.paths.stateDir;
    if (spec.mode === "fork" && !spec.forkFrom) throw new LaunchError("a fork needs the conversation to fork from");
    // A turn ref is the uuid of the turn's last assistant message (TurnEnded.provider_turn_ref).
    if (spec.mode === "fork" && spec.forkAt && !UUID.test(spec.forkAt)) {
      throw new LaunchError(`cannot fork at ${JSON.stringify(spec.forkAt.slice(0, 100))}: not a Claude Code message uuid`);
    }
    const args: string[] = [...BASE_ARGS];
    const files: Record<string, string> = {};
    // A new conversation gets the deterministic id; a restart resumes it, so the agent
    // keeps its history across crashes, idle reaping and daemon restarts.
    if (spec.mode === "fork") {
      // The fork gets the session's own id; the original stays resumable.
      args.push(`--resume=${spec.forkFrom}`, "--fork-session", `--session-id=${spec.providerSessionId}`);
      // Only the history up to and including that assistant message is copied.
      if (spec.forkAt) args.push(`--resume-session-at=${spec.forkAt}`);
    } else {
      args.push(`${resume ? "--resume" : "--session-id"}=${spec.providerSessionId}`);
    }
    if (config.model) args.push(`--model=${config.model}`);
    if (config.permissionMode) args.push(`--permission-mode=${config.permissionMode}`);
    // The CLI then asks on stdio (can_use_tool) instead of denying what its settings do
    // not allow, and offers the model AskUserQuestion.
    if (config.approvals) args.push("--permission-prompt-tool=stdio");
    // One rule per flag (the CLI accepts the flag repeatedly).
    for (const tool of config.allowedTools) args.push(`--allowedTools=${tool}`);
    for (const tool of config.disallowedTools) args.push(`--disallowedTools=${tool}`);
    if (config.systemPrompt) {
      const file = path.join(stateDir, "system-prompt.txt");
      files[file] = config.systemPrompt;
      args.push(`--system-prompt-file=${file}`);
    }
    if (config.appendSystemPrompt) {
      const file = path.join(stateDir, "append-system-prompt.txt");
      files[file] = config.appendSystemPrompt;
      args.push(`--append-system-prompt-file=${file}`);
    }
    return { file: this.executable, args, files };
  }

  // The stdin lines (NdjsonEncoder).
  prompt(prompt: string): string {
    // The SDK's form. JSON.stringify escapes newlines, so the prompt stays one line.
    return JSON.stringify({
      type: "user",
      session_id: "",
      message: { role: "user", content: [{ type: "text", text: prompt }] },
      parent_tool_use_id: null,
    });
  }

  interrupt(requestId: string): string {
    return JSON.stringify({ type: "control_request", request_id: requestId, request: { subtype: "interrupt" } });
  }

  refuse(requestId: string, message: string): string {
    return JSON.stringify({
      type: "control_response",
      response: { subtype: "error", request_id: requestId, error: message },
    });
  }

  answer(request: AgentRequest, decision: AgentDecision): string {
    return answerLine(request, decision);
  }

  control(requestId: string, request: ControlRequestBody): string {
    return JSON.stringify({ type: "control_request", request_id: requestId, request });
  }

  settingsRequests(settings: LiveSettings): ControlRequestBody[] {
    return settingsRequests(settings);
  }

  modelsRequest(): ControlRequestBody {
    // The initialize reply lists the models; the CLI answers it at any time, repeatedly.
    return { subtype: "initialize" };
  }

  modelsOf(payload: unknown): AgentModel[] {
    return modelsOf(payload);
  }

  transcriptFiles(providerSessionId: string, workDir: string, home: string): string[] {
    if (!home) return [];
    // Claude Code keeps `~/.claude/projects/<cwd, each non-alphanumeric character as "-">/<id>.jsonl`.
    return [path.join(home, ".claude", "projects", workDir.replace(/[^a-zA-Z0-9]/g, "-"), `${providerSessionId}.jsonl`)];
  }

  classifyStartupFailure(stderr: string, fatalMessage: string | undefined): StartupFailure | undefined {
    if (fatalMessage?.includes("No conversation found")) return "resume_missing";
    if (/Session ID .* is already in use/.test(stderr)) return "id_in_use";
    return undefined;
  }
}
