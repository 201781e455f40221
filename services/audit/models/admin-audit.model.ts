// Admin audit rows (reference-ops §2): one hash chain per zone (and one for requests outside any zone).
import { Schema } from "mongoose";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";
import type { AdminAuditRecord } from "../../../shared/admin-audit";

/** The chain of requests that name no zone (admin tokens, audit retention). Not a valid zone id. */
export const GLOBAL_CHAIN = "*";

/** The stored row: the record as the gateway handed it off (see shared/admin-audit.ts), plus its chain. */
export interface AdminAuditDoc extends Omit<AdminAuditRecord, "id" | "occurred_at"> {
  _id: string;
  occurred_at: Date;
  chain_key: string;
  chain_seq: number;
  content_sha256: string;
  prev_content_sha256: string | null;
  chain_hmac: string | null;
  _seq: number;
  _bucket: string;
}

export const adminAuditSchema = new Schema(
  {
    _id: { type: String, required: true },
    request_id: String,
    actor_id: { type: String, default: null },
    actor_name: { type: String, default: null },
    actor_scope: { type: String, default: null },
    action: String,
    method: String,
    path: String,
    zone_id: { type: String, default: null },
    entity_type: { type: String, default: null },
    entity_id: { type: String, default: null },
    status_code: Number,
    payload: { type: String, default: null },
    occurred_at: Date,
    chain_key: { type: String, required: true },
    chain_seq: { type: Number, required: true },
    content_sha256: String,
    prev_content_sha256: { type: String, default: null },
    chain_hmac: { type: String, default: null },
    ...listedFields,
  },
  { versionKey: false, _id: false },
);

addListIndexes(adminAuditSchema);
// The guard against a forked chain: a sequence number is taken once per chain, whoever writes it.
adminAuditSchema.index({ chain_key: 1, chain_seq: 1 }, { unique: true });

/** The head of one chain: its last sequence number and content hash. Written under the head's lock. */
export interface ChainHeadDoc {
  _id: string;
  seq: number;
  hash: string | null;
  updated_at: Date;
}

export const chainHeadSchema = new Schema(
  { _id: { type: String, required: true }, seq: Number, hash: { type: String, default: null }, updated_at: Date },
  { versionKey: false, _id: false },
);
