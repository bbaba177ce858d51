// Node's timers hold at most 2^31 - 1 ms (~24.8 days); a longer delay fires after 1 ms
// instead (with a TimeoutOverflowWarning). An idle timeout of 2,147,484 s reaped the agent
// at once. Long delays are waited out in steps of the longest delay Node keeps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer that fires once after `ms`, however long. */
export interface LongTimeout {
  clear(): void;
}

/** Calls `fn` once after `ms` milliseconds (unref'd: it does not keep the process alive). */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  let timer: NodeJS.Timeout | undefined;
  let remaining = Math.max(0, ms);
  const arm = () => {
    const step = Math.min(remaining, MAX_TIMER_MS);
    remaining -= step;
    timer = setTimeout(remaining > 0 ? arm : fn, step);
    timer.unref();
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
