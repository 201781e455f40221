// Every service's schema module, by the service name the route table uses: /docs documents each route
// from these. A new service adds its module here; a new route of a listed service needs nothing here.
import type { ServiceApi } from "../shared/api-doc";
import { ADMIN_TOKENS_API } from "./admin-tokens.api";
import { ZONES_API } from "../services/zones/zones.api";
import { APPLICATIONS_API } from "../services/applications/applications.api";
import { PROVIDERS_API } from "../services/providers/providers.api";
import { POLICIES_API } from "../services/policies/policies.api";
import { GRANTS_API } from "../services/grants/grants.api";
import { AUDIT_API } from "../services/audit/audit.api";
import { SESSIONS_API } from "../services/sessions/sessions.api";

export const API_MODULES: Record<string, ServiceApi> = {
  adminTokens: ADMIN_TOKENS_API,
  zones: ZONES_API,
  applications: APPLICATIONS_API,
  providers: PROVIDERS_API,
  policies: POLICIES_API,
  grants: GRANTS_API,
  audit: AUDIT_API,
  sessions: SESSIONS_API,
};
