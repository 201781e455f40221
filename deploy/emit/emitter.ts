// Signs and publishes runtime entries (reference-ops §7.4 `_sig`, with `kid`), or spoils them on purpose.
import type Redis from "ioredis";
import { sign, toStreamArgs, type FlatFields, type SigningKey } from "../../shared/signing";

export interface Spoil {
  /** No `kid`/`_sig` at all. */
  unsigned?: boolean;
  /** A `_sig` that verifies under no key. */
  badSignature?: boolean;
  /** Fields set (or replaced) after the entry is built, before signing: a malformed entry, well signed. */
  set?: Record<string, string>;
  unset?: string[];
}

export class Emitter {
  published = 0;
  /** Runs before the first entry goes out (the command checks its options there). */
  beforeFirst: (() => void) | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly key: SigningKey | null,
    private readonly prefix: string,
    private readonly spoil: Spoil = {},
    /** Approximate cap of each stream (MAXLEN ~). */
    private readonly maxLen = 1_000_000,
  ) {}

  stream(base: string): string {
    return this.prefix + base;
  }

  /**
   * The fields as they will travel: spoils applied, then signed over the prefixed stream name (§7.4 `_sig`),
   * unless `sign` is false (a kind whose stream has its own scheme, such as the audit entries' `sig`, signs
   * its fields itself).
   */
  entry(base: string, fields: FlatFields, sign_ = true): Record<string, string> {
    const out: FlatFields = { ...fields, ...(this.spoil.set ?? {}) };
    for (const name of this.spoil.unset ?? []) delete out[name];
    const stream = this.stream(base);
    if (sign_ && !this.spoil.unsigned && this.key) {
      out.kid = this.key.kid;
      out._sig = this.spoil.badSignature ? sign(Buffer.alloc(32, 0xee), stream, out) : sign(this.key.key, stream, out);
    }
    const flat: Record<string, string> = {};
    const args = toStreamArgs(out);
    for (let i = 0; i < args.length; i += 2) flat[args[i]!] = args[i + 1]!;
    return flat;
  }

  /** Publishes entries in order, in one pipeline; returns their stream ids. */
  async publish(base: string, list: FlatFields[], opts: { sign?: boolean } = {}): Promise<string[]> {
    if (!list.length) return [];
    if (this.beforeFirst) {
      const check = this.beforeFirst;
      this.beforeFirst = null;
      check();
    }
    const stream = this.stream(base);
    const pipe = this.redis.pipeline();
    for (const fields of list) pipe.xadd(stream, "MAXLEN", "~", this.maxLen, "*", ...toStreamArgs(this.entry(base, fields, opts.sign ?? true)));
    const res = (await pipe.exec()) ?? [];
    const ids: string[] = [];
    for (const [err, id] of res) {
      if (err) throw err;
      ids.push(String(id));
    }
    this.published += ids.length;
    return ids;
  }
}
