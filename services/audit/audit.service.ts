// Audit: decision audit ingest and reads, the admin-audit hash chain, the zone events feed, the zone
// overview and audit retention. Owns `audit_events`, `audit_ingest_alerts`, `admin_audit_events`,
// `admin_audit_heads`, `zone_events` and `audit_retention`; every row arrives through a Redis stream.
import type { ServiceSchema } from "moleculer";
import { config, streamName } from "../../shared/config";
import { redisClient } from "../../shared/redis";
import { AppError } from "../../shared/errors";
import { RETENTION_BODY } from "./audit.api";
import { adminAuditStream } from "../../shared/admin-audit";
import { ZONE_EVENTS_STREAM } from "../../shared/mixins/outbox.mixin";
import { MongoMixin } from "../../shared/mixins/mongo.mixin";
import { StreamConsumer, consumerName, sigVerifier } from "../../shared/streams/consumer";
import type { ApiContext, RouteParams } from "../../shared/meta";
import { auditEventSchema, ingestAlertSchema } from "./models/audit-event.model";
import { adminAuditSchema, chainHeadSchema } from "./models/admin-audit.model";
import { zoneEventSchema } from "./models/zone-event.model";
import { retentionSchema, RETENTION_ID } from "./models/retention.model";
import { auditVerifier, ingestAdminRecords, ingestDecisions, ingestZoneEvents } from "./ingest";
import { enforceRetention, retentionSetting } from "./retention";
import { decisionActions } from "./decisions.actions";
import { adminAuditActions } from "./admin-audit.actions";
import { zoneEventActions } from "./zone-events.actions";
import { overviewActions } from "./overview.actions";
import type { AuditMembers, AuditService } from "./context";

/** The runtime's decision stream (reference-ops §1.1); its DLQ is `<stream>.dlq`. */
export const AUDIT_EVENTS_STREAM = "caracal.audit.events";

/** Consumer groups (the reference's name for the decision stream); every instance joins the same ones. */
export const GROUPS = { decisions: "audit-ingestor", admin: "audit-admin", zoneEvents: "audit-zone-events" } as const;

const HANDOFF_TRIM_MS = 60_000;
const DECISION_BATCH = 1000;
const AUDIT_BUCKET = 64;

