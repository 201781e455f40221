// The /v1 route table: every HTTP route, the action that serves it and the code for a bad body.
// One hop from a URL to its code; the aliases, the 404/405 decision and /docs are built from it.

export interface RouteDef {
  method: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  path: string;
  action: string;
  /** Wire code when the JSON body fails its schema (path and query failures have their own codes). */
  bodyError?: string;
  summary: string;
  /** Public routes skip admin authentication (the OAuth callback, where the browser lands). */
  public?: boolean;
  /** The action answers HTML or JSON by the request's Accept header, which the gateway passes as ctx.meta.accept. */
  negotiates?: boolean;
  /** Served by the gateway itself with the raw request and response (a method of the api service), not an action. */
  raw?: string;
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

  { method: "GET", path: "/zones/:zoneId/applications", action: "applications.list", summary: "List applications" },
  { method: "POST", path: "/zones/:zoneId/applications", action: "applications.create", bodyError: "invalid_application", summary: "Create a managed application (client secret shown once)" },
  { method: "POST", path: "/zones/:zoneId/applications/dcr", action: "applications.registerDcr", bodyError: "invalid_application", summary: "Register a short-lived DCR application" },
  { method: "GET", path: "/zones/:zoneId/applications/:id", action: "applications.get", summary: "Get an application" },
  { method: "PATCH", path: "/zones/:zoneId/applications/:id", action: "applications.update", bodyError: "invalid_application", summary: "Update an application" },
  { method: "DELETE", path: "/zones/:zoneId/applications/:id", action: "applications.remove", summary: "Archive an application" },
  { method: "POST", path: "/zones/:zoneId/applications/:id/rotate-secret", action: "applications.rotateSecret", summary: "Replace the client secret (new one shown once)" },

  { method: "GET", path: "/zones/:zoneId/providers", action: "providers.listProviders", summary: "List providers" },
  { method: "POST", path: "/zones/:zoneId/providers", action: "providers.createProvider", bodyError: "invalid_provider", summary: "Create a provider (secret config sealed)" },
  { method: "GET", path: "/zones/:zoneId/providers/:id", action: "providers.getProvider", summary: "Get a provider" },
  { method: "PATCH", path: "/zones/:zoneId/providers/:id", action: "providers.updateProvider", bodyError: "invalid_provider", summary: "Update a provider" },
  { method: "DELETE", path: "/zones/:zoneId/providers/:id", action: "providers.removeProvider", summary: "Archive a provider" },

  { method: "GET", path: "/zones/:zoneId/resources", action: "providers.listResources", summary: "List resources" },
  { method: "POST", path: "/zones/:zoneId/resources", action: "providers.createResource", bodyError: "invalid_resource", summary: "Create a resource" },
  { method: "GET", path: "/zones/:zoneId/resources/:id", action: "providers.getResource", summary: "Get a resource" },
  { method: "PATCH", path: "/zones/:zoneId/resources/:id", action: "providers.updateResource", bodyError: "invalid_resource", summary: "Update a resource" },
  { method: "DELETE", path: "/zones/:zoneId/resources/:id", action: "providers.removeResource", summary: "Archive a resource" },

  { method: "POST", path: "/policies/validate", action: "policies.validate", bodyError: "invalid_body", summary: "Validate a Rego data document (structural checks and an OPA compile)" },
  { method: "GET", path: "/policy-templates", action: "policies.templates", summary: "The policy template catalogue" },
  { method: "GET", path: "/zones/:zoneId/policies", action: "policies.list", summary: "List policies" },
  { method: "POST", path: "/zones/:zoneId/policies", action: "policies.create", bodyError: "invalid_body", summary: "Create a policy and its version 1" },
  { method: "GET", path: "/zones/:zoneId/policies/:id", action: "policies.get", summary: "Get a policy with its versions" },
  { method: "DELETE", path: "/zones/:zoneId/policies/:id", action: "policies.remove", summary: "Archive a policy" },
  { method: "POST", path: "/zones/:zoneId/policies/:id/versions", action: "policies.createVersion", bodyError: "invalid_body", summary: "Add an immutable policy version" },
  { method: "GET", path: "/zones/:zoneId/policy-sets", action: "policies.listSets", summary: "List policy sets" },
  { method: "POST", path: "/zones/:zoneId/policy-sets", action: "policies.createSet", bodyError: "invalid_body", summary: "Create a policy set" },
  { method: "GET", path: "/zones/:zoneId/policy-sets/:id", action: "policies.getSet", summary: "Get a policy set" },
  { method: "DELETE", path: "/zones/:zoneId/policy-sets/:id", action: "policies.removeSet", summary: "Archive a policy set (deactivating it)" },
  { method: "POST", path: "/zones/:zoneId/policy-sets/:id/versions", action: "policies.createSetVersion", bodyError: "invalid_body", summary: "Add a policy-set version (manifest)" },
  { method: "GET", path: "/zones/:zoneId/policy-sets/:id/versions", action: "policies.listSetVersions", summary: "List a policy set's versions" },
  { method: "GET", path: "/zones/:zoneId/policy-sets/:id/versions/:versionId", action: "policies.getSetVersion", summary: "Get a policy-set version" },
  { method: "POST", path: "/zones/:zoneId/policy-sets/:id/activate", action: "policies.activateSet", bodyError: "invalid_body", summary: "Activate a policy-set version (202, asynchronous)" },
  { method: "GET", path: "/zones/:zoneId/policy-sets/:id/activation-status", action: "policies.activationStatus", summary: "Propagation status of an activation" },
  { method: "GET", path: "/zones/:zoneId/sessions", action: "sessions.listSessions", summary: "List subject sessions (format=csv exports them)" },
  { method: "GET", path: "/zones/:zoneId/agent-sessions", action: "sessions.listAgentSessions", summary: "List agent sessions (format=csv exports them)" },
  { method: "GET", path: "/zones/:zoneId/step-up-challenges", action: "sessions.listChallenges", summary: "List step-up challenges" },
  { method: "GET", path: "/zones/:zoneId/step-up-challenges/:id", action: "sessions.getChallenge", summary: "Get a step-up challenge" },
  { method: "POST", path: "/zones/:zoneId/step-up-challenges/:id/satisfy", action: "sessions.satisfyChallenge", summary: "Approve a pending step-up challenge (not by its own session's subject)" },

