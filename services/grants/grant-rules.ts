// Grant rules of reference-policy §3.5–3.6: scope syntax, request bodies, list filters, the callback query.
import { badRequest, invalid, type Issue } from "../../shared/errors";
import { strictBody } from "../../shared/validation";

/** Lower-case scope syntax; 1..200 characters. */
export const SCOPE_PATTERN = /^[a-z0-9:_./-]+$/;
export const MAX_SCOPE_LENGTH = 200;
export const MAX_SCOPES = 64;
/** Ids in bodies and filters may be any non-empty string (subjects come from elsewhere); capped so a row stays small. */
export const MAX_ID_LENGTH = 512;
/** ISO-8601 in UTC with `Z`: offsets are refused. */
const UTC_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

const id = { type: "string", min: 1, max: MAX_ID_LENGTH } as const;
const scope = { type: "string", min: 1, max: MAX_SCOPE_LENGTH, pattern: SCOPE_PATTERN, messages: { stringPattern: "a scope is lower-case letters, digits and : _ . / -" } } as const;
const scopes = { type: "array", min: 1, max: MAX_SCOPES, items: scope } as const;
const token = { type: "string", min: 1 } as const;

export const grantBody = strictBody({ application_id: id, user_id: id, resource_id: id, scopes });
export const providerGrantBody = strictBody({
  user_id: id,
  resource_id: id,
  provider_id: id,
  scopes,
  access_token: token,
  refresh_token: { ...token, optional: true },
  expires_at: { type: "string", pattern: UTC_DATETIME, optional: true, messages: { stringPattern: "must be an ISO-8601 date-time in UTC (Z)" } },
});
export const authorizeBody = strictBody({ user_id: id, resource_id: id, provider_id: id, scopes });
export const providerGrantRevokeBody = strictBody({ user_id: id, resource_id: id, provider_id: id });

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
  const text = (name: string): string | undefined => {
    const v = q[name];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v.length === 0 || v.length > MAX_ID_LENGTH) {
      issues.push({ path: [name], message: `must be one string of 1..${MAX_ID_LENGTH} characters` });
      return undefined;
    }
    return v;
  };
  const filters: GrantFilters = {};
  const userId = text("user_id");
  const subjectId = text("subject_id");
  for (const [key, value] of [
    ["application_id", text("application_id")],
    ["user_id", userId ?? subjectId],
    ["resource_id", text("resource_id")],
    ["provider_id", text("provider_id")],
    ["status", text("status")],
  ] as const) {
    if (value !== undefined) filters[key] = value;
  }
  const rawScopes = text("scopes");
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
