/**
 * Whether the daemon takes new work, as health checks and readiness probes report it.
 *
 * SERVING: new sessions and turns are accepted.
 * DRAINING: a drain started (the admin RPC or a signal): no new sessions or turns, running
 *   turns may finish within the grace period.
 * STOPPING: the engine shuts down: every session is stopped and every stream ends.
 *
 * The phase only moves forward (SERVING → DRAINING → STOPPING, or straight to STOPPING), so
 * a probe never sees a daemon come back after it announced it is going away.
 */
export enum ServingPhase {
  SERVING = "serving",
  DRAINING = "draining",
  STOPPING = "stopping",
}

const ORDER: Record<ServingPhase, number> = { [ServingPhase.SERVING]: 0, [ServingPhase.DRAINING]: 1, [ServingPhase.STOPPING]: 2 };

export type ServingListener = (phase: ServingPhase) => void;

/** The engine's serving phase and the listeners told of each change (health watchers). */
export class ServingState {
  #phase = ServingPhase.SERVING;
  readonly #listeners = new Set<ServingListener>();

  get phase(): ServingPhase {
    return this.#phase;
  }

  /** True while new work is accepted. */
  get serving(): boolean {
    return this.#phase === ServingPhase.SERVING;
  }

  /**
   * Moves to `phase` if it lies ahead of the current one, and tells every listener before it
   * returns: whoever starts a drain can rely on probes reporting it before the drain's
   * first step.
   */
  enter(phase: ServingPhase): void {
    if (ORDER[phase] <= ORDER[this.#phase]) return;
    this.#phase = phase;
    for (const listener of [...this.#listeners]) {
      try {
        listener(phase);
      } catch {
        // A listener's failure is its own; the phase changed all the same.
      }
    }
  }

  /** Calls `listener` on every later change; returns the function that removes it. */
  onChange(listener: ServingListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves at the next change of phase, or when `signal` aborts; holds one listener until
   * then. A watcher that awaits this before reading the phase again misses no change and
   * never queues any: it only ever needs the latest phase.
   */
  nextChange(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const done = () => {
        off();
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const off = this.onChange(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}
