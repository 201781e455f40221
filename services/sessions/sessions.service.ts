// Sessions: subject sessions, agent sessions and step-up challenges, ingested from the runtime's streams,
// read through the API, and revoked by the flows other services' zone events cause.
import type { ServiceSchema } from "moleculer";
import type { Model } from "mongoose";
import { MongoMixin, type MongoMethods } from "../../shared/mixins/mongo.mixin";
import { OutboxMixin, ZONE_EVENTS_STREAM, type OutboxMethods } from "../../shared/mixins/outbox.mixin";
import { StreamConsumer, consumerName, sigVerifier, type StreamEntry, type Outcome } from "../../shared/streams/consumer";
import { tryDocLock } from "../../shared/doc-lock";
import { redisClient } from "../../shared/redis";
import { config, streamName } from "../../shared/config";
import type { OutboxEntry } from "../../shared/outbox/entry";
import { AGENTS_STREAM, CHALLENGES_STREAM, SESSIONS_STREAM } from "./entries";
import { sessionSchema, type SessionDoc } from "./models/session.model";
import { agentSessionSchema, type AgentSessionDoc } from "./models/agent-session.model";
import { challengeSchema, type ChallengeDoc } from "./models/challenge.model";
import { closedZoneSchema, effectSchema, heldSchema, type ClosedZoneDoc, type EffectDoc, type HeldDoc } from "./models/support.model";
import { activeKeys, type IngestHost, type ZoneGate } from "./ingest/host";
import { ingestSessions } from "./ingest/sessions";
import { AgentIngest } from "./ingest/agents";
import { ingestChallenges } from "./ingest/challenges";
import { HeldEntries } from "./ingest/held";
import { Revocations, isRevocationCause, reapClosedZones, type RevocationHost } from "./revocations";
import { listActions } from "./lists.actions";
import { challengeActions } from "./challenges.actions";

/** How long a zone's gate (open, archived) is remembered; an unknown zone is asked again sooner. */
const ZONE_GATE_MS = 30_000;
const UNKNOWN_ZONE_MS = 5_000;
/** Held entries whose target exists by now are applied at least this often (a full read of a small collection). */
const HELD_SWEEP_MS = 5_000;
const LIST_BUCKET = 64;
const LIST_OPEN_ROWS = 1024;

interface Models {
  Session: Model<SessionDoc>;
  AgentSession: Model<AgentSessionDoc>;
  Challenge: Model<ChallengeDoc>;
  Held: Model<HeldDoc>;
  Effect: Model<EffectDoc>;
  ClosedZone: Model<ClosedZoneDoc>;
}

interface Methods extends MongoMethods, OutboxMethods {
  zoneGate(zoneId: string): Promise<ZoneGate>;
  host(): RevocationHost;
  dispatch(stream: string, entries: StreamEntry[]): Promise<(Outcome | undefined)[]>;
  reap(): Promise<{ zones: number; expired: number }>;
  sweepHeld(): Promise<{ held: number; released: number }>;
  rebuildActive(zoneId: string): Promise<void>;
}

