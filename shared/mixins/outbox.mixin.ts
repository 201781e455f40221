// Runs this service's outbox relay and gives actions the helpers to attach signed events to a write.
import type { Context, ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { config } from "../config";
import { redisClient } from "../redis";
import { OutboxRelay, outboxHealth } from "../outbox/relay";
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
   * document id, the entries written): publishes them now, or leaves the relay a hint when it cannot.
   */
  outboxKick(model: string, id: string, entries: OutboxEntry[] | undefined): Promise<void>;
  /** The entries of a document as they stand, including publish results not yet written back. */
  currentOutbox(model: string, id: string, entries: OutboxEntry[] | undefined): Promise<OutboxEntry[]>;
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
      async outboxKick(this: any, model: string, id: string, entries: OutboxEntry[] | undefined) {
        // The write already holds its events: whatever fails here only delays them until the relay's sweep.
        await (this.relay as OutboxRelay).publishWritten(this.models[model], id, entries ?? []).catch((err: Error) => this.logger.warn({ err: err.message }, "outbox publish after write failed; the relay will retry"));
      },
      async currentOutbox(this: any, model: string, id: string, entries: OutboxEntry[] | undefined) {
        return (this.relay as OutboxRelay).currentEntries(this.models[model], id, entries ?? []);
      },
    },
    started(this: any) {
      const cfg = config();
      const redis = redisClient(this.settings?.redisUrl ?? cfg.redisUrl);
      this.outboxRedis = redis;
      OutboxRelay.install(redis);
      const key = cfg.streamsHmacKeys[0] ?? null;
      this.relay = new OutboxRelay(models.map((m) => this.models[m]), redis, key, { ...cfg.outbox, streamPrefix: cfg.streamPrefix, ...(this.settings?.outbox ?? {}) }, this.logger);
      if (this.settings?.outboxRelay !== false) this.relay.start();
    },
    async stopped(this: any) {
      await this.relay?.stop();
    },
  };
}
