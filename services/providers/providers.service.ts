// Providers and resources of a zone. Owns `providers`, `resources`, `zone_keys`, `provider_counters`.
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { MongoMixin, type MongoMethods } from "../../shared/mixins/mongo.mixin";
import { OutboxMixin, type OutboxMethods } from "../../shared/mixins/outbox.mixin";
import { pushEvents, withNewEvents, type OutboxEntry } from "../../shared/outbox/entry";
import { badRequest, conflict, notFound, Problems } from "../../shared/errors";
import { activeZoneOf } from "../../shared/zones-client";
import { parseListQuery, pageOf } from "../../shared/pagination";
import { assertNotReserved, RESERVED_PREFIXES } from "../../shared/reserved";
import { created, isDuplicateKey, noContent, type ApiContext, type RouteParams } from "../../shared/meta";
import { anyQuery, pathParams } from "../../shared/validation";
import { config } from "../../shared/config";
import { counterSchema, providerSchema, resourceSchema, toPublicProvider, toPublicResource, zoneKeySchema, type ProviderDoc, type ResourceDoc } from "./models/provider.model";
import { ZoneCounters } from "../../shared/zone-counters";
import { redisClient } from "../../shared/redis";
import { providerIdentifierBase, validateProviderConfig, type ProviderKind } from "./provider-config";
import { checkProviderCreate, checkProviderUpdate, checkResourceCreate, checkResourceMerged, checkResourceUpdateBody, throwFirst } from "./body-checks";
import { seal } from "./sealing";
import { grantSupportActions } from "./grant-support.actions";
import { loadZoneDataKey } from "../../shared/zone-keys";

interface Methods extends OutboxMethods, MongoMethods {
  providers(): Model<ProviderDoc>;
  resources(): Model<ResourceDoc>;
  activeZone(ctx: ApiContext, zoneId: string): Promise<void>;
  zoneDataKey(zoneId: string): Promise<Buffer>;
  sealSecrets(zoneId: string, providerId: string, secrets: Record<string, string>): Promise<ProviderDoc["secrets_sealed"]>;
  nextSuffix(key: string, floor?: number): Promise<number>;
  providerInZone(zoneId: string, id: string): Promise<ProviderDoc>;
  resourceInZone(ctx: ApiContext, zoneId: string, id: string): Promise<ResourceDoc>;
  storedResource(zoneId: string, id: string): Promise<ResourceDoc>;
  checkGatewayApp(ctx: ApiContext, zoneId: string, appId: string): Promise<void>;
  noneProvider(ctx: ApiContext, zoneId: string): Promise<string>;
  clearGatewayApp(ctx: ApiContext, zoneId: string, appId: string): Promise<number>;
  adjustResourceCount(zoneId: string, delta: 1 | -1): Promise<boolean>;
  zoneCounts: ZoneCounters;
}

const isControl = (identifier: string) => identifier === config().controlAudience;
const noneProviderId = (zoneId: string) => `provider-none-${zoneId}`;
const isGlobal = (ctx: ApiContext) => ctx.meta.actor?.scope === "global";
/** Generated provider identifiers try -2 … -SEQUENTIAL_SUFFIXES in turn before a per-base counter takes over. */
const SEQUENTIAL_SUFFIXES = 20;

