// Body rules of provider and resource writes, collected so that one 400 lists every problem of a body.
// Checks run in the reference's order and are grouped where the reference has only 400s in a row; a
// later group is appended to an earlier failing one, so the answer's code stays the reference's while
// `details.issues` shows everything (docs/api.md, "Validation").
import { Problems } from "../../shared/errors";
import { bodyIssues } from "../../shared/validation";
import { PROVIDER_BODIES } from "./providers.api";
import { PROVIDER_IDENTIFIER, validateProviderConfig, type ProviderKind, type SplitConfig } from "./provider-config";
import { checkOperations, resourceIdentifierBase, resourceIdentifierProblem, type Operation } from "./resource-rules";

export interface ProviderBody {
  name?: string;
  identifier?: string;
  kind?: ProviderKind;
  config_json?: Record<string, unknown>;
}

export interface ResourceBody {
  name?: string;
  identifier?: string;
  upstream_url?: string | null;
  scopes?: string[];
  credential_provider_id?: string | null;
  gateway_application_id?: string | null;
  operations?: Operation[];
  operation_enforcement?: "enforced" | "transport_uniform";
}

const isPlain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
const trimmed = (v: unknown) => (typeof v === "string" ? v.trim() || undefined : undefined);
const IDENTIFIER_MESSAGE = "identifier must be provider:// followed by a lower-case slug";

/** Schema failures of a body; a body that is not an object at all is refused at once. */
function schemaProblems(schema: { props: Record<string, unknown> } & Record<string, unknown>, raw: unknown, code: string): Problems {
  const problems = new Problems().addAll(code, bodyIssues(schema, raw));
  if (!isPlain(raw)) problems.throwIfAny();
  return problems;
}

/** POST providers: schema, name-or-identifier, identifier pattern, config rules (all 400, in that order). */
export function checkProviderCreate(raw: unknown): { name?: string; explicit?: string; kind: ProviderKind; split: SplitConfig } {
  const problems = schemaProblems(PROVIDER_BODIES.createProvider, raw, "invalid_provider");
  const body = raw as ProviderBody;
  const name = trimmed(body.name);
  const explicit = trimmed(body.identifier);
  if (!problems.has("name") && !problems.has("identifier") && !name && !explicit) problems.add("invalid_provider", ["name"], "name or identifier is required");
  if (explicit && !problems.has("identifier") && !PROVIDER_IDENTIFIER.test(explicit)) problems.add("invalid_provider_identifier", ["identifier"], IDENTIFIER_MESSAGE);
  let split: SplitConfig | null = null;
  if (!problems.has("kind") && !problems.has("config_json")) {
    split = validateProviderConfig(body.kind!, body.config_json, true);
    problems.addAll("invalid_provider_config", split.issues);
  }
  problems.throwIfAny();
  return { name, explicit, kind: body.kind!, split: split! };
}

/**
 * PATCH providers, the checks that need no stored state. `first` (schema, identifier pattern) comes
 * before the reserved-name check (409) in the reference, `second` (kind without config, config with
 * kind, nothing to change) after it: the caller throws `first` (with `second` appended), checks the
 * reserved name, then throws `second`.
 */
export function checkProviderUpdate(raw: unknown): { first: Problems; second: Problems; name?: string; identifier?: string; body: ProviderBody; withKind: SplitConfig | null } {
  const first = schemaProblems(PROVIDER_BODIES.updateProvider, raw, "invalid_provider");
  const body = raw as ProviderBody;
  const name = trimmed(body.name);
  const identifier = trimmed(body.identifier);
  if (identifier !== undefined && !first.has("identifier") && !PROVIDER_IDENTIFIER.test(identifier)) first.add("invalid_provider_identifier", ["identifier"], IDENTIFIER_MESSAGE);
  const second = new Problems();
  let withKind: SplitConfig | null = null;
  if (body.kind !== undefined && !first.has("kind")) {
    if (body.config_json === undefined) second.add("provider_config_required", ["config_json"], "changing kind needs config_json");
    else if (!first.has("config_json")) {
      withKind = validateProviderConfig(body.kind, body.config_json, true);
      second.addAll("invalid_provider_config", withKind.issues);
    }
  }
  if (!first.size && !second.size && name === undefined && identifier === undefined && body.kind === undefined && body.config_json === undefined) {
    second.add("no_fields", [], "nothing to update");
  }
  return { first, second, name, identifier, body, withKind };
}

