// Request and response schemas of the provider and resource routes: the service validates with these rules and /docs shows them.
import { type ServiceApi } from "../../shared/api-doc";
import { LIMITS, jsonObject, lenientBody, nullable, oneOf, optional, stringList, text } from "../../shared/validation";
import { publicProviderSchema, publicResourceSchema, toPublicProvider, toPublicResource, type ProviderDoc, type ResourceDoc } from "./models/provider.model";
import { PROVIDER_KINDS } from "./provider-config";

/** Blank `name`/`identifier` count as absent (the reference's rule), hence no minimum length. */
const providerBody = (create: boolean) =>
  lenientBody({
    name: optional(text(0, LIMITS.name, { description: "Defaults to the identifier; blank counts as absent" })),
    identifier: optional(text(0, LIMITS.identifier, { description: "provider://<slug>; generated from the name when absent" })),
    kind: create ? oneOf(PROVIDER_KINDS) : optional(oneOf(PROVIDER_KINDS)),
    config_json: optional(jsonObject(LIMITS.providerConfigBytes, { description: "Settings for the kind, secrets included (they are sealed and never shown again)" })),
  });

const operation = {
  type: "object",
  props: { method: text(0, LIMITS.operationMethod), path: text(0, LIMITS.identifier), scope: text(0, LIMITS.scope) },
};

const resourceBody = (create: boolean) =>
  lenientBody({
    name: optional(text(1, LIMITS.name)),
    identifier: optional(text(1, LIMITS.identifier, { description: "An absolute URI (resource://…, https://…, urn:…); generated from the name when absent" })),
    upstream_url: optional(nullable(text(1, LIMITS.identifier, { pattern: /^https?:\/\/\S+$/i, messages: { stringPattern: "upstream_url must be an absolute http(s) URL" } }))),
    scopes: create ? stringList(LIMITS.scopes, LIMITS.scope, { min: 1 }) : optional(stringList(LIMITS.scopes, LIMITS.scope, { min: 1 })),
    credential_provider_id: optional(nullable(text(0, LIMITS.id))),
    gateway_application_id: optional(nullable(text(1, LIMITS.id))),
    operations: optional({ type: "array", max: LIMITS.operations, items: operation }),
    operation_enforcement: optional(oneOf(["enforced", "transport_uniform"])),
  });

export const PROVIDER_BODIES = {
  createProvider: providerBody(true),
  updateProvider: providerBody(false),
  createResource: resourceBody(true),
  updateResource: resourceBody(false),
};

const zoneId = "0197c3a2-6f1e-7a3c-9b2d-4e5f60718293";
const at = new Date("2026-07-02T10:02:00.000Z");
const exampleProvider: ProviderDoc = {
  _id: "0197c3a4-1b2c-7d3e-8f40-5a6b7c8d9e0f",
  zone_id: zoneId,
  name: "Payments API key",
  identifier: "provider://payments-api-key",
  active_key: "",
  kind: "api_key",
  config_json: { auth_location: "header", header_name: "X-Api-Key" },
  secret_config_keys: ["api_key"],
  secrets_sealed: null,
  created_at: at,
  updated_at: at,
  archived_at: null, archived: false,
};
const exampleResource: ResourceDoc = {
  _id: "0197c3a5-2c3d-7e4f-9a51-6b7c8d9e0f1a",
  zone_id: zoneId,
  name: "Payments",
  identifier: "resource://payments",
  identifier_key: "",
  upstream_url: "https://payments.internal.example",
  scopes: ["payments:read", "payments:write"],
  credential_provider_id: exampleProvider._id,
  gateway_application_id: "0197c3a3-0a4b-7c1d-8e2f-3a4b5c6d7e8f",
  operations: [{ method: "GET", path: "/payments", scope: "payments:read" }],
  operation_enforcement: "enforced",
  created_at: at,
  updated_at: at,
  archived_at: null, archived: false,
};

