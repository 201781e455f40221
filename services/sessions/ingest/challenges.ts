// Ingest of caracal.stepup.challenges: challenges created (in bulk), consumed, satisfied by the runtime.
import type { Outcome, StreamEntry } from "../../../shared/streams/consumer";
import { parseChallengeEntry, type ChallengeEntry } from "../entries";
import type { ChallengeDoc } from "../models/challenge.model";
import { MISSING_GRACE_MS, creationsFirst, gates, groupBy, insertNew, parseAll, sleep, type IngestHost } from "./host";

type Created = Extract<ChallengeEntry, { event: "created" }>;
type Later = Exclude<ChallengeEntry, Created>;

export async function ingestChallenges(host: IngestHost, stream: string, entries: StreamEntry[]): Promise<(Outcome | undefined)[]> {
  const outcomes: (Outcome | undefined)[] = new Array(entries.length).fill(undefined);
  const parsed = parseAll(entries, parseChallengeEntry, outcomes);
  await creationsFirst(
    parsed,
    (p) => p.event === "created",
    (idx) => createChallenges(host, idx, entries, parsed as ChallengeEntry[], outcomes),
    (p) => p.challenge_id,
    async (i) => {
      outcomes[i] = await challengeUpdate(host, stream, entries[i]!, parsed[i] as Later);
    },
  );
  return outcomes;
}

async function createChallenges(host: IngestHost, idx: number[], entries: StreamEntry[], parsed: ChallengeEntry[], outcomes: (Outcome | undefined)[]): Promise<void> {
  const list = idx.map((i) => ({ c: parsed[i] as Created, i }));
  const zoneGates = await gates(host, list.map((x) => x.c.zone_id));
  const accepted = list.filter(({ c, i }) => {
    const gate = zoneGates.get(c.zone_id);
    if (gate) outcomes[i] = { dlq: gate };
    return !gate;
  });
  const docs: Record<string, unknown>[] = [];
  for (const [zoneId, group] of groupBy(accepted, (a) => a.c.zone_id)) {
    const listed = await host.listFields("Challenge", zoneId, group.map((a) => a.c.created_at));
    group.forEach(({ c, i }, k) => {
      const doc: ChallengeDoc & Record<string, unknown> = {
        _id: c.challenge_id,
        zone_id: c.zone_id,
        session_id: c.session_id,
        challenge_type: c.challenge_type,
        metadata_json: c.metadata_json,
        created_at: c.created_at,
        expires_at: c.expires_at,
        satisfied_at: null,
        approver_subject_id: null,
        consumed_at: null,
        principal_id: c.principal_id,
        resource_set_hash: c.resource_set_hash,
        challenge_secret_hash: c.challenge_secret_hash,
        entry_id: entries[i]!.id,
        ...listed[k]!,
      };
      docs.push(doc);
    });
  }
  await insertNew(host.models.Challenge, docs);
  await host.releaseHeld(docs.map((d) => `challenge:${d._id}`));
}

/** Consumed or satisfied (by the runtime): set once, under the document's lock; later deliveries change nothing. */
async function challengeUpdate(host: IngestHost, stream: string, entry: StreamEntry, p: Later): Promise<Outcome | undefined> {
  const C = host.models.Challenge;
  const go = () => host.locked(C, p.challenge_id, async () => {
    const doc = await C.findById(p.challenge_id, { zone_id: 1, consumed_at: 1, satisfied_at: 1 }).lean();
    if (!doc) return "missing";
    if (doc.zone_id !== p.zone_id) return "other_zone";
    if (p.event === "consumed" && !doc.consumed_at) await C.updateOne({ _id: p.challenge_id }, { $set: { consumed_at: p.at } });
    if (p.event === "satisfied" && !doc.satisfied_at) await C.updateOne({ _id: p.challenge_id }, { $set: { satisfied_at: p.at, approver_subject_id: p.approver_subject_id } });
    return "ok";
  });
  let res = await go();
  if (res === "missing") res = await sleep(MISSING_GRACE_MS).then(go);
  if (res === "missing") await host.hold(`challenge:${p.challenge_id}`, stream, entry);
  return res === "other_zone" ? { dlq: "challenge_in_other_zone" } : "ack";
}
