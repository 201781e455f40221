// Resource rules (reference-core §11.3): identifiers and operations.
import type { CodedIssue } from "../../shared/errors";

/** An absolute URI, not `provider:`, without user info; null when valid, else the reason. */
export function resourceIdentifierProblem(identifier: string): string | null {
  let u: URL;
  try {
    u = new URL(identifier);
  } catch {
    return "identifier must be an absolute URI";
  }
  if (!/^[a-z][a-z0-9+.-]*:$/i.test(u.protocol)) return "identifier must be an absolute URI";
  if (u.protocol.toLowerCase() === "provider:") return "identifier must not use the provider: scheme";
  if (u.username || u.password) return "identifier must not carry user info";
  return null;
}

export function resourceIdentifierBase(name: string): string {
  if (name.startsWith("resource://")) return name;
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return `resource://${slug || "resource"}`;
}

export interface Operation {
  method: string;
  path: string;
  scope: string;
}

/**
 * Normalises (method upper-cased, path trimmed) and checks operations against the effective scopes,
 * reporting every broken rule with its code (paths `operations.<i>.…`).
 */
export function checkOperations(ops: Operation[], scopes: string[]): { operations: Operation[]; issues: CodedIssue[] } {
  const out: Operation[] = [];
  const issues: CodedIssue[] = [];
  const seen = new Set<string>();
  ops.forEach((op, i) => {
    const method = op.method.trim().toUpperCase();
    const path = op.path.trim();
    if (!method || !path) return void issues.push({ code: "operation_method_and_path_required", path: ["operations", i], message: "each operation needs a method and a path" });
    if (!path.startsWith("/")) issues.push({ code: "operation_path_must_be_absolute", path: ["operations", i, "path"], message: `operation path "${path.slice(0, 200)}" must start with /` });
    if (!scopes.includes(op.scope)) issues.push({ code: "operation_scope_not_in_resource_scopes", path: ["operations", i, "scope"], message: `operation scope "${op.scope.slice(0, 128)}" is not one of the resource scopes` });
    const key = `${method} ${path}`;
    if (seen.has(key)) issues.push({ code: "operation_duplicate", path: ["operations", i], message: `operation ${key.slice(0, 200)} is listed twice` });
    seen.add(key);
    out.push({ method, path, scope: op.scope });
  });
  return { operations: out, issues };
}
