// The admin-audit hand-off: the record the gateway writes for a request and the stream it travels on.
//
// The gateway does not call the audit service: it appends each record to a Redis stream (signed like every
// stream entry, §7.4) after the response has gone out, and the audit service consumes that stream with a
// consumer group. Redis holds the records while the audit service is down, so none is lost and no request
// waits for the audit write.
import { streamName } from "./config";

/** One recorded request (reference-ops §2.1); the chain fields are added by the audit service. */
export interface AdminAuditRecord {
  id: string;
  request_id: string;
  actor_id: string | null;
  actor_name: string | null;
  actor_scope: string | null;
  action: string;
  method: string;
  path: string;
  zone_id: string | null;
  entity_type: string | null;
  entity_id: string | null;
  status_code: number;
  /** The payload as the exact compact JSON text that is hashed (key order kept), or null when none. */
  payload: string | null;
  occurred_at: string;
}

/** The hand-off's logical stream name (internal to this project; STREAM_PREFIX applies as to every stream). */
export const ADMIN_AUDIT_STREAM = "caracal.admin-audit.handoff";

export const adminAuditStream = (): string => streamName(ADMIN_AUDIT_STREAM);

/** The field of the stream entry that carries the record as JSON. */
export const RECORD_FIELD = "record";
