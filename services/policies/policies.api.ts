// Request and response schemas of the policy routes: the service validates with these rules and /docs shows them.
import { J, type JsonSchema, type ServiceApi } from "../../shared/api-doc";
import { LIMITS, idRef, jsonObject, lenientBody, nameRule, optional, text } from "../../shared/validation";
import { publicPolicySchema, publicPolicyVersionSchema, toPublicPolicy, toPublicPolicyVersion, versionSummary, versionSummarySchema, type PolicyDoc, type PolicyVersionDoc } from "./models/policy.model";
import { publicPolicySetSchema, publicSetVersionSchema, toPublicPolicySet, toPublicSetVersion, type PolicySetDoc, type PolicySetVersionDoc } from "./models/policy-set.model";
import { MANIFEST_MAX, contentSha256, manifestSha256 } from "./manifest";
import { DEFAULT_SCHEMA_VERSION, INPUT_SCHEMA_VERSION, OUTPUT_CONTRACT } from "./rego-check";
import { POLICY_TEMPLATES } from "./templates";

const content = text(1, LIMITS.regoContent, { description: "A Rego data document (`# caracal:data-document`, `package caracal.authz`)" });
const schemaVersion = optional(text(0, LIMITS.schemaVersion, { description: `2026-03-16 or 2026-05-20; default ${DEFAULT_SCHEMA_VERSION}` }));
const description = optional(text(0, LIMITS.description));

export const POLICY_BODIES = {
  validate: lenientBody({ content, schema_version: schemaVersion }),
  create: lenientBody({ name: nameRule(LIMITS.name, { trim: true }), description, owner_type: optional(text(1, 64, { description: 'Free text; default "customer"' })), content, schema_version: schemaVersion }),
  createVersion: lenientBody({ content, schema_version: schemaVersion }),
  createSet: lenientBody({ name: nameRule(LIMITS.name, { trim: true }), description }),
  createSetVersion: lenientBody({
    manifest: { type: "array", min: 1, max: MANIFEST_MAX, items: lenientBody({ policy_version_id: idRef }), description: "The policy versions of this set version, in order" },
    schema_version: schemaVersion,
  }),
  activateSet: lenientBody({ version_id: idRef, shadow_version_id: optional(idRef) }),
  simulate: lenientBody({
    version_id: idRef,
    input: optional(jsonObject(LIMITS.simulateInputBytes, { description: `The decision input (schema ${INPUT_SCHEMA_VERSION}); when given, OPA evaluates it. See docs/policies.md for a complete example.` })),
  }),
};

const sha256 = J.string({ pattern: "^[0-9a-f]{64}$" });
const decisionSchema = J.obj({
  decision: J.enum(["allow", "deny"]),
  evaluation_status: J.enum(["complete"]),
  determining_policies: J.array(J.obj({ policy: J.string() })),
  diagnostics: J.array(J.object),
});
const previewSchema = J.obj({
  package: J.string(),
  rules: J.array(J.string()),
  default_result: J.boolean,
  decisions: J.array(J.string()),
  inputs_referenced: J.array(J.string()),
  data_referenced: J.array(J.string()),
});
const outboxStateSchema = J.obj({
  id: J.nullable(J.string()),
  state: J.enum(["pending", "dispatched", "dead", "missing", "mismatch"]),
  attempts: J.integer({ minimum: 0 }),
  last_error: J.nullable(J.string()),
  dispatched_at: J.nullable(J.timestamp),
});
const { active_version_id: _active, ...setOnCreate } = publicPolicySetSchema.properties as Record<string, JsonSchema>;
void _active;

