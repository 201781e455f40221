// Entries that arrive before what they act on (a terminate before its spawn): stored, then applied in order.
//
// The held document is the durable copy (the stream entry is acknowledged once it is stored); a Redis set
// of targets with held entries is only a hint, so that every creation asks "anything waiting for me?" in one
// round trip. A sweep (at start and every few seconds) rebuilds the hint from the documents and applies
// whatever waits for a target that exists by now: the hint can miss (a release on another instance removes
// it while a new hold adds it), the documents cannot.
import type { Model } from "mongoose";
import type { Outcome, StreamEntry } from "../../../shared/streams/consumer";
import { dlqFields } from "../../../shared/streams/consumer";
import { toStreamArgs } from "../../../shared/signing";
import { compareEntryIds } from "../entries";
import type { HeldDoc } from "../models/support.model";
import type { IngestHost } from "./host";

export type Dispatch = (stream: string, entries: StreamEntry[]) => Promise<(Outcome | undefined)[]>;

export class HeldEntries {
  /** Entries held again while being applied (their target is still missing): their document stays. */
  private readonly reheld = new Set<string>();
  /** Targets whose entries are being applied here now (a hold for one of them is a re-hold). */
  private readonly releasing = new Set<string>();
  /** Targets that got a new held entry while being released: their release reads again before it ends. */
  private readonly rerun = new Set<string>();

  constructor(
    private readonly host: Omit<IngestHost, "hold" | "releaseHeld">,
    private readonly dispatch: Dispatch,
    private readonly group: string,
    private readonly targetModel: (kind: string) => Model<any> | undefined,
  ) {}

  private get hintKey(): string {
    return `${this.host.keyPrefix}:held_targets`;
  }

  async hold(target: string, stream: string, entry: StreamEntry): Promise<void> {
    const id = `${stream}|${entry.id}`;
    try {
      await this.host.models.Held.collection.insertOne({ _id: id, target, stream, entry_id: entry.id, fields: entry.fields, held_at: new Date() } as any);
    } catch (err) {
      if ((err as { code?: number }).code !== 11000) throw err;
    }
    await this.host.redis.sadd(this.hintKey, target);
    // Checked after the insert: a release of this target still running reads again before it ends.
    if (this.releasing.has(target)) {
      this.reheld.add(id);
      this.rerun.add(target);
    }
    this.host.logger.info({ target, stream, entry_id: entry.id }, "entry held until its target exists");
    // The target may have been created between our look and the hold (on another instance, whose look at the
    // hint may have come before our SADD, or after a release there removed it): released here, not via the hint.
    if (!this.releasing.has(target) && (await this.exists(target))) await this.releaseOne(target);
  }

  async release(targets: string[]): Promise<void> {
    if (!targets.length) return;
    const hits = (await this.host.redis.smismember(this.hintKey, ...targets)) as number[];
    const hit = targets.filter((_, i) => hits[i] === 1);
    // One being released here already reads again before it ends.
    for (const t of hit) if (this.releasing.has(t)) this.rerun.add(t);
    const waiting = hit.filter((t) => !this.releasing.has(t));
    for (const target of waiting) await this.releaseOne(target);
  }

  private async releaseOne(target: string): Promise<void> {
    const Held = this.host.models.Held;
    this.releasing.add(target);
    try {
      for (let round = 0; round < 100; round++) {
        const held = (await Held.find({ target }).lean()).sort((a, b) => compareEntryIds(a.entry_id, b.entry_id));
        for (const h of held) await this.applyOne(target, h);
        // Nothing was held for it meanwhile (checked with no await before `releasing` is cleared).
        if (!this.rerun.delete(target)) break;
      }
    } finally {
      this.releasing.delete(target);
    }
    if (!(await Held.findOne({ target }, { _id: 1 }).lean())) await this.host.redis.srem(this.hintKey, target);
  }

  private async applyOne(target: string, h: HeldDoc): Promise<void> {
    const entry: StreamEntry = { id: h.entry_id, fields: h.fields, deliveries: 1 };
    this.reheld.delete(h._id);
    let outcome: Outcome | undefined;
    try {
      [outcome] = await this.dispatch(h.stream, [entry]);
    } catch (err) {
      this.host.logger.warn({ err: (err as Error).message, target, entry_id: h.entry_id }, "applying a held entry failed; the sweep retries it");
      return;
    }
    if (outcome === "retry") return;
    if (outcome && outcome !== "ack") {
      const fields = dlqFields(h.stream, this.group, entry, outcome.dlq);
      await this.host.redis.xadd(`${h.stream}.dlq`, "MAXLEN", "~", 100_000, "*", ...toStreamArgs(fields));
    }
    // Held again while it was applied (its target is still missing): the new hold is this same document.
    if (!this.reheld.delete(h._id)) await this.host.models.Held.deleteOne({ _id: h._id });
  }

  private async exists(target: string): Promise<boolean> {
    const [kind, ...rest] = target.split(":");
    const model = this.targetModel(kind!);
    if (!model) return false;
    return (await model.findById(rest.join(":"), { _id: 1 }).lean()) !== null;
  }

  /** Rebuilds the hint from the held documents and applies those whose target exists now. */
  async sweep(): Promise<{ held: number; released: number }> {
    const all = await this.host.models.Held.find({}, { target: 1 }).lean();
    const targets = [...new Set(all.map((h) => h.target))];
    if (targets.length) await this.host.redis.sadd(this.hintKey, ...targets);
    let released = 0;
    for (const t of targets) {
      if (!this.releasing.has(t) && (await this.exists(t))) {
        await this.releaseOne(t);
        released++;
      }
    }
    return { held: all.length, released };
  }
}
