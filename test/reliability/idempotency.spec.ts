// Idempotency-Key on POST/PATCH/DELETE under /v1: the first response replayed, a different request with
// the same key refused, a concurrent duplicate refused, and a retry after a crash between the write and
// its reply finding the write instead of making a second one.
import Redis from "ioredis";
import mongoose from "mongoose";
import { randomBytes } from "node:crypto";
import { startCluster, eventually, type Cluster } from "../helpers/cluster";
import { fieldsOf } from "../../shared/signing";
import { withDocLock } from "../../shared/doc-lock";

/** This suite's zone-events stream (each test cluster has its own STREAM_PREFIX). */
const stream = () => c.stream("caracal.zone.events");

let c: Cluster;
let redis: Redis;
let db: mongoose.Connection;
const run = randomBytes(3).toString("hex");
const key = (name: string) => `${run}-${name}`;

beforeAll(async () => {
  c = await startCluster();
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  db = await mongoose.createConnection(c.mongoUrl).asPromise();
});
afterAll(async () => {
  redis.disconnect();
  await db.close();
  await c.stop();
});

const createZone = (name: string, idem?: string, token?: string) => {
  const req = c.http().post("/v1/zones").set(c.auth(token));
  return (idem ? req.set("Idempotency-Key", idem) : req).send({ name });
};

async function zoneEvents(zoneId: string): Promise<Record<string, string>[]> {
  return (await redis.xrevrange(stream(), "+", "-", "COUNT", 5000)).map(([, f]) => fieldsOf(f)).filter((f) => f.entity_id === zoneId);
}

test("the same key, actor and body replays the first response (status, body, Location) and writes nothing more", async () => {
  const first = await createZone(`idem ${run}`, key("replay"));
  expect(first.status).toBe(201);
  expect(first.headers["idempotent-replayed"]).toBeUndefined();
  const again = await createZone(`idem ${run}`, key("replay"));
  expect(again.status).toBe(201);
  expect(again.body).toEqual(first.body);
  expect(again.headers.location).toBe(first.headers.location);
  expect(again.headers["idempotent-replayed"]).toBe("true");
  const quoted = await c.http().post("/v1/zones").set(c.auth()).set("Idempotency-Key", `"${key("replay")}"`).send({ name: `idem ${run}` });
  expect(quoted.body.id).toBe(first.body.id);
  expect(await db.collection("zones").countDocuments({ name: `idem ${run}` })).toBe(1);
  const events = await eventually(async () => ((await zoneEvents(first.body.id)).length ? zoneEvents(first.body.id) : undefined));
  expect(events.map((e) => e.action)).toEqual(["created"]);
});

test("the same key with another body or path is 422 idempotency_key_reused; another actor's key is its own", async () => {
  expect((await createZone(`reuse ${run}`, key("reuse"))).status).toBe(201);
  const other = await createZone(`reuse ${run} changed`, key("reuse"));
  expect([other.status, other.body.error]).toEqual([422, "idempotency_key_reused"]);
  const otherPath = await c.http().post("/v1/admin-tokens").set(c.auth()).set("Idempotency-Key", key("reuse")).send({ name: `reuse ${run}` });
  expect([otherPath.status, otherPath.body.error]).toEqual([422, "idempotency_key_reused"]);
  const token = (await c.http().post("/v1/admin-tokens").set(c.auth()).send({ name: "second actor", scope: "global" })).body.token;
  const mine = await createZone(`reuse ${run} changed`, key("reuse"), token);
  expect(mine.status).toBe(201);
  expect(mine.headers["idempotent-replayed"]).toBeUndefined();
});

test("a refusal is replayed too; a malformed key is 400; GET ignores the header", async () => {
  const bad = await c.http().post("/v1/zones").set(c.auth()).set("Idempotency-Key", key("refused")).send({ name: "" });
  expect(bad.status).toBe(400);
  const again = await c.http().post("/v1/zones").set(c.auth()).set("Idempotency-Key", key("refused")).send({ name: "" });
  expect([again.status, again.headers["idempotent-replayed"]]).toEqual([400, "true"]);
  expect(again.body.error).toBe(bad.body.error);
  for (const malformed of ["has space", "x".repeat(256), '"unterminated']) {
    const r = await c.http().post("/v1/zones").set(c.auth()).set("Idempotency-Key", malformed).send({ name: "never" });
    expect([r.status, r.body.error]).toEqual([400, "invalid_idempotency_key"]);
  }
  expect((await c.http().get("/v1/zones").set(c.auth()).set("Idempotency-Key", "has space")).status).toBe(200);
});

