// Ingest of caracal.agents.lifecycle: spawns (in bulk, depth from the parent), suspend, resume, terminate.
//
// child_count is the number of an agent's children that are not terminated. It is recounted from the
// children themselves, under the parent's lock, after every batch that spawned or terminated one of its
// children: each change is followed by a count that sees it, so the last count is right whatever the order
// of batches, instances, redeliveries or crashes (increments were measured cheaper, but a count racing an
// increment left a parent one off now and then).
import type { Outcome, StreamEntry } from "../../../shared/streams/consumer";
import { compareEntryIds, parseAgentEntry, type AgentEntry } from "../entries";
import type { AgentSessionDoc } from "../models/agent-session.model";
import { MISSING_GRACE_MS, creationsFirst, eachLimited, gates, groupBy, insertNew, parseAll, sleep, type IngestHost } from "./host";
import { descendants } from "./sessions";

type Spawn = Extract<AgentEntry, { event: "spawn" }>;
type Transition = Exclude<AgentEntry, Spawn>;
type EndResult = { result: "missing" | "other_zone" | "noop" | "done"; parentId: string | null; childCount: number };

/** Parents whose children changed in this batch (zone by parent): recounted once each at its end. */
interface Counts {
  recounts: Map<string, string>;
}

/** Depths of agents seen lately: a child's spawn needs its parent's depth, which never changes. */
const DEPTH_CACHE_MAX = 200_000;

export class AgentIngest {
  private readonly depths = new Map<string, number>();

  constructor(private readonly host: IngestHost) {}

  async ingest(stream: string, entries: StreamEntry[]): Promise<(Outcome | undefined)[]> {
    const outcomes: (Outcome | undefined)[] = new Array(entries.length).fill(undefined);
    const parsed = parseAll(entries, parseAgentEntry, outcomes);
    const counts: Counts = { recounts: new Map() };
    await creationsFirst(
      parsed,
      (p) => p.event === "spawn",
      (idx) => this.spawn(stream, idx, entries, parsed as AgentEntry[], outcomes, counts),
      (p) => p.agent_session_id,
      async (i) => {
        outcomes[i] = await this.transition(stream, entries[i]!, parsed[i] as Transition, counts);
      },
    );
    // Before the batch is acknowledged: a crash before this point delivers its entries again, and then the
    // parents they name are counted.
    await eachLimited([...counts.recounts], 8, ([parent, zone]) => this.recount(zone, parent));
    return outcomes;
  }

  private async spawn(stream: string, idx: number[], entries: StreamEntry[], parsed: AgentEntry[], outcomes: (Outcome | undefined)[], counts: Counts): Promise<void> {
    const A = this.host.models.AgentSession;
    const list = idx.map((i) => ({ s: parsed[i] as Spawn, i }));
    const zoneGates = await gates(this.host, list.map((x) => x.s.zone_id));
    // Parents spawned earlier in this batch are known; the others are looked up (cache, then store).
    const inBatch = new Map<string, number>();
    const spawnedHere = new Set(list.map((x) => x.s.agent_session_id));
    const lookups = [...new Set(list.map((x) => x.s.parent_id).filter((p): p is string => !!p && !this.depths.has(p) && !spawnedHere.has(p)))];
    const found = new Map<string, number>();
    const look = (ids: string[]) =>
      eachLimited(ids, 16, async (id) => {
        const parent = await A.findById(id, { depth: 1 }).lean();
        if (parent) found.set(id, parent.depth);
      });
    await look(lookups);
    const missing = lookups.filter((id) => !found.has(id));
    if (missing.length) {
      await sleep(MISSING_GRACE_MS);
      await look(missing);
    }
    const accepted: { s: Spawn; i: number; depth: number }[] = [];
    for (const { s, i } of list) {
      const gate = zoneGates.get(s.zone_id);
      if (gate) {
        outcomes[i] = { dlq: gate };
        continue;
      }
      let depth = 0;
      if (s.parent_id) {
        const parentDepth = inBatch.get(s.parent_id) ?? this.depths.get(s.parent_id) ?? found.get(s.parent_id);
        if (parentDepth === undefined) {
          // Its parent has not been spawned (yet): the spawn waits for it.
          await this.host.hold(`agent:${s.parent_id}`, stream, entries[i]!);
          continue;
        }
        depth = parentDepth + 1;
      }
      inBatch.set(s.agent_session_id, depth);
      accepted.push({ s, i, depth });
    }
    if (!accepted.length) return;
    const now = new Date();
    const docs: Record<string, unknown>[] = [];
    for (const [zoneId, group] of groupBy(accepted, (a) => a.s.zone_id)) {
      const listed = await this.host.listFields("AgentSession", zoneId, group.map((a) => a.s.spawned_at));
      group.forEach(({ s, i, depth }, k) => {
        const doc: AgentSessionDoc & Record<string, unknown> = {
          _id: s.agent_session_id,
          zone_id: s.zone_id,
          application_id: s.application_id,
          parent_id: s.parent_id,
          depth,
          child_count: 0,
          max_children: s.max_children,
          subject_session_id: s.subject_session_id,
          status: "active",
          lifecycle: s.lifecycle,
          labels: s.labels,
          spawned_at: s.spawned_at,
          last_active_at: s.spawned_at,
          terminated_at: null,
          termination_reason: null,
          ttl_seconds: s.ttl_seconds,
          metadata_json: s.metadata_json,
          transition_id: "0-0",
          entry_id: entries[i]!.id,
          ended_entry: null,
          updated_at: now,
          ...listed[k]!,
        };
        docs.push(doc);
      });
    }
    await insertNew(A, docs);
    if (this.depths.size > DEPTH_CACHE_MAX) this.depths.clear();
    for (const { s, depth } of accepted) this.depths.set(s.agent_session_id, depth);
    // Their parents are counted at the end of the batch (also for a spawn stored before, by a delivery that
    // may have died before counting).
    for (const { s } of accepted) if (s.parent_id) counts.recounts.set(s.parent_id, s.zone_id);
    await this.host.releaseHeld(accepted.map((a) => `agent:${a.s.agent_session_id}`));
  }

