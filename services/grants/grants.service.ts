// Grants: delegated grants, provider grants and the OAuth authorization-code flow. Owns `grants`,
// `provider_grants` and `grant_zone_keys`; asks applications and providers about what a grant names.
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { MongoMixin, type MongoMethods } from "../../shared/mixins/mongo.mixin";
import { OutboxMixin, type OutboxMethods } from "../../shared/mixins/outbox.mixin";
import { pushEvents, withNewEvents } from "../../shared/outbox/entry";
import { badRequest, conflict, forbidden, notFound } from "../../shared/errors";
import { config } from "../../shared/config";
import { newId } from "../../shared/ids";
import { isDuplicateKey, type ApiContext } from "../../shared/meta";
import { seal } from "../../shared/sealing";
import { loadZoneDataKey, zoneKeySchema, type ZoneKeyDoc } from "../../shared/zone-keys";
import type { GrantProvider, GrantResource, ResourceLabel } from "../providers/grant-support.actions";
import { activeKeyOf, grantSchema, providerGrantSchema, type GrantDoc, type ProviderGrantDoc } from "./models/grant.model";
import { scopesOutside } from "./grant-rules";
import type { PostOptions } from "./token-exchange";
import { grantActions } from "./grants.actions";
import { completeAuthorization, providerGrantActions } from "./provider-grants.actions";

export interface ProviderGrantInput {
  zoneId: string;
  user_id: string;
  resource_id: string;
  provider_id: string;
  scopes: string[];
  tokens: { access_token: string; refresh_token: string | null };
  expiresAt: Date | null;
}

interface Methods extends OutboxMethods, MongoMethods {
  grants(): Model<GrantDoc>;
  providerGrants(): Model<ProviderGrantDoc>;
  grantInZone(zoneId: string, id: string): Promise<GrantDoc>;
  resolveTarget(ctx: ApiContext, zoneId: string, ids: { provider_id?: string; resource_id?: string }): Promise<{ provider: GrantProvider | null; resource: GrantResource | null }>;
  checkProviderTarget(ctx: ApiContext, zoneId: string, t: { provider_id: string; resource_id: string; scopes: string[] }, unsupportedDetail: string | null): Promise<{ provider: GrantProvider; resource: GrantResource }>;
  labelsFor(ctx: ApiContext, zoneId: string, rows: GrantDoc[], known: Record<string, ResourceLabel> | null): Promise<{ apps: Record<string, string>; resources: Record<string, ResourceLabel> }>;
  clientSecret(ctx: ApiContext, zoneId: string, providerId: string): Promise<string | null>;
  upsertProviderGrant(ctx: ApiContext, input: ProviderGrantInput): Promise<ProviderGrantDoc>;
  completeAuthorization(ctx: ApiContext, zoneId: string, query: Record<string, unknown> | undefined): Promise<ProviderGrantDoc>;
}

/** What actions see as `this`. */
export type GrantsThis = Methods & { logger: { error(...args: unknown[]): void; warn(...args: unknown[]): void }; exchangeOptions: PostOptions };

const UPSERT_ATTEMPTS = 5;

