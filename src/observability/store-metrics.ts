import { Counter, type Registry } from "prom-client";
import { DeferredCounter, DeferredHistogram } from "./deferred.js";
import type { CommitObserver } from "../events/group-committer.js";
import { COMMIT_BUCKETS, PREFIX } from "./registry.js";

/** The store's group commits: latency, events written, failures (deferred: a commit is on every turn's path). */
export class StoreMetrics {
  readonly #latency: DeferredHistogram<never>;
  readonly #events: DeferredCounter<never>;
  readonly #failures: Counter;

  constructor(registry: Registry) {
    this.#latency = new DeferredHistogram<never>({
      name: `${PREFIX}store_commit_seconds`,
      help: "Time the store took to commit one group of events (all sessions' events of one turn of the event loop)",
      buckets: COMMIT_BUCKETS,
      registers: [registry],
    });
    this.#events = new DeferredCounter<never>({
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
    this.#latency.observe("", unlabeled, seconds);
    if (events > 0) this.#events.inc("", unlabeled, events);
  };
}

const unlabeled = () => ({});
