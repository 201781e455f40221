// The zones collection: one document per zone, archived in place, with its pending events inside.
import { Schema } from "mongoose";
import { outboxFields, addOutboxIndexes } from "../../../shared/outbox/entry";
import { J } from "../../../shared/api-doc";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";

export interface ZoneDoc {
  _id: string;
  name: string;
  slug: string;
  dcr_enabled: boolean;
  operator_coauthor_badge: boolean;
  reserved: boolean;
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
  /** `archived_at !== null`, as an equality the store can push down. */
  archived: boolean;
}

export const zoneSchema = new Schema(
  {
    _id: { type: String, required: true },
    name: { type: String, required: true },
    slug: { type: String, required: true },
    dcr_enabled: { type: Boolean, default: false },
    operator_coauthor_badge: { type: Boolean, default: true },
    reserved: { type: Boolean, default: false },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
    archived_at: { type: Date, default: null },
    archived: { type: Boolean, default: false },
    ...listedFields,
    ...outboxFields,
  },
  { versionKey: false, _id: false },
);

// Slugs stay taken after archival, so the unique index covers every zone.
zoneSchema.index({ slug: 1 }, { unique: true });
// Lists read one bucket at a time (shared/list/buckets.ts); every zone is in the one scope "all".
addListIndexes(zoneSchema, ["archived", "reserved"]);
addOutboxIndexes(zoneSchema);

export const toPublicZone = (z: ZoneDoc) => ({
  id: z._id,
  name: z.name,
  slug: z.slug,
  dcr_enabled: z.dcr_enabled,
  operator_coauthor_badge: z.operator_coauthor_badge,
  created_at: new Date(z.created_at).toISOString(),
  updated_at: new Date(z.updated_at).toISOString(),
});

/** What toPublicZone returns (documented in /docs; the tests hold real responses to it). */
export const publicZoneSchema = J.obj({
  id: J.id,
  name: J.string(),
  slug: J.string(),
  dcr_enabled: J.boolean,
  operator_coauthor_badge: J.boolean,
  created_at: J.timestamp,
  updated_at: J.timestamp,
});

/** Next suffix per generated-slug base (`my-zone` → 2, 3, …); only a hint, the unique index decides. */
export const slugCounterSchema = new Schema({ _id: { type: String, required: true }, next: { type: Number, required: true } }, { versionKey: false, _id: false });
