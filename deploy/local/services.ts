// Which Moleculer services each deployable process runs; the gateway process also keeps admin tokens.
import type { ServiceSchema } from "moleculer";

export const PROCESSES: Record<string, () => Promise<ServiceSchema<any, any, any, any>[]>> = {
  gateway: async () => [(await import("../../gateway/api.service")).default, (await import("../../gateway/admin-tokens.service")).default],
  zones: async () => [(await import("../../services/zones/zones.service")).default],
  applications: async () => [(await import("../../services/applications/applications.service")).default],
  providers: async () => [(await import("../../services/providers/providers.service")).default],
  policies: async () => [(await import("../../services/policies/policies.service")).default],
  grants: async () => [(await import("../../services/grants/grants.service")).default],
  audit: async () => [(await import("../../services/audit/audit.service")).default],
  sessions: async () => [(await import("../../services/sessions/sessions.service")).default],
};

export const processNames = (): string[] => Object.keys(PROCESSES);
