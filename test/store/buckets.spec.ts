// Bucketed keyset lists against the real store and Redis: exact order, bounded reads, windows, recovery.
import mongoose, { Schema, type Connection, type Model } from "mongoose";
import Redis from "ioredis";
import { randomBytes } from "node:crypto";
import { BUCKET_SIZE, ListSequence, addListIndexes, bucketMarkSchema, listedFields, type ListRowsOptions } from "../../shared/list/buckets";
import { pageOf, parseListQuery } from "../../shared/pagination";
import { ensureStandInIndexes } from "../../shared/store/ferret-indexes";

interface Row {
  _id: string;
  zone_id: string;
  kind: string;
  ts: Date;
  _seq: number;
  _bucket: string;
}

const rowSchema = new Schema(
  { _id: String, zone_id: String, kind: String, ts: Date, ...listedFields },
  { versionKey: false, _id: false },
);
addListIndexes(rowSchema, ["kind"]);

const suffix = randomBytes(4).toString("hex");
const mongoUrl = (() => {
  const u = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  u.pathname = `/test_buckets_${suffix}`;
  return u.toString();
})();

let db: Connection;
let redis: Redis;
let Rows: Model<Row>;
let seq: ListSequence;
let n = 0;

const id = (i: number) => `r${String(i).padStart(6, "0")}-${randomBytes(2).toString("hex")}`;

async function insert(scope: string, stamps: Date[], kinds?: string[]): Promise<Row[]> {
  const fields = await seq.assign(scope, stamps);
  const docs = stamps.map((ts, i) => ({ _id: id(n++), zone_id: scope, kind: kinds?.[i] ?? "a", ts, ...fields[i]! }));
  await Rows.insertMany(docs);
  return docs as Row[];
}

/** Every page of a list, following cursors; with the documents each page made the store decode. */
async function walk(scope: string, limit: number, opts: ListRowsOptions<Row> = {}, filters: Record<string, unknown> = {}) {
  const out: string[] = [];
  const decoded: number[] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 10_000; guard++) {
    const q = parseListQuery({ limit: String(limit), ...(cursor ? { cursor } : {}) }, { defaultLimit: limit, maxLimit: 1000 }, filters);
    const page = await seq.rows<Row>(Rows, scope, q.limit, q.after, { tsField: "ts", ...opts });
    decoded.push(page.decoded);
    const built = pageOf(page.rows, q, (r) => r._id, filters, "ts", page.resumeAfter);
    out.push(...built.items);
    if (!built.next_cursor) return { ids: out, decoded };
    cursor = built.next_cursor;
  }
  throw new Error("too many pages");
}

const expected = (rows: Row[], keep: (r: Row) => boolean = () => true) =>
  rows
    .filter(keep)
    .sort((a, b) => b.ts.getTime() - a.ts.getTime() || (b._id < a._id ? -1 : b._id > a._id ? 1 : 0))
    .map((r) => r._id);

