// The service's bookkeeping: held (out-of-order) entries, revocation effects with their events, closed zones.
import { Schema } from "mongoose";
import { addOutboxIndexes, outboxFields } from "../../../shared/outbox/entry";

/** An entry whose target does not exist yet (a terminate before its spawn): applied when the target comes. */
export interface HeldDoc {
  /** `<stream>|<entry id>`: holding the same entry twice is one document. */
  _id: string;
  /** `agent:<id>`, `session:<id>` or `challenge:<id>`: what must exist first. */
  target: string;
  stream: string;
  entry_id: string;
  fields: Record<string, string>;
  held_at: Date;
}

export const heldSchema = new Schema(
  {
    _id: { type: String, required: true },
    target: { type: String, required: true },
    stream: { type: String, required: true },
    entry_id: { type: String, required: true },
    fields: { type: Schema.Types.Mixed, required: true },
    held_at: { type: Date, required: true },
  },
  { versionKey: false, _id: false },
);
heldSchema.index({ target: 1 });

export interface EffectItem {
  kind: "session" | "agent";
  id: string;
  parent_id: string | null;
  subject_session_id?: string | null;
  /** The status it moves to and why. */
  to: "revoked" | "terminated";
  reason: string;
}

/**
 * One chunk of a revocation flow caused by a zone event: which sessions and agent sessions it moves and the
 * signed entries that announce it, in one document (the outbox). `_id` = `<cause>#<chunk>`, so handling the
 * cause again finds the chunks already decided and re-applies exactly those.
 */
export interface EffectDoc {
  _id: string;
  zone_id: string;
  cause: string;
  items: EffectItem[];
  created_at: Date;
}

export const effectSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    cause: { type: String, required: true },
    items: { type: [Schema.Types.Mixed], default: [] },
    created_at: { type: Date, required: true },
    ...outboxFields,
  },
  { versionKey: false, _id: false },
);
addOutboxIndexes(effectSchema);

/** A zone archived: nothing new is accepted for it; the reaper expires its active sessions. */
export interface ClosedZoneDoc {
  _id: string;
  closed_at: Date;
  /** Until the reaper has walked the zone's sessions (again after every instance's zone cache has expired). */
  sweep_pending: boolean;
  swept_at: Date | null;
}

export const closedZoneSchema = new Schema(
  {
    _id: { type: String, required: true },
    closed_at: { type: Date, required: true },
    sweep_pending: { type: Boolean, required: true },
    swept_at: { type: Date, default: null },
  },
  { versionKey: false, _id: false },
);
closedZoneSchema.index({ sweep_pending: 1 });
