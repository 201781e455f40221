// Policies and their immutable versions: one document per policy, one per version (numbered 1, 2, … per policy).
import { Schema } from "mongoose";
import { outboxFields, addOutboxIndexes } from "../../../shared/outbox/entry";
import { J } from "../../../shared/api-doc";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";

export interface PolicyDoc {
  _id: string;
  zone_id: string;
  name: string;
  description: string | null;
  owner_type: string;
  created_by: string;
  co_authored_by_operator: boolean;
  created_at: Date;
  archived_at: Date | null;
  /** `archived_at !== null`, as an equality the store can push down. */
  archived: boolean;
  /** Version ids in order (version n is at n-1): the list GET reads by id, and the numbering counter. */
  version_ids: string[];
}

export interface PolicyVersionDoc {
  _id: string;
  policy_id: string;
  zone_id: string;
  version: number;
  content: string;
  content_sha256: string;
  schema_version: string;
  created_by: string;
  created_at: Date;
}

export const policySchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    name: { type: String, required: true },
    description: { type: String, default: null },
    owner_type: { type: String, required: true },
    created_by: { type: String, required: true },
    co_authored_by_operator: { type: Boolean, default: false },
    created_at: { type: Date, required: true },
    archived_at: { type: Date, default: null },
    archived: { type: Boolean, default: false },
    ...listedFields,
    version_ids: { type: [String], default: [] },
    ...outboxFields,
  },
  { versionKey: false, _id: false },
);
// Names stay taken after archival (as in the reference); a clash is 409 policy_name_conflict.
policySchema.index({ zone_id: 1, name: 1 }, { unique: true });
addListIndexes(policySchema, ["archived"]);
addOutboxIndexes(policySchema);

export const policyVersionSchema = new Schema(
  {
    _id: { type: String, required: true },
    policy_id: { type: String, required: true },
    zone_id: { type: String, required: true },
    version: { type: Number, required: true },
    content: { type: String, required: true },
    content_sha256: { type: String, required: true },
    schema_version: { type: String, required: true },
    created_by: { type: String, required: true },
    created_at: { type: Date, required: true },
    ...outboxFields,
  },
  { versionKey: false, _id: false },
);
// Numbering without gaps or duplicates: writers of one policy take its lock and the next number from
// version_ids; the index refuses a number taken by a write that crashed before it was listed.
policyVersionSchema.index({ policy_id: 1, version: 1 }, { unique: true });
addOutboxIndexes(policyVersionSchema);

export const toPublicPolicy = (p: PolicyDoc) => ({
  id: p._id,
  zone_id: p.zone_id,
  name: p.name,
  description: p.description ?? null,
  owner_type: p.owner_type,
  created_by: p.created_by,
  co_authored_by_operator: p.co_authored_by_operator,
  created_at: new Date(p.created_at).toISOString(),
});

export const toPublicPolicyVersion = (v: PolicyVersionDoc) => ({
  id: v._id,
  policy_id: v.policy_id,
  version: v.version,
  content: v.content,
  content_sha256: v.content_sha256,
  schema_version: v.schema_version,
  created_by: v.created_by,
  created_at: new Date(v.created_at).toISOString(),
  archived_at: null,
});

/** The short form returned on create: no content. */
export const versionSummary = (v: PolicyVersionDoc) => ({
  id: v._id,
  policy_id: v.policy_id,
  version: v.version,
  content_sha256: v.content_sha256,
  schema_version: v.schema_version,
  created_at: new Date(v.created_at).toISOString(),
});

const sha256 = J.string({ pattern: "^[0-9a-f]{64}$" });

/** What toPublicPolicy returns. */
export const publicPolicySchema = J.obj({
  id: J.id,
  zone_id: J.id,
  name: J.string(),
  description: J.nullable(J.string()),
  owner_type: J.string(),
  created_by: J.string(),
  co_authored_by_operator: J.boolean,
  created_at: J.timestamp,
});

/** What toPublicPolicyVersion returns (versions never change, so `archived_at` is always null). */
export const publicPolicyVersionSchema = J.obj({
  id: J.id,
  policy_id: J.id,
  version: J.integer({ minimum: 1 }),
  content: J.string(),
  content_sha256: sha256,
  schema_version: J.string(),
  created_by: J.string(),
  created_at: J.timestamp,
  archived_at: { type: "null" },
});

/** What versionSummary returns. */
export const versionSummarySchema = J.obj({
  id: J.id,
  policy_id: J.id,
  version: J.integer({ minimum: 1 }),
  content_sha256: sha256,
  schema_version: J.string(),
  created_at: J.timestamp,
});
