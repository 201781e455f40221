// Query strings of the audit routes (reference-ops §0, §1.3, §2.3): checked in the reference's order —
// the query schema (`invalid_query`), then `fields` (`invalid_fields`), then the cursor (`invalid_cursor`).
import { badRequest, invalid, type Issue } from "../../shared/errors";
import { EVENT_LIMITS, parseListQuery, type ListQuery } from "../../shared/pagination";

export type Rule =
  | { kind: "datetime" }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "string"; min?: number; max?: number };

/** ISO-8601 with seconds and a `Z`; any number of fractional digits. */
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export const COMMON_RULES: Record<string, Rule> = {
  since: { kind: "datetime" },
  until: { kind: "datetime" },
  format: { kind: "enum", values: ["json", "csv"] },
  fields: { kind: "string", max: 1000 },
};

export interface CheckedQuery {
  values: Record<string, string | undefined>;
  since?: Date;
  until?: Date;
  format: "json" | "csv";
  fields: string[] | null;
  list: ListQuery;
}

/**
 * Validates a route's query: every rule'd key given at most once and well formed, `limit` within the event
 * limits, then `fields` against the allow-list, then the cursor (bound to `filterKeys`' values).
 */
export function checkQuery(query: Record<string, unknown> | undefined, rules: Record<string, Rule>, allowedFields: readonly string[], filterKeys: string[]): CheckedQuery {
  const q = query ?? {};
  const issues: Issue[] = [];
  const values: Record<string, string | undefined> = {};
  for (const [name, rule] of Object.entries(rules)) {
    const raw = q[name];
    if (raw === undefined) continue;
    if (typeof raw !== "string") {
      issues.push({ path: [name], message: "must be given once" });
      continue;
    }
    if (rule.kind === "datetime" && (!DATETIME.test(raw) || Number.isNaN(Date.parse(raw)))) issues.push({ path: [name], message: "must be an ISO-8601 date-time with seconds and a Z suffix" });
    else if (rule.kind === "enum" && !rule.values.includes(raw)) issues.push({ path: [name], message: `must be one of ${rule.values.join(", ")}` });
    else if (rule.kind === "string" && (raw.length < (rule.min ?? 0) || raw.length > (rule.max ?? Infinity))) issues.push({ path: [name], message: `must be ${rule.min ?? 0}..${rule.max} characters` });
    values[name] = raw;
  }
  try {
    parseListQuery({ limit: q.limit }, EVENT_LIMITS);
  } catch (err) {
    issues.push({ path: ["limit"], message: `must be an integer from 1 to ${EVENT_LIMITS.maxLimit}` });
  }
  if (q.cursor !== undefined && (typeof q.cursor !== "string" || q.cursor.length === 0 || q.cursor.length > 512)) issues.push({ path: ["cursor"], message: "must be 1..512 characters" });
  if (issues.length) throw invalid("invalid_query", issues, "The query string is invalid");

  const fields = values.fields === undefined ? null : parseFields(values.fields, allowedFields);
  const filters = Object.fromEntries(filterKeys.map((k) => [k, values[k]]));
  const list = parseListQuery(q, EVENT_LIMITS, filters);
  return {
    values,
    since: values.since ? new Date(values.since) : undefined,
    until: values.until ? new Date(values.until) : undefined,
    format: (values.format as "json" | "csv" | undefined) ?? "json",
    fields,
    list,
  };
}

/** Comma list, names trimmed, empties dropped; nothing left or a name off the list → 400 invalid_fields. */
export function parseFields(raw: string, allowed: readonly string[]): string[] {
  const names = raw.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !allowed.includes(n));
  if (!names.length || unknown.length) {
    throw badRequest("invalid_fields", names.length ? `unknown field(s): ${unknown.join(", ")}` : "fields names no field", { allowed: [...allowed] });
  }
  return names;
}
