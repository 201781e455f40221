// Reads one Redis stream through a consumer group: verified, batched, acknowledged only once handled.
//
// Usage (a service starts it in `started` and awaits `stop()` in `stopped`, before its store closes):
//
//   const consumer = new StreamConsumer({
//     redis,                                   // for XACK/XAUTOCLAIM/DLQ writes; blocking reads use a duplicate
//     stream: "caracal.sessions.lifecycle",
//     group: "caracal.sessions",               // every instance of a service uses the same group: they share the work
//     consumer: consumerName(broker.nodeID),   // unique per instance, stable across its restarts where possible
//     verify: sigVerifier(config().streamsHmacKeys),   // or the audit `sig` scheme; a string result is the DLQ reason
//     handle: async (entries) => { ...; return entries.map(() => "ack"); },
//   });
//   await consumer.start();  …  await consumer.stop();
//
// Contract:
// - `handle(entries)` gets a batch (1..`batch`) of verified entries `{id, fields, deliveries}` in stream order
//   and answers one outcome per entry, by index: "ack" (durably stored or deliberately ignored; also what
//   `undefined` or a void answer means), `{dlq: reason}` (parked on `<stream>.dlq`, then acknowledged), or
//   "retry" (left pending: re-delivered after `claimIdleMs`). It must be idempotent on the entry id: delivery is
//   at least once (a crash between the store write and XACK delivers the entry again).
// - A batch whose handler throws is handled again one entry at a time, so one bad entry does not hold up the
//   others; an entry that still throws stays pending and is re-delivered after `claimIdleMs`. After
//   `maxDeliveries` deliveries it goes to the DLQ with reason `transient_exceeded_max_deliveries:<last error>`.
// - `verify(stream, fields)` returns null when the entry is acceptable, else the DLQ reason (the entry never
//   reaches the handler). `sigVerifier` implements the §7.4 `_sig` scheme over the configured keys.
// - DLQ entry fields: `reason`, `received_at` (unix ms), `stream`, `group`, `entry_id` (the Redis id),
//   `deliveries`, and `src_<name>` for each original field; signed (`kid`, `_sig`) when `dlqKey` is given.
//   The DLQ write and the XACK are one MULTI, so a parked entry is never lost nor left pending.
// - `concurrency` > 1 lets several batches be handled at once (then out of stream order: see the option).
// - At start the group is created (at `startId`, with MKSTREAM) and this consumer's own pending entries are
//   handled first. Entries idle in any consumer of the group for `claimIdleMs` are claimed (XAUTOCLAIM), so
//   an instance that died leaves nothing behind. `stop()` ends the blocking read, waits for the batch in hand
//   and its acknowledgements, and returns.
import type Redis from "ioredis";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { fieldsOf, sign, toStreamArgs, verify as verifySig, type SigningKey } from "../signing";

export interface StreamEntry {
  /** The Redis entry id (`<ms>-<seq>`): the idempotency key. */
  id: string;
  fields: Record<string, string>;
  /**
   * How many times it has been handed over: the group's delivery count, plus one when it is handed over again
   * alone after its batch failed. Above 1, an earlier attempt may have applied part of it.
   */
  deliveries: number;
}

export type Outcome = "ack" | "retry" | { dlq: string };

/** Null when acceptable, else the DLQ reason. */
export type Verifier = (stream: string, fields: Record<string, string>) => string | null;

