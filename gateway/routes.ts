// The /v1 route table: every HTTP route, the action that serves it and the code for a bad body.
// One hop from a URL to its code; the aliases, the 404/405 decision and /docs are built from it.

export interface RouteDef {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  path: string;
  action: string;
  /** Wire code when the JSON body fails its schema (path and query failures have their own codes). */
  bodyError?: string;
  summary: string;
  /** Public routes skip admin authentication (none yet besides the OAuth callback later). */
  public?: boolean;
}

export const ROUTES: RouteDef[] = [
  { method: "GET", path: "/admin-tokens", action: "adminTokens.list", summary: "List admin tokens" },
  { method: "POST", path: "/admin-tokens", action: "adminTokens.create", bodyError: "invalid_admin_token_request", summary: "Mint an admin token" },
  { method: "DELETE", path: "/admin-tokens/:id", action: "adminTokens.revoke", summary: "Revoke an admin token" },

  { method: "GET", path: "/zones", action: "zones.list", summary: "List zones" },
  { method: "POST", path: "/zones", action: "zones.create", bodyError: "invalid_zone", summary: "Create a zone" },
  { method: "GET", path: "/zones/:id", action: "zones.get", summary: "Get a zone" },
  { method: "PATCH", path: "/zones/:id", action: "zones.update", bodyError: "invalid_zone", summary: "Update a zone (and shut down DCR)" },
  { method: "DELETE", path: "/zones/:id", action: "zones.remove", summary: "Archive a zone" },
  { method: "GET", path: "/zones/:id/dcr-status", action: "zones.dcrStatus", summary: "DCR gate and live DCR applications of a zone" },
];

/** Services whose actions the route table names; /ready waits for each of them. */
export const routedServices = (): string[] => [...new Set(ROUTES.map((r) => r.action.split(".")[0]!))];

const compiled = ROUTES.map((r) => ({
  route: r,
  pattern: new RegExp("^/v1" + r.path.replace(/:[A-Za-z]+/g, "[^/]+") + "/?$"),
}));

/** The route a path would match under any method: tells 405 from 404. */
export function methodsForPath(path: string): string[] {
  return compiled.filter((c) => c.pattern.test(path)).map((c) => c.route.method);
}

export function routeFor(method: string, path: string): RouteDef | undefined {
  return compiled.find((c) => c.route.method === method && c.pattern.test(path))?.route;
}