test("a duplicate while the first is in flight is 409 idempotency_key_in_use; afterwards the first is replayed", async () => {
  const zone = (await createZone(`busy ${run}`)).body;
  // Hold the zone's document lock, so the first PATCH waits in its queue, in flight.
  const dbName = new URL(c.mongoUrl).pathname.slice(1);
  let release!: () => void;
  const held = withDocLock(redis, `${dbName}:zones:${zone.id}`, () => new Promise<void>((r) => (release = r)), { waitMs: 5000 });
  await new Promise((r) => setTimeout(r, 50));
  const first = c.http().patch(`/v1/zones/${zone.id}`).set(c.auth()).set("Idempotency-Key", key("busy")).send({ name: "busy renamed" }).then((r) => r);
  await new Promise((r) => setTimeout(r, 300));
  const dup = await c.http().patch(`/v1/zones/${zone.id}`).set(c.auth()).set("Idempotency-Key", key("busy")).send({ name: "busy renamed" });
  expect([dup.status, dup.body.error]).toEqual([409, "idempotency_key_in_use"]);
  expect(Number(dup.headers["retry-after"])).toBeGreaterThan(0);
  release();
  await held;
  const done = await first;
  expect(done.status).toBe(200);
  const replay = await c.http().patch(`/v1/zones/${zone.id}`).set(c.auth()).set("Idempotency-Key", key("busy")).send({ name: "busy renamed" });
  expect([replay.status, replay.headers["idempotent-replayed"]]).toEqual([200, "true"]);
  expect(replay.body).toEqual(done.body);
  const updates = await eventually(async () => {
    const e = (await zoneEvents(zone.id)).filter((x) => x.action === "updated");
    return e.length ? e : undefined;
  });
  expect(updates).toHaveLength(1);
});

test("a secret shown once is not kept for replay", async () => {
  const first = await c.http().post("/v1/admin-tokens").set(c.auth()).set("Idempotency-Key", key("secret")).send({ name: `secret ${run}`, scope: "global" });
  expect(first.status).toBe(201);
  expect(first.body.token).toMatch(/^cat_/);
  const replay = await c.http().post("/v1/admin-tokens").set(c.auth()).set("Idempotency-Key", key("secret")).send({ name: `secret ${run}`, scope: "global" });
  expect(replay.status).toBe(201);
  expect(replay.body.id).toBe(first.body.id);
  expect(replay.body.token).toBeUndefined();
  const stored = await redis.keys(`${c.namespace}:idem:*`);
  for (const k of stored) expect(await redis.get(k)).not.toContain(first.body.token);
});

test("the zones process dies between its write and its reply: 503, and the retry with the key finds the zone (one zone, one event)", async () => {
  const zones = c.brokers.zones!.getLocalService("zones") as any;
  const original = zones.outboxKick;
  zones.outboxKick = async () => {
    // The zone and its event are stored; the process dies before it publishes or answers.
    await c.crash("zones");
    await new Promise(() => undefined);
  };
  const name = `crash ${run}`;
  const started = Date.now();
  const first = await createZone(name, key("crash"));
  const failedAfterMs = Date.now() - started;
  expect([first.status, first.body.error]).toEqual([503, "service_unavailable"]);
  expect(await db.collection("zones").countDocuments({ name })).toBe(1);
  zones.outboxKick = original;

  await c.restart("zones");
  const retry = await createZone(name, key("crash"));
  expect(retry.status).toBe(201);
  expect(retry.body.name).toBe(name);
  expect(retry.headers.location).toBe(`/v1/zones/${retry.body.id}`);
  expect(await db.collection("zones").countDocuments({ name })).toBe(1);
  const events = await eventually(async () => {
    const e = await zoneEvents(retry.body.id);
    return e.length ? e : undefined;
  }, 10_000);
  // Give a second publish (there must be none) the time to appear.
  await new Promise((r) => setTimeout(r, 1000));
  expect((await zoneEvents(retry.body.id)).map((e) => e.action)).toEqual(["created"]);
  expect(events).toHaveLength(1);
  console.log(`idempotency: the client got 503 ${failedAfterMs} ms after sending; the retry found zone ${retry.body.id}`);
}, 60_000);
