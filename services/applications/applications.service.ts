// Applications: managed and DCR clients of a zone. Owns `applications`; secrets only as Argon2id.
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { MongoMixin, type MongoMethods } from "../../shared/mixins/mongo.mixin";
import { OutboxMixin, type OutboxMethods } from "../../shared/mixins/outbox.mixin";
import { pushEvents, withNewEvents, type OutboxEntry } from "../../shared/outbox/entry";
import { AppError, badRequest, notFound } from "../../shared/errors";
import { activeZoneOf } from "../../shared/zones-client";
import { newId } from "../../shared/ids";
import { parseListQuery, pageOf } from "../../shared/pagination";
import { assertNotReserved, RESERVED_PREFIXES } from "../../shared/reserved";
import { created, noContent, type ApiContext, type RouteParams } from "../../shared/meta";
import { anyQuery, checkBody, pathParams } from "../../shared/validation";
import { redisClient } from "../../shared/redis";
import { tryDocLock } from "../../shared/doc-lock";
import { config } from "../../shared/config";
import { applicationSchema, isLiveDcr, toPublicApplication, type ApplicationDoc } from "./models/application.model";
import { checkTraits } from "./traits";
import { nameActions } from "./names.actions";
import { hashClientSecret, newClientSecret, verifyClientSecret } from "./client-secret";
import { ZoneCounters } from "../../shared/zone-counters";
import { APPLICATION_BODIES } from "./applications.api";

const DCR_BURST_PER_SECOND = 10;
const DCR_LIVE_CAP = 1000;
const DCR_GC_GRACE_MS = 24 * 3600 * 1000;
const DCR_GC_BATCH = 500;
const UNBIND_CALL_TIMEOUT_MS = 5000;


interface Methods extends OutboxMethods, MongoMethods {
  apps(): Model<ApplicationDoc>;
  activeZone(ctx: ApiContext, zoneId: string): Promise<void>;
  appInZone(zoneId: string, id: string): Promise<ApplicationDoc>;
  liveDcr(zoneId: string): Promise<ApplicationDoc[]>;
  archive(ctx: ApiContext, app: ApplicationDoc, reason: string): Promise<boolean>;
  unbindGateway(ctx: ApiContext, app: ApplicationDoc): Promise<boolean>;
  backgroundPass(): Promise<{ archived: number; unbound: number }>;
  zoneCounts: ZoneCounters;
}

/** Days before the cutoff's own that each garbage-collection pass looks at. */
const DCR_GC_LOOKBACK_DAYS = 2;
const utcDay = (d: Date) => new Date(d).toISOString().slice(0, 10);

