// Runs this service's outbox relay and gives actions the helpers to attach signed events to a write.
import type { Context, ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { config } from "../config";
import { redisClient } from "../redis";
import { OutboxRelay, outboxHealth } from "../outbox/relay";
import { outboxEntry, type OutboxEntry } from "../outbox/entry";
import type { FlatFields } from "../signing";
import type { Actor } from "../actor";
import { newId, seededId } from "../ids";

/** ctx.meta.idempotency as the gateway sets it for a request with an Idempotency-Key. */
interface IdempotencyMeta {
  key: string;
  at: number;
}

const idempotencyOf = (ctx: Context<any, any>): IdempotencyMeta | undefined => (ctx.meta as { idempotency?: IdempotencyMeta }).idempotency;

export const ZONE_EVENTS_STREAM = "caracal.zone.events";

export type ZoneEventAction = "created" | "updated" | "deleted";

export interface OutboxMethods {
  event(ctx: Context<any, any>, stream: string, payload: FlatFields): OutboxEntry;
  zoneEvent(ctx: Context<any, any>, zoneId: string, entityType: string, entityId: string, action: ZoneEventAction, extra?: FlatFields): OutboxEntry;
  /**
   * Call after every write that added outbox entries (model name as given to OutboxMixin, the
   * document id, the entries written): publishes them now, or leaves the relay a hint when it cannot.
   * `stored`, when the write returned the document (findOneAndUpdate), lets the recorder write the
   * publish back without reading it again.
   */
  outboxKick(model: string, id: string, entries: OutboxEntry[] | undefined, stored?: object | null): Promise<void>;
  /** The entries of a document as they stand, including publish results not yet written back. */
  currentOutbox(model: string, id: string, entries: OutboxEntry[] | undefined): Promise<OutboxEntry[]>;
  /**
   * The id of what this request creates: random, or for a request with an Idempotency-Key derived from
   * the key (and `slot`, when one request creates several things), so every attempt picks the same one.
   */
  entityId(ctx: Context<any, any>, slot?: string): string;
  /** What an earlier attempt of this idempotent request already created under `id` (null otherwise, or without a key). */
  priorCreate<T>(ctx: Context<any, any>, model: string, id: string): Promise<T | null>;
  /** Whether this document already carries the events of an earlier attempt of this idempotent request. */
  appliedBefore(ctx: Context<any, any>, doc: object | null | undefined): boolean;
}

/** Stamps an entry with the request's Idempotency-Key scope, so a retry can tell its write was done. */
function marked(ctx: Context<any, any>, entry: OutboxEntry): OutboxEntry {
  const idem = idempotencyOf(ctx);
  return idem ? { ...entry, idempotency_key: idem.key } : entry;
}

/** `models` names the models (from MongoMixin) whose documents carry outbox entries. */
export function OutboxMixin(models: string[], options: { keepDispatched?: Record<string, number> } = {}): Partial<ServiceSchema> {
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
        return marked(ctx, outboxEntry(stream, payload, ctx.requestID ?? null));
      },
      zoneEvent(this: any, ctx: Context<any, any>, zoneId: string, entityType: string, entityId: string, action: ZoneEventAction, extra: FlatFields = {}): OutboxEntry {
        const actor = (ctx.meta as { actor?: Actor }).actor;
        return marked(ctx, outboxEntry(
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
        ));
      },
      entityId(this: any, ctx: Context<any, any>, slot = "") {
        const idem = idempotencyOf(ctx);
        return idem ? seededId(idem.at, `${idem.key}:${this.name}:${slot}`) : newId();
      },
      async priorCreate(this: any, ctx: Context<any, any>, model: string, id: string) {
        if (!idempotencyOf(ctx)) return null;
        return this.models[model].findById(id).lean();
      },
      appliedBefore(ctx: Context<any, any>, doc: object | null | undefined) {
        const idem = idempotencyOf(ctx);
        const entries = (doc as { _outbox?: OutboxEntry[] } | null | undefined)?._outbox;
        return Boolean(idem && entries?.some((e) => e.idempotency_key === idem.key));
      },
      async outboxKick(this: any, model: string, id: string, entries: OutboxEntry[] | undefined, stored?: object | null) {
        // The write already holds its events: whatever fails here only delays them until the relay's sweep.
        await (this.relay as OutboxRelay).publishWritten(this.models[model], id, entries ?? [], stored as any).catch((err: Error) => this.logger.warn({ err: err.message }, "outbox publish after write failed; the relay will retry"));
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
      const keepByCollection = Object.fromEntries(Object.entries(options.keepDispatched ?? {}).map(([m, n]) => [this.models[m].collection.name, n]));
      this.relay = new OutboxRelay(models.map((m) => this.models[m]), redis, key, { ...cfg.outbox, streamPrefix: cfg.streamPrefix, keepDispatchedFor: keepByCollection, ...(this.settings?.outbox ?? {}) }, this.logger);
      if (this.settings?.outboxRelay !== false) this.relay.start();
    },
    async stopped(this: any) {
      await this.relay?.stop();
    },
  };
}