export interface ConsumerLogger {
  info?(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ConsumerOptions {
  redis: Redis;
  stream: string;
  group: string;
  consumer: string;
  handle(entries: StreamEntry[]): Promise<void | (Outcome | undefined)[]>;
  verify?: Verifier;
  /** Entries per read and per handler call (default 100). */
  batch?: number;
  /**
   * Batches handled at once (default 1: one after the other). Above 1 the next read starts while earlier
   * batches are being stored, so entries can be handled out of stream order: the handler must cope (hold
   * what comes before its target, order by entry id where order matters).
   */
  concurrency?: number;
  /** How long one read blocks waiting for new entries (default 5000 ms). */
  blockMs?: number;
  /** Entries pending this long in any consumer are claimed (default 30 000 ms). */
  claimIdleMs?: number;
  /** Deliveries after which a failing entry is parked (default 8). */
  maxDeliveries?: number;
  /** Where a new group starts: "0" (the whole stream, default) or "$" (only what comes next). */
  startId?: string;
  dlqStream?: string;
  /** Approximate cap of the DLQ stream (default 100 000). */
  dlqMaxLen?: number;
  dlqKey?: SigningKey | null;
  logger?: ConsumerLogger;
}

export interface ConsumerStats {
  delivered: number;
  acked: number;
  parked: number;
  retried: number;
  claimed: number;
  lastError: string | null;
}

/** A consumer name for this process: host, pid and a tag, so two brokers in one process never collide. */
export function consumerName(tag = randomBytes(3).toString("hex")): string {
  return `${hostname()}:${process.pid}:${tag}`;
}

/** The §7.4 origin signature over the configured keys (`kid` picks one; `_sig` missing or wrong → DLQ). */
export function sigVerifier(keys: SigningKey[]): Verifier {
  return (stream, fields) => {
    if (fields._sig === undefined) return "missing_signature";
    return verifySig(keys, stream, fields) ? null : "bad_signature";
  };
}

/**
 * The fields of a DLQ entry for `entry` of `stream` (for code that parks an entry it already acknowledged,
 * such as a held entry that turns out bad when it is finally applied).
 */
export function dlqFields(stream: string, group: string, entry: StreamEntry, reason: string, dlqStream = `${stream}.dlq`, key: SigningKey | null = null): Record<string, string> {
  const fields: Record<string, string> = {
    reason,
    received_at: String(Date.now()),
    stream,
    group,
    entry_id: entry.id,
    deliveries: String(entry.deliveries),
  };
  for (const [name, value] of Object.entries(entry.fields)) fields[`src_${name}`] = value;
  if (key) {
    fields.kid = key.kid;
    fields._sig = sign(key.key, dlqStream, fields);
  }
  return fields;
}

const STALE_CONSUMER_MS = 3600_000;

export class StreamConsumer {
  private readonly o: Required<Omit<ConsumerOptions, "verify" | "dlqKey" | "logger">> & Pick<ConsumerOptions, "verify" | "dlqKey" | "logger">;
  private blocking: Redis | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private nextClaimAt = 0;
  private nextTidyAt = 0;
  private readonly lastErrors = new Map<string, string>();
  private readonly inflight = new Set<Promise<void>>();
  readonly stats: ConsumerStats = { delivered: 0, acked: 0, parked: 0, retried: 0, claimed: 0, lastError: null };

  constructor(options: ConsumerOptions) {
    this.o = {
      batch: 100,
      concurrency: 1,
      blockMs: 5000,
      claimIdleMs: 30_000,
      maxDeliveries: 8,
      startId: "0",
      dlqStream: `${options.stream}.dlq`,
      dlqMaxLen: 100_000,
      ...options,
    };
  }

  get stream(): string {
    return this.o.stream;
  }

  async start(): Promise<void> {
    this.stopping = false;
    await this.ensureGroup();
    // Our own pending entries first: what this consumer read and never acknowledged before it stopped.
    await this.drainOwn();
    this.blocking = this.o.redis.duplicate();
    this.blocking.on("error", () => undefined);
    this.nextClaimAt = Date.now();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // Ends a blocking read at once; entries Redis delivered on it stay pending and are claimed later.
    this.blocking?.disconnect();
    await this.loop;
    this.loop = null;
    this.blocking = null;
  }

  /** Entries delivered and not acknowledged, across the group. */
  async pending(): Promise<number> {
    const summary = (await this.o.redis.xpending(this.o.stream, this.o.group)) as [number, ...unknown[]];
    return Number(summary[0] ?? 0);
  }

  /** One claim pass now (tests and shutdown hooks; the loop runs it every claimIdleMs / 2). */
  async claimNow(): Promise<number> {
    return this.claimIdle();
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.o.redis.xgroup("CREATE", this.o.stream, this.o.group, this.o.startId, "MKSTREAM");
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        if (Date.now() >= this.nextClaimAt) {
          this.nextClaimAt = Date.now() + Math.max(100, Math.floor(this.o.claimIdleMs / 2));
          await this.claimIdle();
          if (Date.now() >= this.nextTidyAt) {
            this.nextTidyAt = Date.now() + STALE_CONSUMER_MS / 4;
            await this.tidyConsumers();
          }
        }
        const block = Math.max(10, Math.min(this.o.blockMs, this.nextClaimAt - Date.now()));
        const res = (await this.blocking!.xreadgroup("GROUP", this.o.group, this.o.consumer, "COUNT", this.o.batch, "BLOCK", block, "STREAMS", this.o.stream, ">")) as [string, [string, string[]][]][] | null;
        if (this.stopping && !res) break;
        const raw = res?.[0]?.[1] ?? [];
        if (raw.length) await this.dispatch(raw.map(([id, flat]) => ({ id, fields: fieldsOf(flat), deliveries: 1 })));
      } catch (err) {
        if (this.stopping) break;
        const message = (err as Error).message;
        if (/NOGROUP/.test(message)) await this.ensureGroup().catch(() => undefined);
        this.stats.lastError = message;
        this.o.logger?.warn({ err: message, stream: this.o.stream }, "stream read failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    await Promise.all(this.inflight);
  }

  /** Handles a batch, with up to `concurrency` batches in flight (the next read starts meanwhile). */
  private async dispatch(entries: StreamEntry[]): Promise<void> {
    if (this.o.concurrency <= 1) return this.process(entries);
    const p: Promise<void> = this.process(entries)
      .catch((err) => {
        this.stats.lastError = (err as Error).message;
        this.o.logger?.warn({ err: (err as Error).message, stream: this.o.stream }, "stream batch failed; its entries stay pending and are retried");
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    if (this.inflight.size >= this.o.concurrency) await Promise.race(this.inflight);
  }

  private async drainOwn(): Promise<void> {
    for (let from = "0"; !this.stopping; ) {
      const res = (await this.o.redis.xreadgroup("GROUP", this.o.group, this.o.consumer, "COUNT", this.o.batch, "STREAMS", this.o.stream, from)) as [string, [string, string[] | null][]][] | null;
      const raw = res?.[0]?.[1] ?? [];
      if (!raw.length) return;
      from = raw[raw.length - 1]![0];
      await this.process(await this.withDeliveries(raw));
    }
  }

  private async claimIdle(): Promise<number> {
    let claimed = 0;
    let cursor = "0-0";
    // Bounded per pass: a large backlog is claimed over several passes while new entries keep flowing.
    for (let round = 0; round < 10 && !this.stopping; round++) {
      const res = (await this.o.redis.xautoclaim(this.o.stream, this.o.group, this.o.consumer, this.o.claimIdleMs, cursor, "COUNT", this.o.batch)) as [string, [string, string[] | null][], string[]?];
      const raw = res[1] ?? [];
      cursor = res[0];
      if (raw.length) {
        claimed += raw.length;
        this.stats.claimed += raw.length;
        await this.process(await this.withDeliveries(raw));
      }
      if (cursor === "0-0") break;
    }
    return claimed;
  }

  /** Delivery counts of entries read back from the pending list (one XPENDING over their id range). */
  private async withDeliveries(raw: [string, string[] | null][]): Promise<StreamEntry[]> {
    const live = raw.filter(([, flat]) => flat !== null);
    // An entry trimmed from the stream while pending has no fields left: nothing to handle, just forget it.
    const gone = raw.filter(([, flat]) => flat === null).map(([id]) => id);
    if (gone.length) await this.o.redis.xack(this.o.stream, this.o.group, ...gone);
    if (!live.length) return [];
    const counts = new Map<string, number>();
    const info = (await this.o.redis.xpending(this.o.stream, this.o.group, live[0]![0], live[live.length - 1]![0], live.length + 10, this.o.consumer)) as [string, string, number, number][];
    for (const [id, , , n] of info) counts.set(id, Number(n));
    return live.map(([id, flat]) => ({ id, fields: fieldsOf(flat!), deliveries: counts.get(id) ?? 1 }));
  }

  private async process(entries: StreamEntry[]): Promise<void> {
    if (!entries.length) return;
    this.stats.delivered += entries.length;
    const park: { entry: StreamEntry; reason: string }[] = [];
    const valid: StreamEntry[] = [];
    for (const entry of entries) {
      const reason = this.o.verify?.(this.o.stream, entry.fields) ?? null;
      if (reason) park.push({ entry, reason });
      else if (entry.deliveries > this.o.maxDeliveries) park.push({ entry, reason: `transient_exceeded_max_deliveries:${this.lastErrors.get(entry.id) ?? "unknown"}` });
      else valid.push(entry);
    }
    const ack: string[] = [];
    if (valid.length) {
      let outcomes: (Outcome | undefined)[] | null = null;
      try {
        outcomes = (await this.o.handle(valid)) ?? valid.map(() => "ack");
      } catch (err) {
        if (valid.length === 1) this.failed(valid[0]!, err);
      }
      if (outcomes) this.sort(valid, outcomes, ack, park);
      else if (valid.length > 1) {
        // One at a time: the entries that succeed are acknowledged, the failing one stays pending. Each may
        // have been partly applied by the failed batch: it is handed over as delivered once more.
        for (const original of valid) {
          const entry = { ...original, deliveries: original.deliveries + 1 };
          try {
            this.sort([entry], (await this.o.handle([entry])) ?? ["ack"], ack, park);
          } catch (err) {
            this.failed(entry, err);
          }
        }
      }
    }
    if (park.length) await this.park(park);
    if (ack.length) {
      await this.o.redis.xack(this.o.stream, this.o.group, ...ack);
      this.stats.acked += ack.length;
      for (const id of ack) this.lastErrors.delete(id);
    }
  }

  private failed(entry: StreamEntry, err: unknown): void {
    const message = (err as Error)?.message ?? String(err);
    this.stats.retried++;
    this.stats.lastError = message;
    if (this.lastErrors.size > 10_000) this.lastErrors.clear();
    this.lastErrors.set(entry.id, message.slice(0, 200));
    this.o.logger?.warn({ err: message, stream: this.o.stream, entry_id: entry.id, deliveries: entry.deliveries }, "stream entry failed; it stays pending and is retried");
  }

  private sort(entries: StreamEntry[], outcomes: (Outcome | undefined)[], ack: string[], park: { entry: StreamEntry; reason: string }[]): void {
    entries.forEach((entry, i) => {
      const outcome = outcomes[i] ?? "ack";
      if (outcome === "ack") ack.push(entry.id);
      else if (outcome === "retry") {
        this.stats.retried++;
        if (!this.lastErrors.has(entry.id)) this.lastErrors.set(entry.id, "retry requested");
      } else park.push({ entry, reason: outcome.dlq });
    });
  }

  private async park(items: { entry: StreamEntry; reason: string }[]): Promise<void> {
    const tx = this.o.redis.multi();
    for (const { entry, reason } of items) {
      const fields = dlqFields(this.o.stream, this.o.group, entry, reason, this.o.dlqStream, this.o.dlqKey ?? null);
      tx.xadd(this.o.dlqStream, "MAXLEN", "~", this.o.dlqMaxLen, "*", ...toStreamArgs(fields));
      tx.xack(this.o.stream, this.o.group, entry.id);
    }
    const res = await tx.exec();
    const failed = (res ?? []).find(([err]) => err);
    if (failed) throw failed[0];
    this.stats.parked += items.length;
    for (const { entry, reason } of items) {
      this.lastErrors.delete(entry.id);
      this.o.logger?.warn({ stream: this.o.stream, entry_id: entry.id, reason }, "stream entry parked on the DLQ");
    }
  }

  /** Forgets consumers of the group that hold nothing and have been idle for an hour (dead instances). */
  private async tidyConsumers(): Promise<void> {
    const rows = (await this.o.redis.xinfo("CONSUMERS", this.o.stream, this.o.group).catch(() => [])) as unknown[][];
    for (const row of rows) {
      const info: Record<string, unknown> = {};
      for (let i = 0; i + 1 < row.length; i += 2) info[String(row[i])] = row[i + 1];
      if (info.name !== this.o.consumer && Number(info.pending) === 0 && Number(info.idle) > STALE_CONSUMER_MS) {
        await this.o.redis.xgroup("DELCONSUMER", this.o.stream, this.o.group, String(info.name)).catch(() => undefined);
      }
    }
  }
}
