// GET …/sessions and …/agent-sessions: bucketed cursor pages as JSON, or the whole selection as streamed CSV.
import type { ServiceSchema } from "moleculer";
import { EVENT_LIMITS, parseListQuery, pageOf, type ListQuery } from "../../shared/pagination";
import { anyQuery, pathParams } from "../../shared/validation";
import type { ApiContext, RouteParams } from "../../shared/meta";
import type { MongoMethods } from "../../shared/mixins/mongo.mixin";
import type { ListRowsOptions } from "../../shared/list/buckets";
import { AGENT_STATUSES, LIFECYCLES, SESSION_STATUSES, SESSION_TYPES } from "./entries";
import { parseFilters, type FilterRule } from "./queries";
import { csvHeaders, csvStream } from "./csv";
import { SESSION_CSV_COLUMNS, SESSION_LIST_PROJECTION, toPublicSession, type SessionDoc } from "./models/session.model";
import { AGENT_CSV_COLUMNS, AGENT_LIST_PROJECTION, toPublicAgentSession, type AgentSessionDoc } from "./models/agent-session.model";

const SESSION_FILTERS: Record<string, FilterRule> = {
  status: { kind: "enum", values: SESSION_STATUSES },
  subject_id: { kind: "text", max: 256 },
  session_type: { kind: "enum", values: SESSION_TYPES },
  parent_id: { kind: "id" },
};

const AGENT_FILTERS: Record<string, FilterRule> = {
  status: { kind: "enum", values: AGENT_STATUSES },
  lifecycle: { kind: "enum", values: LIFECYCLES },
  application_id: { kind: "id" },
  parent_id: { kind: "id" },
  label: { kind: "labels" },
};

/** Rows read per store round during a CSV export. */
const EXPORT_PAGE = 1000;

type Lister = MongoMethods;

/** Every row of the selection after `q.after`, a page at a time, up to `max` rows. */
async function* allRows<R extends Record<string, any>>(svc: Lister, model: string, zoneId: string, q: ListQuery, opts: ListRowsOptions<R>, max: number): AsyncGenerator<R[]> {
  let after = q.after;
  let left = max;
  while (left > 0) {
    const limit = Math.min(EXPORT_PAGE, left);
    const page = await svc.listRows<R>(model, zoneId, { limit, after }, opts);
    const rows = page.rows.slice(0, limit);
    yield rows;
    left -= rows.length;
    const last = rows[rows.length - 1];
    if (page.rows.length > limit && last) after = { ts: new Date(last[opts.tsField ?? "created_at"]), id: String(last._id) };
    else if (page.resumeAfter) after = page.resumeAfter;
    else return;
  }
}

export const listActions: NonNullable<ServiceSchema<any, Lister>["actions"]> = {
  listSessions: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const { zoneId } = ctx.params.params;
      const f = parseFilters(ctx.params.query, SESSION_FILTERS);
      const q = parseListQuery(ctx.params.query, EVENT_LIMITS, f.values);
      const opts: ListRowsOptions<SessionDoc> = { where: f.values, projection: SESSION_LIST_PROJECTION, tsField: "created_at" };
      if (f.format === "csv") {
        ctx.meta.$responseType = "text/csv; charset=utf-8";
        ctx.meta.$responseHeaders = csvHeaders(`sessions-${zoneId}.csv`);
        const max = ctx.params.query?.limit !== undefined ? q.limit : Infinity;
        return csvStream(SESSION_CSV_COLUMNS, allRows(this, "Session", zoneId, q, opts, max), (s) => {
          const p = toPublicSession(s);
          return SESSION_CSV_COLUMNS.map((c) => p[c]);
        });
      }
      const page = await this.listRows<SessionDoc>("Session", zoneId, q, opts);
      return pageOf(page.rows, q, toPublicSession, f.values, "created_at", page.resumeAfter);
    },
  },

  listAgentSessions: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const { zoneId } = ctx.params.params;
      const f = parseFilters(ctx.params.query, AGENT_FILTERS);
      const q = parseListQuery(ctx.params.query, EVENT_LIMITS, f.values);
      const { label: _label, ...equalities } = f.values;
      // The first label is an equality the store serves (element of the array); the rest are checked per row.
      const where: Record<string, string> = { ...equalities, ...(f.labels.length ? { labels: f.labels[0]! } : {}) };
      const opts: ListRowsOptions<AgentSessionDoc> = {
        where,
        match: f.labels.length > 1 ? (row) => f.labels.every((l) => row.labels?.includes(l)) : undefined,
        projection: AGENT_LIST_PROJECTION,
        tsField: "spawned_at",
      };
      if (f.format === "csv") {
        ctx.meta.$responseType = "text/csv; charset=utf-8";
        ctx.meta.$responseHeaders = csvHeaders(`agent-sessions-${zoneId}.csv`);
        const max = ctx.params.query?.limit !== undefined ? q.limit : Infinity;
        return csvStream(AGENT_CSV_COLUMNS, allRows(this, "AgentSession", zoneId, q, opts, max), (a) => {
          const p = toPublicAgentSession(a);
          return AGENT_CSV_COLUMNS.map((c) => p[c]);
        });
      }
      const page = await this.listRows<AgentSessionDoc>("AgentSession", zoneId, q, opts);
      return pageOf(page.rows, q, toPublicAgentSession, f.values, "spawned_at", page.resumeAfter);
    },
  },
};
