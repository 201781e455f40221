// Idempotency-Key (IETF httpapi draft): one outcome per key, actor and request, replayed for 24 hours.
//
// A record per (actor, key) in Redis holds the request's fingerprint and a seed. While the first attempt
// runs it is `in_flight` (a concurrent duplicate gets 409); a final answer (2xx, or 4xx but 429) is kept
// and replayed. A 5xx or 429 leaves the outcome `unknown`: the write may or may not have committed (a
// process died between its write and its reply), so the next attempt runs again with the same seed,
// from which the services derive the same ids and find what the earlier attempt stored.
import { createHash } from "node:crypto";
import type Redis from "ioredis";
import { AppError } from "../shared/errors";

/** What services receive in ctx.meta.idempotency: the scoped key and when its first attempt began. */
export interface IdempotencyMeta {
  key: string;
  at: number;
}

export interface StoredResponse {
  status: number;
  body: string;
  location?: string;
  content_type?: string;
}

interface IdempotencyRecord {
  state: "in_flight" | "unknown" | "done";
  fp: string;
  at: string;
  /** While in flight: when the attempt's owner stops counting (a gateway that died leaves it behind). */
  lease: string;
  response?: StoredResponse;
}

export type Begin =
  | { kind: "proceed"; handle: Handle }
  | { kind: "replay"; response: StoredResponse }
  | { kind: "in_use" }
  | { kind: "mismatch" };

export interface Handle {
  redisKey: string;
  record: IdempotencyRecord;
  meta: IdempotencyMeta;
}

// KEYS[1] record. ARGV: 1 fingerprint, 2 fresh in-flight record, 3 lease end ms, 4 ttl ms.
// Returns {verdict, record json}.
const BEGIN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
  return {'proceed', ARGV[2]}
end
local rec = cjson.decode(cur)
if rec.fp ~= ARGV[1] then return {'mismatch', cur} end
if rec.state == 'done' then return {'replay', cur} end
if rec.state == 'in_flight' and tonumber(rec.lease) > now then return {'in_use', cur} end
rec.state = 'in_flight'
rec.lease = ARGV[3]
local s = cjson.encode(rec)
redis.call('SET', KEYS[1], s, 'PX', ARGV[4])
return {'proceed', s}
`;

/** The header value: an sf-string (quoted) or a bare token of visible ASCII, 1 to 255 characters. */
export function parseIdempotencyKey(raw: string | string[] | undefined): string | null {
  if (raw === undefined) return null;
  const value = (Array.isArray(raw) ? raw.join(",") : raw).trim();
  const inner = value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  if (!/^[\x21\x23-\x5B\x5D-\x7E]{1,255}$/.test(inner)) {
    throw new AppError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters (optionally quoted)");
  }
  return inner;
}

/** JSON with object keys sorted, so the same body in another key order is the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value as Record<string, unknown>).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export const fingerprint = (method: string, path: string, body: unknown): string =>
  createHash("sha256").update(`${method} ${path}\n${canonical(body)}`).digest("hex");

export class IdempotencyStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSec: number,
    /** Longest an attempt may hold its key: the request's own time limit and then some. */
    private readonly leaseMs: number,
  ) {
    if (!(redis as any).idempotencyBegin) redis.defineCommand("idempotencyBegin", { numberOfKeys: 1, lua: BEGIN });
  }

  async begin(actorId: string, key: string, fp: string): Promise<Begin> {
    const scoped = createHash("sha256").update(`${actorId}\n${key}`).digest("hex").slice(0, 32);
    const redisKey = `${this.prefix}:idem:${scoped}`;
    const now = Date.now();
    const fresh: IdempotencyRecord = { state: "in_flight", fp, at: String(now), lease: String(now + this.leaseMs) };
    const [verdict, json] = (await (this.redis as any).idempotencyBegin(redisKey, fp, JSON.stringify(fresh), String(now + this.leaseMs), this.ttlSec * 1000)) as [string, string];
    const record = JSON.parse(json) as IdempotencyRecord;
    if (verdict === "mismatch") return { kind: "mismatch" };
    if (verdict === "in_use") return { kind: "in_use" };
    if (verdict === "replay") return { kind: "replay", response: record.response! };
    return { kind: "proceed", handle: { redisKey, record, meta: { key: scoped, at: Number(record.at) || now } } };
  }

  /** Keeps a final answer for replay; anything else leaves the outcome unknown for the next attempt. */
  async finish(handle: Handle, response: StoredResponse): Promise<void> {
    const final = response.status < 500 && response.status !== 429;
    const kept = { ...response, body: withoutSecrets(response.body) };
    const record: IdempotencyRecord = final ? { ...handle.record, state: "done", lease: "0", response: kept } : { ...handle.record, state: "unknown", lease: "0" };
    await this.redis.set(handle.redisKey, JSON.stringify(record), "EX", this.ttlSec);
  }
}

/**
 * Fields shown once at creation (a client secret, an admin token) are not kept for replay: a replay
 * answers the same status and object without them, so no secret outlives its first response.
 */
const SHOWN_ONCE = ["client_secret", "token", "secret", "api_key", "bearer_token", "private_key"];

function withoutSecrets(body: string): string {
  if (!SHOWN_ONCE.some((f) => body.includes(`"${f}"`))) return body;
  try {
    const parsed = JSON.parse(body) as unknown;
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return body;
    for (const f of SHOWN_ONCE) delete (parsed as Record<string, unknown>)[f];
    return JSON.stringify(parsed);
  } catch {
    return body;
  }
}
