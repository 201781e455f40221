// Ingest of caracal.agents.lifecycle: spawns (in bulk, depth from the parent), suspend, resume, terminate.
import type { Outcome, StreamEntry } from "../../../shared/streams/consumer";
import { compareEntryIds, parseAgentEntry, type AgentEntry } from "../entries";
import type { AgentSessionDoc } from "../models/agent-session.model";
import { eachLimited, gates, groupBy, insertNew, parseAll, type IngestHost } from "./host";
import { descendants, inSegments } from "./sessions";

type Spawn = Extract<AgentEntry, { event: "spawn" }>;
type Transition = Exclude<AgentEntry, Spawn>;

/** Depths of agents seen lately: a child's spawn needs its parent's depth, which never changes. */
const DEPTH_CACHE_MAX = 200_000;

export class AgentIngest {
  private readonly depths = new Map<string, number>();

  constructor(private readonly host: IngestHost) {}

  async ingest(stream: string, entries: StreamEntry[]): Promise<(Outcome | undefined)[]> {
    const outcomes: (Outcome | undefined)[] = new Array(entries.length).fill(undefined);
    const parsed = parseAll(entries, parseAgentEntry, outcomes);
    await inSegments(parsed, (p) => p.event === "spawn", (idx) => this.spawn(stream, idx, entries, parsed as AgentEntry[], outcomes), async (idx) => {
      const byAgent = groupBy(idx, (i) => (parsed[i] as AgentEntry).agent_session_id);
      await eachLimited([...byAgent.values()], 16, async (list) => {
        for (const i of list) outcomes[i] = await this.transition(stream, entries[i]!, parsed[i] as Transition);
      });
    });
    return outcomes;
  }

