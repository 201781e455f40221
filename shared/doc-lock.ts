// Per-document write locks in Redis, taken in arrival order.
//
// Why: FerretDB v1 applies an update as read-modify-write without isolating concurrent writers to the
// same document (measured here: 100 concurrent `$inc` on one document left the counters at 1 and 2;
// the PostgreSQL backend kept 41 of 100). MongoDB guarantees single-document atomicity; to keep that
// guarantee on FerretDB every update of a document — by an action or by the outbox relay — holds a
// short lock on that document. Inserts need none: nothing else can write a document before it exists.
//
// Writers queue instead of spinning (a spinning lock let 100 concurrent writers of one zone time out
// with 503s while one of them slipped through after its client had given up):
// - in each process, the writers of one key wait in a FIFO; only its head asks Redis;
// - in Redis, the heads of all processes take tickets from one sequence and get the lock in ticket
//   order, so no process is starved; a head that stops refreshing its place (its process died) is
//   skipped after a few seconds;
// - a writer never starts its write later than its caller's deadline allows (the request's remaining
//   time, less a margin for the write and the reply), and a full queue is refused at once: both answer
//   429 `write_busy` with Retry-After, before anything is written.
import { randomBytes } from "node:crypto";
import type Redis from "ioredis";
import { AppError, retryLater } from "./errors";
import { requestContext } from "./request-context";
import { config } from "./config";

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

// Drops queue heads whose holder stopped refreshing its place; leaves `head` set to the first live one.
const SKIP_DEAD_HEADS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local head = nil
while true do
  head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not head then break end
  local alive = tonumber(redis.call('HGET', KEYS[3], head) or '0')
  if alive > now or head == ARGV[1] then break end
  redis.call('ZREM', KEYS[2], head)
  redis.call('HDEL', KEYS[3], head)
