// Decision audit routes: the list with its filters, fields and CSV (§1.3), by-request (§1.4), explain (§1.5).
import { notFound } from "../../shared/errors";
import { pathParams, anyQuery } from "../../shared/validation";
import { pageOf } from "../../shared/pagination";
import type { ApiContext, RouteParams } from "../../shared/meta";
import { checkQuery, COMMON_RULES, type Rule } from "./query";
import { AUDIT_EXPORT_FIELDS, AUDIT_METADATA_FIELDS, csvHeaders, csvStream, project } from "./export";
import { redact } from "./redact";
import { detailRow, explain, type StoredEvent } from "./explain";
import { requestKey, unpackExtra, type AuditEventDoc } from "./models/audit-event.model";
import type { AuditService } from "./context";

const RULES: Record<string, Rule> = {
  ...COMMON_RULES,
  request_id: { kind: "string", min: 1 },
  decision: { kind: "enum", values: ["allow", "deny", "partial"] },
  event_type: { kind: "string", min: 1 },
  application_id: { kind: "string", min: 1, max: 128 },
  agent_session_id: { kind: "string", min: 1, max: 128 },
  session_id: { kind: "string", min: 1, max: 128 },
  label: { kind: "string", min: 1, max: 64 },
};
/** The filters a cursor is bound to. */
const FILTERS = ["since", "until", "request_id", "decision", "event_type", "application_id", "agent_session_id", "session_id", "label"];
const METADATA_KEYS: ReadonlySet<string> = new Set(AUDIT_METADATA_FIELDS);
/** A page slower than this is logged with what it read (the store's decode is what a page costs). */
const SLOW_PAGE_MS = 500;

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** A stored row read back as the event it holds. */
export function storedEvent(doc: AuditEventDoc): StoredEvent {
  const e = JSON.parse(doc.data) as Record<string, unknown>;
  const s = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    id: doc._id,
    zone_id: String(e.zone_id),
    event_type: s(e.event_type),
    request_id: s(e.request_id),
    decision: s(e.decision),
    evaluation_status: s(e.evaluation_status),
    policy_set_id: s(e.policy_set_id),
    policy_set_version_id: s(e.policy_set_version_id),
    manifest_sha: s(e.manifest_sha),
    determining_policies_json: e.determining_policies_json ?? null,
    diagnostics_json: e.diagnostics_json ?? null,
    metadata_json: isObject(e.metadata_json) ? e.metadata_json : null,
    occurred_at: new Date(doc.occurred_at).toISOString(),
    ingested_at: unpackExtra(doc.x).ingestedAt.toISOString(),
  };
}

export const listRow = (e: StoredEvent) => ({
  id: e.id,
  zone_id: e.zone_id,
  event_type: e.event_type,
  request_id: e.request_id,
  decision: e.decision,
  evaluation_status: e.evaluation_status,
  metadata_json: e.metadata_json === null ? null : redact(e.metadata_json),
  occurred_at: e.occurred_at,
  ingested_at: e.ingested_at,
});

/** The flat row `fields` and CSV pick from: row columns and the redacted metadata's top-level keys. */
function exportRow(e: StoredEvent): Record<string, unknown> {
  const row: Record<string, unknown> = { id: e.id, occurred_at: e.occurred_at, event_type: e.event_type, decision: e.decision, evaluation_status: e.evaluation_status, request_id: e.request_id, ingested_at: e.ingested_at };
  const meta = e.metadata_json ? redact(e.metadata_json) : {};
  for (const k of AUDIT_METADATA_FIELDS) if (k in meta) row[k] = meta[k];
  return row;
}

async function eventsOfRequest(svc: AuditService, zoneId: string, requestId: string): Promise<StoredEvent[]> {
  const docs = await svc.models.AuditEvent.find({ rk: requestKey(zoneId, requestId) }).lean<AuditEventDoc[]>();
  if (!docs.length) throw notFound("request_not_found", "no audit events for this request");
  return docs.map(storedEvent).sort((a, b) => Date.parse(a.occurred_at) - Date.parse(b.occurred_at) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export const decisionActions = {
  list: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(this: AuditService, ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const { zoneId } = ctx.params.params;
      const q = checkQuery(ctx.params.query, RULES, AUDIT_EXPORT_FIELDS, FILTERS);
      const v = q.values;
      const where: Record<string, string> = {};
      if (v.request_id !== undefined) where.rk = requestKey(zoneId, v.request_id);
      for (const k of ["decision", "event_type", "application_id", "agent_session_id", "session_id"]) if (v[k] !== undefined) where[k] = v[k]!;
      if (v.label !== undefined) where.labels = v.label;
      const started = Date.now();
      const page = await this.listRows<AuditEventDoc>("AuditEvent", zoneId, q.list, { where, tsField: "occurred_at", window: { since: q.since, until: q.until } });
      const took = Date.now() - started;
      if (took > SLOW_PAGE_MS) this.logger.warn({ zone_id: zoneId, ms: took, decoded: page.decoded, buckets: page.buckets, rows: page.rows.length, filters: Object.keys(where) }, "slow audit page");
      if (q.format === "csv") {
        const columns = q.fields ?? [...AUDIT_EXPORT_FIELDS];
        Object.assign(ctx.meta, csvHeaders(`audit-${zoneId}.csv`));
        return csvStream(columns, page.rows.slice(0, q.list.limit).map((d) => exportRow(storedEvent(d))));
      }
      const filters = Object.fromEntries(FILTERS.map((k) => [k, v[k]]));
      const toPublic = q.fields ? (d: AuditEventDoc) => project(exportRow(storedEvent(d)), q.fields!, METADATA_KEYS) : (d: AuditEventDoc) => listRow(storedEvent(d));
      return pageOf(page.rows, q.list, toPublic, filters, "occurred_at", page.resumeAfter);
    },
  },

  byRequest: {
    params: { params: pathParams("zoneId", "requestId") },
    async handler(this: AuditService, ctx: ApiContext<RouteParams<{ zoneId: string; requestId: string }>>) {
      const { zoneId, requestId } = ctx.params.params;
      // All of the request's events in one page: our list envelope, with nothing after it.
      return { items: (await eventsOfRequest(this, zoneId, requestId)).map(detailRow), next_cursor: null };
    },
  },

  explain: {
    params: { params: pathParams("zoneId", "requestId") },
    async handler(this: AuditService, ctx: ApiContext<RouteParams<{ zoneId: string; requestId: string }>>) {
      const { zoneId, requestId } = ctx.params.params;
      return explain(zoneId, requestId, await eventsOfRequest(this, zoneId, requestId));
    },
  },
};
