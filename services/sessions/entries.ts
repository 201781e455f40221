// The runtime's stream entries the sessions service ingests: names, field rules, parsing (docs/runtime-streams.md).
import { PATH_ID_PATTERN } from "../../shared/ids";

export const SESSIONS_STREAM = "caracal.sessions.lifecycle";
export const AGENTS_STREAM = "caracal.agents.lifecycle";
export const CHALLENGES_STREAM = "caracal.stepup.challenges";
/** Where satisfy and the revocation flows publish (through the outbox). */
export const REVOKE_STREAM = "caracal.sessions.revoke";

export const SESSION_TYPES = ["user", "application"] as const;
export const SESSION_STATUSES = ["active", "revoked", "expired"] as const;
export const AGENT_STATUSES = ["active", "suspended", "terminated", "expired"] as const;
export const LIFECYCLES = ["task", "service"] as const;
export const CHALLENGE_TYPES = ["human_approval", "mfa", "software_attestation"] as const;

export const MAX_LABELS = 32;
export const LABEL_PATTERN = /^[^\s,]{1,64}$/;
const DEFAULT_TTL_SECONDS = 3600;
const DEFAULT_MAX_CHILDREN = 10;
/** Challenge lifetimes when the entry gives no expires_at (reference-ops §5). */
export const CHALLENGE_TTL_MS = { human_approval: 30 * 60_000, mfa: 5 * 60_000, software_attestation: 5 * 60_000 } as const;

export type SessionEntry =
  | { event: "created"; zone_id: string; session_id: string; session_type: (typeof SESSION_TYPES)[number]; subject_id: string | null; parent_id: string | null; expires_at: Date; authenticated_at: Date; created_at: Date; claims_json: string | null }
  | { event: "revoked"; zone_id: string; session_id: string; reason: string; at: Date }
  | { event: "expired"; zone_id: string; session_id: string; at: Date };

export type AgentEntry =
  | {
      event: "spawn";
      zone_id: string;
      agent_session_id: string;
      application_id: string;
      parent_id: string | null;
      subject_session_id: string | null;
      lifecycle: (typeof LIFECYCLES)[number];
      labels: string[];
      ttl_seconds: number;
      max_children: number;
      spawned_at: Date;
      metadata_json: string | null;
    }
  | { event: "suspend" | "resume" | "terminate"; zone_id: string; agent_session_id: string; parent_id: string | null; reason: string | null; at: Date };

export type ChallengeEntry =
  | {
      event: "created";
      zone_id: string;
      challenge_id: string;
      session_id: string;
      challenge_type: (typeof CHALLENGE_TYPES)[number];
      metadata_json: Record<string, unknown>;
      created_at: Date;
      expires_at: Date;
      principal_id: string | null;
      resource_set_hash: string | null;
      challenge_secret_hash: string | null;
    }
  | { event: "consumed"; zone_id: string; challenge_id: string; at: Date }
  | { event: "satisfied"; zone_id: string; challenge_id: string; approver_subject_id: string; at: Date };

/** A parse failure: the DLQ reason (`malformed:<field>` or `unknown_event:<value>`). */
export class Malformed extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** The time a stream entry id carries (`<unix ms>-<seq>`): the default for an entry's own time. */
export function entryTime(entryId: string): Date {
  return new Date(Number(entryId.split("-")[0]));
}

/** Orders stream entry ids (`ms-seq`): negative when a is older. */
export function compareEntryIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am - bm || (as ?? 0) - (bs ?? 0);
}

class Reader {
  constructor(private readonly f: Record<string, string>) {}

  id(name: string): string {
    const v = this.f[name];
    if (v === undefined || !PATH_ID_PATTERN.test(v)) throw new Malformed(`malformed:${name}`);
    return v;
  }

  /** Absent, empty or the string "null" (the Coordinator's encoding of null) → null. */
  optionalId(name: string): string | null {
    const v = this.f[name];
    if (v === undefined || v === "" || v === "null") return null;
    if (!PATH_ID_PATTERN.test(v)) throw new Malformed(`malformed:${name}`);
    return v;
  }

  optionalText(name: string, max = 256): string | null {
    const v = this.f[name];
    if (v === undefined || v === "" || v === "null") return null;
    if (v.length > max) throw new Malformed(`malformed:${name}`);
    return v;
  }

  time(name: string, fallback?: Date): Date {
    const v = this.f[name];
    if (v === undefined || v === "") {
      if (fallback) return fallback;
      throw new Malformed(`malformed:${name}`);
    }
    const d = new Date(v);
    if (!ISO.test(v) || Number.isNaN(d.getTime())) throw new Malformed(`malformed:${name}`);
    return d;
  }

  oneOf<T extends string>(name: string, values: readonly T[], fallback?: T): T {
    const v = this.f[name];
    if ((v === undefined || v === "") && fallback !== undefined) return fallback;
    if (!values.includes(v as T)) throw new Malformed(`malformed:${name}`);
    return v as T;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.f[name];
    if (v === undefined || v === "") return fallback;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Malformed(`malformed:${name}`);
    return Number(v);
  }

