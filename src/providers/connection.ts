import type { ProcessExit } from "../process/agent-process.js";
import type { AgentDecision, AgentModel, LiveSettings, ParsedOutput, ProviderCapabilities } from "./provider.js";

export type { ProcessExit as AgentExit } from "../process/agent-process.js";

/** Where a connection reports what its agent says and does wrong. */
export interface ConnectionHandlers {
  /** One normalized item, in the order the agent said it. */
  onOutput(item: ParsedOutput): void;
  /**
   * The agent broke its protocol in a way the run cannot recover from (an endless line,
   * output closed while it runs); the connection is being closed.
   */
  onFault(code: string, message: string): void;
}

/**
 * One agent run of a session, whatever the transport: a process of its own speaking
 * NDJSON or JSON-RPC on stdio, or a conversation on a server shared by many sessions.
 */
export interface AgentConnection {
  /** The agent's process group (0 when the agent is a shared server's). */
  readonly pid: number;
  /** How a restarted daemon recognizes what this run left behind ("" when nothing can be). */
  readonly identity: string;
  /** What this run of the agent can do (it may know less than its provider promised). */
  readonly capabilities: ProviderCapabilities;
  /** False once the run has ended. */
  readonly alive: boolean;
  /** Resolves when the run has ended and its outputs have all been reported. */
  readonly exited: Promise<ProcessExit>;
  /** Sends a user prompt: the next turn. */
  prompt(text: string): void;
  /** Asks the agent to stop the running turn (it ends the turn itself). */
  interrupt(): void;
  /** Answers an agent's request (a control_request) with a refusal. */
  refuse(requestId: string, message: string): void;
  /** Answers an agent_request, exactly once (AgentRequest.requestId). */
  answer(requestId: string, decision: AgentDecision): void;
  /** With the capability steer: delivers a message into the running turn. Rejects when the agent refused it. */
  steer?(text: string): Promise<void>;
  /**
   * With setModel / setPermissionMode: changes settings of the live agent between turns,
   * resolving once the agent took them (rejects with the agent's refusal).
   */
  applySettings?(settings: LiveSettings): Promise<void>;
  /** With listModels: the models the agent offers. */
  listModels?(): Promise<AgentModel[]>;
  /** Ends the run: politely, then by force after `graceMs`. */
  close(graceMs: number): Promise<ProcessExit>;
}
