import { create } from "@bufbuild/protobuf";
import { RawOutputSchema } from "../../events/event.js";
import type { ProcessExit } from "../../process/agent-process.js";
import type { Command } from "../../process/command.js";
import type { LaunchedAgent } from "../../process/launcher.js";
import type { AgentConnection } from "../connection.js";
import type { AgentStart, OutputParser, ParsedOutput, ProviderCapabilities } from "../provider.js";

/** How one agent's stdin lines are written: each returns one line without its newline. */
export interface NdjsonEncoder {
  prompt(text: string): string;
  interrupt(requestId: string): string;
  refuse(requestId: string, message: string): string;
}

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

/**
 * An agent process that reads NDJSON commands on stdin and prints NDJSON on stdout, one
 * conversation per process (Claude Code's stream-json mode).
 */
export class StdioNdjsonConnection extends StdioAgentConnection implements AgentConnection {
  readonly capabilities: ProviderCapabilities;
  readonly #encoder: NdjsonEncoder;
  #interrupts = 0;

  private constructor(lines: StdioLines, encoder: NdjsonEncoder, capabilities: ProviderCapabilities) {
    super(lines);
    this.#encoder = encoder;
    this.capabilities = capabilities;
  }

  static async open(
    start: AgentStart,
    command: Command,
    parser: OutputParser,
    encoder: NdjsonEncoder,
    capabilities: ProviderCapabilities,
  ): Promise<StdioNdjsonConnection> {
    const lines = await launchStdio(start, command, (line) => {
      for (const item of parseSafely(parser, line)) start.handlers.onOutput(item);
    });
    return new StdioNdjsonConnection(lines, encoder, capabilities);
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

  async close(graceMs: number): Promise<ProcessExit> {
    await this.lines.agent.process.terminate(graceMs);
    return this.lines.agent.exited;
  }
}
