// Bucketed keyset lists: every page selects a bounded set of documents by equality alone.
//
// Why: FerretDB v1 never pushes a sort, a range or a limit down when there is a filter; it decodes every
// document the equalities select (~130 µs each) and sorts them in Go, so a page over a zone of 100,000
// rows cost 12–17 s whatever the indexes. Here each listed document carries `_bucket` =
// "<scope>:<n>", where n is a dense per-(collection, scope) sequence divided by BUCKET_SIZE, and a page
// reads whole buckets by equality (`{_bucket, …equalities}`): at most BUCKET_SIZE documents each. On
// MongoDB the same queries are served by the declared `{_bucket, …}` indexes.
//
// Order stays exact: pages are keyset on (ts desc, id desc) for the list's timestamp field, as before.
// Each bucket has a mark document holding the range [min_ts, max_ts] of its rows' timestamps, widened
// before any row is inserted, so a page knows which buckets can hold its next rows (usually one or two:
// timestamps follow the sequence) and merges them in order. This also bounds time windows
// (`since`/`until`) to the buckets whose range meets the window, for timestamps that arrive out of order
// too (audit events carry the runtime's time).
//
// The sequence lives in Redis (INCRBY, one round trip). When Redis has lost it (restart without
// persistence), it is re-seeded past the highest bucket that has a mark, so new rows open a new bucket;
// marks are written before the rows they cover, so a crash leaves at worst an empty bucket.
//
// Retention removes whole buckets (`deleteMany({_bucket})`, an equality) and then retires their marks: a
// retired mark stays (recovery still finds the highest bucket) but no page reads its bucket again.
import type { Model } from "mongoose";
import type Redis from "ioredis";
import { Schema } from "mongoose";
import { withDocLock } from "../doc-lock";

export const BUCKET_SIZE = 256;

/** Fields a listed document is stored with. */
export interface ListedFields {
  _seq: number;
  _bucket: string;
}

export interface BucketMark {
  _id: string;
  list: string;
  first_at: Date;
  min_ts: Date;
  max_ts: Date;
  /** Set once retention has removed the bucket's rows. */
  retired?: boolean;
  /** `<list>|<scope>|c<bucket / MARK_CHUNK>`: a process that is far behind reads new marks a chunk at a time. */
  chunk?: string;
}

export interface ListWindow {
  /** Inclusive. */
  since?: Date;
  /** Exclusive. */
  until?: Date;
}

export interface ListRowsOptions<R> {
  /** Top-level equalities on scalars: pushed down with the bucket. */
  where?: Record<string, string | number | boolean>;
  /** Conditions FerretDB cannot push down, checked on the (bounded) rows of each bucket. */
  match?: (row: R) => boolean;
  projection?: Record<string, 0 | 1>;
  tsField?: string;
  window?: ListWindow;
}

export interface ListRowsResult<R> {
  /** Up to limit + 1 rows, (ts desc, id desc), strictly after the cursor. */
  rows: R[];
  /** Set when the walk stopped on its budget with rows possibly left: the next page resumes after it. */
  resumeAfter?: { ts: Date; id: string };
  /** Documents the store returned for this page (what FerretDB decoded). */
  decoded: number;
  buckets: number;
}

