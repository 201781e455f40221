// Request and response schemas of the audit routes: the service validates with these rules and /docs shows them.
import { J, type JsonSchema, type QueryParamDoc, type ServiceApi } from "../../shared/api-doc";
import { EVENT_LIMITS } from "../../shared/pagination";
import { strictBody } from "../../shared/validation";
import { AUDIT_EXPORT_FIELDS, ADMIN_EXPORT_FIELDS } from "./export";

export const RETENTION_BODY = strictBody({ retention_days: { type: "number", integer: true, min: 1, description: "Days decision rows are kept; at most AUDIT_RETENTION_DAYS" } });

const str = (description: string, extra: JsonSchema = {}): QueryParamDoc => ({ description, schema: { type: "string", ...extra } });
const dateTime = (description: string): QueryParamDoc => str(`${description} (ISO-8601 with seconds and Z)`, { format: "date-time" });
const exportQuery = (fields: readonly string[], file: string): Record<string, QueryParamDoc> => ({
  fields: str(`Comma list of columns, in the order wanted: ${fields.join(", ")}. Rows then hold exactly those keys; also the CSV columns.`, { maxLength: 1000 }),
  format: str(`\`csv\` answers text/csv (attachment \`${file}\`: header line, CRLF, arrays space-joined); default \`json\``, { enum: ["json", "csv"] }),
});

const nullableString = J.nullable(J.string());
const auditRow = J.obj({
  id: J.string(),
  zone_id: J.string(),
  event_type: nullableString,
  request_id: nullableString,
  decision: nullableString,
  evaluation_status: nullableString,
  metadata_json: { ...J.nullable(J.object), description: "Secret-like keys at any depth shown as \"[redacted]\"" },
  occurred_at: J.timestamp,
  ingested_at: J.timestamp,
});
const detailRow = J.obj({
  ...(auditRow.properties as Record<string, JsonSchema>),
  policy_set_id: nullableString,
  policy_set_version_id: nullableString,
  manifest_sha: nullableString,
  determining_policies_json: { type: ["array", "object", "null"] },
  diagnostics_json: { type: ["array", "object", "null"] },
});
const adminRow = J.obj({
  id: J.id,
  request_id: J.string(),
  actor_id: nullableString,
  actor_name: nullableString,
  actor_scope: J.nullable(J.enum(["global", "zone"])),
  action: J.string({ description: "`<METHOD> <path>`" }),
  method: J.string(),
  path: J.string(),
  entity_type: nullableString,
  entity_id: nullableString,
  status_code: J.integer(),
  payload_json: { ...J.nullable(J.object), description: "`rls_mode`, `rls_zone_guc`; on success `changed_fields` (names only) and `secret_rotated`" },
  occurred_at: J.timestamp,
  chain_seq: J.string({ description: "Position in the zone's hash chain (a string, as in the reference)" }),
  signed: J.boolean,
});
const zoneEvent = J.obj({
  id: J.string({ description: "The entry's outbox id" }),
  stream_id: J.string({ description: "Position in the Redis stream; the live stream's event id" }),
  zone_id: J.string(),
  entity_type: J.string(),
  entity_id: J.string(),
  action: J.enum(["created", "updated", "deleted"]),
  actor_id: nullableString,
  request_id: nullableString,
  occurred_at: J.timestamp,
  details: { type: "object", additionalProperties: { type: "string" }, description: "Other fields of the entry (changed_fields, reason, …)" },
});
const retention = J.obj({ retention_days: J.integer({ minimum: 1 }), max_days: J.integer({ minimum: 1 }), updated_at: J.nullable(J.timestamp) });
const count = J.integer({ minimum: 0 });

