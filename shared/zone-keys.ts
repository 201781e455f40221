// Per-zone data keys: 32 random bytes per zone, kept wrapped under ZONE_KEK in the owning service's collection.
//
// Each service that seals secrets keeps its own wrapped keys (providers: `zone_keys`, grants:
// `grant_zone_keys`): no service reads another's collection, and no key or secret crosses NATS to be
// sealed. Both are wrapped by the one ZONE_KEK, so rotating it re-wraps each service's keys in place.
import { randomBytes } from "node:crypto";
import { Schema, type Model } from "mongoose";
import { open, seal } from "./sealing";
import { isDuplicateKey } from "./meta";

export interface ZoneKeyDoc {
  _id: string;
  nonce: string;
  ciphertext: string;
  created_at?: Date;
}

/** One wrapped data key per zone (`_id` = zone id). */
export const zoneKeySchema = new Schema({ _id: String, nonce: String, ciphertext: String, created_at: Date }, { versionKey: false, _id: false });

/** The zone's data key, created on first use; concurrent first uses converge on one (unique `_id`). */
export async function loadZoneDataKey(keys: Model<ZoneKeyDoc>, kek: Buffer, zoneId: string): Promise<Buffer> {
  let row = await keys.findById(zoneId).lean<ZoneKeyDoc>();
  if (!row) {
    try {
      await keys.create({ _id: zoneId, ...seal(kek, randomBytes(32), `zone-key:${zoneId}`), created_at: new Date() });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    row = await keys.findById(zoneId).lean<ZoneKeyDoc>();
  }
  return open(kek, row!, `zone-key:${zoneId}`);
}
