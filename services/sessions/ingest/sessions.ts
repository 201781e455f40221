// Ingest of caracal.sessions.lifecycle: sessions created (in bulk), revoked (with their descendants), expired.
import type { Model } from "mongoose";
import type { Outcome, StreamEntry } from "../../../shared/streams/consumer";
import { compareEntryIds, parseSessionEntry, type SessionEntry } from "../entries";
import type { SessionDoc } from "../models/session.model";
import { MISSING_GRACE_MS, activeKeys, creationsFirst, eachLimited, gates, groupBy, insertNew, parseAll, sleep, type IngestHost } from "./host";

type Created = Extract<SessionEntry, { event: "created" }>;

export async function ingestSessions(host: IngestHost, stream: string, entries: StreamEntry[]): Promise<(Outcome | undefined)[]> {
  const outcomes: (Outcome | undefined)[] = new Array(entries.length).fill(undefined);
  const parsed = parseAll(entries, parseSessionEntry, outcomes);
  await creationsFirst(
    parsed,
    (p) => p.event === "created",
    (idx) => createSessions(host, idx.map((i) => parsed[i] as Created), idx, entries, outcomes),
    (p) => p.session_id,
    async (i) => {
      outcomes[i] = await sessionTransition(host, stream, entries[i]!, parsed[i] as Exclude<SessionEntry, Created>);
    },
  );
  return outcomes;
}

async function createSessions(host: IngestHost, list: Created[], idx: number[], entries: StreamEntry[], outcomes: (Outcome | undefined)[]): Promise<void> {
  const zoneGates = await gates(host, list.map((s) => s.zone_id));
  const accepted: { s: Created; i: number }[] = [];
  list.forEach((s, k) => {
    const gate = zoneGates.get(s.zone_id);
    if (gate) outcomes[idx[k]!] = { dlq: gate };
    else accepted.push({ s, i: idx[k]! });
  });
  if (!accepted.length) return;
  const now = new Date();
  const docs: Record<string, unknown>[] = [];
  for (const [zoneId, group] of groupBy(accepted, (a) => a.s.zone_id)) {
    const listed = await host.listFields("Session", zoneId, group.map((a) => a.s.created_at));
    group.forEach(({ s, i }, k) => {
      const doc: SessionDoc & Record<string, unknown> = {
        _id: s.session_id,
        zone_id: s.zone_id,
        session_type: s.session_type,
        subject_id: s.subject_id,
        parent_id: s.parent_id,
        status: "active",
        expires_at: s.expires_at,
        authenticated_at: s.authenticated_at,
        created_at: s.created_at,
        revoked_at: null,
        revoked_reason: null,
        claims_json: s.claims_json,
        entry_id: entries[i]!.id,
        ended_entry: null,
        updated_at: now,
        ...listed[k]!,
      };
      docs.push(doc);
    });
  }
  const inserted = await insertNew(host.models.Session, docs);
  const fresh = docs.filter((_, k) => inserted.has(k));
  // A session stored by an earlier delivery whose index update was lost: read it back and index it as it is.
  const again = docs.filter((_, k) => !inserted.has(k));
  const stored = await Promise.all(again.map((d) => host.models.Session.findById(d._id, { status: 1, zone_id: 1, expires_at: 1, _seq: 1 }).lean<Record<string, unknown>>()));
  await indexActive(host, [...fresh, ...(stored.filter(Boolean) as Record<string, unknown>[])]);
  await host.releaseHeld(docs.map((d) => `session:${d._id}`));
}

/** Adds active, unexpired sessions to their zone's active index; a zone's first session marks the index complete. */
async function indexActive(host: IngestHost, docs: Record<string, unknown>[]): Promise<void> {
  const now = Date.now();
  const tx = host.redis.multi();
  let n = 0;
  for (const d of docs) {
    const keys = activeKeys(host, String(d.zone_id));
    if (d._seq === 0) tx.set(keys.complete, "1");
    const expires = new Date(d.expires_at as Date).getTime();
    if (d.status !== "active" || expires <= now) continue;
    tx.zadd(keys.active, expires, String(d._id));
    n++;
  }
  if (n || docs.some((d) => d._seq === 0)) await tx.exec();
}

