// Field projection and CSV export of the audit lists (reference-ops §1.3, §2.3).
import { Readable } from "node:stream";

/** Decision audit: row columns, then top-level keys of the redacted metadata; also the CSV default order. */
export const AUDIT_ROW_FIELDS = ["id", "occurred_at", "event_type", "decision", "evaluation_status", "request_id", "ingested_at"] as const;
export const AUDIT_METADATA_FIELDS = [
  "application_id", "application_name", "resource", "requested_scopes", "agent_session_id", "agent_lifecycle", "agent_labels",
  "delegation_edge_id", "delegation_hop_count", "method", "latency_ms", "upstream_status", "result_class", "reason",
] as const;
export const AUDIT_EXPORT_FIELDS: readonly string[] = [...AUDIT_ROW_FIELDS, ...AUDIT_METADATA_FIELDS];

export const ADMIN_EXPORT_FIELDS: readonly string[] = [
  "id", "occurred_at", "action", "method", "path", "entity_type", "entity_id", "status_code",
  "actor_id", "actor_name", "actor_scope", "request_id", "chain_seq", "signed", "changed_fields",
];

/**
 * The requested fields of a row, in the order asked. `optional` keys (metadata) that the row lacks are
 * left out; the others are always present (possibly null).
 */
export function project(row: Record<string, unknown>, fields: string[], optional: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    if (optional.has(f) && !(f in row)) continue;
    out[f] = row[f] ?? null;
  }
  return out;
}

/** One cell: empty for null, ISO for dates, arrays space-joined, quoted only when it must be. */
export function csvCell(value: unknown): string {
  let text: string;
  if (value === null || value === undefined) text = "";
  else if (value instanceof Date) text = value.toISOString();
  else if (Array.isArray(value)) text = value.map((v) => (v === null || v === undefined ? "" : String(v))).join(" ");
  else text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const csvLine = (cells: unknown[]): string => `${cells.map(csvCell).join(",")}\r\n`;

/** The CSV document as a stream: the header line, then one CRLF-terminated line per row. */
export function csvStream(columns: string[], rows: Iterable<Record<string, unknown>>): Readable {
  return Readable.from(
    (function* () {
      yield csvLine(columns);
      for (const row of rows) yield csvLine(columns.map((c) => row[c]));
    })(),
    { objectMode: false },
  );
}

export const csvHeaders = (fileName: string) => ({
  $responseType: "text/csv; charset=utf-8",
  $responseHeaders: { "Content-Disposition": `attachment; filename="${fileName}"` },
});
