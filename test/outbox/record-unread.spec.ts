// The recorder's write-back of a document whose outbox is still as its writer left it (a creation, or an
// update that returned the document): one update conditioned on `_outbox_v`, no read; any other write of
// the outbox in between sends it down the reading path, which loses nothing. Real FerretDB (or MongoDB) and Redis, a relay of our own on a throwaway model.
import mongoose, { Schema, type Connection, type Model } from "mongoose";
import Redis from "ioredis";
import { randomBytes } from "node:crypto";
import { OutboxRelay, hintKeys } from "../../shared/outbox/relay";
import { outboxEntry, outboxFields, pushEvents, withNewEvents } from "../../shared/outbox/entry";
import { newId } from "../../shared/ids";

const suffix = randomBytes(4).toString("hex");
const mongoUrl = (() => {
  const u = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  u.pathname = `/test_record_${suffix}`;
  return u.toString();
})();
const stream = `test:${suffix}:events`;
const silent = { warn: () => undefined, error: () => undefined };

let conn: Connection;
let redis: Redis;
let Thing: Model<any>;
let relay: OutboxRelay;
let reads: number;

beforeAll(async () => {
  conn = await mongoose.createConnection(mongoUrl, { maxPoolSize: 4 }).asPromise();
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  OutboxRelay.install(redis);
  Thing = conn.model("Thing", new Schema({ _id: String, name: String, ...outboxFields }, { versionKey: false, _id: false }), "things");
  // Counts the recorder's reads of a document (its only read is findById).
  const findById = Thing.findById.bind(Thing);
  (Thing as any).findById = (...args: Parameters<typeof findById>) => {
    reads++;
    return findById(...args);
  };
  // Not started: the test drives publish and record itself, so nothing runs in between.
  relay = new OutboxRelay([Thing], redis, null, { pollMs: 60_000, batch: 32, leaseSec: 30, maxAttempts: 5, streamMaxLen: 1000, keepDispatched: 0 }, silent);
  (relay as any).active = true;
  (relay as any).kickRecorder = () => undefined;
});

afterAll(async () => {
  const k = hintKeys(Thing);
  const keys = await redis.keys(`outbox:{${conn.name}:things}*`);
  if (keys.length) await redis.del(...keys);
  await redis.del(stream, k.record);
  redis.disconnect();
  await conn.dropDatabase();
  await conn.close();
});

const event = (name: string) => outboxEntry(stream, { name }, null);

test("a created document whose events were all published is written back without being read", async () => {
  const id = newId();
  const events = [event("created"), event("indexed")];
  await Thing.create({ _id: id, name: "fresh", ...withNewEvents(events) });
  await relay.publishWritten(Thing, id, events);
  reads = 0;
  expect(await relay.record()).toBe(1);
  expect(reads).toBe(0);
  const doc = await Thing.findById(id).lean<any>();
  expect(doc).toMatchObject({ _outbox: [], _outbox_v: 2, _outbox_pending: 0, _outbox_dead: 0, _outbox_open: false, _outbox_has_dead: false });
  expect(doc._outbox_next_at).toBeUndefined();
  expect(await redis.exists(hintKeys(Thing).results(id))).toBe(0);
  expect(await redis.zscore(hintKeys(Thing).record, id)).toBeNull();
  expect((await redis.xrange(stream, "-", "+")).map(([, f]) => f[1])).toEqual(expect.arrayContaining(["created", "indexed"]));
});

test("a document whose outbox moved on after its creation goes down the reading path and keeps the newer event", async () => {
  const id = newId();
  const events = [event("created")];
  await Thing.create({ _id: id, name: "busy", ...withNewEvents(events) });
  await relay.publishWritten(Thing, id, events);
  // Another write appends an event before the recorder runs (its publish has not happened yet).
  const later = event("renamed");
  await Thing.updateOne({ _id: id }, pushEvents({ $set: { name: "renamed" } }, [later]));
  reads = 0;
  expect(await relay.record()).toBe(1);
  expect(reads).toBe(1);
  const doc = await Thing.findById(id).lean<any>();
  expect(doc._outbox.map((e: any) => e.id)).toEqual([later.id]);
  expect(doc).toMatchObject({ _outbox_pending: 1, _outbox_open: true, name: "renamed" });
  expect(await redis.zscore(hintKeys(Thing).due, id)).not.toBeNull();
});

test("a document updated without touching its outbox still gets the unread write-back", async () => {
  const id = newId();
  const events = [event("created")];
  await Thing.create({ _id: id, name: "plain", ...withNewEvents(events) });
  await relay.publishWritten(Thing, id, events);
  await Thing.updateOne({ _id: id }, { $set: { name: "plain 2" } });
  reads = 0;
  expect(await relay.record()).toBeGreaterThanOrEqual(1);
  expect(reads).toBe(0);
  expect(await Thing.findById(id).lean<any>()).toMatchObject({ name: "plain 2", _outbox: [], _outbox_open: false, _outbox_v: 2 });
});

test("an entry array that did not create its document is recorded by reading it", async () => {
  const id = newId();
  await Thing.create({ _id: id, name: "appended" });
  const events = [event("appended")];
  await Thing.updateOne({ _id: id }, pushEvents({}, events));
  await relay.publishWritten(Thing, id, events);
  reads = 0;
  expect(await relay.record()).toBe(1);
  expect(reads).toBe(1);
  expect(await Thing.findById(id).lean<any>()).toMatchObject({ _outbox: [], _outbox_pending: 0, _outbox_open: false });
});

test("an update that returned the document, whose outbox held only its own events, is written back without a read", async () => {
  const id = newId();
  const first = [event("created")];
  await Thing.create({ _id: id, name: "v1", ...withNewEvents(first) });
  await relay.publishWritten(Thing, id, first);
  await relay.record();
  const events = [event("updated")];
  const stored = await Thing.findOneAndUpdate({ _id: id }, pushEvents({ $set: { name: "v2" } }, events), { returnDocument: "after" }).lean<any>();
  expect(stored._outbox_v).toBe(3);
  await relay.publishWritten(Thing, id, events, stored);
  reads = 0;
  expect(await relay.record()).toBe(1);
  expect(reads).toBe(0);
  expect(await Thing.findById(id).lean<any>()).toMatchObject({ name: "v2", _outbox: [], _outbox_open: false, _outbox_v: 4 });
});

test("an update whose returned document still holds an older unrecorded event is recorded by reading it", async () => {
  const id = newId();
  const first = [event("created")];
  await Thing.create({ _id: id, name: "v1", ...withNewEvents(first) });
  await relay.publishWritten(Thing, id, first);
  const events = [event("updated")];
  const stored = await Thing.findOneAndUpdate({ _id: id }, pushEvents({ $set: { name: "v2" } }, events), { returnDocument: "after" }).lean<any>();
  expect(stored._outbox).toHaveLength(2);
  await relay.publishWritten(Thing, id, events, stored);
  reads = 0;
  expect(await relay.record()).toBe(1);
  expect(reads).toBe(1);
  expect(await Thing.findById(id).lean<any>()).toMatchObject({ _outbox: [], _outbox_pending: 0, _outbox_open: false });
  // Both events are on the stream, once each.
  const published = (await redis.xrange(stream, "-", "+")).map(([, f]) => f.join(" "));
  for (const e of [...first, ...events]) expect(published.filter((f) => f.includes(e.id))).toHaveLength(1);
});