  { method: "POST", path: "/zones/:zoneId/policy-sets/:id/simulate", action: "policies.simulate", bodyError: "invalid_body", summary: "Dry-run a policy-set version, executing it with OPA when an input is given" },

  { method: "GET", path: "/zones/:zoneId/grants", action: "grants.list", summary: "List delegated grants (filters: application_id, user_id/subject_id, resource_id, provider_id, status, scopes)" },
  { method: "POST", path: "/zones/:zoneId/grants", action: "grants.create", bodyError: "invalid_body", summary: "Create a delegated grant" },
  { method: "GET", path: "/zones/:zoneId/grants/:id", action: "grants.get", summary: "Get a delegated grant" },
  { method: "DELETE", path: "/zones/:zoneId/grants/:id", action: "grants.revoke", summary: "Revoke a delegated grant (announced for session revocation)" },
  { method: "POST", path: "/zones/:zoneId/provider-grants", action: "grants.createProviderGrant", bodyError: "invalid_provider_grant", summary: "Import upstream tokens as the active provider grant (upsert)" },
  { method: "POST", path: "/zones/:zoneId/provider-grants/oauth/authorize", action: "grants.authorize", bodyError: "invalid_provider_oauth_authorize", summary: "Start the OAuth authorization-code flow (PKCE)" },
  { method: "GET", path: "/zones/:zoneId/provider-grants/oauth/callback", action: "grants.callback", summary: "OAuth redirect target: exchange the code, store the provider grant", public: true, negotiates: true },
  { method: "POST", path: "/zones/:zoneId/provider-grants/revoke", action: "grants.revokeProviderGrant", bodyError: "invalid_provider_grant_revoke", summary: "Revoke the active provider grant" },

  { method: "GET", path: "/zones/:zoneId/audit", action: "audit.list", summary: "Decision audit events (filters, fields, CSV export)" },
  { method: "GET", path: "/zones/:zoneId/audit/by-request/:requestId", action: "audit.byRequest", summary: "Every decision event of one request, oldest first" },
  { method: "GET", path: "/zones/:zoneId/audit/by-request/:requestId/explain", action: "audit.explain", summary: "Decision trace of one request, with the policy input of each denial" },
  { method: "GET", path: "/zones/:zoneId/admin-audit", action: "audit.listAdmin", summary: "Admin audit records of a zone (filters, fields, CSV export)" },
  { method: "GET", path: "/zones/:zoneId/admin-audit/verify", action: "audit.verifyAdmin", summary: "Recompute the zone's admin-audit hash chain and report the first broken record" },
  { method: "GET", path: "/zones/:zoneId/events", action: "audit.listZoneEvents", summary: "The zone's change events, newest first" },
  { method: "GET", path: "/zones/:zoneId/events/stream", action: "audit.zoneEventStream", raw: "zoneEventStream", summary: "The zone's change events live (server-sent events, resumable with Last-Event-ID)" },
  { method: "GET", path: "/zones/:zoneId/overview", action: "audit.overview", summary: "Counts, decisions of the last 24 hours and recent audit events of a zone" },
  { method: "GET", path: "/audit-retention", action: "audit.getRetention", summary: "Audit retention in days" },
  { method: "PUT", path: "/audit-retention", action: "audit.putRetention", bodyError: "invalid_body", summary: "Set the audit retention in days" },
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

const recent = new Map<string, RouteDef | null>();

/** The route serving `method path`; remembered, since every request asks two or three times. */
export function routeFor(method: string, path: string): RouteDef | undefined {
  const key = `${method} ${path}`;
  let hit = recent.get(key);
  if (hit === undefined) {
    hit = compiled.find((c) => c.route.method === method && c.pattern.test(path))?.route ?? null;
    if (recent.size > 10_000) recent.clear();
    recent.set(key, hit);
  }
  return hit ?? undefined;
}
