// The zone overview (§6): counts from the services that own them, decisions and recent events from here.
import { pathParams } from "../../shared/validation";
import { parseListQuery } from "../../shared/pagination";
import type { ApiContext, RouteParams } from "../../shared/meta";
import { decisions24h } from "./ingest";
import { storedEvent } from "./decisions.actions";
import { redact } from "./redact";
import type { AuditEventDoc } from "./models/audit-event.model";
import type { AuditService } from "./context";

interface AppStats { total: number; expired: number; expiring_soon: number }
interface ProviderStats { resources: { total: number; unenforced: number }; providers: { total: number } }
interface PolicyStats { total: number; enforcing: number; active_name: string | null }

const STATS_TIMEOUT_MS = 5000;

export const overviewActions = {
  overview: {
    params: { params: pathParams("zoneId") },
    async handler(this: AuditService, ctx: ApiContext<RouteParams<{ zoneId: string }>>) {
      const zoneId = ctx.params.params.zoneId;
      const stats = <T>(action: string) => ctx.call<T, { zone_id: string }>(action, { zone_id: zoneId }, { timeout: STATS_TIMEOUT_MS });
      const [apps, providers, policies, sessions, decisions, recent] = await Promise.all([
        stats<AppStats>("applications.zoneStats"),
        stats<ProviderStats>("providers.zoneStats"),
        stats<PolicyStats>("policies.zoneStats"),
        // The sessions service is optional in a deployment: without it there are no sessions to count.
        stats<{ active: number }>("sessions.zoneStats").catch((err: Error) => {
          if (err.name === "ServiceNotFoundError") return { active: 0 };
          throw err;
        }),
        decisions24h(this, zoneId),
        this.listRows<AuditEventDoc>("AuditEvent", zoneId, parseListQuery({ limit: "10" }), { tsField: "occurred_at" }),
      ]);
      return {
        zone_id: zoneId,
        generated_at: new Date().toISOString(),
        applications: { total: apps.total, expired: apps.expired, expiring_soon: apps.expiring_soon },
        resources: providers.resources,
        providers: providers.providers,
        policy_sets: { total: policies.total, enforcing: policies.enforcing, active_name: policies.active_name },
        sessions: { active: sessions.active },
        decisions_24h: decisions,
        recent_events: recent.rows.slice(0, 10).map((d) => {
          const e = storedEvent(d);
          return { id: e.id, event_type: e.event_type, request_id: e.request_id, decision: e.decision, metadata_json: e.metadata_json === null ? null : redact(e.metadata_json), occurred_at: e.occurred_at };
        }),
      };
    },
  },
};
