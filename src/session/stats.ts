import { clone, create } from "@bufbuild/protobuf";
import { type SessionStats, SessionStatsSchema } from "../../gen/hotplex/v1/session_pb.js";
import { type Event, TurnOutcome } from "../events/event.js";

/**
 * Folds a session's events into its cumulative statistics. Every number comes from one
 * event kind, added once: per-turn figures from TurnEnded (whose cost is already the
 * turn's share, not the agent's running total), tool figures from ToolUse/ToolResult.
 */
export class StatsAccumulator {
  stats: SessionStats = create(SessionStatsSchema);
  // File edits waiting for their result; a failed or refused edit modified nothing.
  #pendingEdits = new Map<string, readonly string[]>();
  #modified = new Set<string>();

  /** Continues from statistics stored before a daemon restart. */
  restore(stats: SessionStats): void {
    this.stats = clone(SessionStatsSchema, stats);
    this.#modified = new Set(stats.modifiedFiles);
    this.#pendingEdits.clear();
  }

  apply(event: Event): void {
    const { payload } = event;
    const stats = this.stats;
    switch (payload.case) {
      case "toolUse": {
        const { name, toolUseId, modifiedPaths } = payload.value;
        stats.toolCalls += 1;
        // toolsUsed is a plain object: a tool named "constructor" must not read Object.prototype
        // (the count became a string and the stats failed to serialize), nor "__proto__" hit its setter.
        const count = Object.hasOwn(stats.toolsUsed, name) ? (stats.toolsUsed[name] ?? 0) : 0;
        Object.defineProperty(stats.toolsUsed, name, { value: count + 1, enumerable: true, writable: true, configurable: true });
        // The provider names the files a call writes; they count once its result succeeds.
        if (modifiedPaths.length > 0) this.#pendingEdits.set(toolUseId, modifiedPaths);
        break;
      }
      case "toolResult": {
        const paths = this.#pendingEdits.get(payload.value.toolUseId);
        if (paths === undefined) break;
        this.#pendingEdits.delete(payload.value.toolUseId);
        if (payload.value.isError) break;
        for (const path of paths) {
          if (this.#modified.has(path)) continue;
          this.#modified.add(path);
          stats.modifiedFiles.push(path);
        }
        break;
      }
      case "turnEnded": {
        const turn = payload.value;
        stats.turns += 1;
        if (turn.outcome !== TurnOutcome.COMPLETED) stats.failedTurns += 1;
        stats.totalDurationMs += turn.durationMs;
        stats.thinkingDurationMs += turn.thinkingDurationMs;
        stats.toolDurationMs += turn.toolDurationMs;
        stats.generationDurationMs += turn.generationDurationMs;
        if (turn.usage) {
          stats.inputTokens += turn.usage.inputTokens;
          stats.outputTokens += turn.usage.outputTokens;
          stats.cacheReadTokens += turn.usage.cacheReadTokens;
          stats.cacheWriteTokens += turn.usage.cacheWriteTokens;
        }
        stats.costUsd += Math.max(0, turn.costUsd);
        this.#pendingEdits.clear();
        break;
      }
      default:
        break;
    }
  }
}
