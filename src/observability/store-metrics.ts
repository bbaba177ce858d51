import { Counter, Histogram, type Registry } from "prom-client";
import type { CommitObserver } from "../events/group-committer.js";
import { COMMIT_BUCKETS, PREFIX } from "./registry.js";

/** The store's group commits: latency, events written, failures. */
export class StoreMetrics {
  readonly #latency: Histogram;
  readonly #events: Counter;
  readonly #failures: Counter;

  constructor(registry: Registry) {
    this.#latency = new Histogram({
      name: `${PREFIX}store_commit_seconds`,
      help: "Time the store took to commit one group of events (all sessions' events of one turn of the event loop)",
      buckets: COMMIT_BUCKETS,
      registers: [registry],
    });
    this.#events = new Counter({
      name: `${PREFIX}store_committed_events_total`,
      help: "Events written to the store by successful commits",
      registers: [registry],
    });
    this.#failures = new Counter({
      name: `${PREFIX}store_commit_failures_total`,
      help: "Group commits that failed (they are retried)",
      registers: [registry],
    });
  }

  /** The group committer's observer. */
  readonly observer: CommitObserver = (seconds, events, failed) => {
    if (failed) {
      this.#failures.inc();
      return;
    }
    this.#latency.observe(seconds);
    if (events > 0) this.#events.inc(events);
  };
}