/**
 * POST resources, the checks on the body alone. `first` (schema, name-or-identifier, identifier URI)
 * precedes the reserved/protected/provider checks in the reference; `second` (binding completeness,
 * operations) follows them.
 */
export function checkResourceCreate(raw: unknown, isControl: (identifier: string) => boolean): { first: Problems; second: Problems; body: ResourceBody; base: string; control: boolean; operations: Operation[] } {
  const first = schemaProblems(PROVIDER_BODIES.createResource, raw, "invalid_resource");
  const body = raw as ResourceBody;
  if (!first.has("name") && !first.has("identifier") && !body.name && !body.identifier) first.add("invalid_resource", ["name"], "name or identifier is required");
  const base = (first.has("identifier") ? undefined : body.identifier) ?? (typeof body.name === "string" && !first.has("name") && body.name ? resourceIdentifierBase(body.name) : "");
  const control = base !== "" && isControl(base);
  if (base && !control) {
    const problem = resourceIdentifierProblem(base);
    if (problem) first.add("invalid_resource_identifier", ["identifier"], problem);
  }
  const second = new Problems();
  if (!control) bindingProblems(second, first, body);
  const operations = operationProblems(second, first, body.operations ?? [], body.scopes);
  return { first, second, body, base, control, operations };
}

/** PATCH resources, the schema only: everything else depends on the stored resource. */
export function checkResourceUpdateBody(raw: unknown): { first: Problems; body: ResourceBody } {
  return { first: schemaProblems(PROVIDER_BODIES.updateResource, raw, "invalid_resource"), body: raw as ResourceBody };
}

/**
 * PATCH resources, on the merged state: the identifier URI rule (before reserved/protected in the
 * reference), then binding completeness and operations (after them).
 */
export function checkResourceMerged(merged: ResourceBody & { identifier: string; scopes: string[] }, control: boolean): { first: Problems; second: Problems; operations: Operation[] } {
  const first = new Problems();
  if (!control) {
    const problem = resourceIdentifierProblem(merged.identifier);
    if (problem) first.add("invalid_resource_identifier", ["identifier"], problem);
  }
  const second = new Problems();
  if (!control) bindingProblems(second, first, merged);
  const operations = operationProblems(second, first, merged.operations ?? [], merged.scopes);
  return { first, second, operations };
}

/** A normal resource needs a credential provider, an upstream URL and a gateway application: all missing ones are listed. */
function bindingProblems(into: Problems, schema: Problems, body: ResourceBody): void {
  if (!schema.has("credential_provider_id") && !body.credential_provider_id) into.add("credential_provider_required", ["credential_provider_id"], "a credential provider is required");
  if (!schema.has("upstream_url") && !body.upstream_url) into.add("upstream_url_required", ["upstream_url"], "an upstream URL is required");
  if (!schema.has("gateway_application_id") && !body.gateway_application_id) into.add("gateway_application_required", ["gateway_application_id"], "a gateway application is required");
}

function operationProblems(into: Problems, schema: Problems, ops: Operation[], scopes: string[] | undefined): Operation[] {
  if (schema.has("operations") || schema.has("scopes") || !Array.isArray(scopes)) return [];
  const { operations, issues } = checkOperations(ops, scopes);
  for (const i of issues) into.add(i.code, i.path, i.message);
  return operations;
}

/** Throws `first` with `second` appended when `first` failed (the reference would have stopped there). */
export function throwFirst(first: Problems, second: Problems): void {
  if (first.size) first.concat(second).throwIfAny();
}