const ApplicationsService: ServiceSchema<{ dcrGcIntervalMs?: number }, Methods> = {
  name: "applications",
  mixins: [MongoMixin({ Application: { schema: applicationSchema, collection: "applications" } }, { listed: ["Application"] }), OutboxMixin(["Application"])],

  actions: {
    list: {
      params: { params: pathParams("zoneId"), query: anyQuery },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
        const q = parseListQuery(ctx.params.query);
        const page = await this.listRows<ApplicationDoc>("Application", ctx.params.params.zoneId, q, { where: { archived: false }, projection: { _outbox: 0, secret_hash: 0 } });
        const withTraits = ctx.meta.actor?.scope === "global";
        return pageOf(page.rows, q, (a) => toPublicApplication(a, withTraits), {}, "created_at", page.resumeAfter);
      },
    },

    get: {
      params: { params: pathParams("zoneId", "id") },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const app = await this.appInZone(ctx.params.params.zoneId, ctx.params.params.id);
        return toPublicApplication(app, ctx.meta.actor?.scope === "global");
      },
    },

    create: {
      // The body is checked in the handler: the reference looks the zone up first.
      params: { params: pathParams("zoneId"), body: { type: "any", optional: true } },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }, { name: string; traits?: string[] }>>) {
        const { zoneId } = ctx.params.params;
        await this.activeZone(ctx, zoneId);
        checkBody(APPLICATION_BODIES.create, ctx.params.body, "invalid_application");
        const body = ctx.params.body;
        assertNotReserved(ctx.meta.actor, body.name, RESERVED_PREFIXES.applicationName);
        const traits = body.traits ?? [];
        checkTraits(traits, ctx.meta.actor);
        const secret = newClientSecret();
        const doc: ApplicationDoc = { _id: newId(), zone_id: zoneId, name: body.name, registration_method: "managed", traits, expires_at: null, created_at: new Date(), archived_at: null, archived: false, secret_hash: await hashClientSecret(secret) };
        const events = [this.zoneEvent(ctx, zoneId, "application", doc._id, "created")];
        const [listed] = await this.listFields("Application", zoneId, [doc.created_at]);
        await this.apps().create({ ...doc, ...listed, ...withNewEvents(events) });
        await this.zoneCounts.bump(zoneId, { total: 1 });
        await this.outboxKick("Application", doc._id, events);
        return created(ctx, `/v1/zones/${zoneId}/applications/${doc._id}`, { ...toPublicApplication(doc, false), client_secret: secret });
      },
    },

    registerDcr: {
      params: {
        params: pathParams("zoneId"),
        body: APPLICATION_BODIES.registerDcr,
      },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }, { name: string; expires_in?: number }>>) {
        const { zoneId } = ctx.params.params;
        const body = ctx.params.body;
        assertNotReserved(ctx.meta.actor, body.name, RESERVED_PREFIXES.applicationName);
        // Burst limit per (zone, actor), counted in Redis so every instance shares it.
        const second = Math.floor(Date.now() / 1000);
        const key = `${config().namespace}:dcr_rl:${zoneId}:${ctx.meta.actor?.id ?? "anon"}:${second}`;
        const res = await redisClient().multi().incr(key).expire(key, 3).exec();
        if (Number(res?.[0]?.[1] ?? 0) > DCR_BURST_PER_SECOND) throw new AppError(429, "dcr_rate_limit_exceeded", `more than ${DCR_BURST_PER_SECOND} DCR registrations per second`);
        const zone = await activeZoneOf(ctx, zoneId);
        if (!zone.dcr_enabled) throw new AppError(403, "dcr_disabled", "dynamic client registration is off in this zone");
        const secret = newClientSecret();
        const secretHash = await hashClientSecret(secret);
        // The cap is counted and the app inserted under one lock per zone, so concurrent
        // registrations cannot pass the cap together.
        let events: OutboxEntry[] = [];
        const doc = await this.locked(this.apps(), `dcr-cap:${zoneId}`, async () => {
          if ((await this.liveDcr(zoneId)).length >= DCR_LIVE_CAP) throw new AppError(429, "dcr_limit_exceeded", `a zone holds at most ${DCR_LIVE_CAP} live DCR applications`);
          const now = new Date();
          const app: ApplicationDoc = { _id: newId(), zone_id: zoneId, name: body.name, registration_method: "dcr", traits: [], expires_at: new Date(now.getTime() + (body.expires_in ?? 3600) * 1000), created_at: now, archived_at: null, archived: false, secret_hash: secretHash };
          app.expires_day = utcDay(app.expires_at!);
          events = [this.zoneEvent(ctx, zoneId, "application", app._id, "created", { registration_method: "dcr" })];
          const [listed] = await this.listFields("Application", zoneId, [app.created_at]);
          await this.apps().create({ ...app, ...listed, ...withNewEvents(events) });
          await this.zoneCounts.bump(zoneId, { total: 1 }, { add: [app._id, app.expires_at!.getTime()] });
          return app;
        });
        await this.outboxKick("Application", doc._id, events);
        return created(ctx, `/v1/zones/${zoneId}/applications/${doc._id}`, { ...toPublicApplication(doc, false), client_secret: secret });
      },
    },

    update: {
      params: { params: pathParams("zoneId", "id"), body: APPLICATION_BODIES.update },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }, { name?: string; client_secret?: string; traits?: string[] }>>) {
        const { zoneId, id } = ctx.params.params;
        const body = ctx.params.body;
        assertNotReserved(ctx.meta.actor, body.name, RESERVED_PREFIXES.applicationName);
        if (body.traits) checkTraits(body.traits, ctx.meta.actor);
        if (body.client_secret !== undefined) {
          const app = await this.appInZone(zoneId, id);
          if (!app.secret_hash) throw badRequest("client_secret_not_configured", "this application has no client secret");
        }
        const set: Record<string, unknown> = {};
        if (body.name !== undefined) set.name = body.name;
        if (body.traits !== undefined) set.traits = body.traits;
        if (body.client_secret !== undefined) set.secret_hash = await hashClientSecret(body.client_secret);
        if (!Object.keys(set).length) throw badRequest("no_fields", "nothing to update");
        let events: OutboxEntry[] = [];
        const updated = await this.locked(this.apps(), id, async () => {
          await this.appInZone(zoneId, id);
          // Which fields changed is recorded; a secret change is only flagged, never its value.
          const changed = Object.keys(set).map((k) => (k === "secret_hash" ? "client_secret" : k)).sort().join(",");
          events = [this.zoneEvent(ctx, zoneId, "application", id, "updated", { changed_fields: changed, secret_rotated: body.client_secret !== undefined ? "true" : null })];
          return this.apps().findOneAndUpdate({ _id: id }, pushEvents({ $set: set }, events), { returnDocument: "after" }).lean<ApplicationDoc>();
        });
        await this.outboxKick("Application", id, events, updated);
        return { id: updated!._id, name: updated!.name };
      },
    },

    rotateSecret: {
      params: { params: pathParams("zoneId", "id"), body: { type: "any", optional: true } },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const secret = newClientSecret();
        const secretHash = await hashClientSecret(secret);
        const events = [this.zoneEvent(ctx, zoneId, "application", id, "updated", { changed_fields: "client_secret", secret_rotated: "true" })];
        await this.locked(this.apps(), id, async () => {
          await this.appInZone(zoneId, id);
          await this.apps().updateOne({ _id: id }, pushEvents({ $set: { secret_hash: secretHash } }, events));
        });
        await this.outboxKick("Application", id, events);
        return { id, client_secret: secret };
      },
    },

    remove: {
      params: { params: pathParams("zoneId", "id") },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const app = await this.appInZone(zoneId, id);
        if (!(await this.archive(ctx, app, "deleted"))) throw notFound("application_not_found", "application not found");
        return noContent(ctx);
      },
    },

    /** Internal: live DCR applications of a zone, for dcr-status and the DCR shutdown decision. */
    liveDcrCount: {
      visibility: "public",
      params: { zone_id: "string" },
      async handler(ctx: ApiContext<{ zone_id: string }>) {
        return { count: (await this.liveDcr(ctx.params.zone_id)).length };
      },
    },

    /** Internal: DCR shutdown with revoke_live archives every live DCR application of the zone. */
    revokeLiveDcr: {
      visibility: "public",
      params: { zone_id: "string" },
      async handler(ctx: ApiContext<{ zone_id: string }>) {
        let archived = 0;
        for (const app of await this.liveDcr(ctx.params.zone_id)) if (await this.archive(ctx, app, "dcr_shutdown")) archived++;
        return { archived };
      },
    },

    /** Internal: the zone overview's application counts (maintained counters, see shared/zone-counters.ts). */
    zoneStats: {
      visibility: "public",
      params: { zone_id: "string" },
      async handler(ctx: ApiContext<{ zone_id: string }>) {
        const zoneId = ctx.params.zone_id;
        const counts = await this.zoneCounts.read(zoneId, async () => {
          const live = await this.apps().find({ zone_id: zoneId, archived: false }, { expires_at: 1 }).lean<ApplicationDoc[]>();
          return { counts: { total: live.length }, dated: live.filter((a) => a.expires_at).map((a) => [a._id, new Date(a.expires_at!).getTime()] as [string, number]) };
        });
        const now = Date.now();
        return {
          total: counts.total ?? 0,
          expired: await this.zoneCounts.countDated(zoneId, "-inf", now - 1),
          expiring_soon: await this.zoneCounts.countDated(zoneId, now, now + 7 * 24 * 3600 * 1000),
        };
      },
    },

    /** Internal: what resources need to know about a gateway application. */
    resolveForGateway: {
      visibility: "public",
      params: { zone_id: "string", id: "string" },
      async handler(ctx: ApiContext<{ zone_id: string; id: string }>) {
        const app = await this.apps().findById(ctx.params.id, { _outbox: 0, secret_hash: 0 }).lean<ApplicationDoc>();
        if (!app || app.zone_id !== ctx.params.zone_id) return null;
        return { id: app._id, zone_id: app.zone_id, registration_method: app.registration_method, expires_at: app.expires_at ? new Date(app.expires_at).toISOString() : null, archived: app.archived_at !== null };
      },
    },

    // Internal, for the grants service's list rows: namesByIds.
    ...(nameActions as unknown as ServiceSchema["actions"]),

    /** Internal: checks a client secret (the token service's job in production; used to prove rotation). */
    verifySecret: {
      visibility: "public",
      params: { zone_id: "string", id: "string", client_secret: "string" },
      async handler(ctx: ApiContext<{ zone_id: string; id: string; client_secret: string }>) {
        const app = await this.apps().findById(ctx.params.id).lean<ApplicationDoc>();
        const valid = !!app && app.zone_id === ctx.params.zone_id && !app.archived_at && !!app.secret_hash && (await verifyClientSecret(app.secret_hash, ctx.params.client_secret));
        return { valid };
      },
    },

    /** Internal: one background pass (DCR GC and unbinding retries); the timer calls the same method. */
    backgroundPass: {
      visibility: "public",
      async handler() {
        return this.backgroundPass();
      },
    },
  },

  events: {
    "zones.zone.archived"(this: any) {
      // Nothing cached per zone here; creates ask the zones service each time.
    },
  },

  methods: {
    apps(this: any) {
      return this.models.Application as Model<ApplicationDoc>;
    },

    async activeZone(ctx: ApiContext, zoneId: string) {
      await activeZoneOf(ctx, zoneId);
    },

    // By `_id` only (FerretDB scans for anything else); the zone is checked in code.
    async appInZone(zoneId: string, id: string) {
      const app = await this.apps().findById(id).lean<ApplicationDoc>();
      if (!app || app.zone_id !== zoneId || app.archived_at) throw notFound("application_not_found", "application not found");
      return app;
    },

    async liveDcr(zoneId: string) {
      const rows = await this.apps().find({ zone_id: zoneId, registration_method: "dcr", archived: false }, { _outbox: 0, secret_hash: 0 }).lean<ApplicationDoc[]>();
      return rows.filter((a) => isLiveDcr(a));
    },

    /**
     * Archives one application (once: false when it already was) with its zone event, then has the
     * providers service drop it as gateway application of the zone's resources.
     *
     * Why a flag and not only the call or the broadcast: resources belong to the providers service, so the
     * unbinding is a second write in another service's store, after ours. A crash of this process between
     * the two, or providers being down or slow, would otherwise leave resources bound to an archived app for
     * good (a broadcast is fire-and-forget and lost with nobody listening). So the archive write itself sets
     * `gateway_unbind_pending` (in the same document write as `archived_at` and the zone event); it is unset
     * only after `providers.clearGatewayApplication` (idempotent) answered, and the background pass retries
     * every flagged app until it does. DCR apps are never gateway applications (resources take managed apps
     * only), so they skip the call: revoke_live and the GC do not cost the providers service a scan per app.
     */
    async archive(ctx: ApiContext, app: ApplicationDoc, reason: string) {
      const unbind = app.registration_method === "managed";
      const events = [this.zoneEvent(ctx, app.zone_id, "application", app._id, "deleted", { reason })];
      const done = await this.locked(this.apps(), app._id, async () => {
        // "Only if not archived yet" is checked under the document's lock rather than in the update's
        // filter: FerretDB v1 scans the collection for any filter beyond `{_id}`.
        const fresh = await this.apps().findById(app._id, { _outbox: 0, secret_hash: 0 }).lean<ApplicationDoc>();
        if (!fresh || fresh.archived_at) return false;
        const set: Record<string, unknown> = { archived_at: new Date(), archived: true };
        if (unbind) set.gateway_unbind_pending = true;
        await this.apps().updateOne({ _id: app._id }, pushEvents({ $set: set }, events));
        return true;
      });
      if (!done) return false;
      await this.zoneCounts.bump(app.zone_id, { total: -1 }, { rem: app._id });
      await this.outboxKick("Application", app._id, events);
      // The domain event, for listeners that keep per-app state (caches); the unbinding does not rely on it.
      ctx.broadcast("applications.application.archived", { zone_id: app.zone_id, application_id: app._id });
      if (unbind) await this.unbindGateway(ctx, app);
      return true;
    },

    /** Asks providers to drop the app's gateway bindings; clears the pending flag only when that worked. */
    async unbindGateway(ctx: ApiContext, app: ApplicationDoc) {
      try {
        // Bounded well inside the gateway's request timeout: a slow unbinding (a scan of a large resources
        // collection) must not turn the delete into a 504; the flag carries it to the next pass.
        await ctx.call("providers.clearGatewayApplication", { zone_id: app.zone_id, application_id: app._id }, { timeout: UNBIND_CALL_TIMEOUT_MS });
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, application_id: app._id }, "clearing gateway bindings failed; the background pass retries it");
        return false;
      }
      await this.locked(this.apps(), app._id, () => this.apps().updateOne({ _id: app._id }, { $unset: { gateway_unbind_pending: 1 } }));
      return true;
    },

    /**
     * One background pass, on one instance per tick (a Redis lock, `SET NX PX`, left to expire so a second
     * instance cannot run the same tick): archives DCR applications expired for more than 24 h (at most
     * 500) and retries the gateway unbinding of archived apps still flagged. Both by equality: expired DCR
     * apps by the day they expire (the cutoff's day and the DCR_GC_LOOKBACK_DAYS before it; the first pass
     * of a process looks at every unarchived DCR app once, for what a long outage left behind).
     */
    async backgroundPass(this: any) {
      const interval = this.settings.dcrGcIntervalMs ?? 60_000;
      const tick = await tryDocLock(redisClient(), `${config().namespace}:${this.db.name}:dcr-gc`, Math.max(1000, interval - 500));
      if (!tick) return { archived: 0, unbound: 0 };
      const cutoff = new Date(Date.now() - DCR_GC_GRACE_MS);
      const projection = { _outbox: 0, secret_hash: 0 };
      const candidates: ApplicationDoc[] = [];
      if (!this.fullGcDone) {
        candidates.push(...((await this.apps().find({ registration_method: "dcr", archived: false }, projection).lean()) as ApplicationDoc[]));
        this.fullGcDone = true;
      } else {
        for (let d = 0; d <= DCR_GC_LOOKBACK_DAYS; d++) {
          candidates.push(...((await this.apps().find({ expires_day: utcDay(new Date(cutoff.getTime() - d * 86_400_000)), archived: false }, projection).lean()) as ApplicationDoc[]));
        }
      }
      const expired = candidates
        .filter((a) => a.registration_method === "dcr" && !a.archived_at && a.expires_at && new Date(a.expires_at) < cutoff)
        .sort((a, b) => new Date(a.expires_at!).getTime() - new Date(b.expires_at!).getTime())
        .slice(0, DCR_GC_BATCH);
      const ctx = this.broker.ContextFactory.create(this.broker, null, {}, { meta: { actor: { id: "system:dcr-gc" } } });
      let archived = 0;
      for (const app of expired) if (await this.archive(ctx, app, "dcr_expired")) archived++;
      let unbound = 0;
      const flagged = (await this.apps().find({ gateway_unbind_pending: true }, projection).limit(DCR_GC_BATCH).lean()) as ApplicationDoc[];
      for (const app of flagged.filter((a) => a.archived_at)) if (await this.unbindGateway(ctx, app)) unbound++;
      return { archived, unbound };
    },
  },

  created(this: any) {
    this.settings.dcrGcIntervalMs ??= config().dcrGcIntervalMs;
    this.zoneCounts = new ZoneCounters(redisClient(this.settings.redisUrl ?? config().redisUrl), `${this.db.name}:zonestats:applications`);
  },

  started(this: any) {
    this.gcTimer = setInterval(() => void this.backgroundPass().catch((err: Error) => this.logger.warn({ err: err.message }, "background pass failed")), this.settings.dcrGcIntervalMs);
    this.gcTimer.unref?.();
  },

  stopped(this: any) {
    clearInterval(this.gcTimer);
  },
};

export default ApplicationsService;