const NEXT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('INCRBY', KEYS[1], ARGV[1])
`;

/** A page reads at most this many buckets (each ≤ BUCKET_SIZE documents) before it answers with what it has. */
const MAX_BUCKETS_PER_PAGE = 64;
const PAGE_BUDGET_MS = 1500;
/** Buckets at most this far below the top are re-read, since their marks may still widen. */
const OPEN_BUCKETS = 2;
const MAX_CACHED_MARKS = 2_000_000;
/** New buckets since the last read that are fetched one by one; past this, by chunks of MARK_CHUNK marks. */
const MAX_POINT_REFRESH = 16;
const MARK_CHUNK = 64;
/**
 * Rows of closed buckets are kept in memory and reused while the list's update version (a Redis counter
 * every locked update of a listed document bumps, see MongoMixin.locked) is unchanged: a page then costs
 * no store read at all. Open buckets (the top few, where inserts land) are always read. Entries expire
 * after ROW_CACHE_TTL_MS, which bounds what a writer that died between its write and the bump leaves stale.
 */
const MAX_CACHED_ROWS = 100_000;
const ROW_CACHE_TTL_MS = 30_000;
/** How far past its newest timestamp a mark's range is written (see flushMark). */
const PREWIDEN_MS = 200;

interface CachedMark {
  min: number;
  max: number;
  retired?: boolean;
}

interface CachedMarks {
  /** Marks by bucket number (sparse when a mark is missing). */
  marks: Map<number, CachedMark>;
  /** Buckets below this are final in the cache. */
  loadedTop: number;
}

const ms = (d: Date | string | number) => new Date(d).getTime();

export class ListSequence {
  private readonly cache = new Map<string, CachedMarks>();
  private readonly openBuckets: number;
  private cachedCount = 0;
  private readonly recovering = new Map<string, Promise<void>>();
  /** Mark ranges this process knows are stored (it wrote or read them): inserts they cover need no write. */
  private readonly known = new Map<string, { min: number; max: number }>();
  private readonly rowCache = new Map<string, { version: string; at: number; rows: any[] }>();
  private cachedRows = 0;
  /** Pending widenings per mark id: merged so that one write carries many inserts. */
  private readonly widen = new Map<string, { min: number; max: number; waiters: { resolve: () => void; reject: (e: unknown) => void }[]; running: boolean }>();

  constructor(
    private readonly redis: Redis,
    private readonly marks: Model<BucketMark>,
    /** The listed collection: sequences and marks are per collection and scope. */
    private readonly list: string,
    private readonly keyPrefix: string,
    /** Rows per bucket; fixed for the life of a list (it decides every row's bucket). */
    private readonly bucketSize: number = BUCKET_SIZE,
    /**
     * The newest rows whose buckets are always read from the store, never from the row cache: at least as
     * many as one writer inserts at once, since a bucket whose numbers are handed out may still be filling
     * (a batch of 1,000 spans sixteen buckets of 64; caching the first of them mid-insert would hide rows).
     */
    openRows: number = OPEN_BUCKETS * BUCKET_SIZE,
  ) {
    this.openBuckets = Math.max(OPEN_BUCKETS, Math.ceil(openRows / bucketSize));
    if (!(redis as any).listSeqNext) redis.defineCommand("listSeqNext", { numberOfKeys: 1, lua: NEXT });
  }

  private key(scope: string): string {
    return `${this.keyPrefix}listseq:{${this.list}}:${scope}`;
  }

  private versionKey(): string {
    return `${this.keyPrefix}listver:{${this.list}}`;
  }

  /** Called after every update of an existing listed document: cached bucket rows are stale from now on. */
  async updated(): Promise<void> {
    await this.redis.incr(this.versionKey());
  }

  /** One bucket's rows for this filter: from memory when closed and unchanged, else from the store. */
  private async bucketRows<R>(model: Model<any>, scope: string, bucket: number, open: boolean, version: string, opts: ListRowsOptions<R>, result: ListRowsResult<R>): Promise<R[]> {
    const key = `${scope}|${bucket}|${JSON.stringify(opts.where ?? {})}|${JSON.stringify(opts.projection ?? {})}`;
    const hit = this.rowCache.get(key);
    if (!open && hit && hit.version === version && Date.now() - hit.at < ROW_CACHE_TTL_MS) {
      // Refresh its place in the LRU order.
      this.rowCache.delete(key);
      this.rowCache.set(key, hit);
      return hit.rows as R[];
    }
    const rows = await model.find({ ...(opts.where ?? {}), _bucket: `${scope}:${bucket}` }, opts.projection ?? {}).lean<R[]>();
    result.decoded += rows.length;
    if (!open) {
      if (hit) this.cachedRows -= hit.rows.length;
      this.rowCache.delete(key);
      this.rowCache.set(key, { version, at: Date.now(), rows });
      this.cachedRows += rows.length;
      for (const [k, v] of this.rowCache) {
        if (this.cachedRows <= MAX_CACHED_ROWS) break;
        this.rowCache.delete(k);
        this.cachedRows -= v.rows.length;
      }
    }
    return rows;
  }

  private markId(scope: string, bucket: number): string {
    return `${this.list}|${scope}|${bucket}`;
  }

  private listKey(scope: string): string {
    return `${this.list}|${scope}`;
  }

  private chunkKey(scope: string, bucket: number): string {
    return `${this.list}|${scope}|c${Math.floor(bucket / MARK_CHUNK)}`;
  }

  /**
   * Reserves one sequence number per timestamp and widens the marks of the buckets they fall in, before
   * the caller inserts: fields for each new document, in order.
   */
  async assign(scope: string, timestamps: Date[]): Promise<ListedFields[]> {
    const n = timestamps.length;
    if (!n) return [];
    let last = await (this.redis as any).listSeqNext(this.key(scope), n);
    if (last === null) {
      await this.recover(scope);
      last = await (this.redis as any).listSeqNext(this.key(scope), n);
      if (last === null) throw new Error("list sequence unavailable");
    }
    const first = Number(last) - n + 1;
    const fields: ListedFields[] = [];
    const ranges = new Map<number, { min: number; max: number }>();
    timestamps.forEach((ts, i) => {
      const seq = first + i;
      const bucket = Math.floor(seq / this.bucketSize);
      fields.push({ _seq: seq, _bucket: `${scope}:${bucket}` });
      const t = ms(ts);
      const r = ranges.get(bucket);
      if (r) {
        r.min = Math.min(r.min, t);
        r.max = Math.max(r.max, t);
      } else ranges.set(bucket, { min: t, max: t });
    });
    await Promise.all([...ranges].map(([bucket, r]) => this.widenMark(scope, bucket, r.min, r.max)));
    return fields;
  }

  /** The highest sequence number handed out in this scope (-1 when none). */
  async top(scope: string): Promise<number> {
    let v = await this.redis.get(this.key(scope));
    if (v === null) {
      await this.recover(scope);
      v = await this.redis.get(this.key(scope));
    }
    return v === null ? -1 : Number(v);
  }

  /** Re-seeds a lost counter past the highest bucket that has a mark (one recovery per scope at a time). */
  private recover(scope: string): Promise<void> {
    let running = this.recovering.get(scope);
    if (!running) {
      running = (async () => {
        const top = await this.highestMarkedBucket(scope);
        // The next number opens a fresh bucket: a bucket that was open when the counter was lost keeps
        // the rows it had, and no bucket ever takes more than BUCKET_SIZE after a recovery.
        const next = top < 0 ? -1 : (top + 1) * this.bucketSize - 1;
        await this.redis.set(this.key(scope), String(next), "NX");
      })().finally(() => this.recovering.delete(scope));
      this.recovering.set(scope, running);
    }
    return running;
  }

  /** Exponential then binary search over mark ids (each a lookup by `_id`). */
  private async highestMarkedBucket(scope: string): Promise<number> {
    const has = async (b: number) => (await this.marks.findById(this.markId(scope, b), { _id: 1 }).lean()) !== null;
    if (!(await has(0))) return -1;
    let lo = 0;
    let hi = 1;
    while (await has(hi)) {
      lo = hi;
      hi = hi * 2;
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (await has(mid)) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Widens one mark to cover [min, max]. Concurrent callers for the same mark share one write; the
   * write holds the mark's lock because FerretDB loses concurrent updates to one document.
   */
  private widenMark(scope: string, bucket: number, min: number, max: number): Promise<void> {
    const id = this.markId(scope, bucket);
    // Already covered by what this process wrote or read: nothing to wait for (ranges only grow).
    const seen = this.known.get(id);
    if (seen && seen.min <= min && seen.max >= max) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let w = this.widen.get(id);
      if (!w) {
        w = { min, max, waiters: [], running: false };
        this.widen.set(id, w);
      } else {
        w.min = Math.min(w.min, min);
        w.max = Math.max(w.max, max);
      }
      w.waiters.push({ resolve, reject });
      if (!w.running) void this.flushMark(id, scope);
    });
  }

  private remember(id: string, min: number, max: number): void {
    if (this.known.size > 10_000) this.known.clear();
    this.known.set(id, { min, max });
  }

  private async flushMark(id: string, scope: string): Promise<void> {
    const w = this.widen.get(id)!;
    w.running = true;
    while (w.waiters.length) {
      const waiters = w.waiters.splice(0);
      // The upper end is written a little ahead: timestamps that follow the clock (created_at) are then
      // covered for a while without another write. Ranges that overlap by that much cost a page at most
      // a few more (cached) buckets.
      const { min } = w;
      const max = w.max + PREWIDEN_MS;
      try {
        await withDocLock(this.redis, `${this.marks.db.name}:${this.marks.collection.name}:${id}`, async () => {
          const mark = await this.marks.findById(id).lean();
          if (!mark) {
            try {
              const bucket = Number(id.slice(id.lastIndexOf("|") + 1));
              await this.marks.create({ _id: id, list: this.listKey(scope), chunk: this.chunkKey(scope, bucket), first_at: new Date(), min_ts: new Date(min), max_ts: new Date(max) });
              this.remember(id, min, max);
              return;
            } catch (err) {
              if ((err as { code?: number }).code !== 11000) throw err;
            }
          }
          const current = mark ?? (await this.marks.findById(id).lean())!;
          const set: Record<string, Date> = {};
          if (min < ms(current.min_ts)) set.min_ts = new Date(min);
          if (w.max > ms(current.max_ts)) set.max_ts = new Date(max);
          if (Object.keys(set).length) await this.marks.updateOne({ _id: id }, { $set: set });
          this.remember(id, Math.min(min, ms(current.min_ts)), Math.max(set.max_ts ? max : 0, ms(current.max_ts)));
        });
        for (const x of waiters) x.resolve();
      } catch (err) {
        for (const x of waiters) x.reject(err);
      }
    }
    w.running = false;
    this.widen.delete(id);
  }

  /** The marks of a scope: final ones from memory, the top few re-read. */
  private async marksOf(scope: string, topBucket: number): Promise<Map<number, CachedMark>> {
    let entry = this.cache.get(scope);
    if (!entry) {
      // First read of this scope in this process: one query over its marks (~BUCKET_SIZE times fewer than rows).
      const all = await this.marks.find({ list: this.listKey(scope) }, { min_ts: 1, max_ts: 1, retired: 1 }).lean();
      entry = { marks: new Map(), loadedTop: -1 };
      for (const m of all) {
        const b = Number(String(m._id).slice(String(m._id).lastIndexOf("|") + 1));
        entry.marks.set(b, { min: ms(m.min_ts), max: ms(m.max_ts), ...(m.retired ? { retired: true } : {}) });
      }
      this.cachedCount += entry.marks.size;
      if (this.cachedCount > MAX_CACHED_MARKS) {
        this.cache.clear();
        this.cachedCount = entry.marks.size;
      }
      this.cache.set(scope, entry);
    } else if (topBucket - entry.loadedTop > MAX_POINT_REFRESH) {
      // The list grew a lot since this process last read it (ingest in another process): the new marks a
      // chunk (MARK_CHUNK marks) per query, rather than one query per mark (14,000 of those timed a page
      // out at 1M rows) or all of the list's marks again.
      const from = Math.max(0, entry.loadedTop - OPEN_BUCKETS);
      const chunks: string[] = [];
      for (let c = Math.floor(from / MARK_CHUNK); c <= Math.floor(topBucket / MARK_CHUNK); c++) chunks.push(this.chunkKey(scope, c * MARK_CHUNK));
      const found: { _id: unknown; min_ts: Date; max_ts: Date; retired?: boolean }[] = [];
      for (let i = 0; i < chunks.length; i += 8) {
        const parts = await Promise.all(chunks.slice(i, i + 8).map((chunk) => this.marks.find({ chunk }, { min_ts: 1, max_ts: 1, retired: 1 }).lean()));
        for (const p of parts) found.push(...p);
      }
      const seen = new Set<number>();
      for (const m of found) {
        const b = Number(String(m._id).slice(String(m._id).lastIndexOf("|") + 1));
        seen.add(b);
        if (b < from) continue;
        if (!entry.marks.has(b)) this.cachedCount++;
        entry.marks.set(b, { min: ms(m.min_ts), max: ms(m.max_ts), ...(m.retired ? { retired: true } : {}) });
      }
      // Marks written before marks had chunks: by id (few; a mark not found at all stays "could hold anything").
      const missing: number[] = [];
      for (let b = from; b <= topBucket && missing.length <= MARK_CHUNK * 4; b++) if (!seen.has(b)) missing.push(b);
      const byId = await Promise.all(missing.map((b) => this.marks.findById(this.markId(scope, b), { min_ts: 1, max_ts: 1, retired: 1 }).lean()));
      missing.forEach((b, i) => {
        const m = byId[i];
        if (!m) return;
        if (!entry!.marks.has(b)) this.cachedCount++;
        entry!.marks.set(b, { min: ms(m.min_ts), max: ms(m.max_ts), ...(m.retired ? { retired: true } : {}) });
      });
    } else {
      const from = Math.max(0, Math.min(entry.loadedTop, topBucket) - OPEN_BUCKETS);
      const ids = [];
      for (let b = from; b <= topBucket; b++) ids.push(b);
      const found = await Promise.all(ids.map((b) => this.marks.findById(this.markId(scope, b), { min_ts: 1, max_ts: 1, retired: 1 }).lean()));
      ids.forEach((b, i) => {
        const m = found[i];
        if (m) {
          if (!entry!.marks.has(b)) this.cachedCount++;
          entry!.marks.set(b, { min: ms(m.min_ts), max: ms(m.max_ts), ...(m.retired ? { retired: true } : {}) });
        }
      });
    }
    entry.loadedTop = topBucket;
    return entry.marks;
  }

  /**
   * Marks buckets whose rows retention has removed: pages stop reading them (here at once; in other
   * processes once their cached marks are reloaded, until then they read an empty bucket).
   */
  async retire(scope: string, buckets: number[]): Promise<void> {
    for (const bucket of buckets) {
      const id = this.markId(scope, bucket);
      await withDocLock(this.redis, `${this.marks.db.name}:${this.marks.collection.name}:${id}`, () => this.marks.updateOne({ _id: id }, { $set: { retired: true } }));
      const cached = this.cache.get(scope)?.marks.get(bucket);
      if (cached) cached.retired = true;
    }
  }

  /**
   * Rows of `model` in `scope`, strictly after `after` in (ts desc, id desc) order, up to `limit + 1`.
   * Reads the buckets whose mark range can hold the next rows, most recent range first, and hands out
   * a row only once no unread bucket can hold a later one.
   */
  async rows<R extends Record<string, any>>(model: Model<any>, scope: string, limit: number, after: { ts: Date; id: string } | null, opts: ListRowsOptions<R> = {}): Promise<ListRowsResult<R>> {
    const tsField = opts.tsField ?? "created_at";
    const [top, version] = await Promise.all([this.top(scope), this.redis.get(this.versionKey())]);
    const result: ListRowsResult<R> = { rows: [], decoded: 0, buckets: 0 };
    if (top < 0) return result;
    const topBucket = Math.floor(top / this.bucketSize);
    const marks = await this.marksOf(scope, topBucket);
    const upper = Math.min(after ? ms(after.ts) : Infinity, opts.window?.until !== undefined ? ms(opts.window.until) - 0 : Infinity);
    const lower = opts.window?.since !== undefined ? ms(opts.window.since) : -Infinity;
    // A bucket without a mark (a crash between the counter and the mark) is read as if it could hold anything.
    const candidates: { bucket: number; min: number; max: number }[] = [];
    for (let b = topBucket; b >= 0; b--) {
      const m = marks.get(b) ?? { min: -Infinity, max: Infinity };
      if (!m.retired && m.min <= upper && m.max >= lower) candidates.push({ bucket: b, min: m.min, max: m.max });
    }
    candidates.sort((a, b) => b.max - a.max || b.bucket - a.bucket);

    const before = (row: R) => {
      const t = ms(row[tsField]);
      if (opts.window?.until !== undefined && t >= ms(opts.window.until)) return false;
      if (t < lower) return false;
      if (!after) return true;
      const at = ms(after.ts);
      return t < at || (t === at && String(row._id) < after.id);
    };
    const order = (a: R, b: R) => ms(b[tsField]) - ms(a[tsField]) || (String(b._id) < String(a._id) ? -1 : String(b._id) > String(a._id) ? 1 : 0);

    const pool: R[] = [];
    const started = Date.now();
    let i = 0;
    let batch = 1;
    // How much of a full bucket the sequence has filled in bucket b (the top one is usually partial).
    const share = (b: number) => (Math.min(top, (b + 1) * this.bucketSize - 1) - b * this.bucketSize + 1) / this.bucketSize;
    let filled = 0;
    while (i < candidates.length && result.rows.length <= limit) {
      if (result.buckets >= MAX_BUCKETS_PER_PAGE || (result.buckets > 0 && Date.now() - started > PAGE_BUDGET_MS)) break;
      const now = candidates.slice(i, i + batch);
      i += now.length;
      const fetched = await Promise.all(now.map((c) => this.bucketRows(model, scope, c.bucket, c.bucket > topBucket - this.openBuckets, version ?? "0", opts, result)));
      for (const c of now) filled += share(c.bucket);
      for (const rows of fetched) {
        result.buckets++;
        for (const row of rows) if (before(row) && (!opts.match || opts.match(row))) pool.push(row);
      }
      // Rows later than anything an unread bucket can hold are final.
      const bound = i < candidates.length ? candidates[i]!.max : -Infinity;
      pool.sort(order);
      let k = 0;
      while (k < pool.length && ms(pool[k]![tsField]) > bound) k++;
      result.rows.push(...pool.splice(0, k));
      // Filters that select little: read as many buckets at a time as the yield so far suggests (up to 4).
      // Yield per full bucket: a top bucket holding a few rows does not make an unfiltered page read four more.
      const perBucket = (result.rows.length + pool.length) / Math.max(filled, 1 / this.bucketSize);
      batch = Math.max(1, Math.min(4, Math.ceil((limit + 1 - result.rows.length) / Math.max(perBucket, 1))));
    }
    if (result.rows.length > limit + 1) result.rows.length = limit + 1;
    if (result.rows.length <= limit && i < candidates.length) {
      // Stopped on the budget: resume below the next unread bucket's range (every later row is out).
      const last = result.rows[result.rows.length - 1];
      const bound = candidates[i]!.max;
      // With no row to resume after: every row up to the bound (" " sorts before any id at that instant).
      result.resumeAfter = last ? { ts: new Date(ms(last[tsField])), id: String(last._id) } : { ts: new Date(Math.min(bound + 1, upper)), id: " " };
    }
    return result;
  }
}

/** Marks of the buckets of every list a service keeps (one collection per service). */
export const bucketMarkSchema = new Schema(
  {
    _id: { type: String, required: true },
    list: { type: String, required: true },
    first_at: { type: Date, required: true },
    min_ts: { type: Date, required: true },
    max_ts: { type: Date, required: true },
    retired: { type: Boolean },
    chunk: { type: String },
  },
  { versionKey: false, _id: false },
);
bucketMarkSchema.index({ list: 1 });
bucketMarkSchema.index({ chunk: 1 });

/** The fields and index a listed schema adds. */
export const listedFields = { _seq: { type: Number }, _bucket: { type: String } } as const;

/** Declares the bucket index (and any equality fields lists push down with it). */
export function addListIndexes(schema: Schema, equalities: string[] = []): void {
  schema.index({ _bucket: 1, ...Object.fromEntries(equalities.map((f) => [f, 1])) });
}
