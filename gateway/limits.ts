// Fixed one-minute windows counted in Redis, so every gateway replica shares the same budget.
import type Redis from "ioredis";
import { AppError } from "../shared/errors";

export interface WindowCount {
  count: number;
  retryAfterSec: number;
}

export async function countInWindow(redis: Redis, prefix: string, subject: string): Promise<WindowCount> {
  const now = Date.now();
  const minute = Math.floor(now / 60_000);
  const key = `${prefix}:${subject}:${minute}`;
  const res = await redis.multi().incr(key).expire(key, 90).exec();
  const count = Number(res?.[0]?.[1] ?? 0);
  return { count, retryAfterSec: Math.max(1, Math.ceil(((minute + 1) * 60_000 - now) / 1000)) };
}

export async function peekWindow(redis: Redis, prefix: string, subject: string): Promise<number> {
  const minute = Math.floor(Date.now() / 60_000);
  return Number((await redis.get(`${prefix}:${subject}:${minute}`)) ?? 0);
}

export function rateLimited(retryAfterSec: number): AppError {
  const err = new AppError(429, "rate_limited", "Too many requests; retry later");
  (err as AppError & { retryAfter: number }).retryAfter = retryAfterSec;
  return err;
}

/** Counts one request and throws 429 past `limit` per minute (0 turns the limit off). */
export async function enforceLimit(redis: Redis, prefix: string, subject: string, limit: number): Promise<void> {
  if (limit <= 0) return;
  const { count, retryAfterSec } = await countInWindow(redis, prefix, subject);
  if (count > limit) throw rateLimited(retryAfterSec);
}
