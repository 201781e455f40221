// The three streams the audit service stores: decision events (§1.1–1.2), admin-audit records from the
// gateway (§2, chained per zone) and zone events (decision 8). Each handler gets a verified batch from its
// consumer group (shared/streams/consumer.ts), stores it idempotently and answers one outcome per entry;
// the consumer acknowledges only after that.
import type { Model } from "mongoose";
import type { Outcome, StreamEntry, Verifier } from "../../shared/streams/consumer";
import { isDuplicateKey } from "../../shared/meta";
import { newId } from "../../shared/ids";
import { RECORD_FIELD, type AdminAuditRecord } from "../../shared/admin-audit";
import { zoneEventOf } from "../../shared/zone-events";
import { verify as verifySig, type SigningKey } from "../../shared/signing";
import { adminContentHash, auditEntrySigValid, chainHmac, decisionContentHash, unixNanos, type DecisionEvent } from "./hashes";
import { GLOBAL_CHAIN, type AdminAuditDoc } from "./models/admin-audit.model";
import { packExtra, requestKey, unpackExtra, type AuditEventDoc } from "./models/audit-event.model";
import type { ZoneEventDoc } from "./models/zone-event.model";
import type { AuditService } from "./context";

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

// ---- decision events ---------------------------------------------------------------------------

/** The audit scheme (§1.1): `data` must be there, and with a key `sig` must be its HMAC. */
export function auditVerifier(key: Buffer | null): Verifier {
  return (_stream, fields) => {
    if (fields.data === undefined) return "missing_data_field";
    if (key && !auditEntrySigValid(key, fields.data, fields.sig)) return "hmac_verify_failed";
    return null;
  };
}

export type ParsedDecision = { ok: true; event: DecisionEvent & Record<string, unknown>; occurredAt: Date; hash: string } | { ok: false; reason: string };

export function parseDecision(data: string): ParsedDecision {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (err) {
    return { ok: false, reason: `json_parse_error:${(err as Error).message}` };
  }
  if (!isObject(value)) return { ok: false, reason: "json_parse_error:not a JSON object" };
  for (const k of ["id", "zone_id", "occurred_at"]) {
    if (typeof value[k] !== "string" || !value[k]) return { ok: false, reason: `json_parse_error:missing ${k}` };
  }
  const nanos = unixNanos(value.occurred_at as string);
  if (nanos === null) return { ok: false, reason: "json_parse_error:occurred_at is not an RFC 3339 time" };
  const event = value as DecisionEvent & Record<string, unknown>;
  return { ok: true, event, occurredAt: new Date(Number(nanos / 1_000_000n)), hash: decisionContentHash(event, nanos) };
}

/** The stored row: filter fields lifted out of the event, the event kept as the exact text signed. */
export function decisionRow(p: Extract<ParsedDecision, { ok: true }>, data: string, sig: string | null, ingestedAt: Date, bucket: string): AuditEventDoc {
  const e = p.event;
  const meta = isObject(e.metadata_json) ? e.metadata_json : {};
  // Absent fields are left out (each stored field costs on every read), not stored as null.
  const row: AuditEventDoc = { _id: e.id, _bucket: bucket, occurred_at: p.occurredAt, data, x: packExtra({ ingestedAt, sha256: p.hash, sig: sig ?? "" }) };
  const requestId = str(e.request_id);
  if (requestId !== null) row.rk = requestKey(e.zone_id, requestId);
  for (const k of ["event_type", "decision"] as const) if (typeof e[k] === "string") row[k] = e[k] as string;
  for (const k of ["application_id", "agent_session_id", "session_id"] as const) if (typeof meta[k] === "string") row[k] = meta[k] as string;
  const labels = Array.isArray(meta.agent_labels) ? meta.agent_labels.filter((l): l is string => typeof l === "string") : [];
  if (labels.length) row.labels = labels;
  return row;
}

/** Inserts all, skipping ids already stored: the indexes of the duplicates. Any other failure throws. */
export async function insertNew(model: Model<any>, docs: object[]): Promise<Set<number>> {
  if (!docs.length) return new Set();
  try {
    await model.collection.insertMany(docs as any[], { ordered: false });
    return new Set();
  } catch (err) {
    const raw = (err as { writeErrors?: unknown }).writeErrors;
    const errors = (Array.isArray(raw) ? raw : raw ? [raw] : []) as { index: number; code?: number; err?: { code?: number } }[];
    if (!errors.length || errors.some((w) => (w.code ?? w.err?.code) !== 11000)) throw err;
    return new Set(errors.map((w) => w.index));
  }
}

/** Zone batches larger than this are inserted as two halves at once. */
const INSERT_SPLIT = 200;

