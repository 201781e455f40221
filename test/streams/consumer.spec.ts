// The generic stream consumer against the real Redis: sharing, acknowledgement, reclaim, DLQ, batches.
import Redis from "ioredis";
import { randomBytes } from "node:crypto";
import { StreamConsumer, sigVerifier, type StreamEntry, type Outcome } from "../../shared/streams/consumer";
import { sign, toStreamArgs, fieldsOf } from "../../shared/signing";
import { eventually } from "../helpers/cluster";

const redis = new Redis("redis://127.0.0.1:6379");
const key = { kid: "k1", key: Buffer.from("0123456789abcdef".repeat(4), "hex") };
const started: StreamConsumer[] = [];
const streams: string[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop()));
});
afterAll(async () => {
  for (const s of streams) await redis.del(s, `${s}.dlq`);
  await redis.quit();
});

function newStream(): string {
  const s = `test:consumer:${randomBytes(4).toString("hex")}`;
  streams.push(s);
  return s;
}

async function add(stream: string, fields: Record<string, string>, signed = true): Promise<string> {
  const all = { ...fields };
  if (signed) {
    all.kid = key.kid;
    all._sig = sign(key.key, stream, all);
  }
  return (await redis.xadd(stream, "*", ...toStreamArgs(all)))!;
}

function consumer(stream: string, name: string, handle: (entries: StreamEntry[]) => Promise<void | (Outcome | undefined)[]>, extra: Partial<ConstructorParameters<typeof StreamConsumer>[0]> = {}) {
  const c = new StreamConsumer({ redis, stream, group: "g", consumer: name, verify: sigVerifier([key]), handle, blockMs: 200, claimIdleMs: 400, ...extra });
  started.push(c);
  return c;
}

async function dlq(stream: string): Promise<Record<string, string>[]> {
  return (await redis.xrange(`${stream}.dlq`, "-", "+")).map(([, f]) => fieldsOf(f));
}

