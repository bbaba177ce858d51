import path from "node:path";
import type { Command, LaunchSpec, OutputParser, Provider } from "../provider.js";
import { ClaudeStreamParser } from "./parser.js";

/** Flags every hotplex-run Claude Code process gets: headless, NDJSON both ways, live deltas. */
const BASE_ARGS = [
  "-p",
  "--input-format",
  "stream-json",
  "--output-format",
  "stream-json",
  "--verbose",
  "--include-partial-messages",
] as const;

/** Claude Code (`claude -p` in stream-json mode). */
export class ClaudeCodeProvider implements Provider {
  readonly name = "claude-code";

  constructor(private readonly executable: string) {}

  command(spec: LaunchSpec): Command {
    const { config } = spec;
    const args: string[] = [...BASE_ARGS];
    // A new conversation gets the deterministic id; a restart resumes it, so the agent
    // keeps its history across crashes, idle reaping and daemon restarts.
    args.push(spec.resume ? "--resume" : "--session-id", spec.providerSessionId);
    if (config.model) args.push("--model", config.model);
    if (config.permissionMode) args.push("--permission-mode", config.permissionMode);
    // One value per flag: a tool rule may itself contain spaces or commas ("Bash(git log:*)").
    for (const tool of config.allowedTools) args.push("--allowedTools", tool);
    for (const tool of config.disallowedTools) args.push("--disallowedTools", tool);
    if (config.systemPrompt) args.push("--system-prompt", config.systemPrompt);
    if (config.appendSystemPrompt) args.push("--append-system-prompt", config.appendSystemPrompt);
    return { file: this.executable, args };
  }

  encodePrompt(prompt: string): string {
    // The SDK's form. JSON.stringify escapes newlines, so the prompt stays one line.
    return JSON.stringify({
      type: "user",
      session_id: "",
      message: { role: "user", content: [{ type: "text", text: prompt }] },
      parent_tool_use_id: null,
    });
  }

  encodeInterrupt(requestId: string): string {
    return JSON.stringify({ type: "control_request", request_id: requestId, request: { subtype: "interrupt" } });
  }

  encodeControlError(requestId: string, message: string): string {
    return JSON.stringify({
      type: "control_response",
      response: { subtype: "error", request_id: requestId, error: message },
    });
  }

  createParser(): OutputParser {
    return new ClaudeStreamParser();
  }

  transcriptFiles(providerSessionId: string, workDir: string, home: string): string[] {
    if (!home) return [];
    // Claude Code keeps `~/.claude/projects/<cwd, each non-alphanumeric character as "-">/<id>.jsonl`.
    return [path.join(home, ".claude", "projects", workDir.replace(/[^a-zA-Z0-9]/g, "-"), `${providerSessionId}.jsonl`)];
  }

  classifyStartupFailure(stderr: string, fatalMessage: string | undefined): "resume_missing" | "id_in_use" | undefined {
    if (fatalMessage?.includes("No conversation found")) return "resume_missing";
    if (/Session ID .* is already in use/.test(stderr)) return "id_in_use";
    return undefined;
  }
}