export async function ingestDecisions(svc: AuditService, entries: StreamEntry[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = entries.map(() => "ack");
  const byZone = new Map<string, { i: number; p: Extract<ParsedDecision, { ok: true }>; entry: StreamEntry }[]>();
  entries.forEach((entry, i) => {
    const p = parseDecision(entry.fields.data!);
    if (!p.ok) outcomes[i] = { dlq: p.reason };
    else {
      const list = byZone.get(p.event.zone_id) ?? [];
      list.push({ i, p, entry });
      byZone.set(p.event.zone_id, list);
    }
  });
  const ingestedAt = new Date();
  const model = svc.models.AuditEvent;
  const inserted: { zoneId: string; decision: string | undefined; at: Date }[] = [];
  await Promise.all(
    [...byZone].map(async ([zoneId, items]) => {
      const listed = await svc.listFields("AuditEvent", zoneId, items.map((x) => x.p.occurredAt));
      const docs = items.map((x, k) => decisionRow(x.p, x.entry.fields.data!, x.entry.fields.sig ?? null, ingestedAt, listed[k]!._bucket));
      // Two inserts in flight: the store works on one while the other travels (measured ~1.3x at 1,000).
      const half = docs.length > INSERT_SPLIT ? Math.ceil(docs.length / 2) : docs.length;
      const parts = await Promise.all([insertNew(model, docs.slice(0, half)), insertNew(model, docs.slice(half))]);
      const duplicates = new Set([...parts[0], ...[...parts[1]].map((k) => k + half)]);
      for (let k = 0; k < docs.length; k++) {
        const hash = items[k]!.p.hash;
        if (!duplicates.has(k)) {
          inserted.push({ zoneId, decision: docs[k]!.decision, at: docs[k]!.occurred_at });
          continue;
        }
        // Stored before: the same content is a redelivery (ack); other content under that id is tampering.
        const stored = await model.findById(docs[k]!._id, { x: 1 }).lean();
        if (!stored) throw new Error(`event ${docs[k]!._id} reported duplicate but not found`);
        const storedHash = unpackExtra(stored.x).sha256;
        if (storedHash === hash) continue;
        await svc.models.IngestAlert.collection.insertOne({
          _id: newId() as any,
          kind: "content_mismatch_on_replay",
          event_id: docs[k]!._id,
          zone_id: zoneId,
          stored_sha256: storedHash,
          received_sha256: hash,
          stream_entry_id: items[k]!.entry.id,
          created_at: new Date(),
        });
        outcomes[items[k]!.i] = { dlq: "tamper_on_replay" };
      }
    }),
  );
  await countDecisions(svc, inserted);
  return outcomes;
}

// ---- decisions per minute (overview) -------------------------------------------------------------

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

const decisionsKey = (svc: AuditService, zoneId: string, hour: number) => `${svc.keyPrefix}audit:decisions:{${zoneId}}:${hour}`;

/**
 * Allowed/denied counts per zone and minute in Redis, added once per stored event: the overview's last
 * 24 hours without reading the events (at a million rows a zone, counting them would decode them all).
 */
async function countDecisions(svc: AuditService, rows: { zoneId: string; decision: string | undefined; at: Date }[]): Promise<void> {
  const since = Date.now() - DAY_MS - HOUR_MS;
  const tx = svc.redis.pipeline();
  let any = false;
  for (const r of rows) {
    if ((r.decision !== "allow" && r.decision !== "deny") || r.at.getTime() < since) continue;
    const t = r.at.getTime();
    const hour = Math.floor(t / HOUR_MS);
    const key = decisionsKey(svc, r.zoneId, hour);
    tx.hincrby(key, `${Math.floor((t % HOUR_MS) / 60_000)}:${r.decision}`, 1).pexpire(key, DAY_MS + 2 * HOUR_MS);
    any = true;
  }
  if (any) await tx.exec();
}

/** Decisions of the last 24 hours, to the minute. */
export async function decisions24h(svc: AuditService, zoneId: string, now = Date.now()): Promise<{ allowed: number; denied: number }> {
  const from = now - DAY_MS;
  const firstMinute = Math.floor(from / 60_000);
  const hours: number[] = [];
  for (let h = Math.floor(from / HOUR_MS); h <= Math.floor(now / HOUR_MS); h++) hours.push(h);
  const tx = svc.redis.pipeline();
  for (const h of hours) tx.hgetall(decisionsKey(svc, zoneId, h));
  const res = (await tx.exec()) ?? [];
  const out = { allowed: 0, denied: 0 };
  hours.forEach((h, i) => {
    const counts = (res[i]?.[1] ?? {}) as Record<string, string>;
    for (const [field, n] of Object.entries(counts)) {
      const [minute, decision] = field.split(":");
      if (h * 60 + Number(minute) < firstMinute) continue;
      if (decision === "allow") out.allowed += Number(n);
      else if (decision === "deny") out.denied += Number(n);
    }
  });
  return out;
}

// ---- admin audit: the hash chain ----------------------------------------------------------------

export function parseRecord(fields: Record<string, string>): AdminAuditRecord | null {
  try {
    const r = JSON.parse(fields[RECORD_FIELD] ?? "") as AdminAuditRecord;
    if (!isObject(r) || typeof r.id !== "string" || typeof r.method !== "string" || typeof r.path !== "string" || typeof r.occurred_at !== "string" || typeof r.status_code !== "number") return null;
    return r;
  } catch {
    return null;
  }
}

export async function ingestAdminRecords(svc: AuditService, entries: StreamEntry[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = entries.map(() => "ack");
  const byChain = new Map<string, AdminAuditRecord[]>();
  entries.forEach((entry, i) => {
    const r = parseRecord(entry.fields);
    if (!r) outcomes[i] = { dlq: "invalid_admin_audit_record" };
    else {
      const key = r.zone_id ?? GLOBAL_CHAIN;
      byChain.set(key, [...(byChain.get(key) ?? []), r]);
    }
  });
  await Promise.all([...byChain].map(([key, records]) => appendToChain(svc, key, records)));
  return outcomes;
}

/**
 * Appends records to one chain, in order. Writers of a chain take its head's lock, so two audit instances
 * never interleave; the unique (chain, sequence) index is the last word, so even a writer that lost its
 * lock cannot fork the chain: it meets the row that took its number and continues after it. A record
 * stored before (a redelivery) is skipped. The batch goes in as one ordered insert; only after a
 * duplicate does it continue record by record.
 */
export async function appendToChain(svc: AuditService, chainKey: string, records: AdminAuditRecord[]): Promise<void> {
  const Rows = svc.models.AdminAudit;
  const Heads = svc.models.ChainHead;
  await svc.locked(Heads, chainKey, async () => {
    const stored = await Heads.findById(chainKey).lean();
    const start = { seq: stored?.seq ?? 0, hash: stored?.hash ?? null };
    let head = start;
    const link = async (batch: AdminAuditRecord[], from: typeof head): Promise<AdminAuditDoc[]> => {
      const listed = await svc.listFields("AdminAudit", chainKey, batch.map((r) => new Date(r.occurred_at)));
      let prev = from;
      return batch.map((r, i) => {
        const content = adminContentHash(r);
        const row: AdminAuditDoc = {
          _id: r.id, request_id: r.request_id, actor_id: r.actor_id, actor_name: r.actor_name, actor_scope: r.actor_scope,
          action: r.action, method: r.method, path: r.path, zone_id: r.zone_id, entity_type: r.entity_type, entity_id: r.entity_id,
          status_code: r.status_code, payload: r.payload, occurred_at: new Date(r.occurred_at),
          chain_key: chainKey, chain_seq: prev.seq + 1, content_sha256: content, prev_content_sha256: prev.hash,
          chain_hmac: chainHmac(svc.auditKey, content, prev.hash),
          ...listed[i]!,
        };
        prev = { seq: row.chain_seq, hash: content };
        return row;
      });
    };
    let rest = records;
    const rows = await link(rest, head);
    try {
      await Rows.collection.insertMany(rows as any[], { ordered: true });
      head = { seq: rows[rows.length - 1]!.chain_seq, hash: rows[rows.length - 1]!.content_sha256 };
      rest = [];
    } catch (err) {
      const first = (err as { writeErrors?: { index: number }[] | { index: number } }).writeErrors;
      const at = Array.isArray(first) ? first[0]?.index : first?.index;
      if (!isDuplicateKey(err) || at === undefined) throw err;
      if (at > 0) head = { seq: rows[at - 1]!.chain_seq, hash: rows[at - 1]!.content_sha256 };
      rest = records.slice(at);
    }
    for (const r of rest) {
      for (let attempt = 0; ; attempt++) {
        if (await Rows.findById(r.id, { _id: 1 }).lean()) break;
        const [row] = await link([r], head);
        try {
          await Rows.collection.insertOne(row as any);
          head = { seq: row!.chain_seq, hash: row!.content_sha256 };
          break;
        } catch (err) {
          if (!isDuplicateKey(err) || attempt > 1000) throw err;
          // The number is taken: a row written after the head was last saved (a writer that died between
          // its rows and its head). Continue the chain after it.
          const taken = await Rows.findOne({ chain_key: chainKey, chain_seq: row!.chain_seq }, { content_sha256: 1 }).lean();
          if (taken) head = { seq: row!.chain_seq, hash: taken.content_sha256 };
        }
      }
    }
    if (head.seq !== start.seq) await Heads.updateOne({ _id: chainKey }, { $set: { seq: head.seq, hash: head.hash, updated_at: new Date() } }, { upsert: true });
  });
}

export interface ChainCheck {
  ok: boolean;
  /** Rows checked by this call. */
  checked: number;
  /** The last sequence number found intact. */
  last_seq: number;
  broken?: { seq: number; reason: "missing" | "content_mismatch" | "link_mismatch" | "hmac_mismatch" };
  /** Set when the walk stopped on its budget: pass it back to go on. */
  next: { bucket: number; seq: number; prev: string | null } | null;
}

const VERIFY_BUCKETS_PER_CALL = 64;
const EMPTY_BUCKETS_AT_END = 4;

/**
 * Walks a chain from its first row (or from `from`), bucket by bucket in the order rows were chained,
 * recomputing each content hash, link and HMAC. Stops at the first broken row; bounded per call.
 */
export async function verifyChain(svc: AuditService, chainKey: string, from?: ChainCheck["next"]): Promise<ChainCheck> {
  const Rows = svc.models.AdminAudit;
  const head = await svc.models.ChainHead.findById(chainKey).lean();
  let bucket = from?.bucket ?? 0;
  let expected = from?.seq ?? 1;
  let prev = from?.prev ?? null;
  let checked = 0;
  let empty = 0;
  const broken = (seq: number, reason: NonNullable<ChainCheck["broken"]>["reason"]): ChainCheck => ({ ok: false, checked, last_seq: expected - 1, broken: { seq, reason }, next: null });
  for (let read = 0; read < VERIFY_BUCKETS_PER_CALL; read++, bucket++) {
    if (head && expected > head.seq) break;
    const rows = (await Rows.find({ _bucket: `${chainKey}:${bucket}` }).lean()).sort((a, b) => a.chain_seq - b.chain_seq);
    if (!rows.length) {
      if (++empty > EMPTY_BUCKETS_AT_END) break;
      continue;
    }
    empty = 0;
    for (const row of rows) {
      if (row.chain_seq < expected) continue;
      if (row.chain_seq > expected) return broken(expected, "missing");
      const content = adminContentHash({ ...row, id: row._id, occurred_at: new Date(row.occurred_at).toISOString() });
      if (content !== row.content_sha256) return broken(row.chain_seq, "content_mismatch");
      if ((row.prev_content_sha256 ?? null) !== prev) return broken(row.chain_seq, "link_mismatch");
      if (svc.auditKey.length && row.chain_hmac !== chainHmac(svc.auditKey, content, prev)) return broken(row.chain_seq, "hmac_mismatch");
      prev = content;
      expected++;
      checked++;
    }
  }
  const end = head?.seq ?? expected - 1;
  if (expected <= end && (empty > EMPTY_BUCKETS_AT_END)) return broken(expected, "missing");
  const done = expected > end;
  return { ok: true, checked, last_seq: expected - 1, next: done ? null : { bucket, seq: expected, prev } };
}

// ---- zone events --------------------------------------------------------------------------------

/**
 * Stores zone events. An entry whose signature does not verify is acknowledged and dropped, as the
 * reference's consumers of outbox streams do (§7.7): it is not ours to keep, and parking every foreign
 * entry would fill the DLQ with noise.
 */
export async function ingestZoneEvents(svc: AuditService, entries: StreamEntry[], stream: string, keys: SigningKey[], dropped: { count: number }): Promise<Outcome[]> {
  const outcomes: Outcome[] = entries.map(() => "ack");
  const byZone = new Map<string, Omit<ZoneEventDoc, "_seq" | "_bucket">[]>();
  entries.forEach((entry, i) => {
    if (!verifySig(keys, stream, entry.fields)) {
      dropped.count++;
      return;
    }
    const e = zoneEventOf(entry.id, entry.fields);
    if (!e) {
      outcomes[i] = { dlq: "invalid_zone_event" };
      return;
    }
    const row = {
      _id: e.id, stream_id: e.stream_id, zone_id: e.zone_id, entity_type: e.entity_type, entity_id: e.entity_id, action: e.action,
      actor_id: e.actor_id, request_id: e.request_id, occurred_at: new Date(e.occurred_at), details: JSON.stringify(e.details),
    };
    byZone.set(e.zone_id, [...(byZone.get(e.zone_id) ?? []), row]);
  });
  await Promise.all(
    [...byZone].map(async ([zoneId, rows]) => {
      const listed = await svc.listFields("ZoneEvent", zoneId, rows.map((r) => r.occurred_at));
      // A duplicate is the same outbox entry published again: stored once, acknowledged either way.
      await insertNew(svc.models.ZoneEvent, rows.map((r, k) => ({ ...r, ...listed[k]! })));
    }),
  );
  return outcomes;
}
