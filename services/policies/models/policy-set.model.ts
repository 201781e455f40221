// Policy sets (each with its activation binding inline) and their immutable, numbered versions.
import { Schema } from "mongoose";
import { outboxFields, addOutboxIndexes, type OutboxEntry } from "../../../shared/outbox/entry";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";
import type { ManifestEntry } from "../manifest";
import { J } from "../../../shared/api-doc";

export interface PolicySetDoc {
  _id: string;
  zone_id: string;
  name: string;
  description: string | null;
  created_by: string;
  co_authored_by_operator: boolean;
  created_at: Date;
  archived_at: Date | null;
  /** `archived_at !== null`, as an equality the store can push down. */
  archived: boolean;
  active_version_id: string | null;
  shadow_version_id: string | null;
  /** `zone:<zoneId>` while this set is the zone's active one, `set:<id>` otherwise (see the unique index). */
  active_slot: string;
  activated_at: Date | null;
  /** Version ids in order; the numbering counter (see policy.model.ts). */
  version_ids: string[];
  _outbox?: OutboxEntry[];
}

export interface PolicySetVersionDoc {
  _id: string;
  policy_set_id: string;
  zone_id: string;
  version: number;
  manifest: ManifestEntry[];
  manifest_sha256: string;
  schema_version: string;
  created_by: string;
  created_at: Date;
}

export const activeSlot = (zoneId: string) => `zone:${zoneId}`;
export const idleSlot = (setId: string) => `set:${setId}`;

export const policySetSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    name: { type: String, required: true },
    description: { type: String, default: null },
    created_by: { type: String, required: true },
    co_authored_by_operator: { type: Boolean, default: false },
    created_at: { type: Date, required: true },
    archived_at: { type: Date, default: null },
    archived: { type: Boolean, default: false },
    ...listedFields,
    active_version_id: { type: String, default: null },
    shadow_version_id: { type: String, default: null },
    active_slot: { type: String, required: true },
    activated_at: { type: Date, default: null },
    version_ids: { type: [String], default: [] },
    ...outboxFields,
  },
  { versionKey: false, _id: false },
);
policySetSchema.index({ zone_id: 1, name: 1 }, { unique: true });
// One active set per zone: only the active set holds the value `zone:<zoneId>`; every idle set holds
// its own `set:<id>`, so the index never collides on idle sets and needs no partial-index support.
policySetSchema.index({ active_slot: 1 }, { unique: true });
addListIndexes(policySetSchema, ["archived"]);
addOutboxIndexes(policySetSchema);

export const policySetVersionSchema = new Schema(
  {
    _id: { type: String, required: true },
    policy_set_id: { type: String, required: true },
    zone_id: { type: String, required: true },
    version: { type: Number, required: true },
    manifest: { type: [Schema.Types.Mixed], required: true },
    manifest_sha256: { type: String, required: true },
    schema_version: { type: String, required: true },
    created_by: { type: String, required: true },
    created_at: { type: Date, required: true },
    ...listedFields,
    ...outboxFields,
  },
  { versionKey: false, _id: false },
);
policySetVersionSchema.index({ policy_set_id: 1, version: 1 }, { unique: true });
// A set's versions are listed in the set's own scope (shared/list/buckets.ts).
addListIndexes(policySetVersionSchema);
addOutboxIndexes(policySetVersionSchema);

export const toPublicPolicySet = (s: PolicySetDoc) => ({
  id: s._id,
  zone_id: s.zone_id,
  name: s.name,
  description: s.description ?? null,
  created_by: s.created_by,
  co_authored_by_operator: s.co_authored_by_operator,
  created_at: new Date(s.created_at).toISOString(),
  active_version_id: s.active_version_id ?? null,
});

export const toPublicSetVersion = (v: PolicySetVersionDoc) => ({
  id: v._id,
  policy_set_id: v.policy_set_id,
  version: v.version,
  manifest_json: v.manifest,
  manifest_sha256: v.manifest_sha256,
  schema_version: v.schema_version,
  created_at: new Date(v.created_at).toISOString(),
  policies: v.manifest.map((e) => e.policy_version_id),
});

/** What toPublicPolicySet returns. */
export const publicPolicySetSchema = J.obj({
  id: J.id,
  zone_id: J.id,
  name: J.string(),
  description: J.nullable(J.string()),
  created_by: J.string(),
  co_authored_by_operator: J.boolean,
  created_at: J.timestamp,
  active_version_id: J.nullable(J.id),
});

/** What toPublicSetVersion returns. */
export const publicSetVersionSchema = J.obj({
  id: J.id,
  policy_set_id: J.id,
  version: J.integer({ minimum: 1 }),
  manifest_json: J.array(J.obj({ policy_version_id: J.string() })),
  manifest_sha256: J.string({ pattern: "^[0-9a-f]{64}$" }),
  schema_version: J.string(),
  created_at: J.timestamp,
  policies: J.array(J.string()),
});
