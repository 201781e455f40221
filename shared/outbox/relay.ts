// Publishes outbox entries held in documents to Redis streams, signed, at least once and without duplicates.
//
// Finding work: FerretDB v1 pushes only `_id` equality down to its store, so any other query scans the
// whole collection. The relay therefore never polls the collection; writers leave a hint (the document
// id in a Redis sorted set scored by when it is due) after their write, and the relay works from the
// hints. A hint lost to a crash between the write and the hint is recovered by the sweep, which scans
// once at start and then every few minutes. The events themselves never leave the document until the
// relay has published them, so no write loses its event.
import type { Model } from "mongoose";
import type Redis from "ioredis";
import { hostname } from "node:os";
import { sign, toStreamArgs, type SigningKey, type FlatFields } from "../signing";
import type { OutboxEntry } from "./entry";
import { newId } from "../ids";
import { tryDocLock } from "../doc-lock";

export interface RelaySettings {
  pollMs: number;
  batch: number;
  leaseSec: number;
  maxAttempts: number;
  streamMaxLen: number;
  keepDispatched: number;
  /** How long Redis remembers an outbox id it has published (dedupe window). */
  dedupeTtlSec?: number;
  /** Full scan for documents whose hint was lost. */
  sweepMs?: number;
}

export interface RelayLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface OutboxHealth {
  pending: number;
  dead: number;
  oldestPendingAgeSec: number;
  oldestDeadAgeSec: number;
}

/** Hook for tests that need to stop the relay between the publish and the mark. */
export type AfterPublishHook = (entry: OutboxEntry) => void | Promise<void>;

// XADD and remembering the outbox id happen in one script: a relay that dies after publishing and
// retries later gets the first stream id back instead of adding a second entry.
const PUBLISH_ONCE = `
local seen = redis.call('GET', KEYS[2])
if seen then return seen end
local id
if tonumber(ARGV[1]) > 0 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'EX', tonumber(ARGV[2]))
return id
`;

const RELAY_CONCURRENCY = 8;

export function backoffMs(attempts: number): number {
  const base = Math.min(60, 2 ** Math.min(attempts, 6));
  return Math.floor((base + Math.random() * 0.3 * base) * 1000);
}

/** The lock key of one document: database, collection and id. */
export const docLockKey = (model: Model<any>, id: string): string => `${model.db.name}:${model.collection.name}:${id}`;

/** Redis keys holding one collection's hints and outbox state summaries. */
export function hintKeys(model: Model<any>) {
  const base = `outbox:{${model.db.name}:${model.collection.name}}`;
  return { due: `${base}:due`, pendingSince: `${base}:pending_since`, pendingCount: `${base}:pending_n`, deadSince: `${base}:dead_since`, deadCount: `${base}:dead_n` };
}

/** Called by writers after a write that added `count` entries to document `id`. */
export async function hintWritten(redis: Redis, model: Model<any>, id: string, count: number): Promise<void> {
  const k = hintKeys(model);
  const now = Date.now();
  await redis.multi().zadd(k.due, "LT", now, id).zadd(k.pendingSince, "NX", now, id).hincrby(k.pendingCount, id, count).exec();
}

const minDate = (xs: (Date | null | undefined)[]): Date | undefined =>
  xs.filter((x): x is Date => !!x).map((x) => new Date(x)).sort((a, b) => a.getTime() - b.getTime())[0];

export class OutboxRelay {
  readonly workerId = `${hostname()}:${process.pid}:${newId().slice(-8)}`;
  private timer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private kicked = false;
  private again = false;
  afterPublish: AfterPublishHook | null = null;

  constructor(
    private readonly models: Model<any>[],
    private readonly redis: Redis,
    private readonly signingKey: SigningKey | null,
    private readonly settings: RelaySettings,
    private readonly logger: RelayLogger,
  ) {}

