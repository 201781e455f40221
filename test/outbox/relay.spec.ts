import Redis from "ioredis";
import { startCluster, eventually, TEST_STREAMS_KEY, type Cluster } from "../helpers/cluster";
import { fieldsOf, sign, verify } from "../../shared/signing";
import { outboxEntry, withNewEvents } from "../../shared/outbox/entry";
import { newId } from "../../shared/ids";
import { loadConfig } from "../../shared/config";

let c: Cluster;
let redis: Redis;
beforeAll(async () => {
  // Published entries stay in their documents here, so the tests can read what was recorded.
  c = await startCluster({ env: { OUTBOX_KEEP_DISPATCHED: "20" } });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
});
afterAll(async () => {
  redis.disconnect();
  await c.stop();
});

/** The zone-events stream of this suite's cluster (tests give each cluster its own STREAM_PREFIX). */
const zoneEvents = () => c.stream("caracal.zone.events");

/** Zone-event entries about one entity, read straight from Redis. */
async function entriesFor(entityId: string): Promise<Record<string, string>[]> {
  const rows = await redis.xrevrange(zoneEvents(), "+", "-", "COUNT", 2000);
  return rows.map(([, flat]) => fieldsOf(flat)).filter((f) => f.entity_id === entityId);
}

const zonesService = () => c.brokers.zones!.getLocalService("zones") as any;

test("a zone create publishes a signed caracal.zone.events entry whose _sig we can recompute", async () => {
  const r = await c.http().post("/v1/zones").set(c.auth()).set("x-request-id", "sig-test-1").send({ name: "signed" });
  expect(r.status).toBe(201);
  const [entry] = await eventually(async () => {
    const e = await entriesFor(r.body.id);
    return e.length ? e : undefined;
  });
  expect(entry).toMatchObject({ zone_id: r.body.id, entity_type: "zone", entity_id: r.body.id, action: "created", request_id: "sig-test-1", kid: "k1" });
  expect(entry!.outbox_id).toMatch(/^[0-9a-f-]{36}$/);
  expect(Date.parse(entry!.occurred_at!)).not.toBeNaN();
  const { _sig, ...unsigned } = entry!;
  expect(_sig).toBe(sign(Buffer.from(TEST_STREAMS_KEY, "hex"), zoneEvents(), unsigned));
  expect(verify([{ kid: "k1", key: Buffer.from(TEST_STREAMS_KEY, "hex") }], zoneEvents(), entry!)).toBe(true);
});

test("STREAM_PREFIX: entries go to the prefixed stream only, signed over the name written; unset means the bare names", async () => {
  expect(c.stream("caracal.zone.events")).toBe(`${c.namespace}:caracal.zone.events`);
  const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: "prefixed" });
  expect(r.status).toBe(201);
  const [entry] = await eventually(async () => {
    const e = await entriesFor(r.body.id);
    return e.length ? e : undefined;
  });
  expect(verify([{ kid: "k1", key: Buffer.from(TEST_STREAMS_KEY, "hex") }], zoneEvents(), entry!)).toBe(true);
  expect(verify([{ kid: "k1", key: Buffer.from(TEST_STREAMS_KEY, "hex") }], "caracal.zone.events", entry!)).toBe(false);
  const bare = (await redis.xrevrange("caracal.zone.events", "+", "-", "COUNT", 2000)).map(([, f]) => fieldsOf(f));
  expect(bare.filter((f) => f.entity_id === r.body.id)).toEqual([]);
  expect(loadConfig({ CARACAL_MODE: "dev" }).streamPrefix).toBe("");
  expect(() => loadConfig({ CARACAL_MODE: "dev", STREAM_PREFIX: "no spaces" })).toThrow(/STREAM_PREFIX/);
});

test("the writer publishes its own events: each is on the stream when the response arrives", async () => {
  for (let i = 0; i < 5; i++) {
    const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: `published inline ${i}` });
    expect(r.status).toBe(201);
    const entries = await entriesFor(r.body.id);
    expect(entries.map((e) => e.action)).toEqual(["created"]);
  }
  // The results reach the documents later (the recorder), and then nothing is pending anywhere.
  const svc = zonesService();
  const last = await eventually(async () => {
    const docs = await svc.models.Zone.find({ name: /^published inline/ }).lean();
    return docs.length === 5 && docs.every((d: any) => d._outbox_pending === 0 && d._outbox[0].dispatched_at) ? docs : undefined;
  });
  expect(last).toHaveLength(5);
  const metrics = await eventually(async () => {
    const text = (await c.http().get("/metrics")).text;
    return text.includes("caracal_api_outbox_unrecorded_documents 0") ? text : undefined;
  });
  expect(metrics).toContain("caracal_api_outbox_pending_total 0");
});

test("an entry the writer could not publish is left to the relay, which publishes it once when Redis accepts it", async () => {
  const svc = zonesService();
  // A stream name that holds a string: XADD fails with WRONGTYPE until the key is removed.
  const stream = `relay-retry-${newId()}`;
  await redis.set(c.stream(stream), "not a stream");
  const id = newId();
  const entry = outboxEntry(stream, { zone_id: id, note: "retried" }, null);
  const now = new Date();
  await svc.models.Zone.create({ _id: id, name: "retry", slug: `retry-${id}`, dcr_enabled: false, operator_coauthor_badge: true, reserved: false, created_at: now, updated_at: now, archived_at: null, ...withNewEvents([entry]) });
  await svc.outboxKick("Zone", id, [entry]);
  // The failure left a hint and counts as pending; nothing reached a stream.
  expect(await redis.zscore("outbox:{" + svc.models.Zone.db.name + ":zones}:due", id)).not.toBeNull();
  expect((await c.http().get("/metrics")).text).toMatch(/caracal_api_outbox_pending_total [1-9]/);
  await redis.del(c.stream(stream));
  // The relay retries after its backoff (2–2.6 s after a first failed attempt).
  const rows = await eventually(async () => {
    const r = await redis.xrange(c.stream(stream), "-", "+");
    return r.length ? r : undefined;
  }, 10_000);
  await new Promise((res) => setTimeout(res, 300));
  expect(await redis.xrange(c.stream(stream), "-", "+")).toHaveLength(1);
  expect(fieldsOf(rows[0]![1])).toMatchObject({ zone_id: id, note: "retried", outbox_id: entry.id, kid: "k1" });
  await eventually(async () => ((await svc.models.Zone.findById(id).lean())?._outbox_pending === 0 ? true : undefined));
  await redis.del(c.stream(stream));
});

