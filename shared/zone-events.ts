// The public shape of one zone event (decision 8), built from its stream entry: the audit service stores it,
// the gateway's live stream sends it, and both must say the same thing.
export interface ZoneEvent {
  id: string;
  stream_id: string;
  zone_id: string;
  entity_type: string;
  entity_id: string;
  action: string;
  actor_id: string | null;
  request_id: string | null;
  occurred_at: string;
  /** The entry's other fields (changed_fields, reason, …). */
  details: Record<string, string>;
}

const KNOWN = new Set(["outbox_id", "zone_id", "entity_type", "entity_id", "action", "actor_id", "request_id", "occurred_at", "_sig", "kid"]);

/** The event an entry describes, or null when it lacks what every zone event has. */
export function zoneEventOf(streamId: string, fields: Record<string, string>): ZoneEvent | null {
  const { zone_id, entity_type, entity_id, action } = fields;
  if (!zone_id || !entity_type || !entity_id || !action) return null;
  const at = Date.parse(fields.occurred_at ?? "");
  const details: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (!KNOWN.has(k)) details[k] = v;
  return {
    id: fields.outbox_id || streamId,
    stream_id: streamId,
    zone_id,
    entity_type,
    entity_id,
    action,
    actor_id: fields.actor_id ?? null,
    request_id: fields.request_id ?? null,
    // Without a readable time of its own, the entry's position in the stream is when it happened.
    occurred_at: new Date(Number.isNaN(at) ? Number(streamId.split("-")[0]) : at).toISOString(),
    details,
  };
}

/** Stream ids (`<ms>-<seq>`) in stream order. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am - bm || (as ?? 0) - (bs ?? 0);
}

export const STREAM_ID = /^\d{1,16}-\d{1,16}$/;
