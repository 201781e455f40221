// Activation status (reference-policy §3.3.3): an invalidation entry's outbox state and the propagation status.
export const POLICY_INVALIDATE_STREAM = "caracal.policy.invalidate";

export type OutboxState = "pending" | "dispatched" | "dead" | "missing" | "mismatch";
export type PropagationStatus = "waiting_for_activation" | "failed" | "waiting_for_outbox" | "loaded" | "waiting_for_sts";

/** An outbox entry as the relay keeps it in the document (shared/outbox/entry.ts). */
export interface StoredEntry {
  id: string;
  stream: string;
  payload: Record<string, unknown>;
  attempts: number;
  last_error: string | null;
  dispatched_at: Date | string | null;
  dead_at: Date | string | null;
}

export interface Expected {
  zoneId: string;
  setId: string;
  versionId: string;
}

export interface OutboxStatus {
  id: string | null;
  state: OutboxState;
  attempts: number;
  last_error: string | null;
  dispatched_at: string | null;
}

/** Without an outbox id: the newest invalidation of this zone, set and version. */
export function newestInvalidation(entries: StoredEntry[], e: Expected): StoredEntry | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const x = entries[i]!;
    if (x.stream === POLICY_INVALIDATE_STREAM && x.payload.zone_id === e.zoneId && x.payload.policy_set_id === e.setId && x.payload.policy_set_version_id === e.versionId) return x;
  }
  return undefined;
}

/** The state of `entry` (found by `requestedId` when one was given) against what the caller expects. */
export function outboxStatus(entry: StoredEntry | undefined, requestedId: string | undefined, e: Expected): OutboxStatus {
  if (!entry) return { id: requestedId ?? null, state: "missing", attempts: 0, last_error: null, dispatched_at: null };
  const p = entry.payload;
  const mismatch = entry.stream !== POLICY_INVALIDATE_STREAM || p.zone_id !== e.zoneId || p.policy_set_id !== e.setId || p.policy_set_version_id !== e.versionId;
  const state: OutboxState = mismatch ? "mismatch" : entry.dispatched_at ? "dispatched" : entry.dead_at ? "dead" : "pending";
  return {
    id: entry.id,
    state,
    attempts: entry.attempts,
    last_error: entry.last_error ?? null,
    dispatched_at: entry.dispatched_at ? new Date(entry.dispatched_at).toISOString() : null,
  };
}

/** First match of the reference's table; `stsLoadedVersionId` is what a runtime reports loaded (none here). */
export function propagationStatus(active: boolean, outbox: OutboxState, sts: { state: string; loadedVersionId?: string | null }, versionId: string): PropagationStatus {
  if (!active) return "waiting_for_activation";
  if (outbox === "dead" || outbox === "mismatch") return "failed";
  if (outbox !== "dispatched") return "waiting_for_outbox";
  if (sts.state === "loaded" && sts.loadedVersionId === versionId) return "loaded";
  if (sts.state === "failed") return "failed";
  return "waiting_for_sts";
}