const ProvidersService: ServiceSchema<{}, Methods> = {
  name: "providers",
  mixins: [
    MongoMixin({
      Provider: { schema: providerSchema, collection: "providers" },
      Resource: { schema: resourceSchema, collection: "resources" },
      ZoneKey: { schema: zoneKeySchema, collection: "zone_keys" },
      Counter: { schema: counterSchema, collection: "provider_counters" },
    }, { listed: ["Provider", "Resource"] }),
    OutboxMixin(["Provider", "Resource"]),
  ],

  actions: {
    // ---- providers -------------------------------------------------------------------------
    listProviders: {
      params: { params: pathParams("zoneId"), query: anyQuery },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
        const q = parseListQuery(ctx.params.query);
        const page = await this.listRows<ProviderDoc>("Provider", ctx.params.params.zoneId, q, { where: { archived: false }, projection: { _outbox: 0, secrets_sealed: 0 } });
        return pageOf(page.rows, q, toPublicProvider, {}, "created_at", page.resumeAfter);
      },
    },

    getProvider: {
      params: { params: pathParams("zoneId", "id") },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        return toPublicProvider(await this.providerInZone(ctx.params.params.zoneId, ctx.params.params.id));
      },
    },

    createProvider: {
      // The body is checked in the handler: the reference looks the zone up first.
      params: { params: pathParams("zoneId"), body: { type: "any", optional: true } },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
        const { zoneId } = ctx.params.params;
        await this.activeZone(ctx, zoneId);
        const { name, explicit, kind, split } = checkProviderCreate(ctx.params.body);
        const { publicConfig, secrets } = split;
        const base = explicit ?? providerIdentifierBase(name, kind);
        assertNotReserved(ctx.meta.actor, base, RESERVED_PREFIXES.providerIdentifier);
        const id = this.entityId(ctx);
        const prior = await this.priorCreate<ProviderDoc>(ctx, "Provider", id);
        if (prior) return created(ctx, `/v1/zones/${zoneId}/providers/${id}`, toPublicProvider(prior));
        const now = new Date();
        const [listed] = await this.listFields("Provider", zoneId, [now]);
        const sealed = Object.keys(secrets).length ? await this.sealSecrets(zoneId, id, secrets) : null;
        // Generated identifiers take the lowest free suffix among active providers (-2, -3, …): each try is an
        // insert against the unique index, never a scan. Past SEQUENTIAL_SUFFIXES tries a counter takes over.
        for (let attempt = 0; attempt < SEQUENTIAL_SUFFIXES + 25; attempt++) {
          const identifier = attempt === 0 ? base : `${base}-${attempt < SEQUENTIAL_SUFFIXES ? attempt + 1 : await this.nextSuffix(`provider:${zoneId}:${base}`, SEQUENTIAL_SUFFIXES + 1)}`;
          assertNotReserved(ctx.meta.actor, identifier, RESERVED_PREFIXES.providerIdentifier);
          const doc: ProviderDoc = { _id: id, zone_id: zoneId, name: name ?? identifier, identifier, active_key: `${zoneId}|${identifier}`, kind, config_json: publicConfig, secret_config_keys: Object.keys(secrets).sort(), secrets_sealed: sealed, created_at: now, updated_at: now, archived_at: null, archived: false };
          const events = [this.zoneEvent(ctx, zoneId, "provider", id, "created")];
          try {
            await this.providers().create({ ...doc, ...listed, ...withNewEvents(events) });
          } catch (err) {
            if (!isDuplicateKey(err)) throw err;
            const raced = await this.priorCreate<ProviderDoc>(ctx, "Provider", id);
            if (raced) return created(ctx, `/v1/zones/${zoneId}/providers/${id}`, toPublicProvider(raced));
            if (explicit) throw conflict("provider_identifier_conflict", "an active provider in this zone already has this identifier");
            continue;
          }
          await this.zoneCounts.bump(zoneId, { providers: 1 });
          await this.outboxKick("Provider", id, events);
          return created(ctx, `/v1/zones/${zoneId}/providers/${id}`, toPublicProvider(doc));
        }
        throw conflict("provider_identifier_conflict", "no free identifier for this name");
      },
    },

    updateProvider: {
      params: { params: pathParams("zoneId", "id"), body: { type: "any", optional: true } },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const { first, second, name, identifier, body, withKind } = checkProviderUpdate(ctx.params.body);
        throwFirst(first, second);
        assertNotReserved(ctx.meta.actor, identifier, RESERVED_PREFIXES.providerIdentifier);
        // Decided before any existence check, as the reference does for providers.
        second.throwIfAny();
        let events: OutboxEntry[] = [];
        try {
          const updated = await this.locked(this.providers(), id, async () => {
            const current = await this.providerInZone(zoneId, id);
            // A config-only change is checked against the stored kind and secret names, read under the lock.
            const split = withKind ?? (body.config_json !== undefined ? validateProviderConfig(current.kind as ProviderKind, body.config_json, false, current.secret_config_keys) : null);
            if (split) new Problems().addAll("invalid_provider_config", split.issues).throwIfAny();
            const set: Record<string, unknown> = { updated_at: new Date() };
            if (name !== undefined) set.name = name;
            if (identifier !== undefined) {
              set.identifier = identifier;
              set.active_key = `${zoneId}|${identifier}`;
            }
            if (body.kind !== undefined) set.kind = body.kind;
            if (split) {
              set.config_json = split.publicConfig;
              // Secrets given replace the stored ones; none given: kept, unless the kind changed.
              if (Object.keys(split.secrets).length) {
                set.secrets_sealed = await this.sealSecrets(zoneId, id, split.secrets);
                set.secret_config_keys = Object.keys(split.secrets).sort();
              } else if (body.kind !== undefined) {
                set.secrets_sealed = null;
                set.secret_config_keys = [];
              }
            }
            const changed = Object.keys(set).filter((k) => !["updated_at", "active_key", "secrets_sealed"].includes(k)).sort().join(",");
            events = [this.zoneEvent(ctx, zoneId, "provider", id, "updated", { changed_fields: changed })];
            await this.providers().updateOne({ _id: id }, pushEvents({ $set: set }, events));
            return { ...current, ...set } as ProviderDoc;
          });
          await this.outboxKick("Provider", id, events);
          return toPublicProvider(updated);
        } catch (err) {
          if (isDuplicateKey(err)) throw conflict("provider_identifier_conflict", "an active provider in this zone already has this identifier");
          throw err;
        }
      },
    },

    removeProvider: {
      params: { params: pathParams("zoneId", "id") },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const events = [this.zoneEvent(ctx, zoneId, "provider", id, "deleted")];
        await this.locked(this.providers(), id, async () => {
          const p = await this.providerInZone(zoneId, id);
          // The identifier becomes reusable at once: the active key moves aside.
          await this.providers().updateOne({ _id: id }, pushEvents({ $set: { archived_at: new Date(), archived: true, active_key: `${p.active_key}#archived#${id}` } }, events));
        });
        await this.zoneCounts.bump(zoneId, { providers: -1 });
        await this.outboxKick("Provider", id, events);
        return noContent(ctx);
      },
    },

    // ---- resources -------------------------------------------------------------------------
    listResources: {
      params: { params: pathParams("zoneId"), query: anyQuery },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
        const q = parseListQuery(ctx.params.query);
        // Zone tokens never see the Control resource.
        const hideControl = ctx.meta.actor?.scope !== "global";
        const page = await this.listRows<ResourceDoc>("Resource", ctx.params.params.zoneId, q, { where: { archived: false }, projection: { _outbox: 0 }, match: (r) => !hideControl || !isControl(r.identifier) });
        return pageOf(page.rows, q, toPublicResource, {}, "created_at", page.resumeAfter);
      },
    },

    getResource: {
      params: { params: pathParams("zoneId", "id") },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        return toPublicResource(await this.resourceInZone(ctx, ctx.params.params.zoneId, ctx.params.params.id));
      },
    },

    createResource: {
      params: { params: pathParams("zoneId"), body: { type: "any", optional: true } },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
        const { zoneId } = ctx.params.params;
        await this.activeZone(ctx, zoneId);
        const { first, second, body, base, control, operations } = checkResourceCreate(ctx.params.body, isControl);
        throwFirst(first, second);
        assertNotReserved(ctx.meta.actor, base, RESERVED_PREFIXES.resourceIdentifier);
        if (control && ctx.meta.actor?.scope !== "global") throw conflict("protected_resource", "the control API resource is managed by global tokens only");
        let providerId = body.credential_provider_id ?? null;
        if (providerId) await this.providerInZone(zoneId, providerId).catch(() => { throw notFound("provider_not_found", "provider not found in this zone"); });
        second.throwIfAny();
        const scopes = body.scopes!;
        let gatewayApp = control ? null : body.gateway_application_id!;
        if (!control) await this.checkGatewayApp(ctx, zoneId, gatewayApp!);
        if (control && !providerId) providerId = await this.noneProvider(ctx, zoneId);

        const id = this.entityId(ctx);
        // A retry (same Idempotency-Key) of a create that was stored but never answered gets it back.
        const prior = await this.priorCreate<ResourceDoc>(ctx, "Resource", id);
        if (prior) return created(ctx, `/v1/zones/${zoneId}/resources/${id}`, toPublicResource(prior));
        // A place under the quota is taken first, under the zone's lock, and given back if the insert fails;
        // the insert itself runs outside the lock, so creates in one zone queue only for the counter.
        // A crash in between leaves the counter one too high (the zone then holds one fewer), never too low.
        if (!(await this.adjustResourceCount(zoneId, +1))) throw conflict("resource_quota_exceeded", `a zone holds at most ${config().maxResourcesPerZone} resources`);
        let stored = false;
        try {
          const now = new Date();
          const [listed] = await this.listFields("Resource", zoneId, [now]);
          for (let attempt = 0; attempt < 50; attempt++) {
            const identifier = attempt === 0 || body.identifier ? base : `${base}-${await this.nextSuffix(`resource:${zoneId}:${base}`)}`;
            const doc: ResourceDoc = {
              _id: id, zone_id: zoneId, name: body.name ?? identifier, identifier, identifier_key: `${zoneId}|${identifier}`,
              upstream_url: body.upstream_url ?? null, scopes, credential_provider_id: providerId, gateway_application_id: gatewayApp,
              operations, operation_enforcement: body.operation_enforcement ?? "enforced", created_at: now, updated_at: now, archived_at: null, archived: false,
            };
            const events = [this.zoneEvent(ctx, zoneId, "resource", id, "created")];
            try {
              await this.resources().create({ ...doc, ...listed, ...withNewEvents(events) });
            } catch (err) {
              if (!isDuplicateKey(err)) throw err;
              const raced = await this.priorCreate<ResourceDoc>(ctx, "Resource", id);
              if (raced) return created(ctx, `/v1/zones/${zoneId}/resources/${id}`, toPublicResource(raced));
              if (body.identifier) throw conflict("resource_identifier_conflict", "this identifier is already used in the zone");
              continue;
            }
            stored = true;
            if (doc.operation_enforcement !== "enforced") await this.zoneCounts.bump(zoneId, { unenforced_resources: 1 });
            await this.outboxKick("Resource", id, events);
            return created(ctx, `/v1/zones/${zoneId}/resources/${id}`, toPublicResource(doc));
          }
          throw conflict("resource_identifier_conflict", "no free identifier for this name");
        } finally {
          if (!stored) await this.adjustResourceCount(zoneId, -1);
        }
      },
    },

    updateResource: {
      params: { params: pathParams("zoneId", "id"), body: { type: "any", optional: true } },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const { first, body } = checkResourceUpdateBody(ctx.params.body);
        first.throwIfAny();
        if (body.credential_provider_id) await this.providerInZone(zoneId, body.credential_provider_id).catch(() => { throw notFound("provider_not_found", "provider not found in this zone"); });
        if (body.gateway_application_id) await this.checkGatewayApp(ctx, zoneId, body.gateway_application_id);
        let events: OutboxEntry[] = [];
        try {
          const updated = await this.locked(this.resources(), id, async () => {
            // Not hidden here: the Control resource answers 409 protected_resource to non-global actors.
            const current = await this.storedResource(zoneId, id);
            const merged = { ...current, ...Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)) } as ResourceDoc;
            const control = isControl(merged.identifier);
            const checks = checkResourceMerged(merged, control);
            throwFirst(checks.first, checks.second);
            assertNotReserved(ctx.meta.actor, body.identifier, RESERVED_PREFIXES.resourceIdentifier);
            if ((control || isControl(current.identifier)) && !isGlobal(ctx)) throw conflict("protected_resource", "the control API resource is managed by global tokens only");
            checks.second.throwIfAny();
            if (control) merged.gateway_application_id = null;
            const operations = checks.operations;
            const set: Record<string, unknown> = {};
            for (const key of ["name", "identifier", "upstream_url", "scopes", "credential_provider_id", "operation_enforcement"] as const) {
              if (body[key] !== undefined && JSON.stringify(body[key]) !== JSON.stringify(current[key])) set[key] = body[key];
            }
            if (body.operations !== undefined && JSON.stringify(operations) !== JSON.stringify(current.operations)) set.operations = operations;
            if (!Object.keys(set).length && body.gateway_application_id === undefined) throw badRequest("no_fields", "nothing to update");
            if (set.identifier) set.identifier_key = `${zoneId}|${set.identifier}`;
            set.gateway_application_id = merged.gateway_application_id;
            if (Object.keys(set).some((k) => k !== "gateway_application_id")) set.updated_at = new Date();
            const changed = Object.keys(set)
              .filter((k) => !["updated_at", "identifier_key"].includes(k) && !(k === "gateway_application_id" && set[k] === current.gateway_application_id))
              .sort()
              .join(",");
            events = [this.zoneEvent(ctx, zoneId, "resource", id, "updated", { changed_fields: changed })];
            await this.resources().updateOne({ _id: id }, pushEvents({ $set: set }, events));
            if (set.operation_enforcement !== undefined) await this.zoneCounts.bump(zoneId, { unenforced_resources: set.operation_enforcement === "enforced" ? -1 : 1 });
            return { ...current, ...set } as ResourceDoc;
          });
          await this.outboxKick("Resource", id, events);
          return toPublicResource(updated);
        } catch (err) {
          if (isDuplicateKey(err)) throw conflict("resource_identifier_conflict", "this identifier is already used in the zone");
          throw err;
        }
      },
    },

    removeResource: {
      params: { params: pathParams("zoneId", "id") },
      async handler(ctx: ApiContext<RouteParams<{ zoneId: string; id: string }>>) {
        const { zoneId, id } = ctx.params.params;
        const events = [this.zoneEvent(ctx, zoneId, "resource", id, "deleted")];
        await this.locked(this.resources(), id, async () => {
          // Nobody deletes the Control resource, whatever the token's scope.
          const r = await this.storedResource(zoneId, id);
          if (isControl(r.identifier)) throw conflict("protected_resource", "control API resource cannot be deleted");
          await this.resources().updateOne({ _id: id }, pushEvents({ $set: { archived_at: new Date(), archived: true, gateway_application_id: null } }, events));
          if (r.operation_enforcement !== "enforced") await this.zoneCounts.bump(zoneId, { unenforced_resources: -1 });
        });
        await this.adjustResourceCount(zoneId, -1);
        await this.outboxKick("Resource", id, events);
        return noContent(ctx);
      },
    },

    /** Internal: the zone overview's counts (resources from the quota counter, the rest maintained in Redis). */
    zoneStats: {
      visibility: "public",
      params: { zone_id: "string" },
      async handler(ctx: ApiContext<{ zone_id: string }>) {
        const zoneId = ctx.params.zone_id;
        const counters = this.models.Counter as Model<{ _id: string; value: number }>;
        const [counts, quota] = await Promise.all([
          this.zoneCounts.read(zoneId, async () => {
            const providers = await this.providers().find({ zone_id: zoneId, archived: false }, { _id: 1 }).lean<ProviderDoc[]>();
            const loose = await this.resources().find({ zone_id: zoneId, archived: false, operation_enforcement: "transport_uniform" }, { _id: 1 }).lean<ResourceDoc[]>();
            return { counts: { providers: providers.length, unenforced_resources: loose.length } };
          }),
          counters.findById(`resources:${zoneId}`).lean(),
        ]);
        return { resources: { total: quota?.value ?? 0, unenforced: counts.unenforced_resources ?? 0 }, providers: { total: counts.providers ?? 0 } };
      },
    },

    /**
     * Internal: an archived application stops being any resource's gateway application. Idempotent. The
     * applications service calls it after its archive write and retries it (a flag in that write) until it
     * answers, so a crash between the two writes still converges; no reaction to the broadcast is needed,
     * and none is kept because each run scans the resources collection (FerretDB v1).
     */
    clearGatewayApplication: {
      visibility: "public",
      params: { zone_id: "string", application_id: "string" },
      async handler(ctx: ApiContext<{ zone_id: string; application_id: string }>) {
        return { cleared: await this.clearGatewayApp(ctx, ctx.params.zone_id, ctx.params.application_id) };
      },
    },

    // Internal, for the grants service: resolveForGrant, oauthClientSecret, resourceNamesByIds.
    ...(grantSupportActions as unknown as ServiceSchema["actions"]),
  },

  methods: {
    /**
     * Moves the zone's count of active resources by one, under the zone's lock; an increment that would pass
     * the quota is refused (false).
     */
    async adjustResourceCount(zoneId: string, delta: 1 | -1) {
      const counters = this.models.Counter as Model<{ _id: string; value: number }>;
      const key = `resources:${zoneId}`;
      return this.locked(counters, key, async () => {
        const count = (await counters.findById(key).lean())?.value ?? 0;
        if (delta > 0 && count >= config().maxResourcesPerZone) return false;
        await counters.updateOne({ _id: key }, { $set: { value: Math.max(0, count + delta) } }, { upsert: true });
        return true;
      });
    },

    providers(this: any) {
      return this.models.Provider as Model<ProviderDoc>;
    },
    resources(this: any) {
      return this.models.Resource as Model<ResourceDoc>;
    },

    async activeZone(ctx: ApiContext, zoneId: string) {
      await activeZoneOf(ctx, zoneId);
    },

    /** The zone's data key, created on first use (shared/zone-keys.ts). */
    async zoneDataKey(this: any, zoneId: string) {
      return loadZoneDataKey(this.models.ZoneKey, config().zoneKek, zoneId);
    },

    async sealSecrets(zoneId: string, providerId: string, secrets: Record<string, string>) {
      return seal(await this.zoneDataKey(zoneId), Buffer.from(JSON.stringify(secrets)), `provider:${providerId}`);
    },

    async nextSuffix(this: any, key: string, floor = 2) {
      const counters = this.models.Counter as Model<{ _id: string; value: number }>;
      return this.locked(counters, key, async () => {
        const next = Math.max((await counters.findById(key).lean())?.value ?? floor, floor);
        await counters.updateOne({ _id: key }, { $set: { value: next + 1 } }, { upsert: true });
        return next;
      });
    },

    async providerInZone(zoneId: string, id: string) {
      const p = await this.providers().findById(id).lean<ProviderDoc>();
      if (!p || p.zone_id !== zoneId || p.archived_at) throw notFound("provider_not_found", "provider not found");
      return p;
    },

    /** For reads: the Control resource is invisible to zone-scoped tokens. */
    async resourceInZone(ctx: ApiContext, zoneId: string, id: string) {
      const r = await this.storedResource(zoneId, id);
      if (isControl(r.identifier) && !isGlobal(ctx)) throw notFound("resource_not_found", "resource not found");
      return r;
    },

    async storedResource(zoneId: string, id: string) {
      const r = await this.resources().findById(id).lean<ResourceDoc>();
      if (!r || r.zone_id !== zoneId || r.archived_at) throw notFound("resource_not_found", "resource not found");
      return r;
    },

    async checkGatewayApp(ctx: ApiContext, zoneId: string, appId: string) {
      const app = await ctx.call<{ registration_method: string; expires_at: string | null; archived: boolean } | null, { zone_id: string; id: string }>("applications.resolveForGateway", { zone_id: zoneId, id: appId });
      if (!app || app.archived || (app.expires_at && Date.parse(app.expires_at) <= Date.now())) throw notFound("gateway_application_not_found", "gateway application not found");
      if (app.registration_method !== "managed") throw badRequest("gateway_exchange_application_must_be_managed", "the gateway application must be a managed application");
    },

    /**
     * The zone's "none" provider for the Control resource, created on demand with a fixed id. It holds
     * `provider://none` among the zone's active identifiers unless a provider of the zone already does.
     */
    async noneProvider(ctx: ApiContext, zoneId: string) {
      const id = noneProviderId(zoneId);
      if (await this.providers().findById(id).lean<ProviderDoc>()) return id;
      const now = new Date();
      const [listed] = await this.listFields("Provider", zoneId, [now]);
      for (const activeKey of [`${zoneId}|provider://none`, `${zoneId}|provider://none#${id}`]) {
        const events = [this.zoneEvent(ctx, zoneId, "provider", id, "created")];
        try {
          await this.providers().create({ _id: id, zone_id: zoneId, name: "No credential", identifier: "provider://none", active_key: activeKey, kind: "none", config_json: {}, secret_config_keys: [], secrets_sealed: null, created_at: now, updated_at: now, archived_at: null, archived: false, ...listed, ...withNewEvents(events) });
          await this.zoneCounts.bump(zoneId, { providers: 1 });
          await this.outboxKick("Provider", id, events);
          return id;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          // A concurrent request created it, or provider://none is taken: then the second key.
          if (await this.providers().findById(id).lean<ProviderDoc>()) return id;
        }
      }
      throw conflict("provider_identifier_conflict", "the zone's none provider could not be created");
    },

    async clearGatewayApp(ctx: ApiContext, zoneId: string, appId: string) {
      const bound = await this.resources().find({ zone_id: zoneId, gateway_application_id: appId }, { _id: 1 }).lean<{ _id: string }[]>();
      let cleared = 0;
      for (const { _id } of bound) {
        const events = [this.zoneEvent(ctx, zoneId, "resource", _id, "updated", { changed_fields: "gateway_application_id" })];
        const done = await this.locked(this.resources(), _id, async () => {
          const r = await this.resources().findById(_id).lean<ResourceDoc>();
          if (!r || r.gateway_application_id !== appId) return false;
          await this.resources().updateOne({ _id }, pushEvents({ $set: { gateway_application_id: null } }, events));
          return true;
        });
        if (done) {
          cleared++;
          await this.outboxKick("Resource", _id, events);
        }
      }
      return cleared;
    },
  },

  created(this: any) {
    this.zoneCounts = new ZoneCounters(redisClient(this.settings?.redisUrl ?? config().redisUrl), `${this.db.name}:zonestats:providers`);
  },
};

export default ProvidersService;
