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
    updated_at: { type: Date, required: true },
    ...listedFields,
  },
  { versionKey: false, _id: false },
);

// Lists: one zone is one bucketed scope; every list filter is an equality pushed down with the bucket.
addListIndexes(sessionSchema, ["status", "subject_id", "session_type", "parent_id"]);
// The revocation flows: a subject's sessions, a session's children.
sessionSchema.index({ zone_id: 1, subject_id: 1, status: 1 });
sessionSchema.index({ zone_id: 1, parent_id: 1 });

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
export const SESSION_LIST_PROJECTION = { claims_json: 0, entry_id: 0 } as const;
