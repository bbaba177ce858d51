import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { type AuditEvent, AuditEventSchema } from "../../gen/hotplex/v1/admin_service_pb.js";
import type { AuditRecord, Store } from "../store/store.js";

/** "admin_action", "policy_denied" or "permission_denied". */
export type AuditKind =
  | "admin_action"
  | "policy_denied"
  | "permission_denied"
  /** A rule of the tenant's blocked a prompt or a tool call. */
  | "rule_blocked"
  /** A rule of the tenant's put a tool call to a client. */
  | "rule_asked"
  /** A rule matched while an admin had lifted the session's rules. */
  | "rule_bypassed";

export interface AuditEntry {
  kind: AuditKind;
  principal: string;
  tenant?: string;
  sessionId?: string;
  method: string;
  detail: string;
}

/** Entries kept: the newest this many (older ones are dropped as new ones arrive). */
const KEPT_ENTRIES = 10_000;

/**
 * The audit log of admin actions and refusals, kept in the store (it survives restarts)
 * and mirrored to the daemon's log. Entries never hold a secret: credentials appear by
 * name only.
 */
export class AuditLog {
  readonly #store: Store;
  readonly #logger: Logger;

  constructor(store: Store, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /**
   * Stores an entry (in the order entries are recorded) and mirrors it to the daemon's
   * log once stored. Never throws: a full disk must not turn a refusal into a crash; the
   * log line still tells.
   */
  record(entry: AuditEntry, nowMs = Date.now()): void {
    const record = { timeMs: nowMs, tenant: "", sessionId: "", ...entry };
    let stored: Promise<number>;
    try {
      stored = this.#store.appendAudit(record, KEPT_ENTRIES);
    } catch (error) {
      stored = Promise.reject(error);
    }
    stored.then(
      (id) => this.#logger.info({ audit: id, ...entry }, "audit"),
      (error: unknown) => this.#logger.error({ err: error, ...entry }, "audit entry could not be stored"),
    );
  }

  async list(afterId: number, limit: number): Promise<AuditEvent[]> {
    return (await this.#store.readAudit(afterId, limit)).map(toEvent);
  }
}

function toEvent(record: AuditRecord): AuditEvent {
  return create(AuditEventSchema, {
    id: BigInt(record.id),
    time: timestampFromMs(record.timeMs),
    kind: record.kind,
    principal: record.principal,
    tenant: record.tenant,
    sessionId: record.sessionId,
    method: record.method,
    detail: record.detail,
  });
}
