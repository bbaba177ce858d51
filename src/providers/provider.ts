import type { EventPayload, TurnEnded } from "../events/event.js";

/** The per-session settings a provider turns into launch arguments. */
export interface LaunchConfig {
  model: string;
  permissionMode: string;
  allowedTools: readonly string[];
  disallowedTools: readonly string[];
  systemPrompt: string;
  appendSystemPrompt: string;
}

/** What a provider needs to start one agent process. */
export interface LaunchSpec {
  /** The agent's own conversation id (deterministic per session). */
  providerSessionId: string;
  /** Continue the conversation `providerSessionId` instead of starting a new one. */
  resume: boolean;
  config: LaunchConfig;
  /** A directory private to this session (mode 0700) for the files the command refers to. */
  stateDir: string;
}

/**
 * The command line of an agent process, run without a shell. No client value may ever be
 * an argv entry of its own, where an agent that scans its whole argv could read it as a
 * flag: values go in `--flag=value` form, or into `files`.
 */
export interface Command {
  file: string;
  args: string[];
  /** Files to write (mode 0600) before the process starts: absolute path → content. */
  files?: Record<string, string>;
}

/**
 * One item a provider's output parser recognized in a line of agent output.
 *
 * - `event`: a normalized payload to log as it is.
 * - `turn_start`: the agent acknowledged the turn (Claude Code's per-turn `system/init`).
 * - `turn_end`: the agent ended the turn (Claude Code's `result`); the session adds the
 *   wall-clock duration and logs it as the turn's TurnEnded event.
 * - `control_response`: the answer to a control request the host sent.
 * - `control_request`: the agent asks the host something (e.g. a tool permission); the
 *   host must answer every one with exactly one response.
 * - `fatal_startup`: the agent refused to start the conversation (e.g. an unknown
 *   `--resume` id); the process is about to exit.
 */
export type ParsedOutput =
  | { type: "event"; payload: EventPayload }
  | { type: "turn_start"; providerSessionId: string; model: string }
  | { type: "turn_end"; turnEnded: TurnEnded }
  | { type: "control_response"; requestId: string; error?: string }
  | { type: "control_request"; requestId: string; subtype: string }
  | { type: "fatal_startup"; message: string };

/** Parses one process's output. Stateful: create one per process. */
export interface OutputParser {
  /**
   * Parses one complete output line (without its newline). `nowMs` is the arrival time
   * (Date.now() or a fake clock in tests), used to measure thinking, tool and generation
   * durations.
   */
  parse(line: string, nowMs: number): ParsedOutput[];
}

/** An agent CLI: how to launch it, talk to it and read it. */
export interface Provider {
  /** Stable name, e.g. "claude-code". */
  readonly name: string;
  /**
   * Checks the provider's own vocabulary in a session config (permission modes, tool rule
   * syntax); throws an INVALID_ARGUMENT HotplexError naming the field.
   */
  validateConfig(config: LaunchConfig): void;
  /** The command that starts an agent process for a session. */
  command(spec: LaunchSpec): Command;
  /** One stdin line (without newline) that sends a user prompt. */
  encodePrompt(prompt: string): string;
  /** One stdin line (without newline) asking the agent to interrupt the running turn. */
  encodeInterrupt(requestId: string): string;
  /** One stdin line answering an agent's control request with an error. */
  encodeControlError(requestId: string, message: string): string;
  /** A fresh parser for one process's stdout. */
  createParser(): OutputParser;
  /** The files where the agent keeps its own transcript of a conversation. */
  transcriptFiles(providerSessionId: string, workDir: string, home: string): string[];
  /**
   * Classifies an early exit (before the first turn started): "resume_missing" when the
   * agent had no conversation to resume, "id_in_use" when the conversation already exists
   * and must be resumed rather than created, undefined otherwise.
   */
  classifyStartupFailure(stderr: string, fatalMessage: string | undefined): "resume_missing" | "id_in_use" | undefined;
}
