// Step-up challenges (reference-ops §5): created and consumed by the runtime, satisfied through the API.
import { Schema } from "mongoose";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";
import { addOutboxIndexes, outboxFields } from "../../../shared/outbox/entry";

export interface ChallengeDoc {
  _id: string;
  zone_id: string;
  /** The exchange's session; "" when it had none (then never satisfiable). */
  session_id: string;
  challenge_type: "human_approval" | "mfa" | "software_attestation";
  metadata_json: Record<string, unknown>;
  created_at: Date;
  expires_at: Date;
  satisfied_at: Date | null;
  approver_subject_id: string | null;
  consumed_at: Date | null;
  principal_id: string | null;
  resource_set_hash: string | null;
  challenge_secret_hash: string | null;
  entry_id: string;
}

export const challengeSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    session_id: { type: String, default: "" },
    challenge_type: { type: String, required: true },
    metadata_json: { type: Schema.Types.Mixed, default: {} },
    created_at: { type: Date, required: true },
    expires_at: { type: Date, required: true },
    satisfied_at: { type: Date, default: null },
    approver_subject_id: { type: String, default: null },
    consumed_at: { type: Date, default: null },
    principal_id: { type: String, default: null },
    resource_set_hash: { type: String, default: null },
    challenge_secret_hash: { type: String, default: null },
    entry_id: { type: String, required: true },
    ...listedFields,
    // Satisfy writes the approval and the entry the runtime waits for in one document write.
    ...outboxFields,
  },
  { versionKey: false, _id: false, minimize: false },
);

addListIndexes(challengeSchema);
addOutboxIndexes(challengeSchema);

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

export const toPublicChallenge = (c: ChallengeDoc) => ({
  id: c._id,
  zone_id: c.zone_id,
  session_id: c.session_id,
  challenge_type: c.challenge_type,
  metadata_json: c.metadata_json ?? {},
  created_at: iso(c.created_at),
  expires_at: iso(c.expires_at),
  satisfied_at: iso(c.satisfied_at),
  approver_subject_id: c.approver_subject_id,
});

/** Never leaves the service: the secret hash, principal and bindings the runtime checks on consumption. */
export const CHALLENGE_PROJECTION = { _outbox: 0, challenge_secret_hash: 0 } as const;
