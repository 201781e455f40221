// Realistic signed decision events for `caracal.audit.events`, as the runtime's token service and gateway
// publish them (reference-ops §1.1): `{id, data, sig}`, `sig` the HMAC of `data` under AUDIT_HMAC_KEY.
// Used by `emit audit` (kinds/audit.ts), the audit tests and bench/audit.ts.
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import type Redis from "ioredis";

export const AUDIT_STREAM = "caracal.audit.events";
/** The stream's intended cap (reference-ops §7.8). */
export const AUDIT_STREAM_MAXLEN = 1_000_000;

export interface DecisionEventInput {
  zoneId: string;
  id?: string;
  requestId?: string;
  decision?: "allow" | "deny" | "partial" | null;
  eventType?: string;
  at?: Date | string;
  metadata?: Record<string, unknown>;
  evaluationStatus?: string;
  policySetId?: string | null;
  policySetVersionId?: string | null;
}

const pick = <T>(xs: readonly T[], i: number): T => xs[i % xs.length]!;
const APPS = ["Billing agent", "Support triage", "Refund worker", "Son, of Anton"];
const RESOURCES = ["https://api.payments.example/v1", "https://crm.example/api", "https://mail.example/graph"];
const LABELS = [["refund"], ["voice", "worker"], ["refund-x"], []];

/** A token-exchange decision with STS-shaped metadata; anything given overrides the generated value. */
export function decisionEvent(input: DecisionEventInput, n = Math.floor(Math.random() * 1e6)): Record<string, unknown> {
  const decision = input.decision === undefined ? (n % 4 === 0 ? "deny" : "allow") : input.decision;
  const at = input.at === undefined ? new Date().toISOString() : typeof input.at === "string" ? input.at : input.at.toISOString();
  const metadata = input.metadata ?? {
    application_id: `app-${n % 50}`,
    application_name: pick(APPS, n),
    application_registration_method: n % 5 === 0 ? "dcr" : "managed",
    resource: pick(RESOURCES, n),
    requested_scopes: ["payments:read", "payments:refund"].slice(0, 1 + (n % 2)),
    session_id: `sess-${n % 1000}`,
    agent_session_id: `as-${n % 500}`,
    delegation_edge_id: "",
    agent_lifecycle: "ephemeral",
    agent_labels: pick(LABELS, n),
    agent_depth: n % 3,
    delegation_hop_count: n % 3,
    reason: decision === "deny" ? "policy_denied" : "",
  };
  return {
    id: input.id ?? randomUUID(),
    zone_id: input.zoneId,
    event_type: input.eventType ?? "token_exchange",
    request_id: input.requestId ?? `req-${randomBytes(6).toString("hex")}`,
    decision,
    policy_set_id: input.policySetId ?? null,
    policy_set_version_id: input.policySetVersionId ?? null,
    evaluation_status: input.evaluationStatus ?? (decision === "deny" ? "complete" : "complete"),
    determining_policies_json: decision === "deny" ? [{ policy: "deny-refunds-over-limit" }] : [],
    diagnostics_json: [],
    metadata_json: metadata,
    occurred_at: at,
  };
}

/** The three stream fields; `data` is the exact text signed. */
export function auditEntry(event: Record<string, unknown>, key: Buffer | null, data = JSON.stringify(event)): Record<string, string> {
  const fields: Record<string, string> = { id: String(event.id), data };
  if (key) fields.sig = createHmac("sha256", key).update(data, "utf8").digest("hex");
  return fields;
}

export async function publishAudit(redis: Redis, entries: Record<string, string>[], stream = AUDIT_STREAM): Promise<string[]> {
  const tx = redis.pipeline();
  for (const fields of entries) tx.xadd(stream, "MAXLEN", "~", AUDIT_STREAM_MAXLEN, "*", ...Object.entries(fields).flat());
  const res = (await tx.exec()) ?? [];
  return res.map(([err, id]) => {
    if (err) throw err;
    return String(id);
  });
}
