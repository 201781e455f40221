// What the ingest code needs from the sessions service, and the helpers every entry kind shares.
import type { Model } from "mongoose";
import type Redis from "ioredis";
import type { ListedFields } from "../../../shared/list/buckets";
import type { Outcome, StreamEntry } from "../../../shared/streams/consumer";
import { isDuplicateKey } from "../../../shared/meta";
import { Malformed } from "../entries";
import type { SessionDoc } from "../models/session.model";
import type { AgentSessionDoc } from "../models/agent-session.model";
import type { ChallengeDoc } from "../models/challenge.model";
import type { HeldDoc } from "../models/support.model";

export type ZoneGate = null | "zone_not_found" | "zone_archived";

export interface IngestLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface IngestHost {
  models: {
    Session: Model<SessionDoc>;
    AgentSession: Model<AgentSessionDoc>;
    Challenge: Model<ChallengeDoc>;
    Held: Model<HeldDoc>;
  };
  redis: Redis;
  /** Redis key prefix of this service's store (database name), so test databases stay apart. */
  keyPrefix: string;
  logger: IngestLogger;
  listFields(model: string, scope: string, timestamps: Date[]): Promise<ListedFields[]>;
  locked<T>(model: Model<any>, id: string, write: () => Promise<T>): Promise<T>;
  /** Whether new rows are accepted for a zone: null, or the DLQ reason. */
  zoneGate(zoneId: string): Promise<ZoneGate>;
  /** Applies entries held for these targets, if any (see held.ts). */
  releaseHeld(targets: string[]): Promise<void>;
  /** Stores an entry whose target does not exist yet; it is applied once the target comes. */
  hold(target: string, stream: string, entry: StreamEntry): Promise<void>;
}

/** Runs `parse` on every entry: parsed values, or a DLQ outcome for the malformed ones. */
export function parseAll<T>(entries: StreamEntry[], parse: (id: string, fields: Record<string, string>) => T, outcomes: (Outcome | undefined)[]): (T | null)[] {
  return entries.map((e, i) => {
    try {
      return parse(e.id, e.fields);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      outcomes[i] = { dlq: err.reason };
      return null;
    }
  });
}

/**
 * Inserts new documents, unordered; an `_id` that already exists (a redelivered entry, or the same object
 * created twice) is not an error. Returns the indexes actually inserted.
 */
export async function insertNew(model: Model<any>, docs: Record<string, unknown>[]): Promise<Set<number>> {
  const inserted = new Set(docs.map((_, i) => i));
  if (!docs.length) return inserted;
  try {
    await model.collection.insertMany(docs as any[], { ordered: false });
  } catch (err) {
    const writeErrors = (err as { writeErrors?: { index: number; code: number }[] | { index: number; code: number } }).writeErrors;
    const list = Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : null;
    if (!list) {
      if (isDuplicateKey(err) && docs.length === 1) return new Set();
      throw err;
    }
    for (const w of list) {
      if (w.code !== 11000) throw err;
      inserted.delete(w.index);
    }
  }
  return inserted;
}

/** The zone gates of the zones named by these creations, each asked once. */
export async function gates(host: IngestHost, zoneIds: string[]): Promise<Map<string, ZoneGate>> {
  const unique = [...new Set(zoneIds)];
  const results = await Promise.all(unique.map((z) => host.zoneGate(z)));
  return new Map(unique.map((z, i) => [z, results[i]!]));
}

/**
 * How long an entry whose target is missing waits before it is held: with several instances (or overlapping
 * batches) the target is often in a batch being stored right now, and holding costs several writes.
 */
export const MISSING_GRACE_MS = 150;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `work` over items with at most `n` at a time. */
export async function eachLimited<T>(items: T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  };
  await Promise.all(Array.from({ length: Math.min(n, queue.length) }, worker));
}

/** Groups items by key, keeping the order within each group. */
export function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/** Redis keys of the active-session index of a zone (members: session ids, scores: expires_at ms). */
export const activeKeys = (host: Pick<IngestHost, "keyPrefix">, zoneId: string) => ({
  active: `${host.keyPrefix}:active:{${zoneId}}`,
  /** Set when the index holds every active session of the zone (first session, or a rebuild). */
  complete: `${host.keyPrefix}:active:{${zoneId}}:complete`,
});

/**
 * A batch in two phases: every creation first (one bulk insert), then the transitions, in parallel across
 * targets and in stream order for each target. Stream order between a creation and a transition of the
 * same target is kept by this (creation first; one that came after its transition is what `hold` handles
 * anyway); cascades compare entry ids, so a transition reaches only descendants created before it.
 */
export async function creationsFirst<T>(parsed: (T | null)[], isCreation: (p: T) => boolean, creations: (idx: number[]) => Promise<void>, targetOf: (p: T) => string, transition: (i: number) => Promise<void>): Promise<void> {
  const make: number[] = [];
  const rest: number[] = [];
  parsed.forEach((p, i) => {
    if (p === null || p === undefined) return;
    (isCreation(p) ? make : rest).push(i);
  });
  if (make.length) await creations(make);
  const byTarget = groupBy(rest, (i) => targetOf(parsed[i]!));
  await eachLimited([...byTarget.values()], 16, async (list) => {
    for (const i of list) await transition(i);
  });
}