end
`;

// KEYS: lock, queue (zset by ticket), alive (hash token → ms), ticket sequence.
// ARGV: token, lock ttl ms, alive ttl ms, idle expiry ms.
// Joins the queue (once), refreshes this waiter's place, and takes the lock when it is free and this
// waiter is the first live one. 1 = taken, 0 = keep waiting.
const ACQUIRE = `
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
end
${SKIP_DEAD_HEADS}
redis.call('HSET', KEYS[3], ARGV[1], now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 1 or head ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

// KEYS: lock, queue, alive. ARGV: token, lock ttl ms. The lock only when free and nobody live is queued.
const TRY = `
${SKIP_DEAD_HEADS}
if head or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

const LEAVE = `redis.call('ZREM', KEYS[1], ARGV[1]) redis.call('HDEL', KEYS[2], ARGV[1]) return 1`;

/** A queued writer that stops refreshing its place for this long is skipped. */
const ALIVE_MS = 3_000;
/** Queue keys of a document nobody writes expire after this. */
const IDLE_MS = 60_000;
/** Time kept back from the caller's deadline for the write itself and the reply. */
const WRITE_MARGIN_MS = 2_000;
/** Wait when the caller has no deadline (the relay, jobs). */
const DEFAULT_WAIT_MS = 8_000;
/**
 * A writer's lock lives this long unless renewed; it is renewed every third of it while the write runs.
 * A process killed while holding one (kill -9) blocks that document for at most this long.
 */
const WRITE_LOCK_TTL_MS = 3_000;

export interface DocLock {
  release(): Promise<void>;
}

function install(redis: Redis): void {
  if ((redis as any).releaseDocLock) return;
  redis.defineCommand("releaseDocLock", { numberOfKeys: 1, lua: RELEASE });
  redis.defineCommand("acquireDocLock", { numberOfKeys: 4, lua: ACQUIRE });
  redis.defineCommand("tryDocLockFair", { numberOfKeys: 3, lua: TRY });
  redis.defineCommand("leaveDocLockQueue", { numberOfKeys: 2, lua: LEAVE });
  redis.defineCommand("renewDocLock", { numberOfKeys: 1, lua: RENEW });
}

const keysOf = (key: string) => ({ lock: `doclock:${key}`, queue: `doclock:${key}:q`, alive: `doclock:${key}:alive`, seq: `doclock:${key}:seq` });

/** A held lock; with `renewTtlMs`, kept alive every third of it until released. */
function held(redis: Redis, lock: string, token: string, renewTtlMs?: number): DocLock {
  const timer = renewTtlMs
    ? setInterval(() => void (redis as any).renewDocLock(lock, token, renewTtlMs).catch(() => undefined), Math.floor(renewTtlMs / 3))
    : null;
  timer?.unref();
  return {
    release: async () => {
      if (timer) clearInterval(timer);
      await (redis as any).releaseDocLock(lock, token);
    },
  };
}

/** One attempt, for claims that can skip a busy document (the relay): null when it is held or writers queue for it. */
export async function tryDocLock(redis: Redis, key: string, ttlMs: number): Promise<DocLock | null> {
  install(redis);
  const k = keysOf(key);
  const token = randomBytes(8).toString("hex");
  const ok = await (redis as any).tryDocLockFair(k.lock, k.queue, k.alive, token, ttlMs);
  return ok === 1 ? held(redis, k.lock, token) : null;
}

interface Waiter {
  wake: () => void;
}

/** The writers of each key waiting in this process, head first; the head is the one asking Redis. */
const local = new Map<string, { waiters: Waiter[]; holdMs: number }>();

const busy = (retryAfterSec: number, why: string): AppError => retryLater(429, "write_busy", `${why}; retry after ${retryAfterSec} s`, retryAfterSec);

const DEFAULT_QUEUE_MAX = 512;

/** WRITE_QUEUE_MAX; tools and tests that use the lock without a service configuration get the default. */
function queueMax(): number {
  try {
    return config().writeQueueMax;
  } catch {
    return DEFAULT_QUEUE_MAX;
  }
}

/** How long this caller may wait for its turn: its request's remaining time less the write margin. */
function waitBudgetMs(explicit: number | undefined): number {
  if (explicit !== undefined) return explicit;
  const deadline = requestContext.getStore()?.deadline;
  return deadline ? Math.max(0, deadline - Date.now() - WRITE_MARGIN_MS) : DEFAULT_WAIT_MS;
}

/**
 * Runs `write` holding the document's lock, after the writers that came first. Refuses with 429
 * `write_busy` (Retry-After) when the queue is full or the turn would come too late; either way before
 * `write` has run.
 */
export async function withDocLock<T>(redis: Redis, key: string, write: () => Promise<T>, opts: { ttlMs?: number; waitMs?: number } = {}): Promise<T> {
  install(redis);
  const ttlMs = opts.ttlMs ?? WRITE_LOCK_TTL_MS;
  const until = Date.now() + waitBudgetMs(opts.waitMs);
  let entry = local.get(key);
  if (!entry) local.set(key, (entry = { waiters: [], holdMs: 20 }));
  const queue = entry;
  const retryAfter = () => Math.max(1, Math.ceil(((queue.waiters.length + 1) * queue.holdMs) / 1000));
  if (queue.waiters.length >= queueMax()) throw busy(retryAfter(), "Too many writes are waiting for this object");

  const me: Waiter = { wake: () => undefined };
  const myTurn = new Promise<void>((resolve) => (me.wake = resolve));
  queue.waiters.push(me);
  if (queue.waiters.length === 1) me.wake();
  const leaveLocal = () => {
    const i = queue.waiters.indexOf(me);
    if (i !== -1) queue.waiters.splice(i, 1);
    if (i === 0) queue.waiters[0]?.wake();
    if (!queue.waiters.length) local.delete(key);
  };

  const k = keysOf(key);
  const token = randomBytes(8).toString("hex");
  let lock: DocLock | null = null;
  try {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), Math.max(0, until - Date.now()))));
    const turn = await Promise.race([myTurn.then(() => "turn" as const), late]);
    if (turn === "late") throw busy(retryAfter(), "The object is being changed by other requests");
    clearTimeout(timer);
    let pause = 2;
    for (;;) {
      const got = await (redis as any).acquireDocLock(k.lock, k.queue, k.alive, k.seq, token, ttlMs, ALIVE_MS, IDLE_MS).catch(() => {
        // Redis not answering is the cluster's failure, not the request's: 503, nothing written.
        throw new AppError(503, "service_unavailable", "The lock store is not reachable; retry");
      });
      if (got === 1) {
        lock = held(redis, k.lock, token, ttlMs);
        break;
      }
      if (Date.now() + pause > until) {
        await (redis as any).leaveDocLockQueue(k.queue, k.alive, token).catch(() => undefined);
        throw busy(retryAfter(), "The object is being changed by other requests");
      }
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 16);
    }
    const began = Date.now();
    try {
      return await write();
    } finally {
      queue.holdMs = Math.round(queue.holdMs * 0.8 + (Date.now() - began) * 0.2);
      await lock.release().catch(() => undefined);
    }
  } finally {
    leaveLocal();
  }
}
