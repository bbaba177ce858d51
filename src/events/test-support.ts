// Small helpers shared by the event tests.
import { create } from "@bufbuild/protobuf";
import { type EventPayload, TextDeltaSchema } from "./event.js";

/** A text-delta payload. */
export function text(value: string): EventPayload {
  return { case: "textDelta", value: create(TextDeltaSchema, { text: value }) };
}

/** The seqs of events, as numbers. */
export function seqs(events: readonly { seq: bigint }[]): number[] {
  return events.map((event) => Number(event.seq));
}

/** from, from + 1, …, to. */
export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let seq = from; seq <= to; seq++) out.push(seq);
  return out;
}

/** Lets every pending microtask and one macrotask turn run (setImmediate). */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** What `fn` throws; fails if it does not throw. */
export function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to throw");
}
