import { create } from "@bufbuild/protobuf";
import { RawOutputSchema } from "../../events/event.js";
import type { ProcessExit } from "../../process/agent-process.js";
import type { Command } from "../../process/command.js";
import type { LaunchedAgent } from "../../process/launcher.js";
import type { AgentConnection } from "../connection.js";
import type {
  AgentDecision,
  AgentModel,
  AgentRequest,
  AgentStart,
  LiveSettings,
  OutputParser,
  ParsedOutput,
  ProviderCapabilities,
} from "../provider.js";

/** How one agent's stdin lines are written: each returns one line without its newline. */
export interface NdjsonEncoder {
  prompt(text: string): string;
  interrupt(requestId: string): string;
  refuse(requestId: string, message: string): string;
  /** The answer to an agent_request the parser reported. */
  answer(request: AgentRequest, decision: AgentDecision): string;
  /** A control request of the host, with the id its reply will carry. */
  control(requestId: string, request: ControlRequestBody): string;
  /** The control requests that apply live settings, in order (throws on a setting the agent cannot take). */
  settingsRequests(settings: LiveSettings): ControlRequestBody[];
  /** The control request whose reply lists the agent's models, and how to read that reply. */
  modelsRequest(): ControlRequestBody;
  modelsOf(payload: unknown): AgentModel[];
}

/** The body of a host control request: its subtype and fields. */
export type ControlRequestBody = { subtype: string } & Record<string, unknown>;

/**
 * The parser's control_response item, with the reply's payload for the request the host
 * is waiting on (the seam's item carries no payload).
 */
export type ControlReply = Extract<ParsedOutput, { type: "control_response" }> & { payload?: unknown };

/** Line-oriented agent process I/O shared by the stdio transports. */
export interface StdioLines {
  readonly agent: LaunchedAgent;
  /** Writes one line; false when the agent is gone. */
  write(line: string): boolean;
}

/**
 * Starts `command` through the launcher and hands every stdout line to `onLine`; a line
 * past the limit, or output closed while the agent runs, is reported as a fault (the
 * session then ends the run).
 */
export async function launchStdio(start: AgentStart, command: Command, onLine: (line: string) => void): Promise<StdioLines> {
  const agent = await start.launcher.launch({
    command,
    paths: start.paths,
    env: start.env,
    maxLineBytes: start.maxLineBytes,
    onLine,
    onOverlongLine: (bytes) =>
      start.handlers.onFault(
        "output_line_too_long",
        `the agent printed a line of more than ${start.maxLineBytes} bytes (${bytes} so far); it was dropped and the agent ended`,
      ),
    onOutputClosed: () => start.handlers.onFault("output_closed", "the agent closed its output but kept running; it was ended"),
  });
  return { agent, write: (line) => agent.process.writeLine(line) };
}

/**
 * What every connection to an agent process of its own shares: the process (its group,
 * its identity for orphan sweeps, whether it runs) and ending it.
 */
export abstract class StdioAgentConnection {
  protected readonly lines: StdioLines;

  protected constructor(lines: StdioLines) {
    this.lines = lines;
  }

  get pid(): number {
    return this.lines.agent.process.pid;
  }

  get identity(): string {
    return this.lines.agent.identity;
  }

  get alive(): boolean {
    return this.lines.agent.process.alive;
  }
}

/** Parses a line, keeping it as a raw event when the parser fails (a parser bug must not end the session). */
export function parseSafely(parser: OutputParser, line: string): ParsedOutput[] {
  try {
    return parser.parse(line, Date.now());
  } catch {
    return [{ type: "event", payload: { case: "raw", value: create(RawOutputSchema, { line, reason: "parser_error" }) } }];
  }
}

/** How long a host control request (a setting, the model list) may wait for its reply. */
export const CONTROL_TIMEOUT_MS = 15_000;

// Requests of the agent waiting for an answer, at most: a flood past it is denied at once.
const MAX_PENDING_REQUESTS = 64;

