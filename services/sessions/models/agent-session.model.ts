// Agent sessions (reference-ops §4): the runtime's spawn trees, kept from caracal.agents.lifecycle.
import { Schema } from "mongoose";
import { addListIndexes, listedFields } from "../../../shared/list/buckets";

export interface AgentSessionDoc {
  _id: string;
  zone_id: string;
  application_id: string;
  parent_id: string | null;
  /** 0 for a root; the parent's depth + 1. */
  depth: number;
  /** Children not terminated (recounted under this document's lock whenever a child comes or goes). */
  child_count: number;
  max_children: number;
  subject_session_id: string | null;
  status: "active" | "suspended" | "terminated" | "expired";
  lifecycle: "task" | "service";
  labels: string[];
  spawned_at: Date;
  last_active_at: Date;
  terminated_at: Date | null;
  termination_reason: string | null;
  ttl_seconds: number;
  metadata_json: string | null;
  /** The newest suspend/resume entry applied: older ones (redelivered or reordered) are skipped. */
  transition_id: string;
  entry_id: string;
  /** The stream entry that terminated it (null: the control plane did); the earlier one in the stream wins. */
  ended_entry: string | null;
  updated_at: Date;
}

export const agentSessionSchema = new Schema(
  {
    _id: { type: String, required: true },
    zone_id: { type: String, required: true },
    application_id: { type: String, required: true },
    parent_id: { type: String, default: null },
    depth: { type: Number, required: true },
    child_count: { type: Number, required: true },
    max_children: { type: Number, required: true },
    subject_session_id: { type: String, default: null },
    status: { type: String, required: true },
    lifecycle: { type: String, required: true },
    labels: { type: [String], default: [] },
    spawned_at: { type: Date, required: true },
    last_active_at: { type: Date, required: true },
    terminated_at: { type: Date, default: null },
    termination_reason: { type: String, default: null },
    ttl_seconds: { type: Number, required: true },
    metadata_json: { type: String, default: null },
    transition_id: { type: String, required: true },
    entry_id: { type: String, required: true },
    ended_entry: { type: String, default: null },
    updated_at: { type: Date, required: true },
    ...listedFields,
  },
  { versionKey: false, _id: false },
);

// As for sessions (see session.model.ts): the bucket index serves the lists, whose filters (`labels` too:
// FerretDB pushes `{labels: "x"}` down as jsonb containment of an element) are checked on the bucket's rows;
// children (tree walks, recounts) and an application's agents (DCR shutdown) have their own index.
addListIndexes(agentSessionSchema);
agentSessionSchema.index({ parent_id: 1 });
agentSessionSchema.index({ application_id: 1 });

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

/** The 13 listed fields in the reference's order (JSON and CSV alike; no zone_id). */
export const AGENT_CSV_COLUMNS = ["id", "application_id", "parent_id", "status", "lifecycle", "labels", "depth", "child_count", "spawned_at", "last_active_at", "terminated_at", "termination_reason", "ttl_seconds"] as const;

export const toPublicAgentSession = (a: AgentSessionDoc) => ({
  id: a._id,
  application_id: a.application_id,
  parent_id: a.parent_id,
  status: a.status,
  lifecycle: a.lifecycle,
  labels: a.labels ?? [],
  depth: a.depth,
  child_count: a.child_count,
  spawned_at: iso(a.spawned_at),
  last_active_at: iso(a.last_active_at),
  terminated_at: iso(a.terminated_at),
  termination_reason: a.termination_reason,
  ttl_seconds: a.ttl_seconds,
});

export const AGENT_LIST_PROJECTION = { metadata_json: 0, entry_id: 0, transition_id: 0, ended_entry: 0 } as const;
