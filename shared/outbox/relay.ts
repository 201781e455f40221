// Publishes outbox entries held in documents to Redis streams, signed, at least once and without duplicates.
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
}

export interface RelayLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
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

/** The lock key of one document: database, collection and id. */
export const docLockKey = (model: Model<any>, id: string): string => `${model.db.name}:${model.collection.name}:${id}`;

export function backoffMs(attempts: number): number {
  const base = Math.min(60, 2 ** Math.min(attempts, 6));
  return Math.floor((base + Math.random() * 0.3 * base) * 1000);
}

export class OutboxRelay {
  readonly workerId = `${hostname()}:${process.pid}:${newId().slice(-8)}`;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private kicked = false;
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
    this.schedule(this.settings.pollMs);
  }

  /** Asks for a tick soon, so a fresh write is published without waiting for the poll interval. */
  kick(): void {
    if (this.stopping || this.kicked) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      void this.tick();
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
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
          published += await this.drain(model);
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
    return published;
  }

  private async drain(model: Model<any>): Promise<number> {
    const candidates = await model
      .find({ _outbox_next_at: { $lte: new Date() } }, { _id: 1 })
      .sort({ _outbox_next_at: 1 })
      .limit(this.settings.batch)
      .lean();
    let count = 0;
    for (const { _id } of candidates as { _id: string }[]) {
      // The document lock is the claim: another relay (or a writer) holding it makes this pass skip
      // the document, and a relay that dies lets it lapse after the lease.
      const lock = await tryDocLock(this.redis, docLockKey(model, _id), this.settings.leaseSec * 1000);
      if (!lock) continue;
      try {
        const doc = await model.findById(_id).lean();
        if (doc) count += await this.publishDocument(model, doc);
      } finally {
        await lock.release().catch(() => undefined);
      }
    }
    return count;
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
        const message = (err as Error).message.slice(0, 500);
        if ((err as { fatalForTest?: boolean }).fatalForTest) throw err;
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

  /** Applies the results to the document's array; the caller holds the document lock. */
  private async writeBack(model: Model<any>, doc: any, results: Map<string, Partial<OutboxEntry>>): Promise<void> {
    const entries: OutboxEntry[] = ((doc._outbox ?? []) as OutboxEntry[]).map((e) => ({ ...e, ...(results.get(e.id) ?? {}) }));
    const open = entries.filter((e) => !e.dispatched_at && !e.dead_at);
    const dead = entries.filter((e) => e.dead_at);
    const done = entries.filter((e) => e.dispatched_at).slice(-this.settings.keepDispatched);
    const kept = entries.filter((e) => !e.dispatched_at || done.includes(e));
    const set: Record<string, unknown> = { _outbox: kept, _outbox_pending: open.length, _outbox_dead: dead.length };
    const unset: Record<string, 1> = {};
    const minOf = (xs: (Date | null)[]) => xs.filter((x): x is Date => !!x).map((x) => new Date(x)).sort((a, b) => a.getTime() - b.getTime())[0];
    const nextAt = minOf(open.map((e) => e.available_at));
    const pendingSince = minOf(open.map((e) => e.created_at));
    const deadSince = minOf(dead.map((e) => e.created_at));
    if (nextAt) set._outbox_next_at = nextAt; else unset._outbox_next_at = 1;
    if (pendingSince) set._outbox_pending_since = pendingSince; else unset._outbox_pending_since = 1;
    if (deadSince) set._outbox_dead_since = deadSince; else unset._outbox_dead_since = 1;
    await model.updateOne({ _id: doc._id }, { $set: set, $unset: unset, $inc: { _outbox_v: 1 } });
  }

  private async publish(entry: OutboxEntry): Promise<string> {
    const fields: FlatFields = { ...entry.payload };
    if (fields.outbox_id === undefined || fields.outbox_id === null) fields.outbox_id = entry.id;
    if (this.signingKey) {
      fields.kid = this.signingKey.kid;
      fields._sig = sign(this.signingKey.key, entry.stream, fields);
    }
    const args = toStreamArgs(fields);
    const id = await (this.redis as any).publishOnce(
      entry.stream,
      `outbox:published:${entry.id}`,
      String(this.settings.streamMaxLen),
      String(this.settings.dedupeTtlSec ?? 7 * 24 * 3600),
      ...args,
    );
    return String(id);
  }

  static install(redis: Redis): void {
    if (!(redis as any).publishOnce) redis.defineCommand("publishOnce", { numberOfKeys: 2, lua: PUBLISH_ONCE });
  }
}

/** Outbox numbers for /ready and /metrics, read from the per-document summaries. */
export async function outboxHealth(models: Model<any>[]): Promise<{ pending: number; dead: number; oldestPendingAgeSec: number; oldestDeadAgeSec: number }> {
  let pending = 0, dead = 0;
  let oldestPending: number | null = null, oldestDead: number | null = null;
  for (const model of models) {
    const p = await model.find({ _outbox_next_at: { $exists: true } }, { _outbox_pending: 1, _outbox_pending_since: 1 }).lean();
    for (const d of p as any[]) {
      pending += d._outbox_pending;
      const t = d._outbox_pending_since ? new Date(d._outbox_pending_since).getTime() : null;
      if (t !== null && (oldestPending === null || t < oldestPending)) oldestPending = t;
    }
    const x = await model.find({ _outbox_dead: { $gt: 0 } }, { _outbox_dead: 1, _outbox_dead_since: 1 }).lean();
    for (const d of x as any[]) {
      dead += d._outbox_dead;
      const t = d._outbox_dead_since ? new Date(d._outbox_dead_since).getTime() : null;
      if (t !== null && (oldestDead === null || t < oldestDead)) oldestDead = t;
    }
  }
  const age = (t: number | null) => (t === null ? 0 : Math.max(0, (Date.now() - t) / 1000));
  return { pending, dead, oldestPendingAgeSec: age(oldestPending), oldestDeadAgeSec: age(oldestDead) };
}