  start(): void {
    this.stopping = false;
    void this.sweep().catch((err) => this.logger.warn({ err: (err as Error).message }, "outbox sweep failed"));
    const sweepMs = this.settings.sweepMs ?? 300_000;
    this.sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), sweepMs);
    this.sweepTimer.unref?.();
    this.schedule(this.settings.pollMs);
  }

  /** Asks for a pass soon, so a fresh write is published without waiting for the poll interval. */
  kick(): void {
    if (this.stopping) return;
    // A kick during a pass is remembered: the pass may have read the hints before this write's.
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.kicked) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      void this.tick();
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.timer = this.sweepTimer = null;
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(async () => {
      await this.tick();
      this.schedule(this.settings.pollMs);
    }, ms);
    this.timer.unref?.();
  }

  /** One pass over every outbox-bearing collection; skipped while the previous pass runs. */
  async tick(): Promise<number> {
    if (this.running || this.stopping) return 0;
    let published = 0;
    this.running = (async () => {
      for (const model of this.models) {
        try {
          // Keep going while whole batches come back, so a backlog drains within one pass.
          for (let round = 0, got = this.settings.batch; got >= this.settings.batch && round < 20 && !this.stopping; round++) {
            got = await this.drain(model);
            published += got;
          }
        } catch (err) {
          this.logger.warn({ err: (err as Error).message, collection: model.collection.name }, "outbox pass failed");
        }
      }
    })();
    try {
      await this.running;
    } finally {
      this.running = null;
    }
    if (this.again && !this.stopping) {
      this.again = false;
      this.kick();
    }
    return published;
  }

  /** Rebuilds hints from the documents themselves (full scan): at start and now and then. */
  async sweep(): Promise<void> {
    for (const model of this.models) {
      const k = hintKeys(model);
      const pending = await model.find({ _outbox_next_at: { $exists: true } }, { _outbox_next_at: 1, _outbox_pending: 1, _outbox_pending_since: 1 }).lean();
      const dead = await model.find({ _outbox_dead: { $gt: 0 } }, { _outbox_dead: 1, _outbox_dead_since: 1 }).lean();
      const tx = this.redis.multi();
      for (const d of pending as any[]) {
        tx.zadd(k.due, "LT", new Date(d._outbox_next_at).getTime(), d._id);
        tx.zadd(k.pendingSince, "NX", new Date(d._outbox_pending_since ?? d._outbox_next_at).getTime(), d._id);
        tx.hset(k.pendingCount, d._id, d._outbox_pending ?? 1);
      }
      // Dead entries change only here and in the relay, so their summary is replaced outright.
      tx.del(k.deadSince, k.deadCount);
      for (const d of dead as any[]) {
        tx.zadd(k.deadSince, new Date(d._outbox_dead_since ?? Date.now()).getTime(), d._id);
        tx.hset(k.deadCount, d._id, d._outbox_dead);
      }
      await tx.exec();
    }
    if (!this.stopping) this.kick();
  }

  private async drain(model: Model<any>): Promise<number> {
    const k = hintKeys(model);
    const ids = await this.redis.zrangebyscore(k.due, "-inf", Date.now(), "LIMIT", 0, this.settings.batch);
    // A few documents at a time: each waits mostly on Redis and the store, so the relay keeps up
    // with a burst of writes without holding anything long.
    let count = 0;
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined && !this.stopping; id = queue.shift()) count += await this.publishOne(model, id);
    };
    await Promise.all(Array.from({ length: Math.min(RELAY_CONCURRENCY, queue.length) }, worker));
    return count;
  }

  private async publishOne(model: Model<any>, id: string): Promise<number> {
    const k = hintKeys(model);
    // The document lock is the claim: another relay (or a writer) holding it makes this pass skip
    // the document, and a relay that dies lets it lapse after the lease.
    const lock = await tryDocLock(this.redis, docLockKey(model, id), this.settings.leaseSec * 1000);
    if (!lock) return 0;
    try {
      const doc = await model.findById(id).lean();
      if (doc) return await this.publishDocument(model, doc);
      await this.redis.multi().zrem(k.due, id).zrem(k.pendingSince, id).hdel(k.pendingCount, id).exec();
      return 0;
    } finally {
      await lock.release().catch(() => undefined);
    }
  }

  private async publishDocument(model: Model<any>, doc: any): Promise<number> {
    const results = new Map<string, Partial<OutboxEntry>>();
    const now = Date.now();
    let published = 0;
    for (const entry of (doc._outbox ?? []) as OutboxEntry[]) {
      if (entry.dispatched_at || entry.dead_at || !entry.available_at || new Date(entry.available_at).getTime() > now) continue;
      const attempts = entry.attempts + 1;
      try {
        const streamId = await this.publish(entry);
        if (this.afterPublish) await this.afterPublish(entry);
        results.set(entry.id, { attempts, dispatched_at: new Date(), available_at: null, last_error: null, stream_entry_id: streamId });
        published++;
      } catch (err) {
        if ((err as { fatalForTest?: boolean }).fatalForTest) throw err;
        const message = (err as Error).message.slice(0, 500);
        if (attempts >= this.settings.maxAttempts) {
          results.set(entry.id, { attempts, dead_at: new Date(), available_at: null, last_error: message });
          this.logger.error({ outbox_id: entry.id, stream: entry.stream, attempts }, "outbox entry is dead");
        } else {
          results.set(entry.id, { attempts, available_at: new Date(Date.now() + backoffMs(attempts)), last_error: message });
        }
      }
    }
    await this.writeBack(model, doc, results);
    return published;
  }

  /** Applies the results to the document's array and its hints; the caller holds the document lock. */
  private async writeBack(model: Model<any>, doc: any, results: Map<string, Partial<OutboxEntry>>): Promise<void> {
    const entries: OutboxEntry[] = ((doc._outbox ?? []) as OutboxEntry[]).map((e) => ({ ...e, ...(results.get(e.id) ?? {}) }));
    const open = entries.filter((e) => !e.dispatched_at && !e.dead_at);
    const dead = entries.filter((e) => e.dead_at);
    const done = entries.filter((e) => e.dispatched_at).slice(-this.settings.keepDispatched);
    const kept = entries.filter((e) => !e.dispatched_at || done.includes(e));
    const set: Record<string, unknown> = { _outbox: kept, _outbox_pending: open.length, _outbox_dead: dead.length };
    const unset: Record<string, 1> = {};
    const nextAt = minDate(open.map((e) => e.available_at));
    const pendingSince = minDate(open.map((e) => e.created_at));
    const deadSince = minDate(dead.map((e) => e.created_at));
    if (nextAt) set._outbox_next_at = nextAt; else unset._outbox_next_at = 1;
    if (pendingSince) set._outbox_pending_since = pendingSince; else unset._outbox_pending_since = 1;
    if (deadSince) set._outbox_dead_since = deadSince; else unset._outbox_dead_since = 1;
    if (results.size) await model.updateOne({ _id: doc._id }, { $set: set, $unset: unset, $inc: { _outbox_v: 1 } });

    const k = hintKeys(model);
    const tx = this.redis.multi();
    if (nextAt) tx.zadd(k.due, nextAt.getTime(), doc._id).zadd(k.pendingSince, pendingSince!.getTime(), doc._id).hset(k.pendingCount, doc._id, open.length);
    else tx.zrem(k.due, doc._id).zrem(k.pendingSince, doc._id).hdel(k.pendingCount, doc._id);
    if (deadSince) tx.zadd(k.deadSince, deadSince.getTime(), doc._id).hset(k.deadCount, doc._id, dead.length);
    else tx.zrem(k.deadSince, doc._id).hdel(k.deadCount, doc._id);
    await tx.exec();
  }

  private async publish(entry: OutboxEntry): Promise<string> {
    const fields: FlatFields = { ...entry.payload };
    if (fields.outbox_id === undefined || fields.outbox_id === null) fields.outbox_id = entry.id;
    if (this.signingKey) {
      fields.kid = this.signingKey.kid;
      fields._sig = sign(this.signingKey.key, entry.stream, fields);
    }
    const id = await (this.redis as any).publishOnce(
      entry.stream,
      `outbox:published:${entry.id}`,
      String(this.settings.streamMaxLen),
      String(this.settings.dedupeTtlSec ?? 7 * 24 * 3600),
      ...toStreamArgs(fields),
    );
    return String(id);
  }

  static install(redis: Redis): void {
    if (!(redis as any).publishOnce) redis.defineCommand("publishOnce", { numberOfKeys: 2, lua: PUBLISH_ONCE });
  }
}

/** Outbox numbers for /ready and /metrics, from the summaries the relay keeps in Redis. */
export async function outboxHealth(redis: Redis, models: Model<any>[]): Promise<OutboxHealth> {
  const now = Date.now();
  const out: OutboxHealth = { pending: 0, dead: 0, oldestPendingAgeSec: 0, oldestDeadAgeSec: 0 };
  for (const model of models) {
    const k = hintKeys(model);
    const [pn, dn, po, dold] = await Promise.all([
      redis.hvals(k.pendingCount),
      redis.hvals(k.deadCount),
      redis.zrange(k.pendingSince, 0, 0, "WITHSCORES"),
      redis.zrange(k.deadSince, 0, 0, "WITHSCORES"),
    ]);
    out.pending += pn.reduce((s, v) => s + Math.max(0, Number(v)), 0);
    out.dead += dn.reduce((s, v) => s + Math.max(0, Number(v)), 0);
    if (po[1]) out.oldestPendingAgeSec = Math.max(out.oldestPendingAgeSec, (now - Number(po[1])) / 1000);
    if (dold[1]) out.oldestDeadAgeSec = Math.max(out.oldestDeadAgeSec, (now - Number(dold[1])) / 1000);
  }
  return out;
}