const zone = "0197c3a2-6f1e-7a3c-9b2d-4e5f60718293";
const exampleRow = {
  id: "0197c3b0-1111-7000-8000-000000000001", zone_id: zone, event_type: "token_exchange", request_id: "req-7f3a", decision: "deny", evaluation_status: "complete",
  metadata_json: { application_id: "app-payments", resource: "resource://example", requested_scopes: ["example:write"], session_id: "[redacted]" },
  occurred_at: "2026-07-02T10:05:00.000Z", ingested_at: "2026-07-02T10:05:00.040Z",
};
const exampleAdmin = {
  id: "0197c3b1-2222-7000-8000-000000000002", request_id: "req-9b1c", actor_id: "0197c3a0-0000-7000-8000-0000000000aa", actor_name: "ci", actor_scope: "global",
  action: `PATCH /v1/zones/${zone}`, method: "PATCH", path: `/v1/zones/${zone}`, entity_type: "zones", entity_id: zone, status_code: 200,
  payload_json: { rls_mode: "control_plane_wildcard", rls_zone_guc: "*", changed_fields: ["name"] }, occurred_at: "2026-07-02T10:06:00.000Z", chain_seq: "42", signed: true,
};
const exampleEvent = {
  id: "0197c3b2-3333-7000-8000-000000000003", stream_id: "1782986760000-0", zone_id: zone, entity_type: "zone", entity_id: zone, action: "updated",
  actor_id: "0197c3a0-0000-7000-8000-0000000000aa", request_id: "req-9b1c", occurred_at: "2026-07-02T10:06:00.000Z", details: { changed_fields: "name" },
};