const providerRules = ["invalid_provider_identifier", "invalid_provider_config"];
const resourceRules = [
  "invalid_resource_identifier", "credential_provider_required", "upstream_url_required", "gateway_application_required",
  "operation_method_and_path_required", "operation_path_must_be_absolute", "operation_scope_not_in_resource_scopes", "operation_duplicate",
  "gateway_exchange_application_must_be_managed",
];

export const PROVIDERS_API: ServiceApi = {
  listProviders: { status: 200, list: true, response: publicProviderSchema, example: { response: { items: [toPublicProvider(exampleProvider)], next_cursor: null } } },
  getProvider: { status: 200, response: publicProviderSchema, errors: { 404: ["provider_not_found"] }, example: { response: toPublicProvider(exampleProvider) } },
  createProvider: {
    body: PROVIDER_BODIES.createProvider,
    status: 201,
    response: publicProviderSchema,
    errors: { 400: providerRules, 404: ["zone_not_found"], 409: ["reserved_namespace", "provider_identifier_conflict"] },
    description: "`name` or `identifier` is required. Which `config_json` keys a kind takes, and which of them are secrets, is in docs/objects.md.",
    example: {
      body: { name: "Payments API key", kind: "api_key", config_json: { header_name: "X-Api-Key", api_key: "example-key-value" } },
      response: toPublicProvider(exampleProvider),
    },
  },
  updateProvider: {
    body: PROVIDER_BODIES.updateProvider,
    status: 200,
    response: publicProviderSchema,
    errors: { 400: [...providerRules, "provider_config_required", "no_fields"], 404: ["provider_not_found"], 409: ["reserved_namespace", "provider_identifier_conflict"] },
    description: "`config_json` replaces the public settings wholesale; secrets given replace the stored ones, none given keeps them (unless `kind` changes).",
    example: { body: { config_json: { header_name: "X-Key" } }, response: toPublicProvider({ ...exampleProvider, config_json: { auth_location: "header", header_name: "X-Key" } }) },
  },
  removeProvider: { status: 204, errors: { 404: ["provider_not_found"] } },

  listResources: { status: 200, list: true, response: publicResourceSchema, example: { response: { items: [toPublicResource(exampleResource)], next_cursor: null } } },
  getResource: { status: 200, response: publicResourceSchema, errors: { 404: ["resource_not_found"] }, example: { response: toPublicResource(exampleResource) } },
  createResource: {
    body: PROVIDER_BODIES.createResource,
    status: 201,
    response: publicResourceSchema,
    errors: { 400: resourceRules, 404: ["zone_not_found", "provider_not_found", "gateway_application_not_found"], 409: ["reserved_namespace", "protected_resource", "resource_quota_exceeded", "resource_identifier_conflict"] },
    description: "`name` or `identifier`, and `scopes`, are required; every resource but the Control one also needs `credential_provider_id`, `upstream_url` and `gateway_application_id`. All missing ones are reported together.",
    example: {
      body: {
        identifier: "resource://payments", name: "Payments", upstream_url: "https://payments.internal.example", scopes: ["payments:read", "payments:write"],
        credential_provider_id: exampleProvider._id, gateway_application_id: exampleResource.gateway_application_id, operations: [{ method: "get", path: "/payments", scope: "payments:read" }],
      },
      response: toPublicResource(exampleResource),
    },
  },
  updateResource: {
    body: PROVIDER_BODIES.updateResource,
    status: 200,
    response: publicResourceSchema,
    errors: { 400: [...resourceRules, "no_fields"], 404: ["resource_not_found", "provider_not_found", "gateway_application_not_found"], 409: ["reserved_namespace", "protected_resource", "resource_identifier_conflict"] },
    description: "The binding rules are checked on the merged state: setting `upstream_url` to null on a normal resource is 400 `upstream_url_required`.",
    example: { body: { scopes: ["payments:read"], operations: [] }, response: toPublicResource({ ...exampleResource, scopes: ["payments:read"], operations: [] }) },
  },
  removeResource: { status: 204, errors: { 404: ["resource_not_found"], 409: ["protected_resource"] } },
};