test("update and delete emit their own entries in order", async () => {
  const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: "lifecycle" });
  await c.http().patch(`/v1/zones/${r.body.id}`).set(c.auth()).send({ name: "renamed" });
  await c.http().delete(`/v1/zones/${r.body.id}`).set(c.auth());
  const entries = await eventually(async () => {
    const e = await entriesFor(r.body.id);
    return e.length === 3 ? e : undefined;
  });
  expect(entries.map((e) => e.action).reverse()).toEqual(["created", "updated", "deleted"]);
  expect(entries.find((e) => e.action === "updated")!.changed_fields).toBe("name");
});

/** Creates a zone whose event must not be out yet, restarts the zones service, and returns its one entry. */
async function createdThenPublishedOnceAfterRestart(name: string): Promise<Record<string, string>> {
  const r = await c.http().post("/v1/zones").set(c.auth()).send({ name });
  expect(r.status).toBe(201);
  await new Promise((res) => setTimeout(res, 300));
  expect(await entriesFor(r.body.id)).toHaveLength(0);
  await c.restart("zones");
  await eventually(async () => {
    const e = await entriesFor(r.body.id);
    return e.length ? e : undefined;
  });
  await new Promise((res) => setTimeout(res, 300));
  const entries = await entriesFor(r.body.id);
  expect(entries).toHaveLength(1);
  expect(entries[0]).toMatchObject({ action: "created", entity_id: r.body.id });
  return entries[0]!;
}

test("a relay stopped between the write and the publish loses nothing: the event arrives once after restart", async () => {
  await zonesService().relay.stop();
  await createdThenPublishedOnceAfterRestart("written while the relay is down");
});

test("a writer that dies after its document write and before its publish loses nothing: the sweep at restart publishes the event once", async () => {
  const relay = zonesService().relay;
  relay.beforePublish = () => {
    // No hint, no publish: what a process dying between the two steps leaves behind.
    throw Object.assign(new Error("died before publish"), { fatalForTest: true });
  };
  await createdThenPublishedOnceAfterRestart("written, then the writer died");
});

test("a relay killed after XADD but before marking the entry does not publish it twice", async () => {
  const relay = zonesService().relay;
  let killed = false;
  relay.afterPublish = () => {
    if (!killed) {
      killed = true;
      // Leave the entry unmarked, as a process dying right after the XADD would.
      throw Object.assign(new Error("killed after publish"), { fatalForTest: true });
    }
  };
  const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: "published then killed" });
  await eventually(async () => (killed ? true : undefined));
  expect(await entriesFor(r.body.id)).toHaveLength(1);
  await c.restart("zones");
  const fresh = zonesService();
  await eventually(async () => {
    const doc = await fresh.models.Zone.findById(r.body.id).lean();
    return doc && doc._outbox_pending === 0 ? doc : undefined;
  });
  const entries = await entriesFor(r.body.id);
  expect(entries).toHaveLength(1);
  const doc = await fresh.models.Zone.findById(r.body.id).lean();
  // The restarted relay got the first XADD's id back from Redis instead of adding a second entry.
  const firstId = (await redis.xrange(zoneEvents(), "-", "+")).find(([, flat]) => fieldsOf(flat).entity_id === r.body.id)?.[0];
  expect(doc._outbox[0].dispatched_at).toBeTruthy();
  expect(doc._outbox[0].stream_entry_id).toBe(firstId);
});

test("an entry that keeps failing goes dead and turns /ready to 503 and the dead gauge to 1", async () => {
  const svc = zonesService();
  await svc.relay.stop();
  const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: "doomed" });
  // Make the one pending entry fail at its last attempt: point it at a key holding a string, not a stream.
  await redis.set(c.stream("not-a-stream"), "x");
  const doc = await svc.models.Zone.findById(r.body.id).lean();
  doc._outbox[0].stream = "not-a-stream";
  doc._outbox[0].attempts = 99;
  await svc.models.Zone.updateOne({ _id: r.body.id }, { $set: { _outbox: doc._outbox } });
  svc.relay.start();
  await eventually(async () => {
    const d = await svc.models.Zone.findById(r.body.id).lean();
    return d._outbox_dead === 1 ? d : undefined;
  });
  const ready = await c.http().get("/ready");
  expect(ready.status).toBe(503);
  expect(ready.body).toMatchObject({ ok: false, error: "outbox_dead_messages", dead_count: 1 });
  const metrics = await c.http().get("/metrics");
  expect(metrics.text).toContain("caracal_api_outbox_dead_total 1");
  // An operator removes the poisoned document; the next sweep rebuilds the dead summary.
  await svc.models.Zone.deleteOne({ _id: r.body.id });
  await svc.relay.sweep();
  expect((await c.http().get("/ready")).status).toBe(200);
});