const AuditServiceSchema: ServiceSchema<any, AuditMembers> = {
  name: "audit",
  mixins: [
    MongoMixin(
      {
        AuditEvent: { schema: auditEventSchema, collection: "audit_events" },
        IngestAlert: { schema: ingestAlertSchema, collection: "audit_ingest_alerts" },
        AdminAudit: { schema: adminAuditSchema, collection: "admin_audit_events" },
        ChainHead: { schema: chainHeadSchema, collection: "admin_audit_heads" },
        ZoneEvent: { schema: zoneEventSchema, collection: "zone_events" },
        Retention: { schema: retentionSchema, collection: "audit_retention" },
      },
      // Decision rows in buckets of 64: a page of 100 then decodes ~130 rows on average instead of ~230 with
      // the default 256, and the store's decode is what a page costs (bench/audit.ts: page 1 p50 at 20,000
      // rows 89 ms against 222 ms). Marks are one per 64 rows: 15,600 for a million, read once per process.
      // The newest 2,048 rows are read from the store, not the row cache: two instances' ingest batches (up to 1,000
      // each) may still be filling their buckets.
      { listed: ["AuditEvent", "AdminAudit", "ZoneEvent"], listOptions: { AuditEvent: { bucketSize: AUDIT_BUCKET, openRows: 2 * DECISION_BATCH + 48 } } },
    ),
  ],

  settings: {
    /** Tests turn the stream consumers off to show what happens while the service is down. */
    consumers: true,
    retentionSweepMs: undefined as number | undefined,
  },

  actions: {
    ...decisionActions,
    ...adminAuditActions,
    ...zoneEventActions,
    ...overviewActions,

    getRetention: {
      async handler(this: AuditService) {
        return retentionSetting(this);
      },
    },

    putRetention: {
      params: { body: RETENTION_BODY },
      async handler(this: AuditService, ctx: ApiContext<RouteParams<{}, { retention_days: number }>>) {
        const max = config().audit.retentionMaxDays;
        const days = ctx.params.body.retention_days;
        if (days > max) throw new AppError(400, "retention_above_limit", `retention_days may be at most ${max}`, { max_days: max });
        await this.locked(this.models.Retention, RETENTION_ID, () =>
          this.models.Retention.updateOne({ _id: RETENTION_ID }, { $set: { retention_days: days, updated_at: new Date() } }, { upsert: true }),
        );
        return retentionSetting(this);
      },
    },

    /** Internal: one retention pass now (the timer runs the same). */
    retentionPass: {
      visibility: "public",
      params: { now: { type: "number", optional: true } },
      async handler(this: AuditService, ctx: ApiContext<{ now?: number }>) {
        return enforceRetention(this, ctx.params.now);
      },
    },

    /** Internal: what the consumers have done (for tests, the bench and operators). */
    ingestStats: {
      visibility: "public",
      handler(this: any) {
        return { ...Object.fromEntries(Object.entries(this.consumers as Record<string, StreamConsumer>).map(([k, c]) => [k, c.stats])), zoneEventsDropped: this.droppedZoneEvents.count };
      },
    },
  },

  methods: {
    /** Keeps the hand-off stream to what is not yet stored: entries below the oldest unacknowledged go. */
    async trimHandoff(this: any) {
      const stream = adminAuditStream();
      const group = GROUPS.admin;
      const pending = (await this.redis.xpending(stream, group)) as [number, string | null, string | null, unknown];
      let minId = Number(pending[0]) > 0 ? pending[1] : null;
      if (!minId) {
        const groups = (await this.redis.xinfo("GROUPS", stream)) as unknown[][];
        for (const g of groups) {
          const info: Record<string, unknown> = {};
          for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1];
          if (info.name === group) minId = String(info["last-delivered-id"]);
        }
      }
      if (minId && minId !== "0-0") await this.redis.xtrim(stream, "MINID", minId);
    },
  },

  created(this: any) {
    this.consumers = {};
    /** Zone-event entries dropped for a bad signature (not ours). */
    this.droppedZoneEvents = { count: 0 };
  },

  async started(this: any) {
    const cfg = config();
    this.redis = redisClient(this.settings.redisUrl ?? cfg.redisUrl);
    this.keyPrefix = `${this.db.name}:`;
    this.auditKey = cfg.auditHmacKey;
    if (this.settings.consumers === false) return;
    const common = {
      redis: this.redis,
      consumer: consumerName(this.broker.nodeID),
      claimIdleMs: cfg.audit.claimIdleMs,
      maxDeliveries: cfg.audit.maxDeliveries,
      dlqKey: cfg.streamsHmacKeys[0] ?? null,
      logger: this.logger,
    };
    this.consumers = {
      decisions: new StreamConsumer({
        ...common,
        stream: streamName(AUDIT_EVENTS_STREAM),
        group: GROUPS.decisions,
        startId: "$",
        // Large batches: one sequence reservation, one mark update and two inserts per zone per 1,000 events.
        batch: DECISION_BATCH,
        verify: auditVerifier(cfg.auditHmacKey),
        // The store's statistics follow the growth through MongoMixin's maintenance (every 30 s, by thresholds).
        handle: (entries) => ingestDecisions(this, entries),
      }),
      admin: new StreamConsumer({
        ...common,
        stream: adminAuditStream(),
        group: GROUPS.admin,
        startId: "0",
        verify: sigVerifier(cfg.streamsHmacKeys),
        handle: (entries) => ingestAdminRecords(this, entries),
      }),
      zoneEvents: new StreamConsumer({
        ...common,
        stream: streamName(ZONE_EVENTS_STREAM),
        group: GROUPS.zoneEvents,
        startId: "$",
        handle: (entries) => ingestZoneEvents(this, entries, streamName(ZONE_EVENTS_STREAM), cfg.streamsHmacKeys, this.droppedZoneEvents),
      }),
    };
    for (const c of Object.values(this.consumers) as StreamConsumer[]) await c.start();
    const sweepMs = this.settings.retentionSweepMs ?? cfg.audit.retentionSweepMs;
    this.retentionTimer = setInterval(() => void enforceRetention(this).catch((err: Error) => this.logger.warn({ err: err.message }, "audit retention pass failed")), sweepMs);
    this.retentionTimer.unref?.();
    this.trimTimer = setInterval(() => void this.trimHandoff().catch(() => undefined), HANDOFF_TRIM_MS);
    this.trimTimer.unref?.();
  },

  async stopped(this: any) {
    clearInterval(this.retentionTimer);
    clearInterval(this.trimTimer);
    // Before the store closes (the mixin's stopped runs after this one): the batches in hand finish.
    await Promise.all((Object.values(this.consumers) as StreamConsumer[]).map((c) => c.stop()));
  },
};

export default AuditServiceSchema;
