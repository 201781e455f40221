// The zone events feed (decision 8): each signed `caracal.zone.events` entry, stored once per outbox id.
import { Schema } from "mongoose";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";
import type { ZoneEvent } from "../../../shared/zone-events";

/** The stored entry: the public shape (shared/zone-events.ts) with its details kept as JSON text. */
export interface ZoneEventDoc extends Omit<ZoneEvent, "id" | "occurred_at" | "details"> {
  /** The entry's outbox id: a re-published entry is a duplicate key. */
  _id: string;
  occurred_at: Date;
  /** The entry's other fields (changed_fields, reason, …) as JSON text. */
  details: string;
  _seq: number;
  _bucket: string;
}

export const zoneEventSchema = new Schema(
  {
    _id: { type: String, required: true },
    stream_id: String,
    zone_id: String,
    entity_type: String,
    entity_id: String,
    action: String,
    actor_id: { type: String, default: null },
    request_id: { type: String, default: null },
    occurred_at: Date,
    details: String,
    ...listedFields,
  },
  { versionKey: false, _id: false },
);
addListIndexes(zoneEventSchema);
