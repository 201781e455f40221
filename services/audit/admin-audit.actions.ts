// Admin audit routes: the zone's chained records with filters, fields and CSV (§2.3), and chain verification.
import { badRequest } from "../../shared/errors";
import { pathParams, anyQuery } from "../../shared/validation";
import { pageOf } from "../../shared/pagination";
import type { ApiContext, RouteParams } from "../../shared/meta";
import { checkQuery, COMMON_RULES, type Rule } from "./query";
import { ADMIN_EXPORT_FIELDS, csvHeaders, csvStream, project } from "./export";
import { redact } from "./redact";
import { verifyChain, type ChainCheck } from "./ingest";
import type { AdminAuditDoc } from "./models/admin-audit.model";
import type { AuditService } from "./context";

const RULES: Record<string, Rule> = {
  ...COMMON_RULES,
  actor_id: { kind: "string", min: 1, max: 128 },
  entity_type: { kind: "string", min: 1, max: 64 },
  entity_id: { kind: "string", min: 1, max: 128 },
  method: { kind: "enum", values: ["POST", "PUT", "PATCH", "DELETE"] },
};
const FILTERS = ["since", "until", "actor_id", "entity_type", "entity_id", "method"];
const NONE: ReadonlySet<string> = new Set();

const payloadOf = (d: AdminAuditDoc): Record<string, unknown> | null => (d.payload ? (JSON.parse(d.payload) as Record<string, unknown>) : null);

export const adminRow = (d: AdminAuditDoc) => ({
  id: d._id,
  request_id: d.request_id,
  actor_id: d.actor_id,
  actor_name: d.actor_name,
  actor_scope: d.actor_scope,
  action: d.action,
  method: d.method,
  path: d.path,
  entity_type: d.entity_type,
  entity_id: d.entity_id,
  status_code: d.status_code,
  payload_json: redact(payloadOf(d)),
  occurred_at: new Date(d.occurred_at).toISOString(),
  // A string, as the reference sends it (a bigint there).
  chain_seq: String(d.chain_seq),
  signed: d.chain_hmac !== null,
});

function exportRow(d: AdminAuditDoc): Record<string, unknown> {
  const { payload_json, ...row } = adminRow(d);
  const changed = (payload_json as { changed_fields?: unknown } | null)?.changed_fields;
  return { ...row, changed_fields: Array.isArray(changed) ? changed : null };
}

const encodeNext = (next: ChainCheck["next"]) => (next ? Buffer.from(JSON.stringify(next)).toString("base64url") : null);

function decodeNext(raw: unknown): ChainCheck["next"] | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(Buffer.from(String(raw), "base64url").toString("utf8")) as { bucket?: unknown; seq?: unknown; prev?: unknown };
    if (Number.isInteger(v.bucket) && Number.isInteger(v.seq) && (v.prev === null || typeof v.prev === "string")) return v as ChainCheck["next"];
  } catch {
    // fall through
  }
  throw badRequest("invalid_cursor", "cursor is not valid for this chain");
}

export const adminAuditActions = {
  listAdmin: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(this: AuditService, ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const { zoneId } = ctx.params.params;
      const q = checkQuery(ctx.params.query, RULES, ADMIN_EXPORT_FIELDS, FILTERS);
      const v = q.values;
      const where: Record<string, string> = {};
      for (const k of ["actor_id", "entity_type", "entity_id", "method"]) if (v[k] !== undefined) where[k] = v[k]!;
      const page = await this.listRows<AdminAuditDoc>("AdminAudit", zoneId, q.list, { where, tsField: "occurred_at", window: { since: q.since, until: q.until } });
      if (q.format === "csv") {
        Object.assign(ctx.meta, csvHeaders(`admin-audit-${zoneId}.csv`));
        return csvStream(q.fields ?? [...ADMIN_EXPORT_FIELDS], page.rows.slice(0, q.list.limit).map(exportRow));
      }
      const filters = Object.fromEntries(FILTERS.map((k) => [k, v[k]]));
      const toPublic = q.fields ? (d: AdminAuditDoc) => project(exportRow(d), q.fields!, NONE) : adminRow;
      return pageOf(page.rows, q.list, toPublic, filters, "occurred_at", page.resumeAfter);
    },
  },

  /** Beyond the reference: recomputes the zone's chain and answers the first broken sequence number. */
  verifyAdmin: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(this: AuditService, ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const { zoneId } = ctx.params.params;
      const check = await verifyChain(this, zoneId, decodeNext(ctx.params.query?.cursor));
      return {
        zone_id: zoneId,
        ok: check.ok,
        checked: check.checked,
        last_seq: String(check.last_seq),
        ...(check.broken ? { broken_seq: String(check.broken.seq), reason: check.broken.reason } : {}),
        complete: check.next === null,
        next_cursor: encodeNext(check.next),
      };
    },
  },
};
