// Request and response schemas of the sessions routes, for /docs (the actions check their queries in queries.ts).
import { J, type QueryParamDoc, type ServiceApi } from "../../shared/api-doc";
import { EVENT_LIMITS } from "../../shared/pagination";
import { AGENT_STATUSES, CHALLENGE_TYPES, LIFECYCLES, SESSION_STATUSES, SESSION_TYPES } from "./entries";
import { AGENT_CSV_COLUMNS } from "./models/agent-session.model";
import { SESSION_CSV_COLUMNS } from "./models/session.model";

const str = (description: string, extra: Record<string, unknown> = {}): QueryParamDoc => ({ description, schema: { type: "string", ...extra } });
const id = (description: string): QueryParamDoc => str(description, { pattern: "^[A-Za-z0-9_.\\-:]{1,128}$" });
const csv = (columns: readonly string[], file: string): QueryParamDoc =>
  str(`\`csv\` answers text/csv (attachment \`${file}\`): the columns ${columns.join(", ")}; CRLF line ends, nulls empty, labels space-joined; every matching row from \`cursor\` on, or at most \`limit\` when given. Default \`json\`.`, { enum: ["json", "csv"] });

const nullableString = J.nullable(J.string());
const nullableTime = J.nullable(J.timestamp);

const session = J.obj({
  id: J.string(),
  zone_id: J.string(),
  session_type: J.enum(SESSION_TYPES),
  subject_id: nullableString,
  parent_id: nullableString,
  status: J.enum(SESSION_STATUSES),
  expires_at: J.timestamp,
  authenticated_at: J.timestamp,
  created_at: J.timestamp,
  revoked_at: nullableTime,
  revoked_reason: nullableString,
});

const agentSession = J.obj({
  id: J.string(),
  application_id: J.string(),
  parent_id: nullableString,
  status: J.enum(AGENT_STATUSES),
  lifecycle: J.enum(LIFECYCLES),
  labels: J.array(J.string()),
  depth: J.integer({ minimum: 0 }),
  child_count: J.integer({ minimum: 0, description: "Children not terminated" }),
  spawned_at: J.timestamp,
  last_active_at: J.timestamp,
  terminated_at: nullableTime,
  termination_reason: nullableString,
  ttl_seconds: J.integer({ minimum: 1 }),
});

const challenge = J.obj({
  id: J.string(),
  zone_id: J.string(),
  session_id: J.string({ description: "Empty when the exchange had no session (then it can never be satisfied here)" }),
  challenge_type: J.enum(CHALLENGE_TYPES),
  metadata_json: J.object,
  created_at: J.timestamp,
  expires_at: J.timestamp,
  satisfied_at: nullableTime,
  approver_subject_id: nullableString,
});

const zone = "0197c3a2-6f1e-7a3c-9b2d-4e5f60718293";
const exampleSession = {
  id: "0197c3c0-1111-7000-8000-000000000001", zone_id: zone, session_type: "user", subject_id: "user-42", parent_id: null, status: "active",
  expires_at: "2026-07-02T11:00:00.000Z", authenticated_at: "2026-07-02T10:00:00.000Z", created_at: "2026-07-02T10:00:00.000Z", revoked_at: null, revoked_reason: null,
};
const exampleAgent = {
  id: "0197c3c1-2222-7000-8000-000000000002", application_id: "0197c3a5-0000-7000-8000-0000000000a1", parent_id: null, status: "active", lifecycle: "task",
  labels: ["refund-worker"], depth: 0, child_count: 2, spawned_at: "2026-07-02T10:00:05.000Z", last_active_at: "2026-07-02T10:00:05.000Z",
  terminated_at: null, termination_reason: null, ttl_seconds: 3600,
};
const exampleChallenge = {
  id: "0197c3c2-3333-7000-8000-000000000003", zone_id: zone, session_id: exampleSession.id, challenge_type: "human_approval",
  metadata_json: { requested_scopes: ["payments:write"], resources: ["resource://payments"] }, created_at: "2026-07-02T10:01:00.000Z",
  expires_at: "2026-07-02T10:31:00.000Z", satisfied_at: null, approver_subject_id: null,
};

export const SESSIONS_API: ServiceApi = {
  listSessions: {
    status: 200,
    list: true,
    listLimits: EVENT_LIMITS,
    response: session,
    query: {
      status: str("exact status", { enum: [...SESSION_STATUSES] }),
      subject_id: str("exact subject (user sub or application id)", { minLength: 1, maxLength: 256 }),
      session_type: str("exact type", { enum: [...SESSION_TYPES] }),
      parent_id: id("sessions created under this one"),
      format: csv(SESSION_CSV_COLUMNS, "sessions-<zoneId>.csv"),
    },
    description:
      "Subject sessions the runtime created in the zone, newest first (created_at). `status=active` includes sessions past their expires_at: only revocation, the runtime's expiry entry or the zone's archival end them.",
    example: { response: { items: [exampleSession], next_cursor: null } },
  },
  listAgentSessions: {
    status: 200,
    list: true,
    listLimits: EVENT_LIMITS,
    response: agentSession,
    query: {
      status: str("exact status", { enum: [...AGENT_STATUSES] }),
      lifecycle: str("exact lifecycle", { enum: [...LIFECYCLES] }),
      application_id: id("agent sessions of this application"),
      parent_id: id("children of this agent session"),
      label: str("labels the agent session carries; `a,b` asks for both", { minLength: 1, maxLength: 64 }),
      format: csv(AGENT_CSV_COLUMNS, "agent-sessions-<zoneId>.csv"),
    },
    description: "Agent sessions of the zone's spawn trees, newest first (spawned_at).",
    example: { response: { items: [exampleAgent], next_cursor: null } },
  },
  listChallenges: {
    status: 200,
    list: true,
    response: challenge,
    description: "Step-up challenges of the zone, newest first.",
    example: { response: { items: [exampleChallenge], next_cursor: null } },
  },
  getChallenge: {
    status: 200,
    response: challenge,
    errors: { 404: ["challenge_not_found"] },
    example: { response: exampleChallenge },
  },
  satisfyChallenge: {
    status: 200,
    bodyOptional: true,
    response: J.obj({ id: J.string(), satisfied_at: J.timestamp, approver_subject_id: J.string({ description: "`admin:<token id>`" }) }),
    errors: { 409: ["challenge_not_satisfiable"] },
    description:
      "Approves a challenge that is in the zone, not yet satisfied, not expired, and has a session (in any status) whose subject is not the approver. Anything else, an unknown id included, is 409. Publishes the `satisfied` entry on caracal.stepup.challenges. Body ignored.",
    example: { response: { id: exampleChallenge.id, satisfied_at: "2026-07-02T10:05:00.000Z", approver_subject_id: "admin:0197c3a0-0000-7000-8000-0000000000aa" } },
  },
};
