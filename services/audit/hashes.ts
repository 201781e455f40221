// The audit HMACs and content hashes (reference-ops §1.1, §1.2, §2.2, §7.5). Pure functions, tested on vectors.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { AdminAuditRecord } from "../../shared/admin-audit";

const SEP = "\u001f";

/** The producer signature of an audit stream entry: lowercase hex HMAC-SHA256 over the exact `data` text. */
export function auditEntrySig(key: Buffer, data: string): string {
  return createHmac("sha256", key).update(data, "utf8").digest("hex");
}

export function auditEntrySigValid(key: Buffer, data: string, sig: string | undefined): boolean {
  if (!sig || !/^[0-9a-f]{64}$/.test(sig)) return false;
  const expected = Buffer.from(auditEntrySig(key, data), "hex");
  return timingSafeEqual(expected, Buffer.from(sig, "hex"));
}

/** `content ‖ "|" ‖ prev` under AUDIT_HMAC_KEY, prev "" for the first link. */
export function chainHmac(key: Buffer, content: string, prev: string | null): string {
  return createHmac("sha256", key).update(`${content}|${prev ?? ""}`, "utf8").digest("hex");
}

/** §2.2: each field then 0x1F (null → ""), the last one included. */
export function adminContentHash(r: Pick<AdminAuditRecord, "id" | "request_id" | "actor_id" | "actor_name" | "actor_scope" | "action" | "method" | "path" | "zone_id" | "entity_type" | "entity_id" | "status_code" | "payload" | "occurred_at">): string {
  const fields = [r.id, r.request_id, r.actor_id, r.actor_name, r.actor_scope, r.action, r.method, r.path, r.zone_id, r.entity_type, r.entity_id, String(r.status_code), r.payload ?? "", r.occurred_at];
  const h = createHash("sha256");
  for (const f of fields) h.update(`${f ?? ""}${SEP}`, "utf8");
  return h.digest("hex");
}

/** JSON text with object keys sorted at every depth: one text per content, whatever order it arrived in. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return "null";
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj).filter((k) => obj[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/** Unix nanoseconds of an RFC 3339 time, from its own digits (up to 9 fractional), or null when unreadable. */
export function unixNanos(iso: string): bigint | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?\d*(Z|[+-]\d{2}:\d{2})$/i.exec(iso);
  if (!m) return null;
  const whole = Date.parse(`${m[1]}${m[3]!.toUpperCase() === "Z" ? "Z" : m[3]}`);
  if (Number.isNaN(whole)) return null;
  return BigInt(whole) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

export interface DecisionEvent {
  id: string;
  zone_id: string;
  event_type?: string | null;
  request_id?: string | null;
  decision?: string | null;
  policy_set_id?: string | null;
  policy_set_version_id?: string | null;
  manifest_sha?: string | null;
  evaluation_status?: string | null;
  determining_policies_json?: unknown;
  diagnostics_json?: unknown;
  metadata_json?: unknown;
  occurred_at: string;
}

/**
 * The content hash of a decision event (the field order of §1.2): the tamper check on replay compares it,
 * so an event re-sent with its JSON keys in another order is the same event, and any changed value is not.
 */
export function decisionContentHash(e: DecisionEvent, nanos: bigint): string {
  const text = (v: unknown) => (v === undefined || v === null ? "" : String(v));
  const json = (v: unknown) => (v === undefined ? "null" : canonicalJson(v));
  const fields = [
    text(e.id), text(e.zone_id), text(e.event_type), text(e.request_id), text(e.decision), text(e.policy_set_id), text(e.policy_set_version_id),
    text(e.manifest_sha), text(e.evaluation_status), json(e.determining_policies_json), json(e.diagnostics_json), json(e.metadata_json),
  ];
  const h = createHash("sha256");
  for (const f of fields) h.update(`${f}${SEP}`, "utf8");
  h.update(nanos.toString(), "utf8");
  return h.digest("hex");
}
