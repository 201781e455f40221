// The decision trace of one request (reference-ops §1.5): final decision, the denials, and for each denial
// the policy input reconstructed from the event's (unredacted) metadata, in the shape `simulate` accepts.
import { redact } from "./redact";

export const POLICY_INPUT_SCHEMA_VERSION = "2026-05-20";

export interface StoredEvent {
  id: string;
  zone_id: string;
  event_type: string | null;
  request_id: string | null;
  decision: string | null;
  evaluation_status: string | null;
  policy_set_id: string | null;
  policy_set_version_id: string | null;
  manifest_sha: string | null;
  determining_policies_json: unknown;
  diagnostics_json: unknown;
  metadata_json: Record<string, unknown> | null;
  occurred_at: string;
  ingested_at: string;
}

const isString = (v: unknown): v is string => typeof v === "string";

/** What the decision engine was asked: rebuilt from STS token-exchange metadata. */
export function policyInput(zoneId: string, meta: Record<string, unknown>): Record<string, unknown> {
  const scopes = Array.isArray(meta.requested_scopes) ? meta.requested_scopes : [];
  const principal: Record<string, unknown> = { type: "Application", id: isString(meta.application_id) ? meta.application_id : "", zone_id: zoneId };
  if (isString(meta.application_registration_method)) principal.registration_method = meta.application_registration_method;
  if (isString(meta.agent_session_id)) principal.agent_session_id = meta.agent_session_id;
  if (isString(meta.agent_lifecycle)) principal.lifecycle = meta.agent_lifecycle;
  if (Array.isArray(meta.agent_labels)) principal.labels = meta.agent_labels;
  const context: Record<string, unknown> = { actor_claims: {}, requested_scopes: scopes, challenge_resolved: false };
  for (const k of ["session_id", "agent_session_id", "delegation_edge_id"]) if (isString(meta[k])) context[k] = meta[k];
  const input: Record<string, unknown> = {
    schema_version: POLICY_INPUT_SCHEMA_VERSION,
    principal,
    resource: { type: "Resource", identifier: isString(meta.resource) ? meta.resource : "", scopes },
    action: { id: "TokenExchange" },
    context,
  };
  if (isString(meta.session_id)) input.session = { id: meta.session_id };
  if (isString(meta.delegation_edge_id)) input.delegation_edge = { id: meta.delegation_edge_id };
  return input;
}

/** The by-request row: list columns plus the policy fields; metadata redacted. */
export function detailRow(e: StoredEvent): Record<string, unknown> {
  return {
    id: e.id,
    zone_id: e.zone_id,
    event_type: e.event_type,
    request_id: e.request_id,
    decision: e.decision,
    evaluation_status: e.evaluation_status,
    metadata_json: redact(e.metadata_json ?? {}),
    occurred_at: e.occurred_at,
    ingested_at: e.ingested_at,
    policy_set_id: e.policy_set_id,
    policy_set_version_id: e.policy_set_version_id,
    manifest_sha: e.manifest_sha,
    determining_policies_json: e.determining_policies_json ?? [],
    diagnostics_json: e.diagnostics_json ?? [],
  };
}

/** `events` ascending by occurred_at. */
export function explain(zoneId: string, requestId: string, events: StoredEvent[]) {
  const denials = events.filter((e) => e.decision === "deny");
  const last = events[events.length - 1];
  const finalDecision = denials.length ? "deny" : last && last.decision !== null ? last.decision : "unknown";
  return {
    request_id: requestId,
    zone_id: zoneId,
    final_decision: finalDecision,
    denied: denials.map((e) => ({
      event_id: e.id,
      event_type: e.event_type,
      evaluation_status: e.evaluation_status,
      determining_policies: e.determining_policies_json ?? [],
      diagnostics: e.diagnostics_json ?? [],
      metadata: redact(e.metadata_json ?? {}),
      policy_input: policyInput(zoneId, e.metadata_json ?? {}),
    })),
    events: events.map(detailRow),
  };
}
