// Reactions to caracal.zone.events: a grant deleted, a DCR shutdown's applications archived, a zone archived.
//
// The cause is an entry in a consumer group, so an effect missed while this service was down happens once it
// is back. Each flow is decided in chunks (`EffectDoc`): a chunk names the sessions it moves and holds their
// signed entries (the outbox), written in one insert whose `_id` is derived from the cause; then the sessions
// are moved. Handling the cause again (a crash, a redelivery) re-applies the chunks already written, exactly
// as decided, and decides new chunks only for what is still active, until nothing is.
import type { Model } from "mongoose";
import type { Outcome, StreamEntry } from "../../shared/streams/consumer";
import { outboxEntry, withNewEvents, type OutboxEntry } from "../../shared/outbox/entry";
import { isDuplicateKey } from "../../shared/meta";
import { PATH_ID_PATTERN } from "../../shared/ids";
import { AGENTS_STREAM, REVOKE_STREAM } from "./entries";
import type { EffectDoc, EffectItem, ClosedZoneDoc } from "./models/support.model";
import type { SessionDoc } from "./models/session.model";
import type { AgentSessionDoc } from "./models/agent-session.model";
import { activeKeys, eachLimited, type IngestHost } from "./ingest/host";
import { descendants, moveSession } from "./ingest/sessions";
import type { AgentIngest } from "./ingest/agents";

/** Sessions moved per chunk: one chunk is one document with its entries (1 to 2 per item). */
const CHUNK = 500;
/** A flow moves at most CHUNK × MAX_CHUNKS sessions (a bound against a loop, far above any real subject). */
const MAX_CHUNKS = 10_000;

export interface RevocationHost extends IngestHost {
  effects: Model<EffectDoc>;
  closedZones: Model<ClosedZoneDoc>;
  /** Publishes a chunk's entries now (or leaves them to the relay). */
  kick(effectId: string, entries: OutboxEntry[]): Promise<void>;
  /** The zone is closed: forget cached gates (here and on the other instances), zero its count, wake the reaper. */
  zoneClosed(zoneId: string): Promise<void>;
}

/**
 * The zone events this service acts on. Only these need a valid signature: the others are acknowledged
 * unread, whoever signed them (on a shared Redis, other deployments' events are no concern of ours).
 */
export function isRevocationCause(f: Record<string, string>): boolean {
  if (f.action !== "deleted") return false;
  return f.entity_type === "grant" || f.entity_type === "zone" || (f.entity_type === "application" && f.reason === "dcr_shutdown");
}

export class Revocations {
  constructor(
    private readonly host: RevocationHost,
    private readonly agents: AgentIngest,
  ) {}

  async handle(entries: StreamEntry[]): Promise<(Outcome | undefined)[]> {
    const out: (Outcome | undefined)[] = [];
    // In order: a zone's events follow each other (a grant deleted, then the zone archived).
    for (const e of entries) out.push(await this.one(e));
    return out;
  }

  private async one(e: StreamEntry): Promise<Outcome | undefined> {
    const f = e.fields;
    if (!isRevocationCause(f)) return "ack";
    const zoneId = f.zone_id;
    if (!zoneId || !PATH_ID_PATTERN.test(zoneId)) return { dlq: "malformed:zone_id" };
    // The producer's outbox id names the cause (the same event published twice is one cause).
    const cause = `zone-event:${f.outbox_id ?? e.id}`;
    const requestId = f.request_id ?? null;
    if (f.entity_type === "zone") return this.closeZone(zoneId);
    if (f.entity_type === "grant") {
      if (!f.subject_id) return { dlq: "malformed:subject_id" };
      const grantId = f.grant_id ?? f.entity_id ?? null;
      await this.grantRevoked(cause, zoneId, f.subject_id, grantId, requestId);
      return "ack";
    }
    if (!f.entity_id || !PATH_ID_PATTERN.test(f.entity_id)) return { dlq: "malformed:entity_id" };
    await this.dcrShutdown(cause, zoneId, f.entity_id, requestId);
    return "ack";
  }

  /** Every active session of the grant's subject in the zone: revoked, reason grant_revoked, one entry each. */
  private async grantRevoked(cause: string, zoneId: string, subjectId: string, grantId: string | null, requestId: string | null): Promise<void> {
    const S = this.host.models.Session;
    await this.run(
      cause,
      zoneId,
      async () => {
        const active = await S.find({ zone_id: zoneId, subject_id: subjectId, status: "active" }, { _id: 1, parent_id: 1 }).lean();
        return active.map((s): EffectItem => ({ kind: "session", id: s._id, parent_id: s.parent_id, to: "revoked", reason: "grant_revoked" }));
      },
      (item) => [outboxEntry(REVOKE_STREAM, { zone_id: zoneId, session_id: item.id, reason: "grant_revoked", grant_id: grantId }, requestId)],
    );
  }