describe("StreamConsumer", () => {
  test("two instances in one group share the entries, each handled once, and acknowledge them all", async () => {
    const stream = newStream();
    const seen: Record<string, string[]> = { a: [], b: [] };
    const slow = (who: string) => async (entries: StreamEntry[]) => {
      await new Promise((r) => setTimeout(r, 5));
      seen[who]!.push(...entries.map((e) => e.fields.n!));
    };
    await consumer(stream, "a", slow("a"), { batch: 5 }).start();
    await consumer(stream, "b", slow("b"), { batch: 5 }).start();
    for (let i = 0; i < 200; i++) await add(stream, { n: String(i) });
    await eventually(async () => (seen.a!.length + seen.b!.length >= 200 ? true : undefined), 10_000);
    const all = [...seen.a!, ...seen.b!].map(Number).sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(seen.a!.length).toBeGreaterThan(0);
    expect(seen.b!.length).toBeGreaterThan(0);
    await eventually(async () => ((await started[0]!.pending()) === 0 ? true : undefined));
  });

  test("an entry whose handler fails stays pending and is claimed by another instance after the idle time", async () => {
    const stream = newStream();
    let failing = true;
    const gotByB: string[] = [];
    await consumer(stream, "a", async () => {
      if (failing) throw new Error("store down");
    }).start();
    const id = await add(stream, { n: "1" });
    await eventually(async () => ((await started[0]!.pending()) === 1 ? true : undefined));
    failing = false;
    await started[0]!.stop();
    started.length = 0;
    await consumer(stream, "b", async (entries) => {
      gotByB.push(...entries.map((e) => `${e.id}:${e.deliveries}`));
    }).start();
    await eventually(async () => (gotByB.length ? true : undefined), 5000);
    expect(gotByB).toEqual([`${id}:2`]);
    await eventually(async () => ((await started[0]!.pending()) === 0 ? true : undefined));
  });

  test("at start a consumer handles its own pending entries first", async () => {
    const stream = newStream();
    await redis.xgroup("CREATE", stream, "g", "0", "MKSTREAM");
    const id = await add(stream, { n: "own" });
    // Delivered to "a" and never acknowledged, as if "a" died holding it.
    await redis.xreadgroup("GROUP", "g", "a", "COUNT", 10, "STREAMS", stream, ">");
    const got: string[] = [];
    await consumer(stream, "a", async (entries) => void got.push(...entries.map((e) => e.id)), { claimIdleMs: 60_000 }).start();
    expect(got).toEqual([id]);
    expect(await started[0]!.pending()).toBe(0);
  });

  test("unsigned and badly signed entries go to <stream>.dlq with their reason and are acknowledged", async () => {
    const stream = newStream();
    const handled: string[] = [];
    await consumer(stream, "a", async (entries) => void handled.push(...entries.map((e) => e.fields.n!))).start();
    const unsigned = await add(stream, { n: "unsigned" }, false);
    const bad = await redis.xadd(stream, "*", "n", "bad", "kid", "k1", "_sig", "0".repeat(64));
    await add(stream, { n: "good" });
    await eventually(async () => ((await dlq(stream)).length === 2 && handled.length === 1 ? true : undefined));
    const parked = await dlq(stream);
    expect(parked.map((p) => [p.entry_id, p.reason, p.src_n])).toEqual([
      [unsigned, "missing_signature", "unsigned"],
      [bad, "bad_signature", "bad"],
    ]);
    expect(parked[0]).toMatchObject({ stream, group: "g", deliveries: "1", received_at: expect.stringMatching(/^\d{13}$/) });
    expect(handled).toEqual(["good"]);
    await eventually(async () => ((await started[0]!.pending()) === 0 ? true : undefined));
  });

  test("a handler's dlq outcome parks that entry only; the others of the batch are acknowledged", async () => {
    const stream = newStream();
    for (const n of ["1", "poison", "3"]) await add(stream, { n });
    const got: string[][] = [];
    await consumer(stream, "a", async (entries) => {
      got.push(entries.map((e) => e.fields.n!));
      return entries.map((e) => (e.fields.n === "poison" ? { dlq: "malformed:n" } : "ack"));
    }).start();
    await eventually(async () => ((await dlq(stream)).length === 1 ? true : undefined));
    expect(got).toEqual([["1", "poison", "3"]]);
    expect((await dlq(stream))[0]).toMatchObject({ reason: "malformed:n", src_n: "poison" });
    await eventually(async () => ((await started[0]!.pending()) === 0 ? true : undefined));
  });

  test("a batch that throws is retried one entry at a time; the entry that keeps failing is parked after maxDeliveries", async () => {
    const stream = newStream();
    for (const n of ["1", "boom", "3"]) await add(stream, { n });
    const stored: string[] = [];
    const calls: number[] = [];
    await consumer(
      stream,
      "a",
      async (entries) => {
        calls.push(entries.length);
        if (entries.some((e) => e.fields.n === "boom")) throw new Error("cannot store boom");
        stored.push(...entries.map((e) => e.fields.n!));
      },
      { maxDeliveries: 2, claimIdleMs: 200 },
    ).start();
    await eventually(async () => ((await dlq(stream)).length === 1 ? true : undefined), 8000);
    expect(stored).toEqual(["1", "3"]);
    expect(calls.slice(0, 4)).toEqual([3, 1, 1, 1]);
    const [parked] = await dlq(stream);
    expect(parked).toMatchObject({ src_n: "boom", reason: "transient_exceeded_max_deliveries:cannot store boom", deliveries: "3" });
    await eventually(async () => ((await started[0]!.pending()) === 0 ? true : undefined));
  });

  test("with concurrency 3, up to three batches are handled at once, every entry once, all acknowledged", async () => {
    const stream = newStream();
    let running = 0;
    let most = 0;
    const seen: string[] = [];
    const c = consumer(
      stream,
      "a",
      async (entries) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 30));
        seen.push(...entries.map((e) => e.fields.n!));
        running--;
      },
      { batch: 2, concurrency: 3 },
    );
    for (let i = 0; i < 30; i++) await add(stream, { n: String(i) });
    await c.start();
    await eventually(async () => (seen.length === 30 ? true : undefined), 10_000);
    expect(seen.map(Number).sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(most).toBe(3);
    await eventually(async () => ((await c.pending()) === 0 ? true : undefined));
  });

  test("stop ends the blocking read promptly and the consumer can start again", async () => {
    const stream = newStream();
    const got: string[] = [];
    const c = consumer(stream, "a", async (entries) => void got.push(...entries.map((e) => e.fields.n!)), { blockMs: 60_000 });
    await c.start();
    // A stop that waited for the read to time out would outlast the test's own timeout.
    await c.stop();
    await add(stream, { n: "after" });
    await c.start();
    await eventually(async () => (got.length ? true : undefined));
    expect(got).toEqual(["after"]);
  });
});
