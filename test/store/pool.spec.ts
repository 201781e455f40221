// FerretDB's PostgreSQL pool must never wedge: every client together stays under half of it, and a
// burst of concurrent updates of one document and inserts completes with nothing lost.
import mongoose, { Schema, type Connection } from "mongoose";
import Redis from "ioredis";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { withDocLock } from "../../shared/doc-lock";
import { gateConnection, gateUpdates } from "../../shared/store/update-gate";
import { loadConfig } from "../../shared/config";
import { processNames } from "../../deploy/local/services";

const ROOT = join(__dirname, "..", "..");
const pgUrl = process.env.STORE_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/ferretdb";
const suffix = randomBytes(4).toString("hex");
const mongoUrl = (() => {
  const u = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  u.pathname = `/test_pool_${suffix}`;
  return u.toString();
})();

/** The pool size the running FerretDB was started with (from its command line), when stack.sh started it. */
function ferretPoolSize(): number | null {
  const pidFile = join(ROOT, ".local", "ferretdb.pid");
  if (!existsSync(pidFile)) return null;
  const pid = readFileSync(pidFile, "utf8").trim();
  if (!existsSync(`/proc/${pid}/cmdline`)) return null;
  const m = /pool_max_conns=(\d+)/.exec(readFileSync(`/proc/${pid}/cmdline`, "utf8"));
  return m ? Number(m[1]) : null;
}

describe("FerretDB pool sizing", () => {
  test("all services' updates together take at most half of FerretDB's pool, their pools at most all of it, and it fits PostgreSQL's max_connections", async () => {
    const cfg = loadConfig({ CARACAL_MODE: "dev" });
    // One store connection per process (the gateway's holds admin tokens).
    const processes = processNames().length;
    const pool = ferretPoolSize() ?? 80;
    expect(processes * cfg.mongoUpdateConcurrency * 2).toBeLessThanOrEqual(pool);
    expect(processes * cfg.mongoPoolSize).toBeLessThanOrEqual(pool);
    const pg = new Client({ connectionString: pgUrl });
    await pg.connect();
    const max = Number((await pg.query("SHOW max_connections")).rows[0].max_connections);
    await pg.end();
    expect(pool).toBeLessThan(max);
  });

  test("200 concurrent locked updates of one document from 8 clients and 200 concurrent inserts: none lost, none stuck", async () => {
    const cfg = loadConfig({ CARACAL_MODE: "dev" });
    const clients: Connection[] = [];
    for (let i = 0; i < 8; i++) {
      const c = await mongoose.createConnection(mongoUrl, { maxPoolSize: cfg.mongoPoolSize }).asPromise();
      gateConnection(c, cfg.mongoUpdateConcurrency);
      clients.push(c);
    }
    const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    try {
      const schema = new Schema({ _id: String, n: Number, zone_id: String }, { versionKey: false, _id: false });
      gateUpdates(schema);
      const models = clients.map((c) => c.model("Counter", schema, "counters"));
      await models[0]!.create({ _id: "c1", n: 0 });
      const updates = Array.from({ length: 200 }, (_, i) =>
        withDocLock(redis, `test_pool_${suffix}:counters:c1`, () => models[i % 8]!.updateOne({ _id: "c1" }, { $inc: { n: 1 } }), { waitMs: 60_000 }),
      );
      const inserts = Array.from({ length: 200 }, (_, i) => models[i % 8]!.create({ _id: `d${i}`, n: i, zone_id: "z1" }));
      const results = await Promise.allSettled([...updates, ...inserts]);
      const failed = results.filter((r) => r.status === "rejected");
      expect(failed.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
      expect((await models[0]!.findById("c1").lean())?.n).toBe(200);
      expect(await models[0]!.countDocuments({ zone_id: "z1" })).toBe(200);
    } finally {
      await clients[0]!.dropDatabase().catch(() => undefined);
      await Promise.all(clients.map((c) => c.close()));
      redis.disconnect();
    }
    // A wedged pool never finishes: the test's own timeout is the failure.
  }, 120_000);

  test("a connection's gate holds its updates and deletes to the gate's size, and a failed update gives its place back", async () => {
    const c = await mongoose.createConnection(mongoUrl, { maxPoolSize: 10 }).asPromise();
    gateConnection(c, 2);
    try {
      const schema = new Schema({ _id: String, n: Number, s: String }, { versionKey: false, _id: false });
      gateUpdates(schema);
      let inFlight = 0;
      let most = 0;
      // Registered after the gate's own hooks: runs once the gate has let the query through.
      schema.pre(["updateOne", "deleteOne"], { document: false, query: true }, function () {
        inFlight++;
        most = Math.max(most, inFlight);
      });
      schema.post(["updateOne", "deleteOne"], { document: false, query: true }, function () {
        inFlight--;
      });
      schema.post(["updateOne", "deleteOne"], { document: false, query: true }, function (err: unknown, _r: unknown, next: (e?: unknown) => void) {
        inFlight--;
        next(err);
      } as any);
      const M = c.model("Gated", schema, "gated");
      await M.insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: `g${i}`, n: 0, s: "text" })));
      // A failing update ($inc of a string) must release its place.
      const failing = Array.from({ length: 5 }, () => M.updateOne({ _id: "g0" }, { $inc: { s: 1 } }).then(() => "ok", () => "failed"));
      const updates = Array.from({ length: 20 }, (_, i) => M.updateOne({ _id: `g${i + 1}` }, { $inc: { n: 1 } }));
      const deletes = Array.from({ length: 5 }, (_, i) => M.deleteOne({ _id: `g${i + 25}` }));
      const results = await Promise.all([...failing, ...updates, ...deletes]);
      expect(results.slice(0, 5)).toEqual(Array(5).fill("failed"));
      expect(most).toBe(2);
      expect(await M.countDocuments({ n: 1 })).toBe(20);
    } finally {
      await c.dropDatabase().catch(() => undefined);
      await c.close();
    }
  });
});
