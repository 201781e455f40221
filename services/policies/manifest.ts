// The policy-set manifest: its stored form, its hash, and the contract check of reference-policy §3.3.1.
import { createHash } from "node:crypto";
import { checkRego, isSupportedSchemaVersion } from "./rego-check";

export const MANIFEST_MAX = 256;

export interface ManifestEntry {
  policy_version_id: string;
}

/** What the check needs to know about one referenced policy version. */
export interface ManifestMember {
  id: string;
  zone_id: string;
  schema_version: string;
  content: string;
}

export const normalizeManifest = (entries: ManifestEntry[]): ManifestEntry[] => entries.map((e) => ({ policy_version_id: e.policy_version_id }));

export const manifestSha256 = (entries: ManifestEntry[]): string => createHash("sha256").update(JSON.stringify(normalizeManifest(entries))).digest("hex");

export const contentSha256 = (content: string): string => createHash("sha256").update(content, "utf8").digest("hex");

/**
 * Rules 1–6 in order; returns the first failure's `detail` or null. `members` holds the versions that
 * exist (orphans of a failed policy create do not), looked up by id in any zone.
 */
export function manifestContractFailure(manifest: ManifestEntry[], schemaVersion: string, zoneId: string, members: Map<string, ManifestMember>): string | null {
  if (!isSupportedSchemaVersion(schemaVersion)) return `unsupported_schema_version:${schemaVersion}`;
  if (manifest.length < 1) return "policy set manifest must reference at least one policy version";
  if (manifest.length > MANIFEST_MAX) return `policy set manifest exceeds maximum of ${MANIFEST_MAX} entries`;
  const ids = manifest.map((e) => e.policy_version_id);
  if (new Set(ids).size !== ids.length) return "policy set manifest contains duplicate policy_version_id entries";
  if (ids.some((id) => !members.has(id))) return "policy set manifest references missing policy versions";
  for (const id of ids) {
    const v = members.get(id)!;
    if (v.zone_id !== zoneId) return `policy version ${id} belongs to a different zone`;
    if (v.schema_version !== schemaVersion) return `policy version ${id} schema ${v.schema_version} does not match policy set schema ${schemaVersion}`;
    const check = checkRego(v.content);
    if (!check.ok) {
      if (check.code === "must_use_package_caracal_authz") return `policy version ${id} must use package caracal.authz`;
      if (check.code === "must_be_data_document") return `policy version ${id} must be a data document marked # caracal:data-document`;
      if (check.code === "data_document_must_not_define_result") return `policy version ${id} must not define result; the platform decision contract owns every decision`;
      return `policy version ${id} failed validation: ${check.code}`;
    }
  }
  return null;
}

export const INPUT_WARNINGS_ORDER = ["input_schema_mismatch", "principal_zone_mismatch", "missing_resource", "missing_action", "missing_context"] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The input-shape warnings of reference-policy §3.3.4, in their order. */
export function inputWarnings(input: Record<string, unknown>, zoneId: string, inputSchemaVersion: string): string[] {
  const warnings: string[] = [];
  const sv = input.schema_version;
  if (sv !== undefined && sv !== null && sv !== "" && sv !== inputSchemaVersion) warnings.push(`input_schema_mismatch:${String(sv)}`);
  const principal = input.principal;
  if (!isObject(principal) || principal.zone_id !== zoneId) warnings.push("principal_zone_mismatch");
  if (!isObject(input.resource)) warnings.push("missing_resource");
  if (!isObject(input.action)) warnings.push("missing_action");
  if (!isObject(input.context)) warnings.push("missing_context");
  return warnings;
}
