// Outbox entries live inside the document they describe, so a write and its events commit together.
import { Schema } from "mongoose";
import { newId } from "../ids";
import type { FlatFields } from "../signing";

export interface OutboxEntry {
  id: string;
  stream: string;
  payload: FlatFields;
  request_id: string | null;
  created_at: Date;
  available_at: Date | null;
  attempts: number;
  last_error: string | null;
  dispatched_at: Date | null;
  dead_at: Date | null;
  stream_entry_id: string | null;
  /** The scoped Idempotency-Key of the request that wrote it (never published). */
  idempotency_key?: string;
}

/**
 * Fields every outbox-bearing schema adds. `_outbox_v` counts writes that touched the array; the
 * other fields are summaries the relay keeps so that finding work, /ready and /metrics never scan
 * arrays. Writers and the relay change a document only under its lock (shared/doc-lock.ts).
 */
export const outboxFields = {
  _outbox: { type: [Schema.Types.Mixed], default: undefined },
  _outbox_v: { type: Number },
  _outbox_next_at: { type: Date },
  _outbox_pending: { type: Number },
  _outbox_pending_since: { type: Date },
  _outbox_dead: { type: Number },
  _outbox_dead_since: { type: Date },
  /** Entries wait to be published: the sweep finds these documents by this equality (pushed down). */
  _outbox_open: { type: Boolean },
  /** Some entry gave up: found by equality too. */
  _outbox_has_dead: { type: Boolean },
} as const;

export function addOutboxIndexes(schema: Schema): void {
  schema.index({ _outbox_open: 1 });
  schema.index({ _outbox_has_dead: 1 });
}

export function outboxEntry(stream: string, payload: FlatFields, requestId: string | null): OutboxEntry {
  const now = new Date();
  return {
    id: newId(),
    stream,
    payload,
    request_id: requestId,
    created_at: now,
    available_at: now,
    attempts: 0,
    last_error: null,
    dispatched_at: null,
    dead_at: null,
    stream_entry_id: null,
  };
}

/**
 * The entry arrays that went into a new document through withNewEvents: such a document holds exactly
 * these entries at `_outbox_v: 1` until something else touches its outbox (every such write increments
 * the version), which lets the relay write their publish back without reading the document first.
 */
const creationOutboxes = new WeakSet<OutboxEntry[]>();

/** Whether `entries` are the whole outbox a new document was created with (at `_outbox_v: 1`). */
export const isCreationOutbox = (entries: OutboxEntry[]): boolean => creationOutboxes.has(entries);

/** Fields to spread into a new document so it is created together with its events. */
export function withNewEvents(entries: OutboxEntry[]): Record<string, unknown> {
  if (!entries.length) return {};
  creationOutboxes.add(entries);
  const now = entries[0]!.created_at;
  return { _outbox: entries, _outbox_v: 1, _outbox_next_at: now, _outbox_pending: entries.length, _outbox_pending_since: now, _outbox_dead: 0, _outbox_open: true, _outbox_has_dead: false };
}

type Update = Record<string, Record<string, unknown> | undefined>;

/** Merges the push of `entries` into an update document (one atomic write with the state change). */
export function pushEvents(update: Update, entries: OutboxEntry[]): Update {
  if (!entries.length) return update;
  const now = entries[0]!.created_at;
  return {
    ...update,
    $set: { ...(update.$set ?? {}), _outbox_open: true },
    $push: { ...(update.$push ?? {}), _outbox: { $each: entries } },
    $inc: { ...(update.$inc ?? {}), _outbox_v: 1, _outbox_pending: entries.length },
    // $min sets a missing field and keeps an earlier one: the relay unsets these when nothing is pending.
    $min: { ...(update.$min ?? {}), _outbox_next_at: now, _outbox_pending_since: now },
  };
}