  /** child_count from the children themselves, under the parent's lock (idempotent, unlike an increment). */
  async recount(zoneId: string, parentId: string): Promise<void> {
    const A = this.host.models.AgentSession;
    await this.host.locked(A, parentId, async () => {
      const children = await A.find({ zone_id: zoneId, parent_id: parentId }, { status: 1 }).lean();
      const live = children.filter((c) => c.status !== "terminated").length;
      await A.updateOne({ _id: parentId }, { $set: { child_count: live } });
    });
  }

  private async transition(stream: string, entry: StreamEntry, p: Transition, counts: Counts): Promise<Outcome | undefined> {
    if (p.event === "terminate") {
      const end = () => this.terminate(p.zone_id, p.agent_session_id, p.reason ?? "requested", p.at, entry, counts);
      let res = await end();
      if (res === "missing") res = await sleep(MISSING_GRACE_MS).then(end);
      if (res === "missing") await this.host.hold(`agent:${p.agent_session_id}`, stream, entry);
      return res === "other_zone" ? { dlq: "agent_session_in_other_zone" } : "ack";
    }
    const A = this.host.models.AgentSession;
    const from = p.event === "suspend" ? "active" : "suspended";
    const to = p.event === "suspend" ? "suspended" : "active";
    const go = () => this.move(p.agent_session_id, p.zone_id, entry.id, from, to, p.at);
    let res = await go();
    if (res.result === "missing") res = await sleep(MISSING_GRACE_MS).then(go);
    if (res.result === "missing") {
      await this.host.hold(`agent:${p.agent_session_id}`, stream, entry);
      return "ack";
    }
    if (res.result === "other_zone") return { dlq: "agent_session_in_other_zone" };
    // A suspension reaches the active descendants spawned before it (again after a redelivery: the walk may
    // have been cut short). An agent without live children has no live descendants.
    if (p.event === "suspend" && res.result !== "stale" && res.childCount > 0) {
      for (const d of await descendants<AgentSessionDoc>(A, p.zone_id, [p.agent_session_id], { entry_id: 1 })) {
        if (d.status === "active" && compareEntryIds(d.entry_id, entry.id) < 0) await this.move(d._id, p.zone_id, entry.id, "active", "suspended", p.at);
      }
    }
    return "ack";
  }

