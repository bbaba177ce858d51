// What every command gets: the io, the resolved settings, the clients and colors.
import { type Clients, createClients } from "./client.js";
import { type Colors, colorsFor } from "./colors.js";
import type { CliIo } from "./io.js";
import { type GlobalFlags, resolveSettings, type Settings } from "./settings.js";

export interface CommandContext {
  io: CliIo;
  settings: Settings;
  clients: Clients;
  /** Colors for stdout and for stderr (each depends on its own stream). */
  colors: Colors;
  errColors: Colors;
  /** Width for one-line summaries. */
  width: number;
  /** Writes to stdout. */
  print(text: string): void;
  /** Writes a line to stderr. */
  warn(line: string): void;
}

/** Call options of a unary RPC: none waits forever for a daemon that does not answer. */
export const UNARY = { timeoutMs: 30_000 };

export interface ContextFlags extends GlobalFlags {
  color?: boolean;
}

export function createContext(io: CliIo, flags: ContextFlags): CommandContext {
  const settings = resolveSettings(flags, io.env, io.homeDir);
  const errColors = colorsFor(io.stderr, io.env, flags.color);
  const context: CommandContext = {
    io,
    settings,
    clients: createClients(settings),
    colors: colorsFor(io.stdout, io.env, flags.color),
    errColors,
    width: Math.min(200, Math.max(40, io.stdout.columns ?? 100)),
    print: (text) => io.stdout.write(text),
    warn: (line) => io.stderr.write(`${line}\n`),
  };
  for (const warning of settings.warnings) context.warn(errColors.yellow(`warning: ${warning}`));
  return context;
}