export const AUDIT_API: ServiceApi = {
  list: {
    status: 200,
    list: true,
    listLimits: EVENT_LIMITS,
    response: auditRow,
    query: {
      since: dateTime("occurred_at ≥ since"),
      until: dateTime("occurred_at < until"),
      request_id: str("exact request id", { minLength: 1 }),
      decision: str("exact decision", { enum: ["allow", "deny", "partial"] }),
      event_type: str("exact event type", { minLength: 1 }),
      application_id: str("metadata application_id", { minLength: 1, maxLength: 128 }),
      agent_session_id: str("metadata agent_session_id", { minLength: 1, maxLength: 128 }),
      session_id: str("metadata session_id (the raw value, though it is shown redacted)", { minLength: 1, maxLength: 128 }),
      label: str("one of metadata agent_labels, exactly", { minLength: 1, maxLength: 64 }),
      ...exportQuery(AUDIT_EXPORT_FIELDS, "audit-<zoneId>.csv"),
    },
    errors: { 400: ["invalid_fields"] },
    description: "Decisions the runtime made in the zone, newest first. An unknown zone has no rows.",
    example: { response: { items: [exampleRow], next_cursor: null } },
  },
  byRequest: {
    status: 200,
    response: J.obj({ items: J.array(detailRow), next_cursor: { type: "null" } }),
    errors: { 404: ["request_not_found"] },
    description: "Every decision of one request, oldest first (all of them: no paging).",
    example: { response: { items: [{ ...exampleRow, policy_set_id: null, policy_set_version_id: null, manifest_sha: null, determining_policies_json: [], diagnostics_json: [] }], next_cursor: null } },
  },
  explain: {
    status: 200,
    response: J.obj({
      request_id: J.string(),
      zone_id: J.string(),
      final_decision: J.string({ description: "`deny` if any event denied, else the last event's decision, `unknown` when it has none" }),
      denied: J.array(J.obj({ event_id: J.string(), event_type: nullableString, evaluation_status: nullableString, determining_policies: {}, diagnostics: {}, metadata: J.object, policy_input: { ...J.object, description: "The decision input rebuilt from the raw metadata; POST …/policy-sets/:id/simulate accepts it as is" } })),
      events: J.array(detailRow),
    }),
    errors: { 404: ["request_not_found"] },
  },
  listAdmin: {
    status: 200,
    list: true,
    listLimits: EVENT_LIMITS,
    response: adminRow,
    query: {
      since: dateTime("occurred_at ≥ since"),
      until: dateTime("occurred_at < until"),
      actor_id: str("admin token id", { minLength: 1, maxLength: 128 }),
      entity_type: str("entity type (path segment: applications, policy-sets, …)", { minLength: 1, maxLength: 64 }),
      entity_id: str("entity id", { minLength: 1, maxLength: 128 }),
      method: str("request method", { enum: ["POST", "PUT", "PATCH", "DELETE"] }),
      ...exportQuery(ADMIN_EXPORT_FIELDS, "admin-audit-<zoneId>.csv"),
    },
    errors: { 400: ["invalid_fields"] },
    description: "Every mutating and every failed request in the zone, newest first, each a link of the zone's hash chain.",
    example: { response: { items: [exampleAdmin], next_cursor: null } },
  },
  verifyAdmin: {
    status: 200,
    response: J.obj(
      { zone_id: J.string(), ok: J.boolean, checked: count, last_seq: J.string(), broken_seq: J.string(), reason: J.enum(["missing", "content_mismatch", "link_mismatch", "hmac_mismatch"]), complete: J.boolean, next_cursor: nullableString },
      ["broken_seq", "reason"],
    ),
    query: { cursor: str("`next_cursor` of the previous call: the walk continues there", { maxLength: 512 }) },
    errors: { 400: ["invalid_cursor"] },
    description: "Recomputes every record's content hash, link and HMAC in chain order and answers the first broken sequence number, or ok.",
    example: { response: { zone_id: zone, ok: false, checked: 2, last_seq: "2", broken_seq: "3", reason: "content_mismatch", complete: true, next_cursor: null } },
  },
  listZoneEvents: {
    status: 200,
    list: true,
    listLimits: EVENT_LIMITS,
    response: zoneEvent,
    query: {
      since: dateTime("occurred_at ≥ since"),
      until: dateTime("occurred_at < until"),
      entity_type: str("zone, application, provider, resource, policy, policy_version, policy_set, policy_set_version", { minLength: 1, maxLength: 64 }),
      action: str("what happened", { enum: ["created", "updated", "deleted"] }),
    },
    description: "The zone's change entries (caracal.zone.events), newest first.",
    example: { response: { items: [exampleEvent], next_cursor: null } },
  },
  zoneEventStream: {
    status: 200,
    contentType: "text/event-stream",
    response: { ...zoneEvent, description: "Each event: `id: <stream_id>`, `event: zone_event`, `data: <this object as JSON>`; comment lines as heartbeats" },
    description: "The zone's change entries live, as server-sent events. Reconnect with `Last-Event-ID` to get exactly what was missed.",
  },
  overview: {
    status: 200,
    response: J.obj({
      zone_id: J.string(),
      generated_at: J.timestamp,
      applications: J.obj({ total: count, expired: count, expiring_soon: count }),
      resources: J.obj({ total: count, unenforced: count }),
      providers: J.obj({ total: count }),
      policy_sets: J.obj({ total: count, enforcing: count, active_name: nullableString }),
      sessions: J.obj({ active: count }),
      decisions_24h: J.obj({ allowed: count, denied: count }),
      recent_events: J.array(J.obj({ id: J.string(), event_type: nullableString, request_id: nullableString, decision: nullableString, metadata_json: J.nullable(J.object), occurred_at: J.timestamp })),
    }),
    description: "Counts of the zone's objects (archived ones excluded), decisions of the last 24 hours and the 10 latest decisions. An unknown zone has zero counts.",
  },
  getRetention: { status: 200, response: retention, example: { response: { retention_days: 90, max_days: 365, updated_at: "2026-07-02T10:07:00.000Z" } } },
  putRetention: {
    body: RETENTION_BODY,
    status: 200,
    response: retention,
    errors: { 400: ["retention_above_limit"] },
    description: "Decision rows older than this are removed (a whole bucket at a time, in the background).",
    example: { body: { retention_days: 90 }, response: { retention_days: 90, max_days: 365, updated_at: "2026-07-02T10:07:00.000Z" } },
  },
};
