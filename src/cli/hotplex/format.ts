// Numbers, times and enum values as a person reads them.
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { SessionStatus } from "../../../gen/hotplex/v1/session_pb.js";
import { TurnOutcome } from "../../../gen/hotplex/v1/event_pb.js";

/** 850ms, 1.2s, 2m03s, 1h04m. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const s = Math.floor(ms / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3_600)}h${String(Math.floor((s % 3_600) / 60)).padStart(2, "0")}m`;
}

/** 950, 12.3k, 4.5M. */
export function formatCount(n: bigint | number): string {
  const v = Number(n);
  if (v < 1_000) return String(v);
  if (v < 1_000_000) return `${(v / 1_000).toFixed(1)}k`;
  return `${(v / 1_000_000).toFixed(1)}M`;
}

/** $0.0123 (four decimals below a dollar). */
export function formatCost(usd: number): string {
  if (!Number.isFinite(usd) || usd < 0) return "$?";
  return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

/** "12s ago", "3m ago", "5h ago", "2d ago", or the date past a month. */
export function formatAgo(time: Timestamp | undefined, now: number): string {
  if (!time) return "-";
  const then = timestampMs(time);
  const s = Math.max(0, Math.round((now - then) / 1_000));
  if (s < 60) return `${s}s ago`;
  if (s < 3_600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h ago`;
  if (s < 30 * 86_400) return `${Math.floor(s / 86_400)}d ago`;
  return new Date(then).toISOString().slice(0, 10);
}

export function formatTime(time: Timestamp | undefined): string {
  return time ? new Date(timestampMs(time)).toISOString() : "-";
}

// An enum value without its prefix, lowercase: SessionStatus.READY → "ready".
function enumName(names: Record<number, string>, value: number): string {
  return (names[value] ?? `unknown(${value})`).toLowerCase();
}

export const statusName = (status: SessionStatus) => enumName(SessionStatus, status);
export const outcomeName = (outcome: TurnOutcome) => enumName(TurnOutcome, outcome).replace("_", " ");
