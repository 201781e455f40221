// Admin audit, gateway side: which requests are recorded (reference-ops §2.1) and the hand-off to Redis.
//
// `record(req, res)` runs when a response has finished: it builds the record and queues it in memory;
// a background flush appends queued records to the hand-off stream (shared/admin-audit.ts) in pipelines.
// The response never waits on it. While Redis is unreachable records stay queued (bounded) and are
// retried; once in the stream they wait there for the audit service, however long it is down.
import type Redis from "ioredis";
import { newId } from "../shared/ids";
import { sign, toStreamArgs, type SigningKey } from "../shared/signing";
import { RECORD_FIELD, type AdminAuditRecord } from "../shared/admin-audit";
import type { Actor } from "../shared/actor";

/** Path segments that name an entity when another segment follows them (§2.1, scanned right to left). */
const ENTITY_SEGMENTS = new Set([
  "zones", "applications", "resources", "providers", "provider-grants", "policies", "policy-sets",
  "policy-templates", "grants", "step-up-challenges", "admin-tokens", "operator-conversations",
]);
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const SECRET_KEYS = new Set(["client_secret", "secret", "password", "token", "private_key", "api_key", "assertion"]);
const OAUTH_CALLBACK = /^\/v1\/zones\/[^/]+\/provider-grants\/oauth\/callback$/;
const ROTATE_SECRET = /^\/v1\/zones\/[^/]+\/applications\/[^/]+\/rotate-secret$/;

const MAX_QUEUED = 10_000;
const FLUSH_BATCH = 200;

const decode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** Whether a finished request is recorded: every mutation, every failure, every OAuth callback. */
export function isRecorded(method: string, path: string, status: number): boolean {
  if (!path.startsWith("/v1/")) return false;
  return MUTATING.has(method) || status >= 400 || (method === "GET" && OAUTH_CALLBACK.test(path));
}

/** The entity a path names: the rightmost known segment that has a segment after it. */
export function entityOf(path: string): { entity_type: string | null; entity_id: string | null } {
  const segments = path.split("/").filter(Boolean);
  for (let i = segments.length - 2; i >= 0; i--) {
    if (ENTITY_SEGMENTS.has(segments[i]!)) return { entity_type: segments[i]!, entity_id: decode(segments[i + 1]!) };
  }
  return { entity_type: null, entity_id: null };
}

/** The zone a path names (`/v1/zones/<id>…`), URL-decoded. */
export function zoneOf(path: string): string | null {
  const m = /^\/v1\/zones\/([^/]+)/.exec(path);
  return m ? decode(m[1]!) : null;
}

/**
 * The payload: how the actor's queries were scoped, and on success which top-level body fields the request
 * set (names only, never values; secret names left out and flagged as `secret_rotated`).
 */
export function payloadOf(method: string, path: string, status: number, body: unknown, actor: Actor | undefined): Record<string, unknown> {
  const payload: Record<string, unknown> =
    actor?.scope === "zone" ? { rls_mode: "zone_scoped", rls_zone_guc: actor.zone_id } : { rls_mode: "control_plane_wildcard", rls_zone_guc: "*" };
  if (status < 200 || status >= 300) return payload;
  if (method === "DELETE") {
    payload.changed_fields = [];
    return payload;
  }
  if (body && typeof body === "object" && !Array.isArray(body) && Object.keys(body).length) {
    const keys = Object.keys(body);
    payload.changed_fields = keys.filter((k) => !SECRET_KEYS.has(k.toLowerCase())).sort();
    if (keys.some((k) => SECRET_KEYS.has(k.toLowerCase()))) payload.secret_rotated = true;
  }
  // Our own route: it sets a new client secret without a body.
  if (method === "POST" && ROTATE_SECRET.test(path)) payload.secret_rotated = true;
  return payload;
}

export function buildRecord(input: { method: string; path: string; status: number; requestId: string; actor?: Actor; body?: unknown; at?: Date }): AdminAuditRecord {
  const { method, path, status, actor } = input;
  return {
    id: newId(),
    request_id: input.requestId,
    actor_id: actor?.id ?? null,
    actor_name: actor?.name ?? null,
    actor_scope: actor?.scope ?? null,
    action: `${method} ${path}`,
    method,
    path,
    zone_id: zoneOf(path),
    ...entityOf(path),
    status_code: status,
    payload: JSON.stringify(payloadOf(method, path, status, input.body, actor)),
    occurred_at: (input.at ?? new Date()).toISOString(),
  };
}

export interface HandoffLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Queues records and appends them to the hand-off stream, signed, in the background. */
export class AdminAuditHandoff {
  private queue: AdminAuditRecord[] = [];
  private flushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  /** Records dropped because the queue was full (Redis unreachable for long). */
  dropped = 0;
  written = 0;

  constructor(
    private readonly redis: Redis,
    private readonly stream: string,
    private readonly key: SigningKey | null,
    private readonly logger: HandoffLogger,
  ) {}

  /** Called when a response has finished; never throws, never waits. */
  record(input: Parameters<typeof buildRecord>[0]): void {
    if (!isRecorded(input.method, input.path, input.status)) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0) this.logger.error({ dropped: this.dropped }, "admin audit queue full (Redis unreachable): records dropped");
      return;
    }
    this.queue.push(buildRecord(input));
    this.schedule(0);
  }

  /** Waits (bounded) until the queue is written: for shutdown and tests. */
  async drain(timeoutMs = 5000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while ((this.queue.length || this.flushing) && Date.now() < until) {
      if (!this.flushing) this.schedule(0);
      await (this.flushing ?? new Promise((r) => setTimeout(r, 20)));
    }
    return this.queue.length === 0;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.timer || this.flushing) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
        if (this.queue.length) this.schedule(this.failures ? Math.min(5000, 100 * 2 ** this.failures) : 0);
      });
    }, ms);
    this.timer.unref?.();
  }

  private async flush(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.slice(0, FLUSH_BATCH);
      const tx = this.redis.pipeline();
      for (const record of batch) {
        const fields: Record<string, string> = { [RECORD_FIELD]: JSON.stringify(record) };
        if (this.key) {
          fields.kid = this.key.kid;
          fields._sig = sign(this.key.key, this.stream, fields);
        }
        tx.xadd(this.stream, "*", ...toStreamArgs(fields));
      }
      try {
        const res = await tx.exec();
        const failed = (res ?? []).findIndex(([err]) => err);
        // Records before the first failure are in the stream; the rest are retried (a retried record keeps
        // its id, and the audit service stores an id once).
        const done = failed === -1 ? batch.length : failed;
        this.queue.splice(0, done);
        this.written += done;
        if (failed !== -1) throw res![failed]![0];
        this.failures = 0;
      } catch (err) {
        this.failures = Math.min(this.failures + 1, 6);
        if (this.failures === 1) this.logger.warn({ err: (err as Error).message, queued: this.queue.length }, "admin audit hand-off failed; retrying");
        return;
      }
    }
  }
}
