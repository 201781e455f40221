// Keyset pagination on (timestamp, id), newest first: limits, cursors and page envelopes. The rows of a
// page come from shared/list/buckets.ts (bounded reads by equality); page 500 costs what page 1 costs.
import { createHash } from "node:crypto";
import { badRequest } from "./errors";

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface ListQuery {
  limit: number;
  after: { ts: Date; id: string } | null;
}

export interface ListLimits {
  defaultLimit: number;
  maxLimit: number;
}

export const OBJECT_LIMITS: ListLimits = { defaultLimit: 200, maxLimit: 500 };
export const EVENT_LIMITS: ListLimits = { defaultLimit: 100, maxLimit: 1000 };

/**
 * A page's items stay under this many bytes of JSON, whatever was stored: the answer crosses NATS, whose
 * max_payload (1 MiB by default) would otherwise refuse it. A cut page still has its cursor.
 */
export const PAGE_BYTES_BUDGET = 512 * 1024;

/** A short digest of the filters a cursor was issued for; a cursor used with other filters is refused. */
export function filterDigest(filters: Record<string, unknown>): string {
  const keys = Object.keys(filters).filter((k) => filters[k] !== undefined && filters[k] !== null).sort();
  if (!keys.length) return "";
  return createHash("sha256").update(JSON.stringify(keys.map((k) => [k, filters[k]]))).digest("base64url").slice(0, 12);
}

/**
 * Parses `limit` and `cursor` strictly: `limit` must be an integer within bounds (spaces tolerated),
 * an empty `cursor=` is a bad query, an undecodable one a bad cursor.
 */
export function parseListQuery(query: Record<string, unknown> | undefined, limits: ListLimits = OBJECT_LIMITS, filters: Record<string, unknown> = {}): ListQuery {
  const q = query ?? {};
  let limit = limits.defaultLimit;
  if (q.limit !== undefined) {
    if (typeof q.limit !== "string" || !/^\s*\d+\s*$/.test(q.limit)) throw badRequest("invalid_query", "limit must be an integer", { issues: [{ path: ["limit"], message: `must be an integer from 1 to ${limits.maxLimit}` }] });
    limit = Number(q.limit.trim());
    if (limit < 1 || limit > limits.maxLimit) throw badRequest("invalid_query", `limit must be from 1 to ${limits.maxLimit}`, { issues: [{ path: ["limit"], message: `must be an integer from 1 to ${limits.maxLimit}` }] });
  }
  let after: ListQuery["after"] = null;
  if (q.cursor !== undefined) {
    if (typeof q.cursor !== "string" || q.cursor.length === 0 || q.cursor.length > 512) throw badRequest("invalid_query", "cursor must be a non-empty string", { issues: [{ path: ["cursor"], message: "must be 1..512 characters" }] });
    after = decodeCursor(q.cursor, filterDigest(filters));
  }
  return { limit, after };
}

function decodeCursor(cursor: string, digest: string): { ts: Date; id: string } {
  const bad = () => badRequest("invalid_cursor", "cursor is not valid for this list");
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  if (!parsed || typeof parsed !== "object") throw bad();
  const { ts, id, f } = parsed as Record<string, unknown>;
  if (typeof ts !== "string" || typeof id !== "string" || !id) throw bad();
  const date = new Date(ts);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(ts) || Number.isNaN(date.getTime())) throw bad();
  if ((f ?? "") !== digest) throw bad();
  return { ts: date, id };
}

/**
 * Builds a page from `limit + 1` fetched rows: the extra row only says whether there is more. `resumeAfter`
 * (from a bucketed walk that stopped on its budget) gives a cursor even when the page is short.
 */
export function pageOf<R extends Record<string, any>, T>(rows: R[], q: ListQuery, toPublic: (r: R) => T, filters: Record<string, unknown> = {}, tsField = "created_at", resumeAfter?: { ts: Date; id: string }): Page<T> {
  let more = rows.length > q.limit;
  const pageRows = more ? rows.slice(0, q.limit) : rows;
  const items: T[] = [];
  let bytes = 0;
  for (const row of pageRows) {
    const item = toPublic(row);
    bytes += JSON.stringify(item).length + 1;
    if (items.length && bytes > PAGE_BYTES_BUDGET) {
      more = true;
      break;
    }
    items.push(item);
  }
  const last = pageRows[items.length - 1];
  let at: { ts: string; id: string } | null = null;
  if (more && last) at = { ts: new Date(last[tsField]).toISOString(), id: String(last._id) };
  else if (resumeAfter) at = { ts: resumeAfter.ts.toISOString(), id: resumeAfter.id };
  let next: string | null = null;
  if (at) {
    const digest = filterDigest(filters);
    const body: Record<string, string> = { ...at };
    if (digest) body.f = digest;
    next = Buffer.from(JSON.stringify(body)).toString("base64url");
  }
  return { items, next_cursor: next };
}
