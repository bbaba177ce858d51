import { Code } from "@connectrpc/connect";
import { collectDefaultMetrics, Registry } from "prom-client";

/** The prefix of every metric hotplex defines (the process defaults keep their usual names). */
export const PREFIX = "hotplex_";

/**
 * A registry of one daemon's metrics, with the process defaults (CPU, memory, event loop
 * lag, GC, handles) under their usual names. One per daemon, never prom-client's global
 * registry: tests and embedders run several daemons in one process.
 */
export function createRegistry(): Registry {
  const registry = new Registry();
  // The event loop's delay sampled every 100 ms rather than prom-client's 10: a stall still
  // delays the sample timer (it is always armed), and an idle daemon wakes 10 times a second
  // instead of 100 (measured: 6.7 ms of CPU per second idle at 10 ms).
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  return registry;
}

/** How often the event loop delay (nodejs_eventloop_lag_*) is sampled. */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Buckets for durations of milliseconds to minutes (RPCs, turns, approvals), in seconds. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Buckets for store commits: tens of microseconds to a second. */
export const COMMIT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * Label values from a set that should be small but is not enforced by a type (rule ids from
 * config): the first `max` distinct values pass, later ones become "other", so a label can
 * never grow without bound, whatever reaches it.
 */
export class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  value(raw: string): string {
    if (this.#seen.has(raw)) return raw;
    if (this.#seen.size >= this.#max || raw.length > MAX_LABEL_CHARS || raw === "") return "other";
    this.#seen.add(raw);
    return raw;
  }
}

// A label value longer than this is no identifier from config.
const MAX_LABEL_CHARS = 128;

/** The code as the Connect protocol spells it on the wire: "ok", "not_found", "invalid_argument". */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "ok";
  return CODE_NAMES[code] ?? "unknown";
}

const CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Code)
    .filter(([, value]) => typeof value === "number")
    .map(([name, value]) => [value, name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()]),
);
