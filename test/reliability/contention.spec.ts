// Writes under contention queue for their document and succeed, or are refused with 429 and Retry-After
// before anything is written: 200 concurrent PATCHes of one zone, 200 concurrent resource creates in one
// zone (its resource counter). No 5xx, every success stored with exactly one event, no refusal stored.
import Redis from "ioredis";
import mongoose from "mongoose";
import { randomBytes } from "node:crypto";
import { startCluster, eventually, type Cluster } from "../helpers/cluster";
import { fieldsOf } from "../../shared/signing";

/** This suite's zone-events stream (each test cluster has its own STREAM_PREFIX). */
const stream = () => c.stream("caracal.zone.events");
const N = 200;

let c: Cluster;
let redis: Redis;
let db: mongoose.Connection;
const run = randomBytes(3).toString("hex");

beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "applications", "providers"] });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  db = await mongoose.createConnection(c.mongoUrl).asPromise();
}, 60_000);
afterAll(async () => {
  redis.disconnect();
  await db.close();
  await c.stop();
});

/** Zone events about one entity since `from`, grouped by request id. */
async function eventsByRequest(from: string, entityFilter: (f: Record<string, string>) => boolean): Promise<Map<string, Record<string, string>[]>> {
  const out = new Map<string, Record<string, string>[]>();
  for (const [, flat] of await redis.xrange(stream(), `(${from}`, "+")) {
    const f = fieldsOf(flat);
    if (!entityFilter(f)) continue;
    out.set(f.request_id!, [...(out.get(f.request_id!) ?? []), f]);
  }
  return out;
}

const lastStreamId = async () => (await redis.xrevrange(stream(), "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0";

function summarize(label: string, statuses: number[], started: number) {
  const byStatus: Record<number, number> = {};
  for (const s of statuses) byStatus[s] = (byStatus[s] ?? 0) + 1;
  console.log(`contention: ${label}: ${JSON.stringify(byStatus)} in ${Date.now() - started} ms`);
  return byStatus;
}

test(`${N} concurrent PATCHes of one zone: each is applied with its event, or refused with 429 and not applied`, async () => {
  const zone = (await c.http().post("/v1/zones").set(c.auth()).send({ name: "contended" })).body;
  const from = await lastStreamId();
  const started = Date.now();
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) => c.http().patch(`/v1/zones/${zone.id}`).set(c.auth()).set("x-request-id", `cp-${run}-${i}`).send({ name: `name ${i}` })),
  );
  summarize("PATCH one zone", results.map((r) => r.status), started);
  for (const r of results) {
    expect([200, 429]).toContain(r.status);
    if (r.status === 429) {
      expect(r.body.error).toBe("write_busy");
      expect(Number(r.headers["retry-after"])).toBeGreaterThan(0);
    }
  }
  const applied = results.map((r, i) => (r.status === 200 ? i : -1)).filter((i) => i >= 0);
  expect(applied.length).toBeGreaterThan(0);
  const events = await eventually(async () => {
    const e = await eventsByRequest(from, (f) => f.entity_id === zone.id && f.action === "updated");
    return applied.every((i) => e.has(`cp-${run}-${i}`)) ? e : undefined;
  }, 20_000);
  for (let i = 0; i < N; i++) expect(events.get(`cp-${run}-${i}`)?.length ?? 0).toBe(results[i]!.status === 200 ? 1 : 0);
  const final = (await c.http().get(`/v1/zones/${zone.id}`).set(c.auth())).body;
  expect(applied.map((i) => `name ${i}`)).toContain(final.name);
}, 120_000);

test(`${N} concurrent resource creates in one zone: the counter and the stored resources match the 201s exactly`, async () => {
  const z = (await c.http().post("/v1/zones").set(c.auth()).send({ name: "resource rush" })).body.id;
  const app = (await c.http().post(`/v1/zones/${z}/applications`).set(c.auth()).send({ name: "gw", registration_method: "managed" })).body.id;
  const provider = (await c.http().post(`/v1/zones/${z}/providers`).set(c.auth()).send({ name: "p", kind: "api_key", config_json: { header_name: "X-Key", api_key: "k" } })).body.id;
  const from = await lastStreamId();
  const started = Date.now();
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      c.http()
        .post(`/v1/zones/${z}/resources`)
        .set(c.auth())
        .set("x-request-id", `cr-${run}-${i}`)
        .send({ name: `res ${i}`, upstream_url: "https://upstream.test", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app }),
    ),
  );
  summarize("create resources in one zone", results.map((r) => r.status), started);
  for (const r of results) {
    expect([201, 429]).toContain(r.status);
    if (r.status === 429) expect(Number(r.headers["retry-after"])).toBeGreaterThan(0);
  }
  const createdIds = results.filter((r) => r.status === 201).map((r) => r.body.id as string);
  expect(createdIds.length).toBeGreaterThan(0);
  const stored = await db.collection("resources").find({ zone_id: z }, { projection: { _id: 1 } }).toArray();
  expect(stored.map((d) => String(d._id)).sort()).toEqual([...createdIds].sort());
  expect((await db.collection("provider_counters").findOne({ _id: `resources:${z}` as any }))?.value).toBe(createdIds.length);
  const events = await eventually(async () => {
    const e = await eventsByRequest(from, (f) => f.zone_id === z && f.entity_type === "resource");
    return createdIds.length <= [...e.values()].length ? e : undefined;
  }, 20_000);
  for (let i = 0; i < N; i++) expect(events.get(`cr-${run}-${i}`)?.length ?? 0).toBe(results[i]!.status === 201 ? 1 : 0);
}, 120_000);
