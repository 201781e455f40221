// Zones: the tenancy root. Owns the `zones` collection; announces changes on caracal.zone.events.
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { MongoMixin, type MongoMethods } from "../../shared/mixins/mongo.mixin";
import { OutboxMixin, type OutboxMethods } from "../../shared/mixins/outbox.mixin";
import { pushEvents, withNewEvents, type OutboxEntry } from "../../shared/outbox/entry";
import { AppError, badRequest, conflict, notFound } from "../../shared/errors";
import { pathParams, anyQuery } from "../../shared/validation";
import { parseListQuery, pageOf } from "../../shared/pagination";
import { assertNotReserved, isReserved, RESERVED_PREFIXES } from "../../shared/reserved";
import { created, isDuplicateKey, noContent, type ApiContext, type RouteParams } from "../../shared/meta";
import { zoneSchema, slugCounterSchema, toPublicZone, type ZoneDoc } from "./models/zone.model";
import { slugBase } from "./slug";
import { ZONE_BODIES } from "./zones.api";

interface ZoneBody {
  name?: string;
  slug?: string;
  dcr_enabled?: boolean;
  dcr_shutdown?: "keep_live" | "revoke_live";
  operator_coauthor_badge?: boolean;
}

interface Methods extends OutboxMethods, MongoMethods {
  zones(): Model<ZoneDoc>;
  activeZone(id: string, cached?: boolean): Promise<ZoneDoc>;
  nextSlugSuffix(base: string): Promise<number>;
  liveDcrCount(ctx: ApiContext, zoneId: string): Promise<number>;
  readZone(id: string): Promise<ZoneDoc | null>;
  zoneChanged(ctx: ApiContext, id: string): void;
}

const idParams = pathParams("id");
/** Zones are not inside a zone: they are listed in one scope. */
const ALL_ZONES = "all";
const ZONE_CACHE_MS = 30_000;
const ZONE_CACHE_MAX = 50_000;