const zoneId = "0197c3a2-6f1e-7a3c-9b2d-4e5f60718293";
const at = new Date("2026-07-02T10:03:00.000Z");
const templateContent = POLICY_TEMPLATES[0]!.content;
const examplePolicy: PolicyDoc = {
  _id: "0197c3a6-3d4e-7f50-8b62-7c8d9e0f1a2b", zone_id: zoneId, name: "app-bindings", description: null, owner_type: "customer",
  created_by: "ci", co_authored_by_operator: false, created_at: at, archived_at: null, archived: false, version_ids: [],
};
const exampleVersion: PolicyVersionDoc = {
  _id: "0197c3a6-3d4e-7f50-8b62-7c8d9e0f1a2c", policy_id: examplePolicy._id, zone_id: zoneId, version: 1, content: templateContent,
  content_sha256: contentSha256(templateContent), schema_version: DEFAULT_SCHEMA_VERSION, created_by: "ci", created_at: at,
};
const exampleSet: PolicySetDoc = {
  _id: "0197c3a7-4e5f-7061-9c73-8d9e0f1a2b3c", zone_id: zoneId, name: "production", description: null, created_by: "ci", co_authored_by_operator: false,
  created_at: at, archived_at: null, archived: false, active_version_id: null, shadow_version_id: null, active_slot: "", activated_at: null, version_ids: [],
};
const exampleManifest = [{ policy_version_id: exampleVersion._id }];
const exampleSetVersion: PolicySetVersionDoc = {
  _id: "0197c3a7-4e5f-7061-9c73-8d9e0f1a2b3d", policy_set_id: exampleSet._id, zone_id: zoneId, version: 1, manifest: exampleManifest,
  manifest_sha256: manifestSha256(exampleManifest), schema_version: DEFAULT_SCHEMA_VERSION, created_by: "ci", created_at: at,
};
const exampleInput = {
  schema_version: INPUT_SCHEMA_VERSION,
  principal: { type: "Application", id: "app-payments", zone_id: zoneId, registration_method: "managed", labels: ["payment-execution"] },
  resource: { type: "Resource", id: "0197c3a5-2c3d-7e4f-9a51-6b7c8d9e0f1a", identifier: "resource://example", scopes: ["example:read", "example:write"] },
  action: { id: "TokenExchange" },
  context: { requested_scopes: ["agent:lifecycle"] },
};
const contractErrors = ["invalid_policy_contract"];

