import type { EventPayload, TurnEnded } from "../events/event.js";
import type { Command } from "../process/command.js";
import type { AgentLauncher } from "../process/launcher.js";
import type { SessionPaths } from "../process/sandbox.js";
import type { AgentConnection, ConnectionHandlers } from "./connection.js";

export type { Command } from "../process/command.js";

/** The per-session settings a provider turns into its agent's launch settings. */
export interface LaunchConfig {
  model: string;
  permissionMode: string;
  allowedTools: readonly string[];
  disallowedTools: readonly string[];
  systemPrompt: string;
  appendSystemPrompt: string;
  /**
   * Ask the host (AgentRequest) before each tool call the agent's settings do not allow,
   * and let the agent ask the user questions. False: the agent's settings decide alone and
   * a call they do not allow is refused (a request that comes anyway is refused by the
   * session).
   */
  approvals: boolean;
  /**
   * The tenant has rules: where the agent can, have it check every tool call with the host
   * before it runs (an AgentRequest of kind "check"), also those its own settings allow.
   */
  gateToolCalls: boolean;
}

/**
 * What an agent can do besides running turns, as the API shows it. A capability a
 * provider lacks is refused by name, never ignored.
 */
export interface ProviderCapabilities {
  /** Stops a running turn and keeps the agent warm. */
  interrupt: boolean;
  /** Asks the client before a tool runs. */
  approvals: boolean;
  /** Takes more input into a running turn. */
  steer: boolean;
  /** Starts a new conversation from an existing one. */
  fork: boolean;
  /** Continues a conversation in a new process (after a crash, idle end or restart). */
  resume: boolean;
  /** Changes the model of a live agent (AgentConnection.applySettings). */
  setModel: boolean;
  /** Asks the user questions (AgentRequest kind "question"). */
  questions: boolean;
  /** Changes the permission mode of a live agent (AgentConnection.applySettings). */
  setPermissionMode: boolean;
  /** Lists the models it offers (AgentConnection.listModels). */
  listModels: boolean;
  /** Forks a conversation up to a given turn (AgentStart.forkAt). */
  forkAtTurn: boolean;
  /** An allowed tool call may run with an input the client changed. */
  editApprovedInput: boolean;
}

/** One question of an AgentRequest of kind "question". */
export interface AgentQuestion {
  /** The key its answer has in AgentDecision "answer" (Claude: the question text; Codex: its id). */
  id: string;
  question: string;
  header: string;
  options: { label: string; description: string }[];
  multiSelect: boolean;
}

/**
 * The agent asks the host before a tool call, or asks the user a question, and waits for
 * exactly one AgentDecision (AgentConnection.answer).
 */
export interface AgentRequest {
  /** The agent's own id of the request, as the connection needs it to answer (a string). */
  requestId: string;
  /**
   * "permission": may the call run (the agent's settings did not allow it); "question": the
   * agent asks the user; "check": the agent is about to run the call and lets the host veto
   * it (LaunchConfig.gateToolCalls), answered with deny or defer.
   */
  kind: "permission" | "question" | "check";
  toolName: string;
  /** The tool call's id, when the agent gives one. */
  toolUseId: string;
  /** The tool's input as a JSON object ("{}" when none). */
  inputJson: string;
  description: string;
  /** The file or directory at stake, when the agent names one. */
  path: string;
  /** The shell command at stake, for command tools. */
  command: string;
  /** The agent's suggestions, each as its JSON. */
  suggestionsJson: string[];
  /** With kind "question". */
  questions: AgentQuestion[];
}

/**
 * The host's answer to an AgentRequest.
 * - allow: run the call (with `updatedInputJson`, a JSON object, instead of the agent's
 *   input when set; only where the capability editApprovedInput is). `forSession`: the
 *   client allows identical calls for the session (the session remembers it and answers
 *   them itself; a provider may also tell its agent).
 * - deny: refuse it with `message` (the session interrupts the turn itself when asked to).
 * - answer: the answers to a question, by AgentQuestion.id.
 */
export type AgentDecision =
  | { behavior: "allow"; updatedInputJson?: string; forSession: boolean }
  | { behavior: "deny"; message: string }
  | { behavior: "answer"; answers: Record<string, string> }
  /** To a "check": let the agent's own permission flow decide (with `ask`: make it ask). */
  | { behavior: "defer"; ask: boolean };

/** A model an agent offers (ListModels). */
export interface AgentModel {
  id: string;
  displayName: string;
  description: string;
}

/** Settings a live agent can take between turns; unset ones stay. */
export interface LiveSettings {
  model?: string;
  permissionMode?: string;
}

/**
 * How an agent run begins: a new conversation, one the agent already holds, or a new
 * conversation that starts as a copy of another (`AgentStart.forkFrom`, which the agent
 * must hold in this session's storage). A provider without the fork capability refuses
 * "fork" with a LaunchError.
 */
export type StartMode = "new" | "resume" | "fork";

