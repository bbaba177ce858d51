import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { SessionConfigSchema, SessionStatsSchema, type SessionStatus } from "../../../gen/hotplex/v1/session_pb.js";
import type { SessionRecord } from "../store.js";

/**
 * A session's registry entry as it is kept in Redis: JSON with the config and stats as
 * their protobuf encodings (base64), as the SQLite store keeps them as blobs. A version
 * field lets a later format read this one.
 */
export interface RecordJson extends Omit<SessionRecord, "config" | "stats"> {
  v: 1;
  config: string;
  stats: string;
}

/** The entry as JSON, taken from the record now (the caller's objects change later). */
export function recordJson(record: SessionRecord): RecordJson {
  return {
    ...record,
    v: 1,
    config: Buffer.from(toBinary(SessionConfigSchema, record.config)).toString("base64"),
    stats: Buffer.from(toBinary(SessionStatsSchema, record.stats)).toString("base64"),
  };
}

/** The entry's bytes, naming the node that writes it and its epoch. */
export function encodeRecord(json: RecordJson, owner: { node: string; epoch: number }): Buffer {
  return Buffer.from(JSON.stringify({ ...json, owner }));
}

/** The entry, or an Error naming what is wrong with it (a damaged or foreign value). */
export function decodeRecord(bytes: Buffer): SessionRecord {
  const json = JSON.parse(bytes.toString("utf8")) as Partial<RecordJson>;
  if (json.v !== 1) throw new Error(`unknown registry entry format ${JSON.stringify(json.v)}`);
  for (const field of ["key", "tenant", "sessionId", "incarnation", "provider", "providerSessionId", "workDir", "agentCommand", "currentTurnId", "extras", "config", "stats"] as const) {
    if (typeof json[field] !== "string") throw new Error(`registry entry field ${field} is not a string`);
  }
  for (const field of ["status", "createdAtMs", "lastActiveMs", "pgid", "lastSeq"] as const) {
    if (!Number.isSafeInteger(json[field])) throw new Error(`registry entry field ${field} is not an integer`);
  }
  if (typeof json.hasConversation !== "boolean") throw new Error("registry entry field hasConversation is not a boolean");
  const { owner } = json;
  if (owner !== undefined && (typeof owner?.node !== "string" || !Number.isSafeInteger(owner.epoch))) throw new Error("registry entry field owner is not a node and an epoch");
  const { v: _version, config, stats, ...rest } = json as RecordJson;
  return {
    ...rest,
    status: rest.status as SessionStatus,
    config: fromBinary(SessionConfigSchema, Buffer.from(config, "base64")),
    stats: fromBinary(SessionStatsSchema, Buffer.from(stats, "base64")),
  };
}
