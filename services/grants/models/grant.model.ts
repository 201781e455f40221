// The grants service's collections: delegated grants and provider grants, each with its pending events inside.
import { Schema } from "mongoose";
import { outboxFields, addOutboxIndexes } from "../../../shared/outbox/entry";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";
import type { Sealed } from "../../../shared/sealing";
import { J } from "../../../shared/api-doc";

export type GrantStatus = "active" | "revoked" | "expired";

export interface GrantDoc {
  _id: string;
  zone_id: string;
  application_id: string;
  /** The subject the grant is for (the reference's `user_id`). */
  user_id: string;
  resource_id: string;
  scopes: string[];
  status: GrantStatus;
  created_at: Date;
  revoked_at: Date | null;
}

export interface ProviderGrantDoc {
  _id: string;
  zone_id: string;
  user_id: string;
  resource_id: string;
  provider_id: string;
  /** The (zone, user, resource, provider) tuple while active, `revoked:<id>` after: the unique index allows one active row per tuple. */
  active_key: string;
  scopes: string[];
  /** `{access_token, refresh_token}` as JSON, sealed under the grants service's data key of the zone (AAD: the tuple). */
  tokens_sealed: Sealed;
  expires_at: Date | null;
  status: GrantStatus;
  refresh_token_version: number;
  refreshed_at: Date | null;
  created_at: Date;
  updated_at: Date;
  revoked_at: Date | null;
}

const base = { versionKey: false, _id: false } as const;

export const grantSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    application_id: { type: String, required: true },
    user_id: { type: String, required: true },
    resource_id: { type: String, required: true },
    scopes: { type: [String], required: true },
    status: { type: String, required: true },
    created_at: { type: Date, required: true },
    revoked_at: { type: Date, default: null },
    ...listedFields,
    ...outboxFields,
  },
  base,
);
// Lists read one bucket of the zone at a time with the filters as pushed-down equalities.
addListIndexes(grantSchema, ["status", "user_id", "application_id", "resource_id"]);
addOutboxIndexes(grantSchema);

export const providerGrantSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    user_id: { type: String, required: true },
    resource_id: { type: String, required: true },
    provider_id: { type: String, required: true },
    active_key: { type: String, required: true },
    scopes: { type: [String], required: true },
    tokens_sealed: { type: Schema.Types.Mixed, required: true },
    expires_at: { type: Date, default: null },
    status: { type: String, required: true },
    refresh_token_version: { type: Number, default: 0 },
    refreshed_at: { type: Date, default: null },
    created_at: { type: Date, required: true },
    updated_at: { type: Date, required: true },
    revoked_at: { type: Date, default: null },
    ...outboxFields,
  },
  base,
);
providerGrantSchema.index({ active_key: 1 }, { unique: true });
addOutboxIndexes(providerGrantSchema);

/** The active key of a tuple: JSON, so no separator inside an id can make two tuples collide. */
export const activeKeyOf = (zoneId: string, userId: string, resourceId: string, providerId: string): string => JSON.stringify([zoneId, userId, resourceId, providerId]);

const iso = (d: Date | string | null) => (d ? new Date(d).toISOString() : null);

export const toPublicGrant = (g: GrantDoc) => ({
  id: g._id,
  zone_id: g.zone_id,
  application_id: g.application_id,
  user_id: g.user_id,
  resource_id: g.resource_id,
  scopes: g.scopes,
  status: g.status,
  created_at: iso(g.created_at)!,
});

export const toPublicProviderGrant = (g: ProviderGrantDoc) => ({
  id: g._id,
  zone_id: g.zone_id,
  user_id: g.user_id,
  resource_id: g.resource_id,
  provider_id: g.provider_id,
  scopes: g.scopes,
  status: g.status,
  expires_at: iso(g.expires_at),
  created_at: iso(g.created_at)!,
  updated_at: iso(g.updated_at)!,
});

const status = J.enum(["active", "revoked", "expired"]);

/** What toPublicGrant returns. */
export const publicGrantSchema = J.obj({
  id: J.id,
  zone_id: J.id,
  application_id: J.string(),
  user_id: { ...J.string(), description: "The subject the grant is for" },
  resource_id: J.string(),
  scopes: J.array(J.string()),
  status,
  created_at: J.timestamp,
});

/** A row of the grants list: the grant with the names of what it binds, from the services that own them. */
export const grantRowSchema = J.obj({
  id: J.id,
  zone_id: J.id,
  application_id: J.string(),
  user_id: J.string(),
  resource_id: J.string(),
  provider_id: { ...J.nullable(J.string()), description: "The resource's current credential provider" },
  application_name: J.nullable(J.string()),
  resource_name: J.nullable(J.string()),
  provider_name: J.nullable(J.string()),
  provider_kind: J.nullable(J.string()),
  scopes: J.array(J.string()),
  status,
  created_at: J.timestamp,
});

/** What toPublicProviderGrant returns: never a token. */
export const publicProviderGrantSchema = J.obj({
  id: J.id,
  zone_id: J.id,
  user_id: J.string(),
  resource_id: J.string(),
  provider_id: J.string(),
  scopes: J.array(J.string()),
  status,
  expires_at: { ...J.nullable(J.timestamp), description: "When the upstream access token expires, when known" },
  created_at: J.timestamp,
  updated_at: J.timestamp,
});
