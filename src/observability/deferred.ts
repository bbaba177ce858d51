import { Counter, type CounterConfiguration, Histogram, type HistogramConfiguration, type LabelValues } from "prom-client";

/**
 * Observations waiting at most before they are handed to prom-client anyway: bounds the
 * memory between two scrapes (or with nobody scraping at all).
 */
const MAX_PENDING = 1024;

/**
 * A label set's values in a fixed order, joined by NUL (no label value is ever NUL: they come
 * from enums and config, bounded by BoundedLabel).
 */
type LabelKey = string;

/**
 * One label set, resolved once: prom-client hashes and validates the labels on every call,
 * which on a turn's path costs more than the turn's own bookkeeping (measured in the ops
 * benchmark). The key is built by the caller from its few label values.
 */
class LabelSets<T extends string> {
  readonly #sets = new Map<LabelKey, LabelValues<T>>();

  of(key: LabelKey, make: () => LabelValues<T>): LabelValues<T> {
    let labels = this.#sets.get(key);
    if (labels === undefined) {
      labels = Object.freeze(make());
      this.#sets.set(key, labels);
    }
    return labels;
  }
}

/**
 * A prom-client Counter whose increments are summed in a plain map and handed over when the
 * registry is read (its `collect`), or when many label sets are waiting. What /metrics shows
 * is exactly what was counted; the per-call cost is a map lookup.
 */
export class DeferredCounter<T extends string> {
  readonly #counter: Counter<T>;
  readonly #labelSets = new LabelSets<T>();
  readonly #pending = new Map<LabelValues<T>, number>();

  constructor(config: Omit<CounterConfiguration<T>, "collect">) {
    const flush = () => this.flush();
    this.#counter = new Counter<T>({ ...config, collect: flush });
  }

  /** Counts `value` (1 by default) for the label set `key` (make() builds its labels the first time). */
  inc(key: LabelKey, make: () => LabelValues<T>, value = 1): void {
    const labels = this.#labelSets.of(key, make);
    this.#pending.set(labels, (this.#pending.get(labels) ?? 0) + value);
    if (this.#pending.size >= MAX_PENDING) this.flush();
  }

  /** Hands what was counted to prom-client. */
  flush(): void {
    for (const [labels, value] of this.#pending) this.#counter.inc(labels, value);
    this.#pending.clear();
  }
}

/**
 * A prom-client Histogram whose observations wait in two arrays until the registry is read
 * (its `collect`) or MAX_PENDING are waiting, then are observed in one loop: the same
 * buckets, sums and counts, at a fraction of the cost on the path that produced them.
 */
export class DeferredHistogram<T extends string> {
  readonly #histogram: Histogram<T>;
  readonly #labelSets = new LabelSets<T>();
  readonly #labels: LabelValues<T>[] = [];
  readonly #values: number[] = [];

  constructor(config: Omit<HistogramConfiguration<T>, "collect">) {
    const flush = () => this.flush();
    this.#histogram = new Histogram<T>({ ...config, collect: flush });
  }

  /** Observes `value` for the label set `key` (make() builds its labels the first time). */
  observe(key: LabelKey, make: () => LabelValues<T>, value: number): void {
    this.#labels.push(this.#labelSets.of(key, make));
    this.#values.push(value);
    if (this.#values.length >= MAX_PENDING) this.flush();
  }

  /** Hands what was observed to prom-client. */
  flush(): void {
    const labels = this.#labels;
    const values = this.#values;
    for (let i = 0; i < values.length; i += 1) this.#histogram.observe(labels[i] as LabelValues<T>, values[i] as number);
    labels.length = 0;
    values.length = 0;
  }
}
