// The document write lock against the real Redis: writers served in arrival order, within a process and
// across processes (tickets), a dead waiter skipped, the relay's claim never cutting in line, and the
// refusals (queue full, turn too late) made before the write runs.
import Redis from "ioredis";
import { randomBytes } from "node:crypto";
import { tryDocLock, withDocLock } from "../../shared/doc-lock";
import { resetConfig } from "../../shared/config";

let redis: Redis;
const key = (name: string) => `test_doclock_${randomBytes(4).toString("hex")}:${name}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keysOf = (k: string) => ({ lock: `doclock:${k}`, queue: `doclock:${k}:q`, alive: `doclock:${k}:alive`, seq: `doclock:${k}:seq` });

/** What another process's queue head does: join the queue (or refresh its place), take the lock if it is its turn. */
const otherProcess = (k: string, token: string) => {
  const q = keysOf(k);
  return (redis as any).acquireDocLock(q.lock, q.queue, q.alive, q.seq, token, 3000, 3000, 60_000) as Promise<number>;
};

beforeAll(() => {
  Object.assign(process.env, { CARACAL_MODE: "dev", WRITE_QUEUE_MAX: "20" });
  resetConfig();
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
});
afterAll(() => {
  redis.disconnect();
});

test("concurrent writers of one document run one at a time, in arrival order", async () => {
  const k = key("fifo");
  const order: number[] = [];
  let running = 0;
  let overlap = false;
  await Promise.all(
    Array.from({ length: 15 }, (_, i) =>
      withDocLock(redis, k, async () => {
        running++;
        if (running > 1) overlap = true;
        order.push(i);
        await sleep(5);
        running--;
      }),
    ),
  );
  expect(overlap).toBe(false);
  expect(order).toEqual(Array.from({ length: 15 }, (_, i) => i));
});

test("a waiter of another process that queued first goes first; one that stopped refreshing its place is skipped", async () => {
  const k = key("fair");
  const order: string[] = [];
  let release!: () => void;
  const holder = withDocLock(redis, k, () => new Promise<void>((r) => (release = r)), { waitMs: 10_000 });
  await sleep(20);
  expect(await otherProcess(k, "other-live")).toBe(0);
  expect(await otherProcess(k, "other-dead")).toBe(0);
  const mine = withDocLock(redis, k, async () => void order.push("mine"), { waitMs: 10_000 });
  await sleep(20);
  release();
  await holder;
  // The live one keeps its place and, its turn come, takes the lock; "mine" must not have run meanwhile.
  let took = 0;
  for (let i = 0; i < 50 && !took; i++) {
    took = await otherProcess(k, "other-live");
    if (!took) await sleep(10);
  }
  expect(took).toBe(1);
  expect(order).toEqual([]);
  order.push("other-live");
  await (redis as any).releaseDocLock(keysOf(k).lock, "other-live");
  // "other-dead" never refreshes: after 3 s it is skipped and "mine" runs.
  await mine;
  expect(order).toEqual(["other-live", "mine"]);
}, 20_000);

test("the relay's one-shot claim does not cut in front of queued writers", async () => {
  const k = key("claim");
  let release!: () => void;
  const holder = withDocLock(redis, k, () => new Promise<void>((r) => (release = r)));
  await sleep(20);
  const queued = withDocLock(redis, k, async () => "queued ran");
  await sleep(50);
  expect(await tryDocLock(redis, k, 1000)).toBeNull();
  release();
  await holder;
  expect(await queued).toBe("queued ran");
  const claim = await tryDocLock(redis, k, 1000);
  expect(claim).not.toBeNull();
  await claim!.release();
});

test("a full queue and a turn that would come too late are 429 write_busy with Retry-After, before the write runs", async () => {
  const k = key("refuse");
  let release!: () => void;
  const holder = withDocLock(redis, k, () => new Promise<void>((r) => (release = r)), { waitMs: 10_000 });
  await sleep(20);
  let ran = 0;
  const late = await withDocLock(redis, k, async () => void ran++, { waitMs: 200 }).catch((e) => e);
  expect([late.code, late.type, late.data.retry_after > 0]).toEqual([429, "write_busy", true]);
  // WRITE_QUEUE_MAX is 20 here: the holder and 19 waiters fill the queue.
  const waiting = Array.from({ length: 19 }, () => withDocLock(redis, k, async () => void ran++, { waitMs: 10_000 }));
  const full = await withDocLock(redis, k, async () => void ran++, { waitMs: 10_000 }).catch((e) => e);
  expect([full.code, full.type]).toEqual([429, "write_busy"]);
  expect(ran).toBe(0);
  release();
  await holder;
  await Promise.all(waiting);
  expect(ran).toBe(19);
});

test("a lock whose holder died lapses within 3 s; a live holder keeps it however long its write takes", async () => {
  const k = key("ttl");
  const q = keysOf(k);
  // A holder that died: the lock is there, nobody renews it.
  await redis.set(q.lock, "dead-holder", "PX", 3000);
  const started = Date.now();
  await withDocLock(redis, k, async () => undefined, { waitMs: 10_000 });
  expect(Date.now() - started).toBeLessThan(4_000);
  // A live holder renews: after 4 s it still holds the lock, and a claim fails.
  let release!: () => void;
  const holder = withDocLock(redis, k, () => new Promise<void>((r) => (release = r)));
  await sleep(4_000);
  expect(await tryDocLock(redis, k, 1000)).toBeNull();
  release();
  await holder;
}, 20_000);
