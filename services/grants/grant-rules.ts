// Grant rules of reference-policy §3.5–3.6: scope syntax and caps, list filters, the callback query.
import { badRequest, invalid, type Issue } from "../../shared/errors";
import { LIMITS } from "../../shared/validation";

/** Lower-case scope syntax; 1..200 characters (reference-policy §3.5). */
export const SCOPE_PATTERN = /^[a-z0-9:_./-]+$/;
export const MAX_SCOPE_LENGTH = 200;
export const MAX_SCOPES = 64;
/** Ids of stored objects (applications, resources, providers) have the path-id length. */
export const MAX_ID_LENGTH = LIMITS.id;
/** A subject (`user_id`) comes from elsewhere and may be any non-empty string; capped so a row stays small. */
export const MAX_SUBJECT_LENGTH = 256;
/** Upstream tokens may be long JWTs. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** ISO-8601 in UTC with `Z`: offsets are refused. */
export const UTC_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** `expires_at` passed the pattern; it must also be a real instant. */
export function checkExpiresAt(value: string | undefined, code: string): Date | null {
  if (value === undefined) return null;
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw invalid(code, [{ path: ["expires_at"], message: "must be a valid date-time" }]);
  return at;
}

/** Requested scopes not among the resource's. */
export const scopesOutside = (requested: string[], allowed: string[]): string[] => requested.filter((s) => !allowed.includes(s));

export interface GrantFilters {
  application_id?: string;
  user_id?: string;
  resource_id?: string;
  provider_id?: string;
  status?: string;
  /** The grant must hold all of them. */
  scopes?: string[];
}

/** List filters; a bad one is 400 `invalid_query` with every bad field listed. `user_id` wins over its alias `subject_id`. */
export function parseGrantFilters(query: Record<string, unknown> | undefined): GrantFilters {
  const q = query ?? {};
  const issues: Issue[] = [];
  const text = (name: string, max: number = MAX_ID_LENGTH): string | undefined => {
    const v = q[name];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v.length === 0 || v.length > max) {
      issues.push({ path: [name], message: `must be one string of 1..${max} characters` });
      return undefined;
    }
    return v;
  };
  const filters: GrantFilters = {};
  const userId = text("user_id", MAX_SUBJECT_LENGTH);
  const subjectId = text("subject_id", MAX_SUBJECT_LENGTH);
  for (const [key, value] of [
    ["application_id", text("application_id")],
    ["user_id", userId ?? subjectId],
    ["resource_id", text("resource_id")],
    ["provider_id", text("provider_id")],
    ["status", text("status", LIMITS.name)],
  ] as const) {
    if (value !== undefined) filters[key] = value;
  }
  const rawScopes = text("scopes", MAX_SCOPES * (MAX_SCOPE_LENGTH + 1));
  if (rawScopes !== undefined) {
    const list = rawScopes.split(",").map((s) => s.trim());
    const bad = list.filter((s) => !s || s.length > MAX_SCOPE_LENGTH || !SCOPE_PATTERN.test(s));
    if (bad.length || list.length > MAX_SCOPES) issues.push({ path: ["scopes"], message: `a comma list of 1..${MAX_SCOPES} lower-case scopes` });
    else filters.scopes = [...new Set(list)].sort();
  }
  if (issues.length) throw badRequest("invalid_query", "The query string is invalid", { issues });
  return filters;
}

export interface CallbackQuery {
  state: string;
  code?: string;
  error?: string;
  error_description?: string;
}

/** The IdP's redirect: `state` 32..256 characters, the rest optional strings; other parameters are ignored. */
export function parseCallbackQuery(query: Record<string, unknown> | undefined): CallbackQuery {
  const q = query ?? {};
  const issues: Issue[] = [];
  if (typeof q.state !== "string" || q.state.length < 32 || q.state.length > 256) issues.push({ path: ["state"], message: "must be a string of 32..256 characters" });
  for (const key of ["code", "error", "error_description"]) if (q[key] !== undefined && typeof q[key] !== "string") issues.push({ path: [key], message: "must be one string" });
  if (issues.length) throw badRequest("invalid_oauth_callback", "The callback query is invalid", { issues });
  const out: CallbackQuery = { state: q.state as string };
  for (const key of ["code", "error", "error_description"] as const) if (typeof q[key] === "string") out[key] = q[key] as string;
  return out;
}
