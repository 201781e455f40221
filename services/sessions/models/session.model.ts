// Subject sessions (reference-ops §3): created by the runtime's token exchanges, read-only through the API.
import { Schema } from "mongoose";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";

export interface SessionDoc {
  _id: string;
  zone_id: string;
  session_type: "user" | "application";
  subject_id: string | null;
  parent_id: string | null;
  status: "active" | "revoked" | "expired";
  expires_at: Date;
  authenticated_at: Date;
  created_at: Date;
  revoked_at: Date | null;
  revoked_reason: string | null;
  /** Stored, never returned. */
  claims_json: string | null;
  /** The stream entry that created it. */
  entry_id: string;
  /**
   * The stream entry that ended it (revoked or expired), null when the control plane did (a revocation flow,
   * the reaper): of two endings handled out of order, the earlier in the stream wins.
   */
  ended_entry: string | null;
  updated_at: Date;
}

export const sessionSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    session_type: { type: String, required: true },
    subject_id: { type: String, default: null },
    parent_id: { type: String, default: null },
    status: { type: String, required: true },
    expires_at: { type: Date, required: true },
    authenticated_at: { type: Date, required: true },
    created_at: { type: Date, required: true },
    revoked_at: { type: Date, default: null },
    revoked_reason: { type: String, default: null },
    claims_json: { type: String, default: null },
    entry_id: { type: String, required: true },
    ended_entry: { type: String, default: null },
    updated_at: { type: Date, required: true },
    ...listedFields,
  },
  { versionKey: false, _id: false },
);

// Indexes, few on purpose: on FerretDB each declared field is a GIN index that every insert and every
// update of a row maintains (an update rewrites the row), and with seven of them an update cost ~5x one
// with three. A list page selects one bucket by its index; the filters ride along as equalities the store
// checks on that bucket's rows (≤ 256) without an index of their own. Only the revocation flows' lookups
// that are not bounded by a bucket get one: a subject's sessions and a session's children.
addListIndexes(sessionSchema);
sessionSchema.index({ subject_id: 1 });
sessionSchema.index({ parent_id: 1 });

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

export const toPublicSession = (s: SessionDoc) => ({
  id: s._id,
  zone_id: s.zone_id,
  session_type: s.session_type,
  subject_id: s.subject_id,
  parent_id: s.parent_id,
  status: s.status,
  expires_at: iso(s.expires_at),
  authenticated_at: iso(s.authenticated_at),
  created_at: iso(s.created_at),
  revoked_at: iso(s.revoked_at),
  revoked_reason: s.revoked_reason,
});

/** CSV columns, fixed (no zone_id), reference-ops §3. */
export const SESSION_CSV_COLUMNS = ["id", "session_type", "subject_id", "parent_id", "status", "authenticated_at", "created_at", "expires_at", "revoked_at", "revoked_reason"] as const;

/** Fields a list reads (claims never leave the store). */
export const SESSION_LIST_PROJECTION = { claims_json: 0, entry_id: 0, ended_entry: 0 } as const;
