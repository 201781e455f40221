// FerretDB's PostgreSQL pool must never wedge: every client together stays under half of it, and a
// burst of concurrent updates of one document and inserts completes with nothing lost.
import mongoose, { Schema, type Connection } from "mongoose";
import Redis from "ioredis";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { withDocLock } from "../../shared/doc-lock";
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
  test("all services' pools together take at most half of FerretDB's pool, which fits PostgreSQL's max_connections", async () => {
    const perService = loadConfig({ CARACAL_MODE: "dev" }).mongoPoolSize;
    // Every process but the gateway runs one service connection; the gateway one (admin tokens).
    const total = processNames().length * perService;
    const pool = ferretPoolSize() ?? 80;
    expect(total * 2).toBeLessThanOrEqual(pool);
    const pg = new Client({ connectionString: pgUrl });
    await pg.connect();
    const max = Number((await pg.query("SHOW max_connections")).rows[0].max_connections);
    await pg.end();
    expect(pool).toBeLessThan(max);
  });

  test("200 concurrent locked updates of one document from 8 clients and 200 concurrent inserts: none lost, none stuck", async () => {
    const perService = loadConfig({ CARACAL_MODE: "dev" }).mongoPoolSize;
    const clients: Connection[] = [];
    for (let i = 0; i < 8; i++) clients.push(await mongoose.createConnection(mongoUrl, { maxPoolSize: perService }).asPromise());
    const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    try {
      const schema = new Schema({ _id: String, n: Number, zone_id: String }, { versionKey: false, _id: false });
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
});
