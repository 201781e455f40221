// Decision audit rows (reference-ops §1), ingested from the runtime's signed stream, never changed after.
//
// Laid out for the store we run on. FerretDB v1 decodes every document a page reads, and what that costs
// grows with the number of top-level fields far more than with their size (measured on 256-row buckets:
// 16 fields ~200 ms, the same bytes in 4 fields ~80 ms). So a row holds only what is pushed down as an
// equality (the filters, the request key), the keyset time, the event itself as the exact JSON text the
// producer signed (`data`), and one packed string for the rest (`x`). The zone is in `_bucket`, `rk`
// and `data`.
import { Schema } from "mongoose";
import { addListIndexes } from "../../../shared/list/buckets";

export interface AuditEventDoc {
  /** The event id: a second delivery of the same event is a duplicate key. */
  _id: string;
  _bucket: string;
  occurred_at: Date;
  /** `<zone>|<request_id>`: by-request and the request_id filter in one indexed equality. */
  rk?: string;
  event_type?: string;
  decision?: string;
  /** Copies of metadata keys the list filters on (only when the metadata holds them as strings). */
  application_id?: string;
  agent_session_id?: string;
  session_id?: string;
  /** metadata.agent_labels (strings): `{labels: "x"}` matches an array holding "x", pushed down. */
  labels?: string[];
  data: string;
  /** `<ingested_at ms>|<content sha256>|<producer sig>` (see packExtra). */
  x: string;
}

export const auditEventSchema = new Schema(
  {
    _id: { type: String, required: true },
    _bucket: String,
    occurred_at: { type: Date, required: true },
    rk: String,
    event_type: String,
    decision: String,
    application_id: String,
    agent_session_id: String,
    session_id: String,
    labels: { type: [String], default: undefined },
    data: { type: String, required: true },
    x: { type: String, required: true },
  },
  { versionKey: false, _id: false },
);

// Only the bucket and the request key are indexed: the other equalities are pushed down with the bucket
// and checked by PostgreSQL on its ≤256 rows, so an index on them would only slow ingest.
addListIndexes(auditEventSchema);
auditEventSchema.index({ rk: 1 });

export const requestKey = (zoneId: string, requestId: string) => `${zoneId}|${requestId}`;

export interface RowExtra {
  ingestedAt: Date;
  /** The content hash a replay is compared with (§1.2). */
  sha256: string;
  /** The producer's HMAC over `data`, as received (empty when none). */
  sig: string;
}

export const packExtra = (e: RowExtra): string => `${e.ingestedAt.getTime()}|${e.sha256}|${e.sig}`;

export function unpackExtra(x: string): RowExtra {
  const [at, sha256, sig] = x.split("|");
  return { ingestedAt: new Date(Number(at)), sha256: sha256 ?? "", sig: sig ?? "" };
}

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
