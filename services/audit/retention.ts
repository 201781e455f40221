// Audit retention (§10): the setting, and the pass that removes rows older than it.
//
// Rows go a whole bucket at a time: a bucket whose newest row is past the retention is deleted by its
// `_bucket` equality (one bounded statement, no scan) and its mark retired, so pages stop reading it. The
// two newest buckets of a list are never touched (they may still be filling). Ingest writes other buckets
// and takes no lock retention takes, so it never waits on it. One instance runs a pass at a time.
import { config } from "../../shared/config";
import { tryDocLock } from "../../shared/doc-lock";
import { RETENTION_ID } from "./models/retention.model";
import type { AuditService } from "./context";

/** The lists retention applies to (decision audit and zone events; the admin chain is kept whole). */
const RETAINED: Record<string, "AuditEvent" | "ZoneEvent"> = { audit_events: "AuditEvent", zone_events: "ZoneEvent" };
const OPEN_BUCKETS = 2;
const MAX_BUCKETS_PER_PASS = 2000;

export async function retentionSetting(svc: AuditService) {
  const max = config().audit.retentionMaxDays;
  const doc = await svc.models.Retention.findById(RETENTION_ID).lean();
  return { retention_days: Math.min(doc?.retention_days ?? max, max), max_days: max, updated_at: doc ? new Date(doc.updated_at).toISOString() : null };
}

export async function enforceRetention(svc: AuditService, now = Date.now()): Promise<{ buckets: number; rows: number }> {
  const lock = await tryDocLock(svc.redis, `${svc.keyPrefix}audit-retention-pass`, 10 * 60_000);
  if (!lock) return { buckets: 0, rows: 0 };
  try {
    const { retention_days } = await retentionSetting(svc);
    const cutoff = now - retention_days * 86_400_000;
    // Marks are one per 256 rows, so reading them all costs a 256th of reading the rows.
    const marks = await svc.models.ListMark.find({}, { list: 1, max_ts: 1, retired: 1 }).lean();
    const byList = new Map<string, { bucket: number; max: number; retired: boolean }[]>();
    for (const m of marks) {
      const id = String(m._id);
      const bucket = Number(id.slice(id.lastIndexOf("|") + 1));
      byList.set(m.list, [...(byList.get(m.list) ?? []), { bucket, max: new Date(m.max_ts).getTime(), retired: !!m.retired }]);
    }
    let buckets = 0;
    let rows = 0;
    for (const [list, ms] of byList) {
      const sep = list.indexOf("|");
      const model = RETAINED[list.slice(0, sep)];
      if (!model) continue;
      const scope = list.slice(sep + 1);
      const top = Math.max(...ms.map((m) => m.bucket));
      for (const m of ms) {
        if (m.retired || m.max >= cutoff || m.bucket > top - OPEN_BUCKETS || buckets >= MAX_BUCKETS_PER_PASS) continue;
        const res = await (svc.models[model] as import("mongoose").Model<any>).deleteMany({ _bucket: `${scope}:${m.bucket}` });
        await svc.retireListBuckets(model, scope, [m.bucket]);
        rows += res.deletedCount ?? 0;
        buckets++;
        // Let requests and ingest in between: the pass is background work.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    if (buckets) svc.logger.info({ buckets, rows, retention_days }, "audit retention removed old rows");
    return { buckets, rows };
  } finally {
    await lock.release().catch(() => undefined);
  }
}