export const POLICIES_API: ServiceApi = {
  validate: {
    body: POLICY_BODIES.validate,
    status: 200,
    response: J.obj({
      valid: { const: true },
      schema_version: J.string(),
      input_schema_version: J.string(),
      output_contract: J.obj({ package: J.string(), rule: J.string(), decision: J.array(J.string()), evaluation_status: J.array(J.string()) }),
      preview: previewSchema,
    }),
    errors: { 422: ["invalid_schema_version", "invalid_rego"] },
    description: "The reference's structural checks, then an OPA compile; OPA's errors come back in `details.errors` with line and column.",
    example: {
      body: { content: templateContent },
      response: { valid: true, schema_version: DEFAULT_SCHEMA_VERSION, input_schema_version: INPUT_SCHEMA_VERSION, output_contract: OUTPUT_CONTRACT, preview: { package: "caracal.authz", rules: ["app_ids"], default_result: false, decisions: [], inputs_referenced: [], data_referenced: [] } },
    },
  },
  templates: {
    status: 200,
    response: J.obj({ items: J.array(J.obj({ id: J.string(), name: J.string(), description: J.string(), content: J.string() })), next_cursor: { type: "null" } }),
    example: { response: { items: POLICY_TEMPLATES.slice(0, 1), next_cursor: null } },
  },
  list: { status: 200, list: true, response: publicPolicySchema, example: { response: { items: [toPublicPolicy(examplePolicy)], next_cursor: null } } },
  get: {
    status: 200,
    response: J.obj({ ...(publicPolicySchema.properties as Record<string, JsonSchema>), versions: J.array(publicPolicyVersionSchema) }),
    errors: { 404: ["policy_not_found"] },
    example: { response: { ...toPublicPolicy(examplePolicy), versions: [toPublicPolicyVersion(exampleVersion)] } },
  },
  create: {
    body: POLICY_BODIES.create,
    status: 201,
    response: J.obj({ id: J.id, version_id: J.id, zone_id: J.id, name: J.string(), description: J.nullable(J.string()), version: versionSummarySchema }),
    errors: { 404: ["zone_not_found"], 409: ["reserved_namespace", "policy_name_conflict"], 422: ["invalid_schema_version", "invalid_rego"] },
    example: {
      body: { name: "app-bindings", content: templateContent },
      response: { id: examplePolicy._id, version_id: exampleVersion._id, zone_id: zoneId, name: examplePolicy.name, description: null, version: versionSummary(exampleVersion) },
    },
  },
  createVersion: {
    body: POLICY_BODIES.createVersion,
    status: 201,
    response: J.obj({ version_id: J.id, ...(versionSummarySchema.properties as Record<string, JsonSchema>) }),
    errors: { 404: ["policy_not_found"], 422: ["invalid_schema_version", "invalid_rego"] },
    example: { body: { content: templateContent }, response: { version_id: exampleVersion._id, ...versionSummary({ ...exampleVersion, version: 2 }) } },
  },
  remove: { status: 204, errors: { 404: ["policy_not_found"] } },

  listSets: { status: 200, list: true, response: publicPolicySetSchema, example: { response: { items: [toPublicPolicySet(exampleSet)], next_cursor: null } } },
  getSet: { status: 200, response: publicPolicySetSchema, errors: { 404: ["policy_set_not_found"] }, example: { response: toPublicPolicySet(exampleSet) } },
  createSet: {
    body: POLICY_BODIES.createSet,
    status: 201,
    response: J.obj(setOnCreate),
    errors: { 404: ["zone_not_found"], 409: ["policy_set_name_conflict"] },
    example: { body: { name: "production" }, response: (({ active_version_id: _a, ...rest }) => rest)(toPublicPolicySet(exampleSet)) },
  },
  removeSet: { status: 204, errors: { 404: ["policy_set_not_found"] }, description: "Archiving the active set deactivates it (a `caracal.policy.invalidate` entry with reason `policy_set_archived`)." },
  createSetVersion: {
    body: POLICY_BODIES.createSetVersion,
    status: 201,
    response: J.obj({ version_id: J.id, id: J.id, policy_set_id: J.id, version: J.integer({ minimum: 1 }), manifest_sha256: sha256, schema_version: J.string(), created_at: J.timestamp }),
    errors: { 404: ["policy_set_not_found"], 422: ["invalid_schema_version", ...contractErrors] },
    description: "The members are compiled with OPA together with the platform decision contract; a set that does not compile is refused.",
    example: {
      body: { manifest: [{ policy_version_id: exampleVersion._id }] },
      response: { version_id: exampleSetVersion._id, id: exampleSetVersion._id, policy_set_id: exampleSet._id, version: 1, manifest_sha256: exampleSetVersion.manifest_sha256, schema_version: DEFAULT_SCHEMA_VERSION, created_at: at.toISOString() },
    },
  },
  listSetVersions: {
    status: 200,
    list: true,
    response: publicSetVersionSchema,
    errors: { 404: ["policy_set_not_found"] },
    description: "Newest first. Works for an archived set too: its versions are history.",
    example: { response: { items: [toPublicSetVersion(exampleSetVersion)], next_cursor: null } },
  },
  getSetVersion: { status: 200, response: publicSetVersionSchema, errors: { 404: ["policy_set_version_not_found"] }, example: { response: toPublicSetVersion(exampleSetVersion) } },
  activateSet: {
    body: POLICY_BODIES.activateSet,
    status: 202,
    response: J.obj({ activated: { const: true }, version_id: J.id, shadow_version_id: J.nullable(J.id), outbox_id: J.id, status_url: J.string() }),
    errors: { 404: ["version_not_found", "shadow_version_not_found"], 409: ["active_policy_set_conflict"], 422: [...contractErrors, "invalid_shadow_policy_contract"] },
    description: "Asynchronous: runtimes learn of it from the signed `caracal.policy.invalidate` entry; follow `status_url`.",
    example: {
      body: { version_id: exampleSetVersion._id },
      response: {
        activated: true, version_id: exampleSetVersion._id, shadow_version_id: null, outbox_id: "0197c3a8-5f60-7172-8d84-9e0f1a2b3c4d",
        status_url: `/v1/zones/${zoneId}/policy-sets/${exampleSet._id}/activation-status?version_id=${exampleSetVersion._id}&outbox_id=0197c3a8-5f60-7172-8d84-9e0f1a2b3c4d`,
      },
    },
  },
  activationStatus: {
    status: 200,
    query: {
      version_id: { schema: J.string({ minLength: 1 }), description: "The version to report on; default the active one" },
      outbox_id: { schema: J.string({ minLength: 1 }), description: "The `outbox_id` activate answered" },
    },
    response: J.obj({
      zone_id: J.id, policy_set_id: J.id, version_id: J.id, active: J.boolean, active_version_id: J.nullable(J.id), shadow_version_id: J.nullable(J.id),
      manifest_sha256: J.nullable(sha256),
      propagation_status: J.enum(["waiting_for_activation", "failed", "waiting_for_outbox", "loaded", "waiting_for_sts"]),
      outbox: outboxStateSchema,
      sts: J.obj({ state: J.string(), detail: J.string() }, ["detail"]),
    }),
    errors: { 400: ["invalid_body"], 404: ["policy_set_binding_not_found", "active_policy_set_version_not_found"] },
    example: {
      response: {
        zone_id: zoneId, policy_set_id: exampleSet._id, version_id: exampleSetVersion._id, active: true, active_version_id: exampleSetVersion._id, shadow_version_id: null,
        manifest_sha256: exampleSetVersion.manifest_sha256, propagation_status: "waiting_for_sts",
        outbox: { id: "0197c3a8-5f60-7172-8d84-9e0f1a2b3c4d", state: "dispatched", attempts: 1, last_error: null, dispatched_at: "2026-07-02T10:04:00.050Z" },
        sts: { state: "not_configured", detail: "no STS is configured for this control plane; runtimes follow caracal.policy.invalidate" },
      },
    },
  },
  simulate: {
    body: POLICY_BODIES.simulate,
    status: 200,
    response: J.obj({
      dry_run: { const: true }, policy_set_id: J.id, version_id: J.id, schema_version: J.string(), input_schema_version: J.string(), manifest_sha256: sha256,
      policies: J.array(J.string()), would_activate: J.boolean, warnings: J.array(J.string()),
      explanation: J.obj(
        { evaluation: J.enum(["executed", "not_executed", "failed"]), reason: J.string(), decision: J.enum(["allow", "deny"]), policy_set_version_id: J.id, manifest_sha256: sha256 },
        ["decision", "policy_set_version_id", "manifest_sha256"],
      ),
      result: J.nullable(decisionSchema),
    }),
    errors: { 404: ["version_not_found"], 422: contractErrors },
    description: "Never changes bindings. With an `input`, OPA evaluates it against the version and the decision contract; a failed evaluation is 200 with `explanation.evaluation: failed`.",
    example: {
      body: { version_id: exampleSetVersion._id, input: exampleInput },
      response: {
        dry_run: true, policy_set_id: exampleSet._id, version_id: exampleSetVersion._id, schema_version: DEFAULT_SCHEMA_VERSION, input_schema_version: INPUT_SCHEMA_VERSION,
        manifest_sha256: exampleSetVersion.manifest_sha256, policies: [exampleVersion._id], would_activate: true, warnings: [],
        explanation: { evaluation: "executed", decision: "deny", policy_set_version_id: exampleSetVersion._id, manifest_sha256: exampleSetVersion.manifest_sha256, reason: "OPA evaluated the supplied input against the policy-set version and the platform decision contract without mutating active policy bindings" },
        result: { decision: "deny", evaluation_status: "complete", determining_policies: [], diagnostics: [{ reason: "no_rule_matched" }] },
      },
    },
  },
};
