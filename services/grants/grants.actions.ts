// Delegated grants (reference-policy §3.5): list with names from their owners, get, create, revoke.
import { notFound, forbidden } from "../../shared/errors";
import { activeZoneOf } from "../../shared/zones-client";
import { newId } from "../../shared/ids";
import { OBJECT_LIMITS, pageOf, parseListQuery } from "../../shared/pagination";
import { withNewEvents, pushEvents } from "../../shared/outbox/entry";
import { created, noContent, type ApiContext, type RouteParams } from "../../shared/meta";
import { anyQuery, checkBody, pathParams } from "../../shared/validation";
import type { ResourceLabel } from "../providers/grant-support.actions";
import { toPublicGrant, type GrantDoc } from "./models/grant.model";
import { parseGrantFilters, scopesOutside } from "./grant-rules";
import { GRANT_BODIES } from "./grants.api";
import type { GrantsThis } from "./grants.service";

interface GrantBody {
  application_id: string;
  user_id: string;
  resource_id: string;
  scopes: string[];
}

type ZonePath = { zoneId: string };
type GrantPath = { zoneId: string; id: string };

export const grantActions = {
  list: {
    params: { params: pathParams("zoneId"), query: anyQuery },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<ZonePath>>) {
      const zoneId = ctx.params.params.zoneId;
      const filters = parseGrantFilters(ctx.params.query);
      // The cursor is bound to the filters (scopes as one sorted list).
      const bound = { ...filters, scopes: filters.scopes?.join(",") };
      const q = parseListQuery(ctx.params.query, OBJECT_LIMITS, bound);
      // The provider filter is the resource's current credential provider: the providers service names the
      // zone's resources bound to it (with their labels, so the page needs no second call there).
      let labels: Record<string, ResourceLabel> | null = null;
      let allowed: Set<string> | null = null;
      if (filters.provider_id !== undefined) {
        labels = (await ctx.call<{ resources: Record<string, ResourceLabel> }, object>("providers.resourceNamesByIds", { zone_id: zoneId, provider_id: filters.provider_id })).resources;
        allowed = new Set(Object.keys(labels));
        if (filters.resource_id !== undefined && !allowed.has(filters.resource_id)) allowed.clear();
        if (!allowed.size) return pageOf([], q, toPublicGrant, bound);
      }
      const where: Record<string, string> = {};
      for (const key of ["status", "user_id", "application_id", "resource_id"] as const) if (filters[key] !== undefined) where[key] = filters[key]!;
      if (allowed?.size === 1) where.resource_id = [...allowed][0]!;
      const wanted = filters.scopes ?? [];
      const page = await this.listRows<GrantDoc>("Grant", zoneId, q, {
        where,
        match: (row) => wanted.every((s) => row.scopes.includes(s)) && (!allowed || allowed.has(row.resource_id)),
        projection: { _outbox: 0 },
      });
      const shown = page.rows.slice(0, q.limit);
      const { apps, resources } = await this.labelsFor(ctx, zoneId, shown, labels);
      return pageOf(
        page.rows,
        q,
        (g) => {
          const r = resources[g.resource_id];
          return {
            id: g._id,
            zone_id: g.zone_id,
            application_id: g.application_id,
            user_id: g.user_id,
            resource_id: g.resource_id,
            provider_id: r?.provider_id ?? null,
            application_name: apps[g.application_id] ?? null,
            resource_name: r?.name ?? null,
            provider_name: r?.provider_name ?? null,
            provider_kind: r?.provider_kind ?? null,
            scopes: g.scopes,
            status: g.status,
            created_at: new Date(g.created_at).toISOString(),
          };
        },
        bound,
        "created_at",
        page.resumeAfter,
      );
    },
  },

  get: {
    params: { params: pathParams("zoneId", "id") },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<GrantPath>>) {
      return toPublicGrant(await this.grantInZone(ctx.params.params.zoneId, ctx.params.params.id));
    },
  },

  create: {
    // The body is checked in the handler: the zone comes first (reference order).
    params: { params: pathParams("zoneId"), body: { type: "any", optional: true } },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<ZonePath, GrantBody>>) {
      const { zoneId } = ctx.params.params;
      await activeZoneOf(ctx, zoneId);
      checkBody(GRANT_BODIES.create, ctx.params.body, "invalid_body");
      const body = ctx.params.body;
      const app = await ctx.call<{ expires_at: string | null; archived: boolean } | null, object>("applications.resolveForGateway", { zone_id: zoneId, id: body.application_id });
      if (!app || app.archived || (app.expires_at && Date.parse(app.expires_at) <= Date.now())) throw notFound("application_not_found", "application not found");
      const { resource } = await this.resolveTarget(ctx, zoneId, { resource_id: body.resource_id });
      if (!resource) throw notFound("resource_not_found", "resource not found");
      const outside = scopesOutside(body.scopes, resource.scopes);
      if (outside.length) throw forbidden("grant_scopes_exceed_resource", "every scope must be one of the resource's scopes", { scopes: outside });
      const now = new Date();
      const doc: GrantDoc = { _id: newId(), zone_id: zoneId, application_id: body.application_id, user_id: body.user_id, resource_id: body.resource_id, scopes: body.scopes, status: "active", created_at: now, revoked_at: null };
      const [listed] = await this.listFields("Grant", zoneId, [now]);
      const events = [this.zoneEvent(ctx, zoneId, "grant", doc._id, "created")];
      await this.grants().create({ ...doc, ...listed, ...withNewEvents(events) });
      await this.outboxKick("Grant", doc._id, events);
      return created(ctx, `/v1/zones/${zoneId}/grants/${doc._id}`, toPublicGrant(doc));
    },
  },

  /**
   * Revokes (idempotent: a revoked grant answers 204 again) and announces it in the same document write: the
   * grant's `caracal.zone.events` entry (entity_type grant, action deleted) with `subject_id` and `grant_id`,
   * from which the sessions service revokes the subject's active sessions in the zone. Every call announces,
   * as the reference revokes the subject's sessions on every call.
   */
  revoke: {
    params: { params: pathParams("zoneId", "id") },
    async handler(this: GrantsThis, ctx: ApiContext<RouteParams<GrantPath>>) {
      const { zoneId, id } = ctx.params.params;
      const events = await this.locked(this.grants(), id, async () => {
        const grant = await this.grantInZone(zoneId, id);
        const now = new Date();
        const revoked = [this.zoneEvent(ctx, zoneId, "grant", id, "deleted", { subject_id: grant.user_id, grant_id: id })];
        await this.grants().updateOne({ _id: id }, pushEvents({ $set: { status: "revoked", revoked_at: grant.revoked_at ?? now } }, revoked));
        return revoked;
      });
      await this.outboxKick("Grant", id, events);
      return noContent(ctx);
    },
  },
};
