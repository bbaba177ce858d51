import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Integration suites start real processes; give them room on a loaded 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Suites that spawn agents and daemons compete for 2 cores; keep parallelism modest.
    maxWorkers: 2,
  },
});
