// The providers service's collections: providers, resources, per-zone data keys and counters.
import { Schema } from "mongoose";
import { outboxFields, addOutboxIndexes } from "../../../shared/outbox/entry";
import { J } from "../../../shared/api-doc";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";

export interface ProviderDoc {
  _id: string;
  zone_id: string;
  name: string;
  identifier: string;
  /** `<zone>|<identifier>` while active, suffixed on archive: the unique index covers active rows only. */
  active_key: string;
  kind: string;
  config_json: Record<string, unknown>;
  secret_config_keys: string[];
  secrets_sealed: { nonce: string; ciphertext: string } | null;
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
  /** `archived_at !== null`, as an equality the store can push down. */
  archived: boolean;
}

export interface ResourceDoc {
  _id: string;
  zone_id: string;
  name: string;
  identifier: string;
  /** `<zone>|<identifier>`, kept after archive: a resource identifier is never reused in a zone. */
  identifier_key: string;
  upstream_url: string | null;
  scopes: string[];
  credential_provider_id: string | null;
  gateway_application_id: string | null;
  operations: { method: string; path: string; scope: string }[];
  operation_enforcement: "enforced" | "transport_uniform";
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
  /** `archived_at !== null`, as an equality the store can push down. */
  archived: boolean;
}

const base = { versionKey: false, _id: false } as const;

export const providerSchema = new Schema(
  {
    _id: String,
    zone_id: String,
    name: String,
    identifier: String,
    active_key: String,
    kind: String,
    config_json: { type: Schema.Types.Mixed, default: {} },
    secret_config_keys: { type: [String], default: [] },
    secrets_sealed: { type: Schema.Types.Mixed, default: null },
    created_at: Date,
    updated_at: Date,
    archived_at: { type: Date, default: null },
    archived: { type: Boolean, default: false },
    ...listedFields,
    ...outboxFields,
  },
  { ...base, minimize: false },
);
providerSchema.index({ active_key: 1 }, { unique: true });
addListIndexes(providerSchema, ["archived"]);
addOutboxIndexes(providerSchema);

export const resourceSchema = new Schema(
  {
    _id: String,
    zone_id: String,
    name: String,
    identifier: String,
    identifier_key: String,
    upstream_url: { type: String, default: null },
    scopes: [String],
    credential_provider_id: { type: String, default: null },
    gateway_application_id: { type: String, default: null },
    operations: { type: [Schema.Types.Mixed], default: [] },
    operation_enforcement: String,
    created_at: Date,
    updated_at: Date,
    archived_at: { type: Date, default: null },
    archived: { type: Boolean, default: false },
    ...listedFields,
    ...outboxFields,
  },
  base,
);
resourceSchema.index({ identifier_key: 1 }, { unique: true });
addListIndexes(resourceSchema, ["archived"]);
// A gateway application's bindings, cleared when the application is archived.
resourceSchema.index({ zone_id: 1, gateway_application_id: 1 });
addOutboxIndexes(resourceSchema);

/** One wrapped data key per zone (`_id` = zone id). */
export const zoneKeySchema = new Schema({ _id: String, nonce: String, ciphertext: String, created_at: Date }, base);

/** Counters kept under a lock: active resources per zone, identifier suffixes per base. */
export const counterSchema = new Schema({ _id: String, value: Number }, base);

export const toPublicProvider = (p: ProviderDoc) => ({
  id: p._id,
  zone_id: p.zone_id,
  name: p.name,
  identifier: p.identifier,
  kind: p.kind,
  config_json: p.config_json ?? {},
  secret_config_keys: [...(p.secret_config_keys ?? [])].sort(),
  created_at: new Date(p.created_at).toISOString(),
  updated_at: new Date(p.updated_at).toISOString(),
});

export const toPublicResource = (r: ResourceDoc) => ({
  id: r._id,
  zone_id: r.zone_id,
  name: r.name,
  identifier: r.identifier,
  upstream_url: r.upstream_url,
  scopes: r.scopes ?? [],
  credential_provider_id: r.credential_provider_id,
  gateway_application_id: r.gateway_application_id,
  operations: r.operations ?? [],
  operation_enforcement: r.operation_enforcement,
  created_at: new Date(r.created_at).toISOString(),
  updated_at: new Date(r.updated_at).toISOString(),
});

/** What toPublicProvider returns: public config only, secret key names sorted, never their values. */
export const publicProviderSchema = J.obj({
  id: { ...J.string(), description: "UUIDv7, or provider-none-<zoneId> for the zone's automatic none provider" },
  zone_id: J.id,
  name: J.string(),
  identifier: J.string({ pattern: "^provider://[a-z0-9]+(-[a-z0-9]+)*$" }),
  kind: J.enum(["none", "caracal_mandate", "oauth2_authorization_code", "oauth2_client_credentials", "api_key", "bearer_token"]),
  config_json: { ...J.object, description: "The public settings, normalised (defaults written back)" },
  secret_config_keys: J.array(J.string()),
  created_at: J.timestamp,
  updated_at: J.timestamp,
});

/** What toPublicResource returns. */
export const publicResourceSchema = J.obj({
  id: J.id,
  zone_id: J.id,
  name: J.string(),
  identifier: J.string(),
  upstream_url: J.nullable(J.string()),
  scopes: J.array(J.string()),
  credential_provider_id: J.nullable(J.string()),
  gateway_application_id: J.nullable(J.string()),
  operations: J.array(J.obj({ method: J.string(), path: J.string(), scope: J.string() })),
  operation_enforcement: J.enum(["enforced", "transport_uniform"]),
  created_at: J.timestamp,
  updated_at: J.timestamp,
});
