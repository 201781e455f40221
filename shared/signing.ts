// Stream origin signatures (reference-ops §7.4): HMAC-SHA256 over the stream name and sorted key=value lines.
import { createHmac, timingSafeEqual } from "node:crypto";

export type FlatValue = string | number | boolean | null | undefined;
export type FlatFields = Record<string, FlatValue>;

export interface SigningKey {
  kid: string;
  key: Buffer;
}

/** The exact bytes that are signed: `<stream>\n` then `name=value\n` per non-null field, sorted, `_sig` excluded. */
export function canonicalBytes(stream: string, fields: FlatFields): string {
  let out = `${stream}\n`;
  for (const name of Object.keys(fields).sort()) {
    if (name === "_sig") continue;
    const value = fields[name];
    if (value === null || value === undefined) continue;
    out += `${name}=${String(value)}\n`;
  }
  return out;
}

export function sign(key: Buffer, stream: string, fields: FlatFields): string {
  return createHmac("sha256", key).update(canonicalBytes(stream, fields), "utf8").digest("hex");
}

/**
 * Verifies `_sig` of an entry as read from Redis (all strings). The `kid` field picks the key when it
 * names one we hold; otherwise every key is tried, so entries from producers without `kid` still verify.
 */
export function verify(keys: SigningKey[], stream: string, fields: Record<string, string>): boolean {
  const given = fields._sig;
  if (!given || !/^[0-9a-f]{64}$/.test(given)) return false;
  const givenBytes = Buffer.from(given, "hex");
  const named = keys.filter((k) => k.kid === fields.kid);
  for (const { key } of named.length ? named : keys) {
    const expected = Buffer.from(sign(key, stream, fields), "hex");
    if (expected.length === givenBytes.length && timingSafeEqual(expected, givenBytes)) return true;
  }
  return false;
}

/** Flattens fields into XADD arguments: nulls omitted, everything else stringified. */
export function toStreamArgs(fields: FlatFields): string[] {
  const args: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === null || value === undefined) continue;
    args.push(name, String(value));
  }
  return args;
}

/** Reads an XRANGE/XREADGROUP field list back into an object. */
export function fieldsOf(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}