beforeAll(async () => {
  db = await mongoose.createConnection(mongoUrl).asPromise();
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  Rows = db.model<Row>("Row", rowSchema, "rows");
  const Marks = db.model("ListMark", bucketMarkSchema, "test_list_marks");
  await Marks.createIndexes();
  await ensureStandInIndexes(db, [Rows, Marks], process.env.STORE_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/ferretdb");
  seq = new ListSequence(redis, Marks as any, "rows", `test_buckets_${suffix}:`);
});

afterAll(async () => {
  const keys = await redis.keys(`test_buckets_${suffix}:*`);
  if (keys.length) await redis.del(...keys);
  await db.dropDatabase().catch(() => undefined);
  await db.close();
  redis.disconnect();
});

describe("bucketed lists", () => {
  test("in-order rows: pages give exactly the sorted rows, each page reads at most three buckets", async () => {
    const base = Date.now() - 1_000_000;
    const rows = await insert("z-inorder", Array.from({ length: 1000 }, (_, i) => new Date(base + i * 10)));
    const { ids, decoded } = await walk("z-inorder", 50);
    expect(ids).toEqual(expected(rows));
    // A page's rows span at most two buckets; a bucket's range is written 200 ms past its newest row, so at
    // a boundary the walk may read one more to know no later row hides there.
    expect(Math.max(...decoded)).toBeLessThanOrEqual(3 * BUCKET_SIZE);
  });

  test("a first page over a top bucket of a few rows reads only the next bucket too", async () => {
    // A second apart, so that bucket ranges do not overlap (marks are written a little ahead of their rows).
    const base = Date.now() - 2_000_000;
    const rows = await insert("z-partial-top", Array.from({ length: 3 * BUCKET_SIZE + 10 }, (_, i) => new Date(base + i * 1000)));
    const q = parseListQuery({ limit: "200" }, { defaultLimit: 200, maxLimit: 1000 });
    const page = await seq.rows<Row>(Rows, "z-partial-top", q.limit, q.after, { tsField: "ts" });
    expect(page.rows.map((r) => r._id)).toEqual(expected(rows).slice(0, 201));
    expect([page.buckets, page.decoded]).toEqual([2, 10 + BUCKET_SIZE]);
  });

  test("timestamps out of arrival order (late events) still come back in exact (ts, id) order", async () => {
    const base = Date.now() - 5_000_000;
    // Same-millisecond ties included: the id breaks them.
    const stamps = Array.from({ length: 900 }, () => new Date(base + Math.floor(Math.random() * 300) * 1000));
    const rows = await insert("z-shuffled", stamps);
    const { ids } = await walk("z-shuffled", 37);
    expect(ids).toEqual(expected(rows));
  });

  test("since is inclusive, until exclusive, and only buckets whose range meets the window are read", async () => {
    const base = Date.UTC(2026, 4, 1);
    const rows = await insert("z-window", Array.from({ length: 800 }, (_, i) => new Date(base + i * 1000)));
    const since = new Date(base + 100_000);
    const until = new Date(base + 300_000);
    const { ids, decoded } = await walk("z-window", 1000, { window: { since, until } });
    expect(ids).toEqual(expected(rows, (r) => r.ts >= since && r.ts < until));
    expect(ids.length).toBe(200);
    // 200 rows spread over at most two buckets of the four.
    expect(decoded.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 * BUCKET_SIZE);
  });

  test("an equality filter is pushed down with the bucket: only matching rows are decoded", async () => {
    const base = Date.now() - 9_000_000;
    const kinds = Array.from({ length: 1024 }, (_, i) => (i % 16 === 0 ? "rare" : "common"));
    const rows = await insert("z-filter", Array.from({ length: 1024 }, (_, i) => new Date(base + i)), kinds);
    const { ids, decoded } = await walk("z-filter", 10, { where: { kind: "rare" } }, { kind: "rare" });
    expect(ids).toEqual(expected(rows, (r) => r.kind === "rare"));
    // Without the push-down one bucket alone would decode 256 documents; with it a page decodes only the
    // rare rows of the (at most four) buckets it reads.
    expect(Math.max(...decoded)).toBeLessThanOrEqual(64);
  });

  test("a counter lost with Redis is re-seeded past the marked buckets: nothing is lost, new rows open a new bucket", async () => {
    const base = Date.now() - 20_000_000;
    const first = await insert("z-recover", Array.from({ length: 300 }, (_, i) => new Date(base + i)));
    await redis.del(`test_buckets_${suffix}:listseq:{rows}:z-recover`);
    const second = await insert("z-recover", Array.from({ length: 10 }, (_, i) => new Date(base + 1000 + i)));
    expect(Math.min(...second.map((r) => r._seq))).toBe(2 * BUCKET_SIZE);
    const { ids } = await walk("z-recover", 64);
    expect(ids).toEqual(expected([...first, ...second]));
  });

  test("closed buckets are read from memory until a listed document is updated; open buckets always from the store", async () => {
    const base = Date.now() - 40_000_000;
    const rows = await insert("z-cache", Array.from({ length: 5 * BUCKET_SIZE }, (_, i) => new Date(base + i)));
    const first = await walk("z-cache", 1000);
    expect(first.ids).toEqual(expected(rows));
    const again = await walk("z-cache", 1000);
    // Only the two open buckets (the top two of five) are read again.
    expect(again.decoded.reduce((a, b) => a + b, 0)).toBe(2 * BUCKET_SIZE);
    const oldest = rows[0]!;
    await Rows.updateOne({ _id: oldest._id }, { $set: { kind: "changed" } });
    await seq.updated();
    const page = await seq.rows<Row>(Rows, "z-cache", 2000, null, { tsField: "ts" });
    expect(page.decoded).toBe(5 * BUCKET_SIZE);
    expect(page.rows.find((r) => r._id === oldest._id)?.kind).toBe("changed");
  });

  test("retired buckets (their rows deleted by retention) are not read again, here or by a fresh process", async () => {
    const base = Date.now() - 50_000_000;
    const rows = await insert("z-retire", Array.from({ length: 4 * BUCKET_SIZE }, (_, i) => new Date(base + i)));
    await walk("z-retire", 1000);
    await Rows.deleteMany({ _bucket: "z-retire:0" });
    await seq.retire("z-retire", [0]);
    const { ids, decoded } = await walk("z-retire", 1000);
    expect(ids).toEqual(expected(rows.slice(BUCKET_SIZE)));
    expect(decoded.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3 * BUCKET_SIZE);
    const fresh = new ListSequence(redis, seq["marks"], "rows", `test_buckets_${suffix}:`);
    const page = await fresh.rows<Row>(Rows, "z-retire", 2000, null, { tsField: "ts" });
    expect(page.buckets).toBe(3);
    expect(page.rows.map((r) => r._id)).toEqual(expected(rows.slice(BUCKET_SIZE)));
  });

  test("a list with its own bucket size keeps exact order with more, smaller buckets", async () => {
    const small = new ListSequence(redis, seq["marks"], "rows_small", `test_buckets_${suffix}:`, 16);
    const base = Date.now() - 60_000_000;
    const stamps = Array.from({ length: 200 }, (_, i) => new Date(base + i * 7 + Math.floor(Math.random() * 20)));
    const fields = await small.assign("z-small", stamps);
    expect(fields[199]!._bucket).toBe(`z-small:${Math.floor(fields[199]!._seq / 16)}`);
    const docs = stamps.map((ts, i) => ({ _id: id(n++), zone_id: "z-small", kind: "a", ts, ...fields[i]! }));
    await Rows.insertMany(docs);
    const page = await small.rows<Row>(Rows, "z-small", 30, null, { tsField: "ts" });
    expect(page.rows.slice(0, 30).map((r) => r._id)).toEqual(expected(docs as Row[]).slice(0, 30));
    // One bucket at a time without a filter: about two buckets of 16 past what the page needs.
    expect(page.decoded).toBeLessThanOrEqual(31 + 3 * 16);
  });

  test("a reader far behind the writers (many new buckets since it last read) pages exactly", async () => {
    const reader = new ListSequence(redis, seq["marks"], "rows_far", `test_buckets_${suffix}:`, 8);
    const writer = new ListSequence(redis, seq["marks"], "rows_far", `test_buckets_${suffix}:`, 8);
    const base = Date.now() - 70_000_000;
    const write = async (from: number, count: number) => {
      const stamps = Array.from({ length: count }, (_, i) => new Date(base + (from + i) * 10));
      const fields = await writer.assign("z-far", stamps);
      const docs = stamps.map((ts, i) => ({ _id: id(n++), zone_id: "z-far", kind: "a", ts, ...fields[i]! }));
      await Rows.insertMany(docs);
      return docs as Row[];
    };
    const all = await write(0, 40);
    expect((await reader.rows<Row>(Rows, "z-far", 100, null, { tsField: "ts" })).rows).toHaveLength(40);
    // 50 buckets of 8 later, the reader refreshes its marks by chunks.
    all.push(...(await write(40, 400)));
    const page = await reader.rows<Row>(Rows, "z-far", 1000, null, { tsField: "ts" });
    expect(page.rows.map((r) => r._id)).toEqual(expected(all));
  });

  test("buckets a writer is still filling (one batch spans several) are not cached half full", async () => {
    const list = new ListSequence(redis, seq["marks"], "rows_batch", `test_buckets_${suffix}:`, 8, 64);
    const base = Date.now() - 80_000_000;
    const stamps = Array.from({ length: 64 }, (_, i) => new Date(base + i));
    const fields = await list.assign("z-batch", stamps);
    const docs = stamps.map((ts, i) => ({ _id: id(n++), zone_id: "z-batch", kind: "a", ts, ...fields[i]! }));
    // The batch's second half lands first; a page read in between must not keep the first half's buckets empty.
    await Rows.insertMany(docs.slice(32));
    expect((await list.rows<Row>(Rows, "z-batch", 1000, null, { tsField: "ts" })).rows).toHaveLength(32);
    await Rows.insertMany(docs.slice(0, 32));
    expect((await list.rows<Row>(Rows, "z-batch", 1000, null, { tsField: "ts" })).rows.map((r) => r._id)).toEqual(expected(docs as Row[]));
  });

  test("concurrent writers share the sequence: no number twice, every row listed once", async () => {
    const base = Date.now() - 30_000_000;
    const batches = await Promise.all(Array.from({ length: 40 }, (_, k) => insert("z-concurrent", Array.from({ length: 10 }, (_, i) => new Date(base + k * 10 + i)))));
    const all = batches.flat();
    expect(new Set(all.map((r) => r._seq)).size).toBe(400);
    const { ids } = await walk("z-concurrent", 100);
    expect(ids).toEqual(expected(all));
  });
});
