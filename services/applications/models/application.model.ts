// The applications collection: managed and DCR applications, archived in place, events inside.
import { Schema } from "mongoose";
import { outboxFields, addOutboxIndexes } from "../../../shared/outbox/entry";
import { J } from "../../../shared/api-doc";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";

export interface ApplicationDoc {
  _id: string;
  zone_id: string;
  name: string;
  registration_method: "managed" | "dcr";
  traits: string[];
  expires_at: Date | null;
  created_at: Date;
  archived_at: Date | null;
  /** `archived_at !== null`, as an equality the store can push down. */
  archived: boolean;
  /** DCR apps: the UTC day (YYYY-MM-DD) of `expires_at`, so the garbage collector finds them by equality. */
  expires_day?: string;
  /** Argon2id of the client secret; never leaves this service. */
  secret_hash: string | null;
  /** Set by the archive write, unset once the providers service has dropped the app's gateway bindings. */
  gateway_unbind_pending?: boolean;
}

export const applicationSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    name: { type: String, required: true },
    registration_method: { type: String, required: true },
    traits: { type: [String], default: [] },
    expires_at: { type: Date, default: null },
    created_at: { type: Date, required: true },
    archived_at: { type: Date, default: null },
    archived: { type: Boolean, default: false },
    expires_day: { type: String },
    secret_hash: { type: String, default: null },
    gateway_unbind_pending: { type: Boolean },
    ...listedFields,
    ...outboxFields,
  },
  { versionKey: false, _id: false },
);

addListIndexes(applicationSchema, ["archived"]);
// Live DCR applications of a zone (the 1,000 cap, dcr-status, revoke_live), and the garbage collector's days.
applicationSchema.index({ zone_id: 1, registration_method: 1, archived: 1 });
applicationSchema.index({ expires_day: 1, archived: 1 });
applicationSchema.index({ gateway_unbind_pending: 1 });
addOutboxIndexes(applicationSchema);

/** The public shape; traits only for global-scope readers (and never in create responses). */
export function toPublicApplication(a: ApplicationDoc, withTraits: boolean) {
  return {
    id: a._id,
    zone_id: a.zone_id,
    name: a.name,
    registration_method: a.registration_method,
    ...(withTraits ? { traits: a.traits ?? [] } : {}),
    expires_at: a.expires_at ? new Date(a.expires_at).toISOString() : null,
    created_at: new Date(a.created_at).toISOString(),
  };
}

/** What toPublicApplication returns; `traits` only for global-scope readers. */
export const publicApplicationSchema = J.obj(
  {
    id: J.id,
    zone_id: J.id,
    name: J.string(),
    registration_method: J.enum(["managed", "dcr"]),
    traits: { ...J.array(J.string()), description: "Only shown to global-scope tokens" },
    expires_at: { ...J.nullable(J.timestamp), description: "null for managed applications" },
    created_at: J.timestamp,
  },
  ["traits"],
);

export const isLiveDcr = (a: ApplicationDoc, now = Date.now()): boolean =>
  a.registration_method === "dcr" && !a.archived_at && !!a.expires_at && new Date(a.expires_at).getTime() > now;
