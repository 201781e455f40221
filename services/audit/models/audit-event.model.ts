// Decision audit rows (reference-ops §1), ingested from the runtime's signed stream, never changed after.
//
// Stored lean for the store we run on: the filterable fields are top-level scalars (FerretDB pushes their
// equalities down), and the event itself is kept as the exact JSON text the producer signed (`data`), which
// FerretDB decodes about three times faster than the same content as a nested document.
import { Schema } from "mongoose";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";

export interface AuditEventDoc {
  /** The event id: a second delivery of the same event is a duplicate key. */
  _id: string;
  zone_id: string;
  event_type: string | null;
  request_id: string | null;
  decision: string | null;
  occurred_at: Date;
  ingested_at: Date;
  /** Copies of metadata keys the list filters on (only when the metadata holds them as strings). */
  application_id?: string;
  agent_session_id?: string;
  session_id?: string;
  /** metadata.agent_labels (strings): `{labels: "x"}` matches an array holding "x", pushed down. */
  labels?: string[];
  content_sha256: string;
  /** The producer's HMAC over `data`, kept as received. */
  sig: string | null;
  data: string;
  _seq: number;
  _bucket: string;
}

export const auditEventSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    event_type: { type: String, default: null },
    request_id: { type: String, default: null },
    decision: { type: String, default: null },
    occurred_at: { type: Date, required: true },
    ingested_at: { type: Date, required: true },
    application_id: String,
    agent_session_id: String,
    session_id: String,
    labels: { type: [String], default: undefined },
    content_sha256: { type: String, required: true },
    sig: { type: String, default: null },
    data: { type: String, required: true },
    ...listedFields,
  },
  { versionKey: false, _id: false },
);

// Only the bucket and the request id are indexed: the other equalities are pushed down with the bucket and
// checked by PostgreSQL on its ≤256 rows, so an index on them would only slow ingest.
addListIndexes(auditEventSchema);
auditEventSchema.index({ request_id: 1 });

/** A replay of a stored event id with different content (reference-ops §1.2 `audit_ingest_alerts`). */
export const ingestAlertSchema = new Schema(
  {
    _id: { type: String, required: true },
    kind: { type: String, required: true },
    event_id: String,
    zone_id: String,
    stored_sha256: String,
    received_sha256: String,
    stream_entry_id: String,
    created_at: Date,
  },
  { versionKey: false, _id: false },
);