async function sessionTransition(host: IngestHost, stream: string, entry: StreamEntry, p: Exclude<SessionEntry, Created>): Promise<Outcome | undefined> {
  const to = p.event === "revoked" ? "revoked" : "expired";
  const reason = p.event === "revoked" ? p.reason : null;
  const go = () => moveSession(host, p.session_id, p.zone_id, to, reason, p.at, entry.id);
  let res = await go();
  if (res === "missing") res = await sleep(MISSING_GRACE_MS).then(go);
  if (res === "missing") {
    await host.hold(`session:${p.session_id}`, stream, entry);
    return "ack";
  }
  if (res === "other_zone") return { dlq: "session_in_other_zone" };
  // The named session and its descendants created before this entry (again after a redelivery: the
  // cascade may have been cut short).
  if (to === "revoked") await revokeDescendants(host, p.zone_id, [p.session_id], reason!, p.at, entry.id);
  return "ack";
}

/**
 * Moves one active session to revoked or expired under its lock, in one conditional write. "missing" when it
 * does not exist (yet); "noop" when it had ended already — unless this entry (`entryId`) comes earlier in the
 * stream than the one that ended it: handled out of order (two instances, overlapping batches), the earlier
 * ending then replaces the later one, so the outcome is the stream's order (the reference keeps the first
 * reason). Endings by the control plane (no entry id) neither replace nor are replaced.
 */
export async function moveSession(host: IngestHost, id: string, zoneId: string, to: "revoked" | "expired", reason: string | null, at: Date, entryId: string | null = null): Promise<"missing" | "other_zone" | "noop" | "done"> {
  const S = host.models.Session;
  const set: Record<string, unknown> = { status: to, updated_at: new Date(), ended_entry: entryId, revoked_at: to === "revoked" ? at : null, revoked_reason: to === "revoked" ? (reason ?? "session_revoked") : null };
  const res = await host.locked(S, id, async () => {
    // Twice at most: a session inserted between the conditional write and the read is active on the read.
    for (let attempt = 0; ; attempt++) {
      const before = await S.findOneAndUpdate({ _id: id, zone_id: zoneId, status: "active" }, { $set: set }).lean(); // FerretDB v1 takes no projection here
      if (before) return "done" as const;
      const doc = await S.findById(id, { zone_id: 1, status: 1, ended_entry: 1 }).lean();
      if (!doc) return "missing" as const;
      if (doc.zone_id !== zoneId) return "other_zone" as const;
      if (doc.status === "active" && attempt === 0) continue;
      if (entryId && doc.ended_entry && compareEntryIds(entryId, doc.ended_entry) < 0) await S.updateOne({ _id: id }, { $set: set });
      return "noop" as const;
    }
  });
  if (res === "done") await host.redis.zrem(activeKeys(host, zoneId).active, id);
  return res;
}

/** Revokes the active descendants of these sessions (created before `beforeEntry`, when given). */
export async function revokeDescendants(host: IngestHost, zoneId: string, roots: string[], reason: string, at: Date, beforeEntry: string | null = null): Promise<string[]> {
  const moved: string[] = [];
  const all = await descendants<SessionDoc>(host.models.Session, zoneId, roots, { entry_id: 1 });
  await eachLimited(
    all.filter((d) => d.status === "active" && (!beforeEntry || compareEntryIds(d.entry_id, beforeEntry) < 0)),
    8,
    async (d) => {
      if ((await moveSession(host, d._id, zoneId, "revoked", reason, at, beforeEntry)) === "done") moved.push(d._id);
    },
  );
  return moved;
}

/** Every descendant of `roots` (any status), level by level, by `{zone_id, parent_id}` equality. */
export async function descendants<D extends { _id: string; status: string; parent_id: string | null }>(model: Model<any>, zoneId: string, roots: string[], projection: Record<string, 1> = {}): Promise<D[]> {
  const seen = new Set(roots);
  const out: D[] = [];
  let level = roots;
  while (level.length) {
    const found: D[] = [];
    await eachLimited(level, 8, async (id) => {
      const children = await model.find({ zone_id: zoneId, parent_id: id }, { status: 1, parent_id: 1, ...projection }).lean<D[]>();
      found.push(...children);
    });
    level = [];
    for (const c of found) {
      if (seen.has(c._id)) continue;
      seen.add(c._id);
      out.push(c);
      level.push(c._id);
    }
  }
  return out;
}