const SessionsService: ServiceSchema<{ reaperMs?: number }, Methods> = {
  name: "sessions",
  mixins: [
    MongoMixin(
      {
        Session: { schema: sessionSchema, collection: "sessions" },
        AgentSession: { schema: agentSessionSchema, collection: "agent_sessions" },
        Challenge: { schema: challengeSchema, collection: "step_up_challenges" },
        Held: { schema: heldSchema, collection: "sessions_held_entries" },
        Effect: { schema: effectSchema, collection: "sessions_effects" },
        ClosedZone: { schema: closedZoneSchema, collection: "sessions_closed_zones" },
      },
      {
        listed: ["Session", "AgentSession", "Challenge"],
        // Pages of 100 over buckets of 64 read ~2 buckets (~130 rows decoded) rather than 1–3 of 256; the
        // newest rows (an ingest batch per zone, two batches at once, and margin) are never served cached.
        listOptions: { Session: { bucketSize: LIST_BUCKET, openRows: LIST_OPEN_ROWS }, AgentSession: { bucketSize: LIST_BUCKET, openRows: LIST_OPEN_ROWS } },
      },
    ),
    OutboxMixin(["Challenge", "Effect"]),
  ],

  actions: {
    ...listActions,
    ...challengeActions,

    /** Internal (zone overview): sessions with status active and expires_at in the future, from the zone's index. */
    zoneStats: {
      visibility: "public",
      params: { zone_id: "string" },
      async handler(ctx) {
        const zoneId = (ctx.params as { zone_id: string }).zone_id;
        const redis = redisClient();
        const keys = activeKeys(this.host(), zoneId);
        const now = Date.now();
        const [complete, active] = await Promise.all([redis.exists(keys.complete), redis.zcount(keys.active, `(${now}`, "+inf")]);
        // Expired members only cost memory: dropped now and then, here where they are counted.
        if (Math.random() < 0.05) void redis.zremrangebyscore(keys.active, "-inf", now).catch(() => undefined);
        if (!complete) void this.rebuildActive(zoneId).catch((err: Error) => this.logger.warn({ err: err.message, zone_id: zoneId }, "active index rebuild failed"));
        return { active };
      },
    },

    /** Internal: what the consumers did and what waits, for tests, benches and operators. */
    ingestStats: {
      visibility: "public",
      async handler() {
        const consumers = await Promise.all(
          (this.consumers as StreamConsumer[]).map(async (c) => ({ stream: c.stream, ...c.stats, pending: await c.pending().catch(() => -1) })),
        );
        return { consumers, held: await this.models.Held.countDocuments({}) };
      },
    },

    /** Internal: one reaper pass and one held-entries sweep now (tests; the timers run them too). */
    housekeeping: {
      visibility: "public",
      async handler() {
        return { reaped: await this.reap(), held: await this.sweepHeld() };
      },
    },
  },

  events: {
    /** Another instance saw a zone close: stop accepting for it here too. */
    "sessions.zoneClosed"(this: any, ctx: { params: { zone_id: string } }) {
      this.gateCache.set(ctx.params.zone_id, { gate: "zone_archived", until: Date.now() + ZONE_GATE_MS });
    },
  },

  methods: {
    /**
     * Whether new sessions, agent sessions and challenges are accepted for a zone: a zone closed here (its
     * deletion event came) or archived or unknown to the zones service is refused.
     */
    async zoneGate(this: any, zoneId: string): Promise<ZoneGate> {
      const hit = this.gateCache.get(zoneId);
      if (hit && hit.until > Date.now()) return hit.gate;
      let gate: ZoneGate = null;
      if (await (this.models as Models).ClosedZone.findById(zoneId, { _id: 1 }).lean()) gate = "zone_archived";
      else {
        const zone = await this.broker.call("zones.resolve", { id: zoneId });
        if (!zone) gate = "zone_not_found";
        else if (zone.archived) gate = "zone_archived";
      }
      if (this.gateCache.size > 50_000) this.gateCache.clear();
      this.gateCache.set(zoneId, { gate, until: Date.now() + (gate === "zone_not_found" ? UNKNOWN_ZONE_MS : ZONE_GATE_MS) });
      return gate;
    },

    host(this: any): RevocationHost {
      if (this.hostObject) return this.hostObject;
      const svc = this;
      const models = this.models as Models;
      const host: RevocationHost = {
        models,
        redis: redisClient(),
        keyPrefix: `${this.db.name}:sessions`,
        logger: this.logger,
        effects: models.Effect,
        closedZones: models.ClosedZone,
        listFields: (model, scope, ts) => svc.listFields(model, scope, ts),
        locked: (model, id, write) => svc.locked(model, id, write),
        zoneGate: (zoneId) => svc.zoneGate(zoneId),
        releaseHeld: (targets) => svc.held.release(targets),
        hold: (target, stream, entry) => svc.held.hold(target, stream, entry),
        kick: (id: string, entries: OutboxEntry[]) => svc.outboxKick("Effect", id, entries),
        zoneClosed: async (zoneId: string) => {
          svc.gateCache.set(zoneId, { gate: "zone_archived", until: Date.now() + ZONE_GATE_MS });
          // Its sessions stop counting at once; the reaper's walk follows.
          const keys = activeKeys(host, zoneId);
          await host.redis.multi().del(keys.active).set(keys.complete, "1").exec();
          svc.broker.broadcast("sessions.zoneClosed", { zone_id: zoneId }, { groups: ["sessions"] });
          setImmediate(() => void svc.reap().catch(() => undefined));
        },
      };
      this.hostObject = host;
      return host;
    },

    /** The ingest code of one stream (also how held entries are applied, by their stream). */
    async dispatch(this: any, stream: string, entries: StreamEntry[]) {
      const host = this.host();
      if (stream === streamName(SESSIONS_STREAM)) return ingestSessions(host, stream, entries);
      if (stream === streamName(AGENTS_STREAM)) return this.agents.ingest(stream, entries);
      if (stream === streamName(CHALLENGES_STREAM)) return ingestChallenges(host, stream, entries);
      return entries.map(() => ({ dlq: "unknown_stream" }));
    },

    async reap(this: any) {
      const lock = await tryDocLock(redisClient(), `${this.db.name}:sessions:reaper`, 60_000);
      if (!lock) return { zones: 0, expired: 0 };
      try {
        return await reapClosedZones({ ...this.host(), listBuckets: (m: string, s: string) => this.listBuckets(m, s), listUpdated: (m: string) => this.listUpdated(m) });
      } finally {
        await lock.release().catch(() => undefined);
      }
    },

    async sweepHeld(this: any) {
      const lock = await tryDocLock(redisClient(), `${this.db.name}:sessions:held-sweep`, 60_000);
      if (!lock) return { held: 0, released: 0 };
      try {
        return await this.held.sweep();
      } finally {
        await lock.release().catch(() => undefined);
      }
    },

    /** Rebuilds a zone's active index from the store, one bucket at a time (after Redis lost it). */
    async rebuildActive(this: any, zoneId: string) {
      const redis = redisClient();
      const keys = activeKeys(this.host(), zoneId);
      const lock = await tryDocLock(redis, `${keys.active}:rebuild`, 10 * 60_000);
      if (!lock) return;
      try {
        if (await (this.models as Models).ClosedZone.findById(zoneId, { _id: 1 }).lean()) {
          await redis.set(keys.complete, "1");
          return;
        }
        const now = Date.now();
        for (const bucket of await this.listBuckets("Session", zoneId)) {
          const rows = await (this.models as Models).Session.find({ _bucket: bucket, status: "active" }, { expires_at: 1 }).lean();
          const live = rows.filter((r) => new Date(r.expires_at).getTime() > now);
          if (live.length) await redis.zadd(keys.active, ...live.flatMap((r) => [new Date(r.expires_at).getTime(), r._id]));
        }
        await redis.set(keys.complete, "1");
      } finally {
        await lock.release().catch(() => undefined);
      }
    },
  },

  created(this: any) {
    this.gateCache = new Map();
    this.consumers = [];
  },

  async started(this: any) {
    const cfg = config();
    const host = this.host();
    this.agents = new AgentIngest(host);
    const group = `${cfg.namespace}.sessions`;
    const targets: Record<string, Model<any>> = { agent: host.models.AgentSession, session: host.models.Session, challenge: host.models.Challenge };
    this.held = new HeldEntries(host, (stream, entries) => this.dispatch(stream, entries), group, (kind) => targets[kind]);
    this.revocations = new Revocations(host, this.agents);
    const common = {
      redis: redisClient(),
      group,
      consumer: consumerName(this.broker.nodeID),
      verify: sigVerifier(cfg.streamsHmacKeys),
      batch: cfg.streams.batch,
      blockMs: cfg.streams.blockMs,
      claimIdleMs: cfg.streams.claimIdleMs,
      maxDeliveries: cfg.streams.maxDeliveries,
      logger: this.logger,
    };
    const runtime = [SESSIONS_STREAM, AGENTS_STREAM, CHALLENGES_STREAM].map((name) => streamName(name));
    this.consumers = [
      // Runtime entries may be handled out of order (held, ordered by entry id where it matters): batches overlap.
      ...runtime.map((stream) => new StreamConsumer({ ...common, concurrency: cfg.streams.concurrency, stream, handle: (entries) => this.dispatch(stream, entries) })),
      // Only what comes after the group is made: the zone events before it concern sessions never ingested here.
      new StreamConsumer({
        ...common,
        stream: streamName(ZONE_EVENTS_STREAM),
        startId: "$",
        verify: (stream, fields) => (isRevocationCause(fields) ? common.verify(stream, fields) : null),
        handle: (entries) => this.revocations.handle(entries),
      }),
    ];
    await this.sweepHeld().catch((err: Error) => this.logger.warn({ err: err.message }, "held entries sweep failed"));
    for (const c of this.consumers as StreamConsumer[]) await c.start();
    const reaperMs = this.settings.reaperMs ?? cfg.sessionsReaperMs;
    this.timers = [
      setInterval(() => void this.reap().catch((err: Error) => this.logger.warn({ err: err.message }, "sessions reaper failed")), reaperMs),
      setInterval(() => void this.sweepHeld().catch((err: Error) => this.logger.warn({ err: err.message }, "held entries sweep failed")), HELD_SWEEP_MS),
    ];
    for (const t of this.timers) t.unref?.();
  },

  async stopped(this: any) {
    for (const t of this.timers ?? []) clearInterval(t);
    await Promise.all((this.consumers as StreamConsumer[]).map((c) => c.stop()));
  },
};

export default SessionsService;
