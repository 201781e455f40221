// Resource rules (reference-core §11.3): identifiers and operations.
import { badRequest } from "../../shared/errors";

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

/** Normalises (method upper-cased, path trimmed) and checks operations against the effective scopes. */
export function checkOperations(ops: Operation[], scopes: string[]): Operation[] {
  const out: Operation[] = [];
  const seen = new Set<string>();
  for (const op of ops) {
    const method = op.method.trim().toUpperCase();
    const path = op.path.trim();
    if (!method || !path) throw badRequest("operation_method_and_path_required", "each operation needs a method and a path");
    if (!path.startsWith("/")) throw badRequest("operation_path_must_be_absolute", `operation path "${path}" must start with /`);
    if (!scopes.includes(op.scope)) throw badRequest("operation_scope_not_in_resource_scopes", `operation scope "${op.scope}" is not one of the resource scopes`);
    const key = `${method} ${path}`;
    if (seen.has(key)) throw badRequest("operation_duplicate", `operation ${key} is listed twice`);
    seen.add(key);
    out.push({ method, path, scope: op.scope });
  }
  return out;
}