  jsonObject(name: string): Record<string, unknown> | null {
    const v = this.f[name];
    if (v === undefined || v === "" || v === "null") return null;
    try {
      const parsed = JSON.parse(v);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    } catch {
      // falls through
    }
    throw new Malformed(`malformed:${name}`);
  }

  labels(name: string): string[] {
    const v = this.f[name];
    if (v === undefined || v === "" || v === "null") return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      throw new Malformed(`malformed:${name}`);
    }
    if (!Array.isArray(parsed) || parsed.length > MAX_LABELS || !parsed.every((l) => typeof l === "string" && LABEL_PATTERN.test(l))) throw new Malformed(`malformed:${name}`);
    return [...new Set(parsed as string[])];
  }

  event<T extends string>(values: readonly T[]): T {
    const v = this.f.event;
    if (v === undefined || v === "") throw new Malformed("malformed:event");
    if (!values.includes(v as T)) throw new Malformed(`unknown_event:${v.slice(0, 64)}`);
    return v as T;
  }
}

export function parseSessionEntry(entryId: string, fields: Record<string, string>): SessionEntry {
  const r = new Reader(fields);
  const event = r.event(["created", "revoked", "expired"] as const);
  const zone_id = r.id("zone_id");
  const session_id = r.id("session_id");
  const at = r.time("occurred_at", entryTime(entryId));
  if (event === "revoked") return { event, zone_id, session_id, reason: r.optionalText("reason") ?? "session_revoked", at };
  if (event === "expired") return { event, zone_id, session_id, at };
  const created_at = r.time("created_at", at);
  const claims = r.jsonObject("claims_json");
  return {
    event,
    zone_id,
    session_id,
    session_type: r.oneOf("session_type", SESSION_TYPES),
    subject_id: r.optionalText("subject_id"),
    parent_id: r.optionalId("parent_id"),
    expires_at: r.time("expires_at"),
    authenticated_at: r.time("authenticated_at", created_at),
    created_at,
    claims_json: claims ? JSON.stringify(claims) : null,
  };
}

export function parseAgentEntry(entryId: string, fields: Record<string, string>): AgentEntry {
  const r = new Reader(fields);
  const event = r.event(["spawn", "suspend", "resume", "terminate"] as const);
  const zone_id = r.id("zone_id");
  const agent_session_id = r.id("agent_session_id");
  const parent_id = r.optionalId("parent_id");
  const at = r.time("occurred_at", entryTime(entryId));
  if (event !== "spawn") return { event, zone_id, agent_session_id, parent_id, reason: r.optionalText("reason"), at };
  const metadata = r.jsonObject("metadata_json");
  return {
    event,
    zone_id,
    agent_session_id,
    application_id: r.id("application_id"),
    parent_id,
    subject_session_id: r.optionalId("subject_session_id"),
    lifecycle: r.oneOf("lifecycle", LIFECYCLES, "task"),
    labels: r.labels("labels"),
    ttl_seconds: r.int("ttl_seconds", DEFAULT_TTL_SECONDS, 1, 10 * 365 * 86400),
    max_children: r.int("max_children", DEFAULT_MAX_CHILDREN, 0, 100_000),
    spawned_at: r.time("spawned_at", at),
    metadata_json: metadata ? JSON.stringify(metadata) : null,
  };
}

export function parseChallengeEntry(entryId: string, fields: Record<string, string>): ChallengeEntry {
  const r = new Reader(fields);
  const event = r.event(["created", "consumed", "satisfied"] as const);
  const zone_id = r.id("zone_id");
  const challenge_id = r.id("challenge_id");
  const at = r.time("occurred_at", entryTime(entryId));
  if (event === "consumed") return { event, zone_id, challenge_id, at: r.time("consumed_at", at) };
  if (event === "satisfied") {
    const approver = r.optionalText("approver_subject_id");
    if (!approver) throw new Malformed("malformed:approver_subject_id");
    return { event, zone_id, challenge_id, approver_subject_id: approver, at: r.time("satisfied_at", at) };
  }
  const challenge_type = r.oneOf("challenge_type", CHALLENGE_TYPES);
  const created_at = r.time("created_at", at);
  // The exchange had no session: stored as the empty string, as the reference does (never satisfiable).
  const session_id = fields.session_id === undefined || fields.session_id === "" ? "" : r.id("session_id");
  return {
    event,
    zone_id,
    challenge_id,
    session_id,
    challenge_type,
    metadata_json: r.jsonObject("metadata_json") ?? {},
    created_at,
    expires_at: r.time("expires_at", new Date(created_at.getTime() + CHALLENGE_TTL_MS[challenge_type])),
    principal_id: r.optionalText("principal_id"),
    resource_set_hash: r.optionalText("resource_set_hash", 128),
    challenge_secret_hash: r.optionalText("challenge_secret_hash", 128),
  };
}
