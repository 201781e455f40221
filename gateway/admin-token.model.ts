// The admin_tokens collection (hash and lookup digest only, never the token) and the public shape of a token.
import { addListIndexes, listedFields } from "../shared/list/buckets";
import { Schema } from "mongoose";
import { J } from "../shared/api-doc";

export interface TokenDoc {
  _id: string;
  name: string;
  scope: "global" | "zone";
  capability: "read" | "write";
  zone_id: string | null;
  created_by: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
  digest: string;
  hash: string;
}

export const tokenSchema = new Schema(
  {
    _id: String,
    name: String,
    scope: String,
    capability: String,
    zone_id: { type: String, default: null },
    created_by: String,
    created_at: Date,
    last_used_at: { type: Date, default: null },
    revoked_at: { type: Date, default: null },
    digest: String,
    hash: String,
    ...listedFields,
  },
  { versionKey: false, _id: false },
);
// Tokens are not inside a zone: one list scope for all (shared/list/buckets.ts).
addListIndexes(tokenSchema);
// A token's tokens (revoked together when it is rotated).
tokenSchema.index({ created_by: 1 });

// Lookup by SHA-256 digest as the document `_id`: FerretDB v1 resolves only `_id` equality without a scan.
// Written before the token row, so a crash in between leaves a digest that points at nothing.
export const digestSchema = new Schema({ _id: String, token_id: String }, { versionKey: false, _id: false });

export const toPublicToken = (t: TokenDoc) => ({
  id: t._id,
  name: t.name,
  scope: t.scope,
  capability: t.capability,
  zone_id: t.zone_id,
  created_by: t.created_by,
  created_at: t.created_at.toISOString(),
  last_used_at: t.last_used_at ? t.last_used_at.toISOString() : null,
  revoked_at: t.revoked_at ? t.revoked_at.toISOString() : null,
});

/** What toPublicToken returns. */
export const publicTokenSchema = J.obj({
  id: J.id,
  name: J.string(),
  scope: J.enum(["global", "zone"]),
  capability: J.enum(["read", "write"]),
  zone_id: J.nullable(J.id),
  created_by: J.string(),
  created_at: J.timestamp,
  last_used_at: J.nullable(J.timestamp),
  revoked_at: J.nullable(J.timestamp),
});
