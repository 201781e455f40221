// The zone events feed (decision 8): a cursor list of a zone's stored change entries, newest first.
import { pathParams, anyQuery } from "../../shared/validation";
import { pageOf, parseListQuery, EVENT_LIMITS } from "../../shared/pagination";
import { compareStreamIds, type ZoneEvent } from "../../shared/zone-events";
import type { ApiContext, RouteParams } from "../../shared/meta";
import { checkQuery, type Rule } from "./query";
import type { ZoneEventDoc } from "./models/zone-event.model";
import type { AuditService } from "./context";

const RULES: Record<string, Rule> = {
  since: { kind: "datetime" },
  until: { kind: "datetime" },
  entity_type: { kind: "string", min: 1, max: 64 },
  action: { kind: "enum", values: ["created", "updated", "deleted"] },
};
const FILTERS = ["since", "until", "entity_type", "action"];
/** How far before a resume point the stored feed is read: entries reach the stream this soon after their time. */
const RESUME_SLACK_MS = 5 * 60_000;

export const zoneEventRow = (d: ZoneEventDoc): ZoneEvent => ({
  id: d._id,
  stream_id: d.stream_id,
  zone_id: d.zone_id,
  entity_type: d.entity_type,
  entity_id: d.entity_id,
  action: d.action,
  actor_id: d.actor_id,
  request_id: d.request_id,
  occurred_at: new Date(d.occurred_at).toISOString(),
  details: d.details ? (JSON.parse(d.details) as Record<string, string>) : {},
});

export const zoneEventActions = {
  listZoneEvents: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(this: AuditService, ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const q = checkQuery(ctx.params.query, RULES, [], FILTERS);
      const where: Record<string, string> = {};
      if (q.values.entity_type) where.entity_type = q.values.entity_type;
      if (q.values.action) where.action = q.values.action;
      const page = await this.listRows<ZoneEventDoc>("ZoneEvent", ctx.params.params.zoneId, q.list, { where, tsField: "occurred_at", window: { since: q.since, until: q.until } });
      return pageOf(page.rows, q.list, zoneEventRow, Object.fromEntries(FILTERS.map((k) => [k, q.values[k]])), "occurred_at", page.resumeAfter);
    },
  },

  /**
   * Internal, for the gateway's live stream when a client resumes from an entry the Redis stream has
   * already trimmed: the zone's stored entries after that stream position, oldest first (at most `limit`).
   */
  zoneEventsAfter: {
    visibility: "public" as const,
    params: { zone_id: "string", after: "string", limit: { type: "number", integer: true, min: 1, max: 1000, default: 500 } },
    async handler(this: AuditService, ctx: ApiContext<{ zone_id: string; after: string; limit: number }>) {
      const { zone_id, after, limit } = ctx.params;
      const since = new Date(Number(after.split("-")[0]) - RESUME_SLACK_MS);
      const found: ZoneEventDoc[] = [];
      let q = parseListQuery({ limit: String(EVENT_LIMITS.maxLimit) }, EVENT_LIMITS);
      // The list runs newest first; read the window back to the resume point, then answer oldest first.
      for (let pages = 0; pages < 50; pages++) {
        const page = await this.listRows<ZoneEventDoc>("ZoneEvent", zone_id, q, { tsField: "occurred_at", window: { since } });
        found.push(...page.rows.slice(0, q.limit).filter((d) => compareStreamIds(d.stream_id, after) > 0));
        const last = page.rows.length > q.limit ? page.rows[q.limit - 1] : undefined;
        const resume = last ? { ts: new Date(last.occurred_at), id: last._id } : page.resumeAfter;
        if (!resume) break;
        q = { limit: q.limit, after: resume };
      }
      found.sort((a, b) => compareStreamIds(a.stream_id, b.stream_id));
      return found.slice(0, limit).map(zoneEventRow);
    },
  },
};
