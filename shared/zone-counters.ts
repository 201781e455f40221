// Per-zone counts a service keeps for the zone overview (§6), so answering never reads the zone's rows.
//
// Why Redis counters: on FerretDB v1 a count decodes every document it counts (~130 µs each; 13 s for a
// zone at its 100,000-resource quota), so counts are maintained instead. A service bumps them right after
// each write that changes them (one round trip, no document lock). The first read of a zone — or the first
// after Redis lost the keys — recounts from the store once and stores the result; bumps before that are
// no-ops, so a partial count is never mistaken for a full one. What this does not cover: a process dying
// between its write and the bump (the count is off by one until the next recount), and a write racing
// the one-off recount. Dates that matter (expiry) sit in a sorted set scored by time, counted by range.
import type Redis from "ioredis";

const BUMP = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[1])
for i = 0, n - 1 do redis.call('HINCRBY', KEYS[1], ARGV[2 + 2 * i], ARGV[3 + 2 * i]) end
local op = ARGV[2 + 2 * n]
if op == 'add' then redis.call('ZADD', KEYS[2], ARGV[4 + 2 * n], ARGV[3 + 2 * n])
elseif op == 'rem' then redis.call('ZREM', KEYS[2], ARGV[3 + 2 * n]) end
return 1
`;

export interface Recount {
  counts: Record<string, number>;
  /** Members of the zone's sorted set with their scores (epoch ms). */
  dated?: [string, number][];
}

export class ZoneCounters {
  private readonly recounting = new Map<string, Promise<void>>();

  /** `prefix` names the service's store (its database) and what is counted. */
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    if (!(redis as any).zoneCountersBump) redis.defineCommand("zoneCountersBump", { numberOfKeys: 2, lua: BUMP });
  }

  private keys(zoneId: string): [string, string] {
    return [`${this.prefix}:{${zoneId}}:counts`, `${this.prefix}:{${zoneId}}:dated`];
  }

  /** Adds `deltas` (and adds/removes one dated member) once the zone has been counted; a no-op before. */
  async bump(zoneId: string, deltas: Record<string, number>, dated?: { add: [string, number] } | { rem: string }): Promise<void> {
    const [counts, set] = this.keys(zoneId);
    const pairs = Object.entries(deltas).flatMap(([f, d]) => [f, String(d)]);
    const op = dated && "add" in dated ? ["add", dated.add[0], String(dated.add[1])] : dated && "rem" in dated ? ["rem", dated.rem, "0"] : ["", "", "0"];
    await (this.redis as any).zoneCountersBump(counts, set, String(pairs.length / 2), ...pairs, ...op);
  }

  /** The zone's counts, recounted from the store (by `recount`) when Redis has none. */
  async read(zoneId: string, recount: () => Promise<Recount>): Promise<Record<string, number>> {
    const [counts] = this.keys(zoneId);
    let raw = await this.redis.hgetall(counts);
    if (!Object.keys(raw).length) {
      await this.recountOnce(zoneId, recount);
      raw = await this.redis.hgetall(counts);
    }
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(raw)) if (k !== "_counted_at") out[k] = Number(v);
    return out;
  }

  /** Members of the dated set with a score in [min, max]. */
  async countDated(zoneId: string, min: number | "-inf", max: number | "+inf"): Promise<number> {
    return this.redis.zcount(this.keys(zoneId)[1], min, max);
  }

  private recountOnce(zoneId: string, recount: () => Promise<Recount>): Promise<void> {
    let running = this.recounting.get(zoneId);
    if (!running) {
      running = (async () => {
        const result = await recount();
        const [counts, set] = this.keys(zoneId);
        const tx = this.redis.multi().del(set);
        for (const [member, score] of result.dated ?? []) tx.zadd(set, score, member);
        // The marker field makes the hash exist even when every count is zero.
        tx.hset(counts, { _counted_at: String(Date.now()), ...Object.fromEntries(Object.entries(result.counts).map(([k, v]) => [k, String(v)])) });
        await tx.exec();
      })().finally(() => this.recounting.delete(zoneId));
      this.recounting.set(zoneId, running);
    }
    return running;
  }
}