interface AwaitedReply {
  resolve(payload: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * An agent process that reads NDJSON commands on stdin and prints NDJSON on stdout, one
 * conversation per process (Claude Code's stream-json mode). Besides prompts it keeps the
 * two halves of the control protocol: the agent's requests waiting for an answer (with
 * what the answer needs, dropped once answered, withdrawn or at exit) and the host's
 * requests waiting for their reply (by request id, with a timeout).
 */
export class StdioNdjsonConnection extends StdioAgentConnection implements AgentConnection {
  readonly capabilities: ProviderCapabilities;
  readonly #encoder: NdjsonEncoder;
  readonly #controlTimeoutMs: number;
  #interrupts = 0;
  #controls = 0;
  readonly #pending = new Map<string, AgentRequest>();
  readonly #awaited = new Map<string, AwaitedReply>();
  #startupReply: Promise<unknown> | undefined;

  private constructor(lines: StdioLines, encoder: NdjsonEncoder, capabilities: ProviderCapabilities, controlTimeoutMs: number) {
    super(lines);
    this.#encoder = encoder;
    this.capabilities = capabilities;
    this.#controlTimeoutMs = controlTimeoutMs;
    void lines.agent.exited.then(() => this.#ended());
  }

  static async open(
    start: AgentStart,
    command: Command,
    parser: OutputParser,
    encoder: NdjsonEncoder,
    capabilities: ProviderCapabilities,
    controlTimeoutMs = CONTROL_TIMEOUT_MS,
    /** A control request written before the first prompt (e.g. to register hooks). */
    startup?: ControlRequestBody,
  ): Promise<StdioNdjsonConnection> {
    // Lines may come before open() returns: they wait for the connection.
    let connection: StdioNdjsonConnection | undefined;
    const early: ParsedOutput[] = [];
    const lines = await launchStdio(start, command, (line) => {
      for (const item of parseSafely(parser, line)) {
        if (connection) connection.#route(item, start.handlers.onOutput);
        else early.push(item);
      }
    });
    connection = new StdioNdjsonConnection(lines, encoder, capabilities, controlTimeoutMs);
    for (const item of early) connection.#route(item, start.handlers.onOutput);
    // Its reply is kept (an initialize's lists the models); a failure leaves it undefined.
    if (startup) connection.#startupReply = connection.#control(startup).catch(() => undefined);
    return connection;
  }

  get exited(): Promise<ProcessExit> {
    return this.lines.agent.exited;
  }

  prompt(text: string): void {
    this.lines.write(this.#encoder.prompt(text));
  }

  interrupt(): void {
    this.#interrupts += 1;
    this.lines.write(this.#encoder.interrupt(`hotplex-interrupt-${this.#interrupts}`));
  }

  refuse(requestId: string, message: string): void {
    this.lines.write(this.#encoder.refuse(requestId, message));
  }

  answer(requestId: string, decision: AgentDecision): void {
    const request = this.#pending.get(requestId);
    // Answered already, or withdrawn by the agent: a second answer would confuse it.
    if (!request) return;
    this.#pending.delete(requestId);
    this.lines.write(this.#encoder.answer(request, decision));
  }

  async applySettings(settings: LiveSettings): Promise<void> {
    for (const request of this.#encoder.settingsRequests(settings)) await this.#control(request);
  }

  async listModels(): Promise<AgentModel[]> {
    // The startup request's reply, when it was the models request (sent once: a second
    // initialize might drop the hooks the first registered).
    const startup = await this.#startupReply;
    if (startup !== undefined) return this.#encoder.modelsOf(startup);
    return this.#encoder.modelsOf(await this.#control(this.#encoder.modelsRequest()));
  }

  async close(graceMs: number): Promise<ProcessExit> {
    await this.lines.agent.process.terminate(graceMs);
    return this.lines.agent.exited;
  }

  /** Sends a control request and resolves with its reply's payload. */
  #control(request: ControlRequestBody): Promise<unknown> {
    if (!this.alive) return Promise.reject(new Error("the agent is not running"));
    this.#controls += 1;
    const requestId = `hotplex-control-${this.#controls}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#awaited.delete(requestId);
        reject(new Error(`the agent did not answer ${request.subtype} within ${this.#controlTimeoutMs} ms`));
      }, this.#controlTimeoutMs);
      this.#awaited.set(requestId, { resolve, reject, timer });
      if (!this.lines.write(this.#encoder.control(requestId, request))) {
        this.#settle(requestId, new Error("the agent is not running"));
      }
    });
  }

  #settle(requestId: string, outcome: Error | { payload: unknown }): void {
    const awaited = this.#awaited.get(requestId);
    if (!awaited) return;
    this.#awaited.delete(requestId);
    clearTimeout(awaited.timer);
    if (outcome instanceof Error) awaited.reject(outcome);
    else awaited.resolve(outcome.payload);
  }

  // What the parser found, before the session sees it: replies to the host's own control
  // requests end there; the agent's requests are remembered until answered.
  #route(item: ParsedOutput, onOutput: (item: ParsedOutput) => void): void {
    if (item.type === "control_response" && this.#awaited.has(item.requestId)) {
      const reply: ControlReply = item;
      this.#settle(item.requestId, reply.error !== undefined ? new Error(reply.error) : { payload: reply.payload });
      return;
    }
    if (item.type === "agent_request") {
      const { requestId } = item.request;
      // The same id twice: the first one's answer answers it.
      if (this.#pending.has(requestId)) return;
      if (this.#pending.size >= MAX_PENDING_REQUESTS) {
        this.lines.write(this.#encoder.answer(item.request, { behavior: "deny", message: "hotplex: too many requests wait for an answer" }));
        return;
      }
      this.#pending.set(requestId, item.request);
    } else if (item.type === "agent_request_cancelled") {
      // Only a request still waiting can be withdrawn.
      if (!this.#pending.delete(item.requestId)) return;
    } else if (item.type === "turn_end") {
      // The agent waits for every answer before it ends a turn: whatever is left (a
      // request the session never answered) can no longer be.
      this.#pending.clear();
    }
    onOutput(item);
  }

  #ended(): void {
    this.#pending.clear();
    for (const requestId of [...this.#awaited.keys()]) this.#settle(requestId, new Error("the agent exited"));
  }
}