const GrantsService: ServiceSchema<{}, Methods> = {
  name: "grants",
  mixins: [
    MongoMixin(
      {
        Grant: { schema: grantSchema, collection: "grants" },
        ProviderGrant: { schema: providerGrantSchema, collection: "provider_grants" },
        ZoneKey: { schema: zoneKeySchema, collection: "grant_zone_keys" },
      },
      { listed: ["Grant"] },
    ),
    OutboxMixin(["Grant", "ProviderGrant"]),
  ],

  actions: {
    ...(grantActions as unknown as ServiceSchema["actions"]),
    ...(providerGrantActions as unknown as ServiceSchema["actions"]),
  },

  methods: {
    grants(this: any) {
      return this.models.Grant as Model<GrantDoc>;
    },
    providerGrants(this: any) {
      return this.models.ProviderGrant as Model<ProviderGrantDoc>;
    },

    // By `_id` only (FerretDB scans for anything else); the zone is checked in code.
    async grantInZone(zoneId: string, id: string) {
      const g = await this.grants().findById(id, { _outbox: 0 }).lean<GrantDoc>();
      if (!g || g.zone_id !== zoneId) throw notFound("grant_not_found", "grant not found");
      return g;
    },

    async resolveTarget(ctx: ApiContext, zoneId: string, ids: { provider_id?: string; resource_id?: string }) {
      return ctx.call<{ provider: GrantProvider | null; resource: GrantResource | null }, object>("providers.resolveForGrant", { zone_id: zoneId, ...ids });
    },

    /**
     * Provider-grant orders 3–7 (provider, kind, resource, binding, scopes), from one call to providers.
     * `unsupportedDetail` null: the callback's re-check, which answers the kind error without a detail.
     */
    async checkProviderTarget(ctx: ApiContext, zoneId: string, t: { provider_id: string; resource_id: string; scopes: string[] }, unsupportedDetail: string | null) {
      const { provider, resource } = await this.resolveTarget(ctx, zoneId, { provider_id: t.provider_id, resource_id: t.resource_id });
      if (!provider) throw notFound("provider_not_found", "provider not found");
      if (provider.kind !== "oauth2_authorization_code") {
        throw badRequest("provider_grant_unsupported", unsupportedDetail ?? "the provider does not use delegated provider grants", unsupportedDetail ? { detail: unsupportedDetail } : undefined);
      }
      if (!resource) throw notFound("resource_not_found", "resource not found");
      if (resource.credential_provider_id !== provider.id) throw badRequest("provider_resource_mismatch", "the resource's credential provider is another provider");
      const outside = scopesOutside(t.scopes, resource.scopes);
      if (outside.length) throw forbidden("grant_scopes_exceed_resource", "every scope must be one of the resource's scopes", { scopes: outside });
      return { provider, resource };
    },

    /** Names for a page's rows: at most one call to applications and one to providers (none when known or empty). */
    async labelsFor(ctx: ApiContext, zoneId: string, rows: GrantDoc[], known: Record<string, ResourceLabel> | null) {
      const appIds = [...new Set(rows.map((r) => r.application_id))];
      const resourceIds = [...new Set(rows.map((r) => r.resource_id))];
      const [apps, resources] = await Promise.all([
        appIds.length ? ctx.call<{ names: Record<string, string> }, object>("applications.namesByIds", { zone_id: zoneId, ids: appIds }).then((r) => r.names) : {},
        known ?? (resourceIds.length ? ctx.call<{ resources: Record<string, ResourceLabel> }, object>("providers.resourceNamesByIds", { zone_id: zoneId, ids: resourceIds }).then((r) => r.resources) : {}),
      ]);
      return { apps, resources };
    },

    /** The provider's client secret, opened by providers for this one exchange. */
    async clientSecret(ctx: ApiContext, zoneId: string, providerId: string) {
      const res = await ctx.call<{ client_secret: string | null }, object>("providers.oauthClientSecret", { zone_id: zoneId, provider_id: providerId });
      return res.client_secret;
    },

    /**
     * The one active grant of (zone, user, resource, provider): an insert that the unique `active_key`
     * index refuses when one exists, which is then replaced in place (same id: scopes, tokens and
     * `expires_at` replaced, `refreshed_at` cleared, `refresh_token_version` + 1). A row revoked between
     * the refusal and the update frees the key, and the loop inserts again.
     */
    async upsertProviderGrant(this: any, ctx: ApiContext, input: ProviderGrantInput) {
      const { zoneId } = input;
      const key = activeKeyOf(zoneId, input.user_id, input.resource_id, input.provider_id);
      const dataKey = await loadZoneDataKey(this.models.ZoneKey as Model<ZoneKeyDoc>, config().zoneKek, zoneId);
      const sealed = seal(dataKey, Buffer.from(JSON.stringify(input.tokens)), `provider-grant:${key}`);
      const grants = this.providerGrants() as Model<ProviderGrantDoc>;
      for (let attempt = 0; attempt < UPSERT_ATTEMPTS; attempt++) {
        const now = new Date();
        const id = newId();
        const doc: ProviderGrantDoc = {
          _id: id, zone_id: zoneId, user_id: input.user_id, resource_id: input.resource_id, provider_id: input.provider_id, active_key: key,
          scopes: input.scopes, tokens_sealed: sealed, expires_at: input.expiresAt, status: "active", refresh_token_version: 0, refreshed_at: null,
          created_at: now, updated_at: now, revoked_at: null,
        };
        const events = [this.zoneEvent(ctx, zoneId, "provider_grant", id, "created")];
        try {
          await grants.create({ ...doc, ...withNewEvents(events) });
          await this.outboxKick("ProviderGrant", id, events);
          return doc;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
        }
        const existing = await grants.findOne({ active_key: key }, { _id: 1 }).lean<{ _id: string }>();
        if (!existing) continue;
        const updatedEvents = [this.zoneEvent(ctx, zoneId, "provider_grant", existing._id, "updated", { changed_fields: "expires_at,scopes,tokens" })];
        const updated = await this.locked(grants, existing._id, async () => {
          const current = await grants.findById(existing._id, { _outbox: 0 }).lean<ProviderGrantDoc>();
          if (!current || current.active_key !== key) return null;
          const set = { scopes: input.scopes, tokens_sealed: sealed, expires_at: input.expiresAt, refreshed_at: null, updated_at: now };
          await grants.updateOne({ _id: existing._id }, pushEvents({ $set: set, $inc: { refresh_token_version: 1 } }, updatedEvents));
          return { ...current, ...set, refresh_token_version: current.refresh_token_version + 1 } as ProviderGrantDoc;
        });
        if (!updated) continue;
        await this.outboxKick("ProviderGrant", existing._id, updatedEvents);
        return updated;
      }
      throw conflict("provider_grant_conflict", "the provider grant changed concurrently; try again");
    },

    completeAuthorization,
  },

  created(this: any) {
    const cfg = config();
    this.exchangeOptions = { allowLoopback: cfg.oauthTest.allowLoopback, caPem: cfg.oauthTest.caPem } satisfies PostOptions;
  },
};

export default GrantsService;
