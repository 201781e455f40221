// What the gateway runs for the audit service: the admin-audit hand-off and the live zone event streams.
// Kept out of api.service.ts so the gateway file only hooks them in.
import type Redis from "ioredis";
import type { ServiceBroker } from "moleculer";
import type { IncomingMessage, ServerResponse } from "node:http";
import { config, streamName } from "../shared/config";
import { adminAuditStream } from "../shared/admin-audit";
import { ZONE_EVENTS_STREAM } from "../shared/mixins/outbox.mixin";
import { PATH_ID_PATTERN } from "../shared/ids";
import { AppError } from "../shared/errors";
import { AdminAuditHandoff, type HandoffLogger } from "./admin-audit";
import { ZoneEventStreams } from "./zone-events-stream";

export interface AuditHooks {
  adminAudit: AdminAuditHandoff;
  zoneStreams: ZoneEventStreams;
}

export function startAuditHooks(redis: Redis, broker: ServiceBroker, logger: HandoffLogger): AuditHooks {
  const cfg = config();
  return {
    adminAudit: new AdminAuditHandoff(redis, adminAuditStream(), cfg.streamsHmacKeys[0] ?? null, logger),
    zoneStreams: new ZoneEventStreams(redis, streamName(ZONE_EVENTS_STREAM), cfg.streamsHmacKeys, broker, { heartbeatMs: cfg.audit.sseHeartbeatMs, maxBufferBytes: cfg.audit.sseClientBufferBytes }, logger),
  };
}

/** Ends the live streams and writes the queued records (bounded wait); the streams may already be stopped. */
export async function stopAuditHooks(hooks: Partial<AuditHooks>): Promise<void> {
  await hooks.zoneStreams?.stop();
  await hooks.adminAudit?.drain();
  hooks.adminAudit?.stop();
}

/** The moleculer-web alias of a raw route: the api service method named by the route table. */
export const rawAlias = (method: string) =>
  function (this: Record<string, (req: IncomingMessage, res: ServerResponse) => unknown>, req: IncomingMessage, res: ServerResponse) {
    return this[method]!(req, res);
  };

/**
 * GET /v1/zones/:zoneId/events/stream, after the v1 route's admission (auth and gates) ran. A zone that does
 * not exist (or is archived) is 404 `zone_not_found`: there is nothing to follow. HEAD gets the headers only.
 */
export function serveZoneEventStream(hooks: AuditHooks & { broker: ServiceBroker }, req: IncomingMessage & { $params?: { params?: Record<string, string> }; $method?: string }, res: ServerResponse, fail: (err: unknown) => void): void {
  const zoneId = req.$params?.params?.zoneId ?? "";
  if (!PATH_ID_PATTERN.test(zoneId)) return fail(new AppError(400, "invalid_params", "A path parameter is malformed", { issues: [{ path: ["zoneId"], message: "must match ^[A-Za-z0-9_.\\-:]{1,128}$" }] }));
  void (async () => {
    const zone = await hooks.broker.call<{ archived: boolean } | null, { id: string }>("zones.resolve", { id: zoneId });
    if (!zone || zone.archived) throw new AppError(404, "zone_not_found", "zone not found");
    if (req.$method === "HEAD") {
      res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store" });
      return void res.end();
    }
    await hooks.zoneStreams.serve(req, res, zoneId);
  })().catch((err) => (res.headersSent ? res.end() : fail(err)));
}