  /**
   * Suspend or resume under the document's lock, in stream order: an entry older than the last one applied
   * (a redelivery, or two instances finishing out of order) changes nothing.
   */
  private async move(id: string, zoneId: string, entryId: string, from: string, to: string, at: Date): Promise<{ result: "missing" | "other_zone" | "stale" | "noop" | "done"; childCount: number }> {
    const A = this.host.models.AgentSession;
    return this.host.locked(A, id, async () => {
      const doc = await A.findById(id, { status: 1, zone_id: 1, transition_id: 1, child_count: 1 }).lean();
      if (!doc) return { result: "missing" as const, childCount: 0 };
      if (doc.zone_id !== zoneId) return { result: "other_zone" as const, childCount: 0 };
      if (compareEntryIds(entryId, doc.transition_id) <= 0) return { result: "stale" as const, childCount: doc.child_count };
      const set: Record<string, unknown> = doc.status === from ? { status: to, transition_id: entryId, last_active_at: at, updated_at: new Date() } : { transition_id: entryId };
      await A.updateOne({ _id: id }, { $set: set });
      return { result: doc.status === from ? ("done" as const) : ("noop" as const), childCount: doc.child_count };
    });
  }

  /**
   * Terminates an agent session and its live descendants spawned before `entry` (`parent_terminated`); its
   * parent is counted at the end of the batch. Final: a terminate applies whatever came before it, and any
   * number of times.
   */
  async terminate(zoneId: string, id: string, reason: string, at: Date, entry: StreamEntry, counts: Counts): Promise<"missing" | "other_zone" | "noop" | "done"> {
    const A = this.host.models.AgentSession;
    const res = await this.endOne(id, zoneId, reason, at, entry.id);
    if (res.result === "missing" || res.result === "other_zone") return res.result;
    if (res.parentId && (res.result === "done" || entry.deliveries > 1)) counts.recounts.set(res.parentId, zoneId);
    // A redelivery walks again, whatever the count says: the first delivery may have died mid-walk.
    const again = res.result === "noop" && entry.deliveries > 1;
    if (res.childCount > 0 || again) {
      const all = await descendants<AgentSessionDoc>(A, zoneId, [id], { entry_id: 1 });
      const ended = new Set([id]);
      const spared = new Set<string>();
      await eachLimited(all, 8, async (d) => {
        if (d.status !== "active" && d.status !== "suspended") return;
        if (compareEntryIds(d.entry_id, entry.id) >= 0) {
          spared.add(d.parent_id!);
          return;
        }
        await this.endOne(d._id, zoneId, "parent_terminated", at, entry.id);
        ended.add(d._id);
      });
      // Children spawned after the terminate stay alive: their (terminated) parents count them.
      for (const p of spared) if (ended.has(p)) counts.recounts.set(p, zoneId);
    }
    return res.result;
  }

  /**
   * One agent session to terminated; its own count goes to 0 (its descendants follow it). Of two
   * terminations handled out of order, the earlier in the stream gives the reason and time (see moveSession).
   */
  async endOne(id: string, zoneId: string, reason: string, at: Date, entryId: string | null = null): Promise<EndResult> {
    const A = this.host.models.AgentSession;
    return this.host.locked(A, id, async (): Promise<EndResult> => {
      const set = { status: "terminated", terminated_at: at, termination_reason: reason, ended_entry: entryId, updated_at: new Date() };
      // Twice at most: an agent inserted between the conditional write and the read is live on the read.
      for (let attempt = 0; ; attempt++) {
        // FerretDB v1 takes no projection on findAndModify: the whole (small) document comes back.
        const before = await A.findOneAndUpdate({ _id: id, zone_id: zoneId, status: { $in: ["active", "suspended"] } }, { $set: { ...set, child_count: 0 } }).lean();
        if (before) return { result: "done", parentId: before.parent_id, childCount: before.child_count };
        const doc = await A.findById(id, { zone_id: 1, parent_id: 1, status: 1, ended_entry: 1 }).lean();
        if (!doc) return { result: "missing", parentId: null, childCount: 0 };
        if (doc.zone_id !== zoneId) return { result: "other_zone", parentId: null, childCount: 0 };
        if ((doc.status === "active" || doc.status === "suspended") && attempt === 0) continue;
        if (doc.status === "terminated" && entryId && doc.ended_entry && compareEntryIds(entryId, doc.ended_entry) < 0) await A.updateOne({ _id: id }, { $set: set });
        return { result: "noop", parentId: doc.parent_id, childCount: 0 };
      }
    });
  }
}