/** What a provider gets to open one agent run of a session. */
export interface AgentStart {
  /** The session's tenant (a tenant name: [a-z0-9_-]), for what a provider shares per tenant. */
  tenant: string;
  /** The agent's conversation id as the session knows it (deterministic per session, or the agent's own). */
  providerSessionId: string;
  mode: StartMode;
  /** With mode "fork": the conversation the new one copies. */
  forkFrom?: string;
  /**
   * With mode "fork" and the capability forkAtTurn: copy only up to the end of the turn
   * whose TurnEnded carried this provider_turn_ref.
   */
  forkAt?: string;
  config: LaunchConfig;
  /** The session's work dir, HOME and private state dir (for launch files). */
  paths: SessionPaths;
  /**
   * The daemon's directories, for what a provider shares between sessions (a server):
   * every session's work dir lies in `workRoot`; `stateRoot` is private to the daemon.
   */
  daemonPaths: { workRoot: string; stateRoot: string };
  /** The session's environment (the daemon's allow-listed variables, its HOME). */
  env: Record<string, string>;
  /** The longest line of agent output accepted. */
  maxLineBytes: number;
  /** Starts the agent's process inside the sandbox (every provider's processes go through it). */
  launcher: AgentLauncher;
  /** Where the connection reports what the agent says. */
  handlers: ConnectionHandlers;
}

/**
 * One item a provider recognized in what its agent said.
 *
 * - `event`: a normalized payload to log as it is.
 * - `turn_start`: the agent acknowledged the turn, naming its conversation id.
 * - `turn_end`: the agent ended the turn; the session adds the wall-clock duration and
 *   logs it as the turn's TurnEnded event.
 * - `control_response`: the answer to a control request the host sent.
 * - `control_request`: the agent asks the host something hotplex does not handle; the
 *   session refuses it at once (AgentConnection.refuse).
 * - `agent_request`: the agent asks for a tool permission or asks a question; the session
 *   answers it exactly once (AgentConnection.answer), after the client or a rule decided.
 * - `agent_request_cancelled`: the agent withdrew an agent_request (no answer is sent).
 * - `fatal_startup`: the agent refused to start the conversation (e.g. an unknown
 *   conversation to resume); the process is about to exit.
 */
export type ParsedOutput =
  | { type: "event"; payload: EventPayload }
  | { type: "turn_start"; providerSessionId: string; model: string }
  | { type: "turn_end"; turnEnded: TurnEnded }
  | { type: "control_response"; requestId: string; error?: string }
  | { type: "control_request"; requestId: string; subtype: string }
  | { type: "agent_request"; request: AgentRequest }
  | { type: "agent_request_cancelled"; requestId: string }
  | { type: "fatal_startup"; message: string };

/** Parses one process's line output. Stateful: create one per process. */
export interface OutputParser {
  /**
   * Parses one complete output line (without its newline). `nowMs` is the arrival time
   * (Date.now() or a fake clock in tests), used to measure thinking, tool and generation
   * durations.
   */
  parse(line: string, nowMs: number): ParsedOutput[];
}

/** Why an agent refused to start: the session then starts it the other way, once. */
export type StartupFailure = "resume_missing" | "id_in_use";

/** An agent: how to validate its settings, open a connection to it, and keep its conversations. */
export interface Provider {
  /** Stable name, e.g. the value of SessionConfig.provider that selects it. */
  readonly name: string;
  readonly capabilities: ProviderCapabilities;
  /**
   * Variables (names; "PREFIX*" for prefixes) of the daemon's environment this agent may
   * inherit besides the common ones (PATH, locale, proxies): its API keys and settings.
   */
  readonly envAllowList: readonly string[];
  /**
   * Checks the provider's own vocabulary in a session config (permission modes, tool rule
   * syntax, settings it does not support); throws an INVALID_ARGUMENT HotplexError naming
   * the field.
   */
  validateConfig(config: LaunchConfig): void;
  /**
   * Opens one agent run: starts (or, for a shared server, attaches to) the agent and
   * begins the conversation. Throws a LaunchError when it cannot.
   */
  connect(start: AgentStart): Promise<AgentConnection>;
  /** The agent's own version, as its `--version` prints it. */
  version(): Promise<string>;
  /** The files where the agent keeps its transcript of a conversation (copied into a new HOME, deleted with it). */
  transcriptFiles(providerSessionId: string, workDir: string, home: string): string[];
  /**
   * Classifies an early exit (before the first turn started): "resume_missing" when the
   * agent had no conversation to resume, "id_in_use" when the conversation already exists
   * and must be resumed rather than created, undefined otherwise.
   */
  classifyStartupFailure(stderr: string, fatalMessage: string | undefined): StartupFailure | undefined;
  /** Ends what the provider shares between sessions (a server), at daemon shutdown. */
  close?(): Promise<void>;
}

/** A provider's capabilities with nothing but resume (what every provider offers at least). */
export function capabilities(overrides: Partial<ProviderCapabilities>): ProviderCapabilities {
  return {
    interrupt: false,
    approvals: false,
    steer: false,
    fork: false,
    resume: true,
    setModel: false,
    questions: false,
    setPermissionMode: false,
    listModels: false,
    forkAtTurn: false,
    editApprovedInput: false,
    ...overrides,
  };
}
