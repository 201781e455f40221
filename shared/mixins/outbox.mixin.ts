// Runs this service's outbox relay and gives actions the helpers to attach signed events to a write.
import type { Context, ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { config } from "../config";
import { redisClient } from "../redis";
import { OutboxRelay, outboxHealth, hintWritten } from "../outbox/relay";
import { outboxEntry, type OutboxEntry } from "../outbox/entry";
import type { FlatFields } from "../signing";
import type { Actor } from "../actor";

export const ZONE_EVENTS_STREAM = "caracal.zone.events";

export type ZoneEventAction = "created" | "updated" | "deleted";

export interface OutboxMethods {
  event(ctx: Context<any, any>, stream: string, payload: FlatFields): OutboxEntry;
  zoneEvent(ctx: Context<any, any>, zoneId: string, entityType: string, entityId: string, action: ZoneEventAction, extra?: FlatFields): OutboxEntry;
  /**
   * Call after every write that added outbox entries (model name as given to OutboxMixin, the
   * document id, how many entries): leaves the relay a hint and asks it for a pass.
   */
  outboxKick(model: string, id: string, count?: number): Promise<void>;
}

/** `models` names the models (from MongoMixin) whose documents carry outbox entries. */
export function OutboxMixin(models: string[]): Partial<ServiceSchema> {
  return {
    actions: {
      /** Pending/dead counts and ages, read by the gateway for /ready and /metrics. */
      outboxHealth: {
        visibility: "public",
        async handler(this: any) {
          return outboxHealth(this.outboxRedis, models.map((m) => this.models[m] as Model<any>));
        },
      },
    },
    methods: {
      event(ctx: Context<any, any>, stream: string, payload: FlatFields): OutboxEntry {
        return outboxEntry(stream, payload, ctx.requestID ?? null);
      },
      zoneEvent(this: any, ctx: Context<any, any>, zoneId: string, entityType: string, entityId: string, action: ZoneEventAction, extra: FlatFields = {}): OutboxEntry {
        const actor = (ctx.meta as { actor?: Actor }).actor;
        return outboxEntry(
          ZONE_EVENTS_STREAM,
          {
            zone_id: zoneId,
            entity_type: entityType,
            entity_id: entityId,
            action,
            actor_id: actor?.id ?? "system",
            request_id: ctx.requestID ?? null,
            occurred_at: new Date().toISOString(),
            ...extra,
          },
          ctx.requestID ?? null,
        );
      },
      async outboxKick(this: any, model: string, id: string, count = 1) {
        // A lost hint only delays the publish until the relay's sweep; the write already holds its events.
        await hintWritten(this.outboxRedis, this.models[model], id, count).catch((err: Error) => this.logger.warn({ err: err.message }, "outbox hint not recorded"));
        this.relay?.kick();
      },
    },
    started(this: any) {
      const cfg = config();
      const redis = redisClient(this.settings?.redisUrl ?? cfg.redisUrl);
      this.outboxRedis = redis;
      OutboxRelay.install(redis);
      const key = cfg.streamsHmacKeys[0] ?? null;
      this.relay = new OutboxRelay(models.map((m) => this.models[m]), redis, key, { ...cfg.outbox, ...(this.settings?.outbox ?? {}) }, this.logger);
      if (this.settings?.outboxRelay !== false) this.relay.start();
    },
    async stopped(this: any) {
      await this.relay?.stop();
    },
  };
}
