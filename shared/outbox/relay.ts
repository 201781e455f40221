// Publishes outbox entries held in documents to Redis streams, signed, at least once and without duplicates.
//
// Finding work: writers publish their own entries right after their write and leave a hint (the document
// id in a Redis sorted set scored by when it is due) for whatever failed; the relay works from the hints,
// never by polling the collection. A hint lost to a crash between the write and the hint is recovered by
// the sweep, at start and then every few minutes, which finds open documents by the equality
// `_outbox_open: true` (pushed down to the store and indexed). The events themselves never leave the
// document until their publish is recorded in it, so no write loses its event.
import type { Model } from "mongoose";
import type Redis from "ioredis";
import { hostname } from "node:os";
import { sign, toStreamArgs, type SigningKey, type FlatFields } from "../signing";
import { isCreationOutbox, type OutboxEntry } from "./entry";
import { newId } from "../ids";
import { tryDocLock } from "../doc-lock";

export interface RelaySettings {
  pollMs: number;
  batch: number;
  leaseSec: number;
  maxAttempts: number;
  streamMaxLen: number;
  /** Published entries a document keeps (most recent first); 0 drops them once recorded. */
  keepDispatched: number;
  /** Per collection, where a service reads published entries back (activation status keeps them). */
  keepDispatchedFor?: Record<string, number>;
  /** How long Redis remembers an outbox id it has published (dedupe window). */
  dedupeTtlSec?: number;
  /** Full scan for documents whose hint was lost. */
  sweepMs?: number;
  /** Put before every stream name when publishing (STREAM_PREFIX; empty by default). */
  streamPrefix?: string;
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
  /** Documents whose publish results wait in Redis for the recorder. */
  unrecorded: number;
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
const RECORD_BATCH = 50;
/**
 * Write-backs in flight at once. Each is an update of one document under its lock (a few ms on FerretDB's
 * PostgreSQL backend, ~1 ms on MongoDB); several at a time keep up with a burst of writes. (On FerretDB's
 * SQLite backend every update was a full-collection scan under one write lock, so the recorder used to
 * yield to writers; that store is gone.)
 */
const RECORD_CONCURRENCY = 8;

export function backoffMs(attempts: number): number {
  const base = Math.min(60, 2 ** Math.min(attempts, 6));
  return Math.floor((base + Math.random() * 0.3 * base) * 1000);
}

/** The lock key of one document: database, collection and id. */
export const docLockKey = (model: Model<any>, id: string): string => `${model.db.name}:${model.collection.name}:${id}`;

/** Redis keys holding one collection's hints and outbox state summaries. */
export function hintKeys(model: Model<any>) {
  const base = `outbox:{${model.db.name}:${model.collection.name}}`;
  return {
    due: `${base}:due`,
    pendingSince: `${base}:pending_since`,
    pendingCount: `${base}:pending_n`,
    deadSince: `${base}:dead_since`,
    deadCount: `${base}:dead_n`,
    /** Documents whose publish results wait to be written back. */
    record: `${base}:record`,
    results: (docId: string) => `${base}:res:${docId}`,
  };
}

/**
 * A field of a document's results hash (not an entry id): `{v, ids}` when the writer knows its write left
 * the document's outbox holding exactly the entries `ids` at `_outbox_v: v` (a creation, or an update
 * that returned the document) and published them all. The recorder then writes them back with one
 * update conditioned on `_outbox_v: v` instead of reading the document first; anything else falls back.
 */
const WRITTEN_AS = "@written_as";

interface WrittenAs {
  v: number;
  ids: string[];
}

/** The outbox state a write left, when the writer knows it: see WRITTEN_AS. */
function writtenAs(entries: OutboxEntry[], stored?: { _outbox?: OutboxEntry[]; _outbox_v?: number } | null): WrittenAs | null {
  const ids = entries.map((e) => e.id);
  if (isCreationOutbox(entries)) return { v: 1, ids };
  if (!stored || typeof stored._outbox_v !== "number" || !Array.isArray(stored._outbox)) return null;
  const mine = new Set(ids);
  return stored._outbox.length === ids.length && stored._outbox.every((e) => mine.has(e.id)) ? { v: stored._outbox_v, ids } : null;
}

/** Adds to `tx` the hint that `count` entries of document `id` are due now (for the relay to publish). */
function addHint(tx: ReturnType<Redis["multi"]>, model: Model<any>, id: string, count: number): void {
  const k = hintKeys(model);
  const now = Date.now();
  tx.zadd(k.due, "LT", now, id).zadd(k.pendingSince, "NX", now, id).hincrby(k.pendingCount, id, count);
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
  private recording = false;
  private recordKicked = false;
  private recordTimer: NodeJS.Timeout | null = null;
  private active = false;
  afterPublish: AfterPublishHook | null = null;
  /** Hook for tests that need a writer to die after its document write and before its publish. */
  beforePublish: AfterPublishHook | null = null;

  constructor(
    private readonly models: Model<any>[],
    private readonly redis: Redis,
    private readonly signingKey: SigningKey | null,
    private readonly settings: RelaySettings,
    private readonly logger: RelayLogger,
  ) {}

  start(): void {
    this.stopping = false;
    this.active = true;
    void this.sweep().catch((err) => this.logger.warn({ err: (err as Error).message }, "outbox sweep failed"));
    const sweepMs = this.settings.sweepMs ?? 300_000;
    this.sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), sweepMs);
    this.sweepTimer.unref?.();
    this.recordTimer = setInterval(() => void this.record(), this.settings.pollMs);
    this.recordTimer.unref?.();
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
    this.active = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.recordTimer) clearInterval(this.recordTimer);
    this.timer = this.sweepTimer = this.recordTimer = null;
    await this.running;
    while (this.recording) await new Promise((r) => setTimeout(r, 5));
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

  /**
   * Publishes the entries a writer has just committed, from the writer's own copy: reading the document
   * back is a collection scan on FerretDB v1, and the writer has the entries in hand. The document still
   * holds them, so whatever fails here is published later from the document: a failed entry leaves a
   * hint for the relay, and a crash leaves the document for the sweep at the next start. Results go to
   * Redis for the recorder, as for the relay's own publishes; a relay that picks the document up at the
   * same time publishes nothing twice (the outbox id is remembered with its stream id).
   */
  async publishWritten(model: Model<any>, docId: string, entries: OutboxEntry[], stored?: { _outbox?: OutboxEntry[]; _outbox_v?: number } | null): Promise<void> {
    if (!entries.length) return;
    if (!this.active) {
      const tx = this.redis.multi();
      addHint(tx, model, docId, entries.length);
      await tx.exec();
      return;
    }
    const k = hintKeys(model);
    const results = new Map<string, Partial<OutboxEntry>>();
    let failed = 0;
    for (const entry of entries) {
      try {
        results.set(entry.id, await this.publishMarked(entry, entry.attempts + 1));
      } catch (err) {
        // As if the process died right here: nothing is recorded, the sweep finds the document.
        if ((err as { fatalForTest?: boolean }).fatalForTest) return;
        failed++;
      }
    }
    const tx = this.redis.multi();
    for (const [id, r] of results) tx.hset(k.results(docId), id, JSON.stringify(r));
    const written = failed ? null : writtenAs(entries, stored);
    if (written) tx.hset(k.results(docId), WRITTEN_AS, JSON.stringify(written));
    if (results.size) tx.zadd(k.record, "NX", Date.now(), docId);
    if (failed) addHint(tx, model, docId, failed);
    await tx.exec();
    if (results.size) this.kickRecorder();
    if (failed) this.kick();
  }

  /** The document's entries as they stand, with publish results not yet written back. */
  async currentEntries(model: Model<any>, docId: string, entries: OutboxEntry[]): Promise<OutboxEntry[]> {
    const stored = await this.storedResults(model, docId);
    return entries.map((e) => ({ ...e, ...(stored.get(e.id) ?? {}) }));
  }

  /** Rebuilds hints from the documents themselves (full scan): at start and now and then. */
  async sweep(): Promise<void> {
    for (const model of this.models) {
      const k = hintKeys(model);
      // By equality only (pushed down to the store): open and dead documents, never the whole collection.
      const found = (await model.find({ _outbox_open: true }, { _outbox_next_at: 1, _outbox_pending: 1, _outbox_pending_since: 1 }).lean()).filter((d: any) => d._outbox_next_at);
      const dead = (await model.find({ _outbox_has_dead: true }, { _outbox_dead: 1, _outbox_dead_since: 1 }).lean()).filter((d: any) => d._outbox_dead > 0);
      // A document whose publish results still wait for the recorder looks pending in the store but is
      // not; the recorder restores its hints (from the document and the results) when it writes it back.
      const awaiting = await this.awaitingRecord(model, (found as any[]).map((d) => String(d._id)));
      const pending = (found as any[]).filter((d) => !awaiting.has(String(d._id)));
      const tx = this.redis.multi();
      for (const d of pending) {
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

  /**
   * Publishes the document's due entries. The results go to Redis, not to the document: writing them
   * back is an update, which FerretDB v1 performs as a scan under its single write lock, so it is left
   * to the recorder (below) and the write path stays free for inserts. Published-but-unrecorded
   * entries are known from the stored results and never published twice (nor would Redis let them).
   */
  private async publishDocument(model: Model<any>, doc: any): Promise<number> {
    const k = hintKeys(model);
    const stored = await this.storedResults(model, doc._id);
    const fresh = new Map<string, Partial<OutboxEntry>>();
    const now = Date.now();
    let published = 0;
    for (const raw of (doc._outbox ?? []) as OutboxEntry[]) {
      const entry = { ...raw, ...(stored.get(raw.id) ?? {}) };
      if (entry.dispatched_at || entry.dead_at || !entry.available_at || new Date(entry.available_at).getTime() > now) continue;
      const attempts = entry.attempts + 1;
      try {
        fresh.set(entry.id, await this.publishMarked(entry, attempts));
        published++;
      } catch (err) {
        if ((err as { fatalForTest?: boolean }).fatalForTest) throw err;
        const message = (err as Error).message.slice(0, 500);
        if (attempts >= this.settings.maxAttempts) {
          fresh.set(entry.id, { attempts, dead_at: new Date(), available_at: null, last_error: message });
          this.logger.error({ outbox_id: entry.id, stream: entry.stream, attempts }, "outbox entry is dead");
        } else {
          fresh.set(entry.id, { attempts, available_at: new Date(Date.now() + backoffMs(attempts)), last_error: message });
        }
      }
    }
    const all = new Map([...stored, ...fresh]);
    const tx = this.redis.multi();
    if (fresh.size) {
      for (const [id, r] of fresh) tx.hset(k.results(doc._id), id, JSON.stringify(r));
      tx.zadd(k.record, "NX", Date.now(), doc._id);
    } else if (stored.size) tx.zadd(k.record, "NX", Date.now(), doc._id);
    this.hintTx(tx, model, doc._id, this.summarize(doc, all));
    await tx.exec();
    if (fresh.size || stored.size) this.kickRecorder();
    return published;
  }

  /** Which of these documents have publish results waiting in the record set. */
  private async awaitingRecord(model: Model<any>, ids: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    const key = hintKeys(model).record;
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const scores = await this.redis.zmscore(key, ...chunk);
      chunk.forEach((id, j) => scores[j] !== null && out.add(id));
    }
    return out;
  }

  private async storedResults(model: Model<any>, docId: string): Promise<Map<string, Partial<OutboxEntry>>> {
    return (await this.readResults(model, docId)).results;
  }

  /** The publish results waiting for the recorder, and the writer's mark (WRITTEN_AS) if any. */
  private async readResults(model: Model<any>, docId: string): Promise<{ results: Map<string, Partial<OutboxEntry>>; written: WrittenAs | null }> {
    const raw = await this.redis.hgetall(hintKeys(model).results(docId));
    const out = new Map<string, Partial<OutboxEntry>>();
    let written: WrittenAs | null = null;
    for (const [id, json] of Object.entries(raw)) {
      if (id === WRITTEN_AS) {
        written = JSON.parse(json) as WrittenAs;
        continue;
      }
      const r = JSON.parse(json) as Record<string, unknown>;
      for (const f of ["dispatched_at", "dead_at", "available_at"]) if (typeof r[f] === "string") r[f] = new Date(r[f] as string);
      out.set(id, r as Partial<OutboxEntry>);
    }
    return { results: out, written };
  }

  /** Writes stored results back into their documents, a few documents at a time. */
  async record(): Promise<number> {
    if (this.recording || this.stopping) return 0;
    this.recording = true;
    let recorded = 0;
    try {
      for (const model of this.models) {
        const k = hintKeys(model);
        // Oldest first, a batch at a time; a document another writer (or the relay) holds is left for
        // the next pass instead of ending this one.
        for (let round = 0; round < 20 && !this.stopping; round++) {
          const ids = await this.redis.zrange(k.record, 0, RECORD_BATCH - 1);
          let done = 0;
          const queue = [...ids];
          const worker = async () => {
            for (let docId = queue.shift(); docId !== undefined && !this.stopping; docId = queue.shift()) {
              if (await this.recordOne(model, docId)) done++;
            }
          };
          await Promise.all(Array.from({ length: Math.min(RECORD_CONCURRENCY, queue.length) }, worker));
          recorded += done;
          if (ids.length < RECORD_BATCH || done === 0) break;
        }
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, "outbox record pass failed");
    } finally {
      this.recording = false;
    }
    return recorded;
  }

  /** Writes one document's stored results back; false when another writer holds it. */
  private async recordOne(model: Model<any>, docId: string): Promise<boolean> {
    const k = hintKeys(model);
    const lock = await tryDocLock(this.redis, docLockKey(model, docId), this.settings.leaseSec * 1000);
    if (!lock) return false;
    try {
      const { results, written } = await this.readResults(model, docId);
      if (!(written && (await this.writeBackWritten(model, docId, results, written)))) {
        const doc = await model.findById(docId).lean();
        if (doc && results.size) await this.writeBack(model, doc, results);
      }
      // Only what was written back is forgotten: a writer may have added results meanwhile.
      const tx = this.redis.multi().zrem(k.record, docId);
      if (results.size || written) tx.hdel(k.results(docId), ...results.keys(), ...(written ? [WRITTEN_AS] : []));
      await tx.exec();
      if ((await this.redis.hlen(k.results(docId))) > 0) await this.redis.zadd(k.record, "NX", Date.now(), docId);
      return true;
    } finally {
      await lock.release().catch(() => undefined);
    }
  }

  private kickRecorder(): void {
    if (this.stopping || this.recordKicked) return;
    this.recordKicked = true;
    setImmediate(() => {
      this.recordKicked = false;
      void this.record();
    });
  }

  private summarize(doc: any, results: Map<string, Partial<OutboxEntry>>) {
    const entries: OutboxEntry[] = ((doc._outbox ?? []) as OutboxEntry[]).map((e) => ({ ...e, ...(results.get(e.id) ?? {}) }));
    const open = entries.filter((e) => !e.dispatched_at && !e.dead_at);
    const dead = entries.filter((e) => e.dead_at);
    return {
      entries,
      open,
      dead,
      nextAt: minDate(open.map((e) => e.available_at)),
      pendingSince: minDate(open.map((e) => e.created_at)),
      deadSince: minDate(dead.map((e) => e.created_at)),
    };
  }

  private hintTx(tx: ReturnType<Redis["multi"]>, model: Model<any>, docId: string, sum: ReturnType<OutboxRelay["summarize"]>): void {
    const k = hintKeys(model);
    if (sum.nextAt) tx.zadd(k.due, sum.nextAt.getTime(), docId).zadd(k.pendingSince, sum.pendingSince!.getTime(), docId).hset(k.pendingCount, docId, sum.open.length);
    else tx.zrem(k.due, docId).zrem(k.pendingSince, docId).hdel(k.pendingCount, docId);
    if (sum.deadSince) tx.zadd(k.deadSince, sum.deadSince.getTime(), docId).hset(k.deadCount, docId, sum.dead.length);
    else tx.zrem(k.deadSince, docId).hdel(k.deadCount, docId);
  }

  /**
   * The write-back of a document whose outbox is still as its writer left it, every entry published: one
   * update conditioned on `_outbox_v` (every other write of the outbox increments it), no read. False when
   * it does not apply (published entries are kept, an entry is not published, the document moved on).
   */
  private async writeBackWritten(model: Model<any>, docId: string, results: Map<string, Partial<OutboxEntry>>, written: WrittenAs): Promise<boolean> {
    const keep = this.settings.keepDispatchedFor?.[model.collection.name] ?? this.settings.keepDispatched;
    if (keep > 0 || results.size !== written.ids.length || !written.ids.every((id) => results.get(id)?.dispatched_at)) return false;
    const tx = this.redis.multi();
    this.hintTx(tx, model, docId, this.summarize({ _outbox: [] }, results));
    await tx.exec();
    const set = { _outbox: [], _outbox_pending: 0, _outbox_dead: 0, _outbox_open: false, _outbox_has_dead: false };
    const res = await model.updateOne({ _id: docId, _outbox_v: written.v }, { $set: set, $unset: { _outbox_next_at: 1, _outbox_pending_since: 1, _outbox_dead_since: 1 }, $inc: { _outbox_v: 1 } });
    return res.matchedCount === 1;
  }

  /** Applies the results to the document's array and its hints; the caller holds the document lock. */
  private async writeBack(model: Model<any>, doc: any, results: Map<string, Partial<OutboxEntry>>): Promise<void> {
    const sum = this.summarize(doc, results);
    const keep = this.settings.keepDispatchedFor?.[model.collection.name] ?? this.settings.keepDispatched;
    const done = keep > 0 ? sum.entries.filter((e) => e.dispatched_at).slice(-keep) : [];
    const kept = sum.entries.filter((e) => !e.dispatched_at || done.includes(e));
    const set: Record<string, unknown> = { _outbox: kept, _outbox_pending: sum.open.length, _outbox_dead: sum.dead.length, _outbox_open: !!sum.nextAt, _outbox_has_dead: sum.dead.length > 0 };
    const unset: Record<string, 1> = {};
    if (sum.nextAt) set._outbox_next_at = sum.nextAt; else unset._outbox_next_at = 1;
    if (sum.pendingSince) set._outbox_pending_since = sum.pendingSince; else unset._outbox_pending_since = 1;
    if (sum.deadSince) set._outbox_dead_since = sum.deadSince; else unset._outbox_dead_since = 1;
    // Summaries first: whoever reads the document after this sees Redis agree with it.
    const tx = this.redis.multi();
    this.hintTx(tx, model, doc._id, sum);
    await tx.exec();
    await model.updateOne({ _id: doc._id }, { $set: set, $unset: unset, $inc: { _outbox_v: 1 } });
  }

  /** Publishes one entry and returns what its outbox state becomes. */
  private async publishMarked(entry: OutboxEntry, attempts: number): Promise<Partial<OutboxEntry>> {
    if (this.beforePublish) await this.beforePublish(entry);
    const streamId = await this.publish(entry);
    if (this.afterPublish) await this.afterPublish(entry);
    return { attempts, dispatched_at: new Date(), available_at: null, last_error: null, stream_entry_id: streamId };
  }

  private async publish(entry: OutboxEntry): Promise<string> {
    const fields: FlatFields = { ...entry.payload };
    if (fields.outbox_id === undefined || fields.outbox_id === null) fields.outbox_id = entry.id;
    // Documents keep the logical name; the prefix is applied here, and the signature covers the name written.
    const stream = (this.settings.streamPrefix ?? "") + entry.stream;
    if (this.signingKey) {
      fields.kid = this.signingKey.kid;
      fields._sig = sign(this.signingKey.key, stream, fields);
    }
    const id = await (this.redis as any).publishOnce(
      stream,
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
  const out: OutboxHealth = { pending: 0, dead: 0, oldestPendingAgeSec: 0, oldestDeadAgeSec: 0, unrecorded: 0 };
  for (const model of models) {
    const k = hintKeys(model);
    const [pn, dn, po, dold, unrecorded] = await Promise.all([
      redis.hvals(k.pendingCount),
      redis.hvals(k.deadCount),
      redis.zrange(k.pendingSince, 0, 0, "WITHSCORES"),
      redis.zrange(k.deadSince, 0, 0, "WITHSCORES"),
      redis.zcard(k.record),
    ]);
    out.unrecorded += unrecorded;
    out.pending += pn.reduce((s, v) => s + Math.max(0, Number(v)), 0);
    out.dead += dn.reduce((s, v) => s + Math.max(0, Number(v)), 0);
    if (po[1]) out.oldestPendingAgeSec = Math.max(out.oldestPendingAgeSec, (now - Number(po[1])) / 1000);
    if (dold[1]) out.oldestDeadAgeSec = Math.max(out.oldestDeadAgeSec, (now - Number(dold[1])) / 1000);
  }
  return out;
}
