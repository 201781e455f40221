// Authorization gates of /v1 in their fixed order (reference-core §3.4), as pure functions of the request.
import type { Actor } from "../shared/actor";
import { forbidden } from "../shared/errors";

/** Read-only requests: GET, HEAD, and validating a policy (which writes nothing). */
export const isReadOnly = (method: string, path: string): boolean =>
  method === "GET" || method === "HEAD" || (method === "POST" && path === "/v1/policies/validate");

/** Paths any zone token may use: policy validation and the template catalogue. */
const isGlobalReadPath = (method: string, path: string): boolean =>
  (method === "POST" && path === "/v1/policies/validate") ||
  ((method === "GET" || method === "HEAD") && (path === "/v1/policy-templates" || path.startsWith("/v1/policy-templates/")));

/** The zone id a path names (`/v1/zones/<id>…`), URL-decoded; null for other paths. */
export function zoneIdOfPath(path: string): string | null {
  const m = /^\/v1\/zones\/([^/]+)/.exec(path);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return m[1]!;
  }
}

/** Gates 2 and 3: capability, then zone scope. Gate 4 (system zone) needs the zone and runs after. */
export function checkTokenGates(actor: Actor, method: string, path: string): void {
  const readOnly = isReadOnly(method, path);
  if (actor.capability === "read" && !readOnly) throw forbidden("admin_token_read_only", "this token may only read");
  if (actor.scope === "zone" && !isGlobalReadPath(method, path) && zoneIdOfPath(path) !== actor.zone_id) {
    throw forbidden("admin_token_zone_mismatch", "this token is limited to another zone");
  }
}

export function checkSystemZoneGate(actor: Actor, method: string, path: string, zoneReserved: boolean): void {
  if (!isReadOnly(method, path) && zoneReserved && !actor.bootstrap) throw forbidden("system_zone_read_only", "the system zone is read-only");
}