  /**
   * An application archived by a DCR shutdown (revoke_live): its application sessions and their descendants
   * revoked; its agent sessions and their descendants terminated (reference-core §8.3, entries of §12.1).
   */
  private async dcrShutdown(cause: string, zoneId: string, appId: string, requestId: string | null): Promise<void> {
    const S = this.host.models.Session;
    const A = this.host.models.AgentSession;
    const reason = "dcr_shutdown";
    await this.run(
      cause,
      zoneId,
      async () => {
        const items: EffectItem[] = [];
        const roots = await S.find({ zone_id: zoneId, subject_id: appId, session_type: "application" }, { status: 1, parent_id: 1 }).lean<SessionDoc[]>();
        const tree = [...roots, ...(await descendants<SessionDoc>(S, zoneId, roots.map((r) => r._id)))];
        for (const s of tree) if (s.status === "active") items.push({ kind: "session", id: s._id, parent_id: s.parent_id, to: "revoked", reason });
        const agents = await A.find({ zone_id: zoneId, application_id: appId }, { status: 1, parent_id: 1, subject_session_id: 1 }).lean<AgentSessionDoc[]>();
        const agentTree = [...agents, ...(await descendants<AgentSessionDoc>(A, zoneId, agents.map((a) => a._id), { subject_session_id: 1 }))];
        for (const a of agentTree) {
          if (a.status === "active" || a.status === "suspended") items.push({ kind: "agent", id: a._id, parent_id: a.parent_id, subject_session_id: a.subject_session_id, to: "terminated", reason });
        }
        return items;
      },
      (item) =>
        item.kind === "session"
          ? [outboxEntry(REVOKE_STREAM, { zone_id: zoneId, session_id: item.id, reason }, requestId)]
          : [
              outboxEntry(AGENTS_STREAM, { event: "terminate", zone_id: zoneId, agent_session_id: item.id, parent_id: item.parent_id, reason }, requestId),
              outboxEntry(REVOKE_STREAM, { zone_id: zoneId, session_id: item.subject_session_id ?? null, agent_session_id: item.id, reason }, requestId),
            ],
    );
  }

  /** Decides and applies the chunks of one cause (see the header). */
  private async run(cause: string, zoneId: string, compute: () => Promise<EffectItem[]>, entriesOf: (item: EffectItem) => OutboxEntry[]): Promise<void> {
    const E = this.host.effects;
    for (let chunk = 0; chunk < MAX_CHUNKS; chunk++) {
      const id = `${cause}#${chunk}`;
      let doc: Pick<EffectDoc, "items"> | null = await E.findById(id, { items: 1 }).lean<EffectDoc>();
      if (!doc) {
        const items = (await compute()).slice(0, CHUNK);
        if (!items.length) return;
        const entries = items.flatMap(entriesOf);
        try {
          await E.create({ _id: id, zone_id: zoneId, cause, items, created_at: new Date(), ...withNewEvents(entries) });
          // Applied before the entries go out, so a reader of them (this service too) finds the final state.
          // A crash in between loses nothing: the entries are in the chunk, which the relay's sweep publishes.
          await this.apply(zoneId, items);
          await this.host.kick(id, entries);
          continue;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          // Another instance decided this chunk first: apply its decision.
          doc = await E.findById(id, { items: 1 }).lean<EffectDoc>();
        }
      }
      await this.apply(zoneId, doc!.items);
    }
  }

  private async apply(zoneId: string, items: EffectItem[]): Promise<void> {
    const at = new Date();
    const parents = new Set<string>();
    await eachLimited(items, 8, async (item) => {
      if (item.kind === "session") {
        await moveSession(this.host, item.id, zoneId, "revoked", item.reason, at);
        return;
      }
      const res = await this.agents.endOne(item.id, zoneId, item.reason, at);
      if (res.parentId) parents.add(res.parentId);
    });
    // Parents outside the terminated set keep a right child_count; those inside end at 0 anyway.
    const ended = new Set(items.filter((i) => i.kind === "agent").map((i) => i.id));
    await eachLimited([...parents].filter((p) => !ended.has(p)), 8, (p) => this.agents.recount(zoneId, p));
  }

  /** Nothing new is accepted for the zone from now on; the reaper expires its active sessions. */
  private async closeZone(zoneId: string): Promise<Outcome> {
    const Z = this.host.closedZones;
    try {
      await Z.create({ _id: zoneId, closed_at: new Date(), sweep_pending: true, swept_at: null });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    await this.host.zoneClosed(zoneId);
    return "ack";
  }
}

/** Waits after a zone closes before its last sweep: every instance's zone cache has expired by then. */
export const CLOSED_ZONE_SETTLE_MS = 40_000;

/**
 * The reaper (reference-ops §9, orphan sessions): the active sessions of closed zones become expired, with no
 * revoked_at, reason or event, one bucket at a time (each an update selected by equalities). A zone stays
 * pending until a sweep ran after CLOSED_ZONE_SETTLE_MS, so a session accepted by an instance that had not
 * heard of the closure yet is expired too.
 */
export async function reapClosedZones(host: RevocationHost & { listBuckets(model: string, scope: string): Promise<string[]>; listUpdated(model: string): Promise<void> }): Promise<{ zones: number; expired: number }> {
  const pending = await host.closedZones.find({ sweep_pending: true }).lean();
  let expired = 0;
  for (const z of pending) {
    const startedAt = Date.now();
    for (const bucket of await host.listBuckets("Session", z._id)) {
      const res = await host.models.Session.updateMany({ _bucket: bucket, status: "active" }, { $set: { status: "expired", updated_at: new Date() } });
      expired += res.modifiedCount ?? 0;
    }
    // Cached list pages of the zone's closed buckets are stale now (the update did not go through locked()).
    await host.listUpdated("Session");
    const keys = activeKeys(host, z._id);
    await host.redis.del(keys.active);
    await host.redis.set(keys.complete, "1");
    if (startedAt - new Date(z.closed_at).getTime() > CLOSED_ZONE_SETTLE_MS) {
      await host.locked(host.closedZones, z._id, () => host.closedZones.updateOne({ _id: z._id }, { $set: { sweep_pending: false, swept_at: new Date() } }));
    }
  }
  return { zones: pending.length, expired };
}
