// Internal actions the grants service calls: the provider and resource a grant names, their names for
// list rows (one call per page), and an OAuth provider's client secret for the code exchange.
import type { Model } from "mongoose";
import type { Context } from "moleculer";
import type { ProviderDoc, ResourceDoc } from "./models/provider.model";
import { open } from "./sealing";

interface ProvidersThis {
  providers(): Model<ProviderDoc>;
  resources(): Model<ResourceDoc>;
  zoneDataKey(zoneId: string): Promise<Buffer>;
}

export interface GrantProvider {
  id: string;
  kind: string;
  config_json: Record<string, unknown>;
  /** Names of the stored secrets (never their values). */
  secret_config_keys: string[];
}

export interface GrantResource {
  id: string;
  name: string;
  scopes: string[];
  credential_provider_id: string | null;
}

export interface ResourceLabel {
  name: string;
  provider_id: string | null;
  provider_name: string | null;
  provider_kind: string | null;
}

/** Ids per call: a page holds at most 500 rows. */
const MAX_IDS = 500;

export const grantSupportActions = {
  /** The active provider and resource of a zone named by a grant (null when missing, archived or in another zone). */
  resolveForGrant: {
    visibility: "public",
    params: { zone_id: "string", provider_id: { type: "string", optional: true }, resource_id: { type: "string", optional: true } },
    async handler(this: ProvidersThis, ctx: Context<{ zone_id: string; provider_id?: string; resource_id?: string }>) {
      const { zone_id, provider_id, resource_id } = ctx.params;
      const [p, r] = await Promise.all([
        provider_id ? this.providers().findById(provider_id, { _outbox: 0, secrets_sealed: 0 }).lean<ProviderDoc>() : null,
        resource_id ? this.resources().findById(resource_id, { _outbox: 0 }).lean<ResourceDoc>() : null,
      ]);
      const provider: GrantProvider | null = p && p.zone_id === zone_id && !p.archived_at ? { id: p._id, kind: p.kind, config_json: p.config_json ?? {}, secret_config_keys: p.secret_config_keys ?? [] } : null;
      const resource: GrantResource | null = r && r.zone_id === zone_id && !r.archived_at ? { id: r._id, name: r.name, scopes: r.scopes ?? [], credential_provider_id: r.credential_provider_id } : null;
      return { provider, resource };
    },
  },

  /**
   * The client secret of an active provider, opened for the one call that needs it (the authorization-code
   * exchange). Null when the provider has none. The answer crosses NATS: run it with TLS in production.
   */
  oauthClientSecret: {
    visibility: "public",
    params: { zone_id: "string", provider_id: "string" },
    async handler(this: ProvidersThis, ctx: Context<{ zone_id: string; provider_id: string }>) {
      const { zone_id, provider_id } = ctx.params;
      const p = await this.providers().findById(provider_id, { _outbox: 0 }).lean<ProviderDoc>();
      if (!p || p.zone_id !== zone_id || p.archived_at || !p.secrets_sealed) return { client_secret: null };
      const secrets = JSON.parse(open(await this.zoneDataKey(zone_id), p.secrets_sealed, `provider:${p._id}`).toString("utf8")) as Record<string, string>;
      return { client_secret: typeof secrets.client_secret === "string" && secrets.client_secret ? secrets.client_secret : null };
    },
  },

  /**
   * Names for grant list rows, archived rows included: the resources given by `ids`, or every resource of
   * the zone whose credential provider is `provider_id` (the list's provider filter), each with its
   * provider's name and kind. Point reads by `_id` (the only lookups FerretDB serves without a scan).
   */
  resourceNamesByIds: {
    visibility: "public",
    params: { zone_id: "string", ids: { type: "array", items: "string", max: MAX_IDS, optional: true }, provider_id: { type: "string", optional: true } },
    async handler(this: ProvidersThis, ctx: Context<{ zone_id: string; ids?: string[]; provider_id?: string }>) {
      const { zone_id, ids, provider_id } = ctx.params;
      const projection = { name: 1, zone_id: 1, credential_provider_id: 1 };
      // A provider's read starts as soon as the first resource naming it arrives (one read per provider).
      const providerReads = new Map<string, Promise<ProviderDoc | null>>();
      const providerOf = (id: string) => {
        let read = providerReads.get(id);
        if (!read) providerReads.set(id, (read = this.providers().findById(id, { name: 1, kind: 1, zone_id: 1 }).lean<ProviderDoc>().exec()));
        return read;
      };
      const inZone = <T extends { zone_id: string }>(r: T | null | undefined): r is T => !!r && r.zone_id === zone_id;
      let rows: Pick<ResourceDoc, "_id" | "name" | "zone_id" | "credential_provider_id">[];
      if (provider_id !== undefined) rows = await this.resources().find({ zone_id, credential_provider_id: provider_id }, projection).lean();
      else {
        const read = await Promise.all(
          [...new Set(ids ?? [])].map(async (id) => {
            const r = await this.resources().findById(id, projection).lean<ResourceDoc>();
            if (inZone(r) && r.credential_provider_id) providerOf(r.credential_provider_id).catch(() => undefined);
            return r;
          }),
        );
        rows = read.filter(inZone);
      }
      const providers = new Map<string, { name: string; kind: string }>();
      await Promise.all(
        [...new Set(rows.map((r) => r.credential_provider_id).filter((x): x is string => !!x))].map(async (id) => {
          const p = await providerOf(id);
          if (inZone(p)) providers.set(id, { name: p.name, kind: p.kind });
        }),
      );
      const resources: Record<string, ResourceLabel> = {};
      for (const r of rows) {
        const p = r.credential_provider_id ? providers.get(r.credential_provider_id) : undefined;
        resources[r._id] = { name: r.name, provider_id: r.credential_provider_id ?? null, provider_name: p?.name ?? null, provider_kind: p?.kind ?? null };
      }
      return { resources };
    },
  },
};
