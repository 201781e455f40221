// Well-formed runtime entries, field by field as docs/runtime-streams.md describes them.
import type { FlatFields } from "../../shared/signing";
import { newId } from "../../shared/ids";

export const iso = (d: Date = new Date()) => d.toISOString();

export function sessionCreated(o: { zone: string; id?: string; type?: string; subject?: string | null; parent?: string | null; ttlSec?: number; at?: Date; claims?: Record<string, unknown> }): FlatFields {
  const at = o.at ?? new Date();
  return {
    event: "created",
    zone_id: o.zone,
    session_id: o.id ?? newId(),
    session_type: o.type ?? "user",
    subject_id: o.subject ?? null,
    parent_id: o.parent ?? null,
    created_at: iso(at),
    authenticated_at: iso(at),
    expires_at: iso(new Date(at.getTime() + (o.ttlSec ?? 3600) * 1000)),
    claims_json: o.claims ? JSON.stringify(o.claims) : null,
  };
}

export const sessionEnded = (o: { zone: string; id: string; event: "revoked" | "expired"; reason?: string | null; at?: Date }): FlatFields => ({
  event: o.event,
  zone_id: o.zone,
  session_id: o.id,
  reason: o.event === "revoked" ? (o.reason ?? null) : null,
  occurred_at: iso(o.at),
});

export function agentSpawn(o: { zone: string; id?: string; application: string; parent?: string | null; subjectSession?: string | null; lifecycle?: string; labels?: string[]; ttlSec?: number; maxChildren?: number; at?: Date }): FlatFields {
  return {
    event: "spawn",
    zone_id: o.zone,
    agent_session_id: o.id ?? newId(),
    application_id: o.application,
    parent_id: o.parent ?? null,
    subject_session_id: o.subjectSession ?? null,
    lifecycle: o.lifecycle ?? "task",
    labels: JSON.stringify(o.labels ?? []),
    ttl_seconds: o.ttlSec ?? 3600,
    max_children: o.maxChildren ?? null,
    spawned_at: iso(o.at),
  };
}

export const agentTransition = (o: { zone: string; id: string; event: "suspend" | "resume" | "terminate"; parent?: string | null; reason?: string | null; at?: Date }): FlatFields => ({
  event: o.event,
  zone_id: o.zone,
  agent_session_id: o.id,
  parent_id: o.parent ?? null,
  reason: o.reason ?? null,
  occurred_at: iso(o.at),
});

export function challengeCreated(o: { zone: string; id?: string; session?: string; type?: string; expiresInSec?: number; at?: Date; metadata?: Record<string, unknown> }): FlatFields {
  const at = o.at ?? new Date();
  const type = o.type ?? "human_approval";
  return {
    event: "created",
    zone_id: o.zone,
    challenge_id: o.id ?? newId(),
    session_id: o.session ?? "",
    challenge_type: type,
    metadata_json: JSON.stringify(o.metadata ?? (type === "human_approval" ? { requested_scopes: ["read"], resources: ["resource://demo"] } : {})),
    created_at: iso(at),
    expires_at: o.expiresInSec !== undefined ? iso(new Date(at.getTime() + o.expiresInSec * 1000)) : null,
  };
}

export const challengeLater = (o: { zone: string; id: string; event: "consumed" | "satisfied"; approver?: string; at?: Date }): FlatFields => ({
  event: o.event,
  zone_id: o.zone,
  challenge_id: o.id,
  approver_subject_id: o.event === "satisfied" ? (o.approver ?? "runtime:approver") : null,
  occurred_at: iso(o.at),
});
