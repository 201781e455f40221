// Query-string filters of the sessions lists: checked strictly (every bad one listed), unknown keys ignored.
import { badRequest, type Issue } from "../../shared/errors";
import { PATH_ID_PATTERN } from "../../shared/ids";
import { LABEL_PATTERN } from "./entries";

export type FilterRule =
  | { kind: "enum"; values: readonly string[] }
  | { kind: "id" }
  | { kind: "text"; max: number }
  /** Comma-separated labels; a row must carry every one (`a,b` = has a and b). */
  | { kind: "labels" };

export interface ParsedFilters {
  values: Record<string, string>;
  labels: string[];
  format: "json" | "csv";
}

/**
 * Reads the filters named by `rules` (plus `format`); `limit` and `cursor` are read by parseListQuery. A
 * repeated key arrives as an array and is refused, as are empty values and values out of their rule.
 */
export function parseFilters(query: Record<string, unknown> | undefined, rules: Record<string, FilterRule>): ParsedFilters {
  const q = query ?? {};
  const issues: Issue[] = [];
  const values: Record<string, string> = {};
  let labels: string[] = [];
  const all: Record<string, FilterRule> = { ...rules, format: { kind: "enum", values: ["json", "csv"] } };
  for (const [name, rule] of Object.entries(all)) {
    const raw = q[name];
    if (raw === undefined) continue;
    if (typeof raw !== "string") {
      issues.push({ path: [name], message: "must be given once" });
      continue;
    }
    const bad = (message: string) => issues.push({ path: [name], message });
    if (rule.kind === "enum") {
      if (!rule.values.includes(raw)) bad(`must be one of ${rule.values.join(", ")}`);
      else values[name] = raw;
    } else if (rule.kind === "id") {
      if (!PATH_ID_PATTERN.test(raw)) bad("must be 1..128 characters of A-Z a-z 0-9 _ . - :");
      else values[name] = raw;
    } else if (rule.kind === "text") {
      if (raw.length < 1 || raw.length > rule.max) bad(`must be 1..${rule.max} characters`);
      else values[name] = raw;
    } else {
      const parts = raw.split(",");
      if (raw.length < 1 || raw.length > 64 || !parts.every((p) => LABEL_PATTERN.test(p))) bad("must be 1..64 characters: labels separated by commas, without spaces");
      else {
        labels = [...new Set(parts)];
        values[name] = raw;
      }
    }
  }
  if (issues.length) throw badRequest("invalid_query", "the query has invalid filters", { issues });
  const format = (values.format ?? "json") as "json" | "csv";
  delete values.format;
  return { values, labels, format };
}