const ZonesService: ServiceSchema<{}, Methods> = {
  name: "zones",
  mixins: [
    MongoMixin({ Zone: { schema: zoneSchema, collection: "zones" }, SlugCounter: { schema: slugCounterSchema, collection: "zone_slug_counters" } }, { listed: ["Zone"] }),
    OutboxMixin(["Zone"]),
  ],

  actions: {
    list: {
      params: { query: anyQuery },
      async handler(ctx: ApiContext<RouteParams>) {
        const q = parseListQuery(ctx.params.query);
        const page = await this.listRows<ZoneDoc>("Zone", ALL_ZONES, q, { where: { archived: false, reserved: false }, projection: { _outbox: 0 } });
        return pageOf(page.rows, q, toPublicZone, {}, "created_at", page.resumeAfter);
      },
    },

    get: {
      params: { params: idParams },
      async handler(ctx: ApiContext<RouteParams<{ id: string }>>) {
        return toPublicZone(await this.activeZone(ctx.params.params.id, true));
      },
    },

    dcrStatus: {
      params: { params: idParams },
      async handler(ctx: ApiContext<RouteParams<{ id: string }>>) {
        const zone = await this.activeZone(ctx.params.params.id, true);
        return { id: zone._id, dcr_enabled: zone.dcr_enabled, live_dcr_applications: await this.liveDcrCount(ctx, zone._id) };
      },
    },

    create: {
      params: {
        body: ZONE_BODIES.create,
      },
      async handler(ctx: ApiContext<RouteParams<{}, ZoneBody>>) {
        const body = ctx.params.body;
        const name = body.name!;
        assertNotReserved(ctx.meta.actor, name, RESERVED_PREFIXES.zoneName);
        assertNotReserved(ctx.meta.actor, body.slug, RESERVED_PREFIXES.zoneSlug);
        const id = this.entityId(ctx);
        // A retry (same Idempotency-Key) of a create that was stored but never answered gets that zone back.
        const prior = await this.priorCreate<ZoneDoc>(ctx, "Zone", id);
        if (prior) return created(ctx, `/v1/zones/${id}`, toPublicZone(prior));
        const now = new Date();
        const reserved = isReserved(name, RESERVED_PREFIXES.zoneName) || isReserved(body.slug, RESERVED_PREFIXES.zoneSlug);
        // The unique slug index decides; a generated slug that is taken moves on to the next suffix,
        // an explicit one is a conflict.
        const base = body.slug ?? slugBase(name);
        const [listed] = await this.listFields("Zone", ALL_ZONES, [now]);
        for (let attempt = 0; attempt < 50; attempt++) {
          const slug = attempt === 0 ? base : `${base}-${await this.nextSlugSuffix(base)}`;
          const doc = { _id: id, name, slug, dcr_enabled: body.dcr_enabled ?? false, operator_coauthor_badge: true, reserved, created_at: now, updated_at: now, archived_at: null, archived: false };
          try {
            const events = [this.zoneEvent(ctx, id, "zone", id, "created")];
            await this.zones().create({ ...doc, ...listed, ...withNewEvents(events) });
            await this.outboxKick("Zone", id, events);
            return created(ctx, `/v1/zones/${id}`, toPublicZone(doc));
          } catch (err) {
            if (!isDuplicateKey(err)) throw err;
            const raced = await this.priorCreate<ZoneDoc>(ctx, "Zone", id);
            if (raced) return created(ctx, `/v1/zones/${id}`, toPublicZone(raced));
            if (body.slug !== undefined) throw conflict("zone_slug_conflict", "slug is already used by another zone");
          }
        }
        throw conflict("zone_slug_conflict", "no free slug for this name");
      },
    },

    update: {
      params: {
        params: idParams,
        body: ZONE_BODIES.update,
      },
      async handler(ctx: ApiContext<RouteParams<{ id: string }, ZoneBody>>) {
        const { id } = ctx.params.params;
        const body = ctx.params.body;
        assertNotReserved(ctx.meta.actor, body.name, RESERVED_PREFIXES.zoneName);
        assertNotReserved(ctx.meta.actor, body.slug, RESERVED_PREFIXES.zoneSlug);
        if (body.dcr_shutdown !== undefined && body.dcr_enabled !== false) {
          throw badRequest("dcr_shutdown_not_applicable", "dcr_shutdown is only allowed together with dcr_enabled:false");
        }
        const set: Record<string, unknown> = {};
        for (const key of ["name", "slug", "dcr_enabled", "operator_coauthor_badge"] as const) if (body[key] !== undefined) set[key] = body[key];
        if (!Object.keys(set).length) throw badRequest("no_fields", "nothing to update");

        const extra: Record<string, string> = {};
        let events: OutboxEntry[] = [];
        let updated: ZoneDoc | null;
        try {
          updated = await this.locked(this.zones(), id, async () => {
            const zone = await this.activeZone(id);
            if (this.appliedBefore(ctx, zone)) return zone;
            if (body.dcr_enabled === false && (zone.dcr_enabled || body.dcr_shutdown)) {
              const live = await this.liveDcrCount(ctx, id);
              if (live > 0 && !body.dcr_shutdown) {
                throw new AppError(409, "dcr_shutdown_required", "live DCR applications exist: choose dcr_shutdown keep_live or revoke_live", { live_dcr_applications: live });
              }
              extra.dcr_shutdown = body.dcr_shutdown === "revoke_live" ? "revoke_live" : live > 0 ? "keep_live" : "no_live";
              extra.live_dcr_applications = String(live);
            }
            set.updated_at = new Date();
            const changed = Object.keys(set).filter((k) => k !== "updated_at").sort().join(",");
            events = [this.zoneEvent(ctx, id, "zone", id, "updated", { changed_fields: changed, ...extra })];
            return this.zones().findOneAndUpdate({ _id: id }, pushEvents({ $set: set }, events), { returnDocument: "after" }).lean<ZoneDoc>();
          });
        } catch (err) {
          if (isDuplicateKey(err)) throw conflict("zone_slug_conflict", "slug is already used by another zone");
          throw err;
        }
        if (!updated) throw notFound("zone_not_found", "zone not found");
        this.zoneChanged(ctx, id);
        await this.outboxKick("Zone", id, events, updated);
        if (extra.dcr_shutdown === "revoke_live") {
          // The event above guarantees the revocation; this call makes it visible before we answer.
          await ctx.call("applications.revokeLiveDcr", { zone_id: id }).catch((err: Error) => {
            if (err.name !== "ServiceNotFoundError") throw err;
          });
        }
        return toPublicZone(updated);
      },
    },

    remove: {
      params: { params: idParams },
      async handler(ctx: ApiContext<RouteParams<{ id: string }>>) {
        const { id } = ctx.params.params;
        const now = new Date();
        const events = [this.zoneEvent(ctx, id, "zone", id, "deleted")];
        await this.locked(this.zones(), id, async () => {
          if (this.appliedBefore(ctx, await this.zones().findById(id).lean<ZoneDoc>())) return;
          await this.activeZone(id);
          await this.zones().updateOne({ _id: id }, pushEvents({ $set: { archived_at: now, archived: true, updated_at: now } }, events));
        });
        this.zoneChanged(ctx, id);
        await this.outboxKick("Zone", id, events);
        ctx.broadcast("zones.zone.archived", { zone_id: id });
        return noContent(ctx);
      },
    },

    /** Internal: a zone's state for other services and the gateway's system-zone gate. */
    resolve: {
      visibility: "public",
      params: { id: "string" },
      cache: false,
      async handler(ctx: ApiContext<{ id: string }>) {
        const z = await this.readZone(ctx.params.id);
        if (!z) return null;
        return { ...toPublicZone(z), reserved: z.reserved, archived: z.archived_at !== null };
      },
    },
  },

  events: {
    "zones.zone.changed"(this: any, ctx: { params: { zone_id: string } }) {
      this.zoneCache.delete(ctx.params.zone_id);
    },
  },

  methods: {
    zones(this: any) {
      return this.models.Zone as Model<ZoneDoc>;
    },

    // Point reads go by `_id` alone: FerretDB v1 pushes nothing else down to its store.
    async activeZone(id: string, cached = false) {
      const zone = cached ? await this.readZone(id) : await this.zones().findById(id).lean<ZoneDoc>();
      if (!zone || zone.archived_at) throw notFound("zone_not_found", "zone not found");
      return zone;
    },

    /**
     * Zones are read on nearly every request of every service (existence, system-zone gate) and
     * change rarely, so reads are served from memory for up to ZONE_CACHE_MS. A write evicts the
     * entry here at once and on every other zones instance through the broadcast below.
     */
    async readZone(id: string) {
      const hit = this.zoneCache.get(id);
      if (hit && hit.until > Date.now()) return hit.zone;
      const zone = await this.zones().findById(id, { _outbox: 0 }).lean<ZoneDoc>();
      if (this.zoneCache.size >= ZONE_CACHE_MAX) this.zoneCache.clear();
      this.zoneCache.set(id, { zone, until: Date.now() + ZONE_CACHE_MS });
      return zone;
    },

    zoneChanged(ctx: ApiContext, id: string) {
      this.zoneCache.delete(id);
      ctx.broadcast("zones.zone.changed", { zone_id: id }, { groups: ["zones"] });
    },

    /** The next suffix to try for a generated slug: a per-base counter, so the thousandth "My Zone" costs one step. */
    async nextSlugSuffix(base: string) {
      const counters = this.models.SlugCounter as Model<{ _id: string; next: number }>;
      return this.locked(counters, base, async () => {
        const current = await counters.findById(base).lean();
        const next = Math.max(current?.next ?? 2, 2);
        await counters.updateOne({ _id: base }, { $set: { next: next + 1 } }, { upsert: true });
        return next;
      });
    },

    /** Live DCR applications are the applications service's to count; before it exists there are none. */
    async liveDcrCount(ctx: ApiContext, zoneId: string) {
      try {
        const res = await ctx.call<{ count: number }, { zone_id: string }>("applications.liveDcrCount", { zone_id: zoneId });
        return res.count;
      } catch (err) {
        if ((err as Error).name === "ServiceNotFoundError") return 0;
        throw err;
      }
    },
  },

  created(this: any) {
    this.zoneCache = new Map();
  },
};

export default ZonesService;