  private async spawn(stream: string, idx: number[], entries: StreamEntry[], parsed: AgentEntry[], outcomes: (Outcome | undefined)[]): Promise<void> {
    const A = this.host.models.AgentSession;
    const list = idx.map((i) => ({ s: parsed[i] as Spawn, i }));
    const zoneGates = await gates(this.host, list.map((x) => x.s.zone_id));
    // Parents spawned earlier in this run are known; the others are looked up (cache, then store).
    const inRun = new Map<string, number>();
    const lookups = [...new Set(list.map((x) => x.s.parent_id).filter((p): p is string => !!p && !this.depths.has(p)))];
    const found = new Map<string, { depth: number; zone_id: string } | null>();
    await eachLimited(lookups, 16, async (id) => {
      const parent = await A.findById(id, { depth: 1, zone_id: 1 }).lean();
      found.set(id, parent ? { depth: parent.depth, zone_id: parent.zone_id } : null);
    });
    const accepted: { s: Spawn; i: number; depth: number }[] = [];
    for (const { s, i } of list) {
      const gate = zoneGates.get(s.zone_id);
      if (gate) {
        outcomes[i] = { dlq: gate };
        continue;
      }
      let depth = 0;
      if (s.parent_id) {
        const parentDepth = inRun.get(s.parent_id) ?? this.depths.get(s.parent_id) ?? found.get(s.parent_id)?.depth;
        if (parentDepth === undefined) {
          // Its parent has not been spawned (yet): the spawn waits for it.
          await this.host.hold(`agent:${s.parent_id}`, stream, entries[i]!);
          continue;
        }
        depth = parentDepth + 1;
      }
      inRun.set(s.agent_session_id, depth);
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
          updated_at: now,
          ...listed[k]!,
        };
        docs.push(doc);
      });
    }
    await insertNew(A, docs);
    if (this.depths.size > DEPTH_CACHE_MAX) this.depths.clear();
    for (const { s, depth } of accepted) this.depths.set(s.agent_session_id, depth);
    // Every parent is recounted, also for spawns stored before (a redelivery after a crash before the count).
    const parents = [...new Set(accepted.map((a) => a.s.parent_id).filter((p): p is string => !!p))];
    await eachLimited(parents, 8, (p) => this.recount(accepted.find((a) => a.s.parent_id === p)!.s.zone_id, p));
    await this.host.releaseHeld(accepted.map((a) => `agent:${a.s.agent_session_id}`));
  }

  /** child_count = children not terminated, counted under the parent's lock (idempotent, unlike an increment). */
  async recount(zoneId: string, parentId: string): Promise<void> {
    const A = this.host.models.AgentSession;
    await this.host.locked(A, parentId, async () => {
      const children = await A.find({ zone_id: zoneId, parent_id: parentId }, { status: 1 }).lean();
      const live = children.filter((c) => c.status !== "terminated").length;
      const parent = await A.findById(parentId, { child_count: 1 }).lean();
      if (parent && parent.child_count !== live) await A.updateOne({ _id: parentId }, { $set: { child_count: live, updated_at: new Date() } });
    });
  }

  private async transition(stream: string, entry: StreamEntry, p: Transition): Promise<Outcome | undefined> {
    if (p.event === "terminate") {
      const res = await this.terminate(p.zone_id, p.agent_session_id, p.reason ?? "requested", p.at);
      if (res === "missing") await this.host.hold(`agent:${p.agent_session_id}`, stream, entry);
      return res === "other_zone" ? { dlq: "agent_session_in_other_zone" } : "ack";
    }
    const A = this.host.models.AgentSession;
    const from = p.event === "suspend" ? "active" : "suspended";
    const to = p.event === "suspend" ? "suspended" : "active";
    const res = await this.move(p.agent_session_id, p.zone_id, entry.id, from, to, p.at);
    if (res === "missing") {
      await this.host.hold(`agent:${p.agent_session_id}`, stream, entry);
      return "ack";
    }
    if (res === "other_zone") return { dlq: "agent_session_in_other_zone" };
    // A suspension reaches the active descendants (again after a redelivery: the walk may have been cut short).
    if (p.event === "suspend" && res !== "stale") {
      for (const d of await descendants<AgentSessionDoc>(A, p.zone_id, [p.agent_session_id])) {
        if (d.status === "active") await this.move(d._id, p.zone_id, entry.id, "active", "suspended", p.at);
      }
    }
    return "ack";
  }

  /**
   * Suspend or resume under the document's lock, in stream order: an entry older than the last one applied
   * (a redelivery, or two instances finishing out of order) changes nothing.
   */
  private async move(id: string, zoneId: string, entryId: string, from: string, to: string, at: Date): Promise<"missing" | "other_zone" | "stale" | "noop" | "done"> {
    const A = this.host.models.AgentSession;
    return this.host.locked(A, id, async () => {
      const doc = await A.findById(id, { status: 1, zone_id: 1, transition_id: 1 }).lean();
      if (!doc) return "missing" as const;
      if (doc.zone_id !== zoneId) return "other_zone" as const;
      if (compareEntryIds(entryId, doc.transition_id) <= 0) return "stale" as const;
      if (doc.status !== from) {
        await A.updateOne({ _id: id }, { $set: { transition_id: entryId } });
        return "noop" as const;
      }
      await A.updateOne({ _id: id }, { $set: { status: to, transition_id: entryId, last_active_at: at, updated_at: new Date() } });
      return "done" as const;
    });
  }

  /**
   * Terminates an agent session and its live descendants (`parent_terminated`), then recounts its parent.
   * Final: a terminate applies whatever came before it, and any number of times.
   */
  async terminate(zoneId: string, id: string, reason: string, at: Date): Promise<"missing" | "other_zone" | "noop" | "done"> {
    const A = this.host.models.AgentSession;
    const res = await this.endOne(id, zoneId, reason, at);
    if (res.result === "missing" || res.result === "other_zone") return res.result;
    for (const d of await descendants<AgentSessionDoc>(A, zoneId, [id])) {
      if (d.status === "active" || d.status === "suspended") await this.endOne(d._id, zoneId, "parent_terminated", at);
    }
    if (res.parentId) await this.recount(zoneId, res.parentId);
    return res.result;
  }

  /** One agent session to terminated (no children left alive: its descendants follow). */
  async endOne(id: string, zoneId: string, reason: string, at: Date): Promise<{ result: "missing" | "other_zone" | "noop" | "done"; parentId: string | null }> {
    const A = this.host.models.AgentSession;
    return this.host.locked(A, id, async () => {
      const doc = await A.findById(id, { status: 1, zone_id: 1, parent_id: 1 }).lean();
      if (!doc) return { result: "missing" as const, parentId: null };
      if (doc.zone_id !== zoneId) return { result: "other_zone" as const, parentId: null };
      if (doc.status !== "active" && doc.status !== "suspended") return { result: "noop" as const, parentId: doc.parent_id };
      await A.updateOne({ _id: id }, { $set: { status: "terminated", terminated_at: at, termination_reason: reason, child_count: 0, updated_at: new Date() } });
      return { result: "done" as const, parentId: doc.parent_id };
    });
  }
}
