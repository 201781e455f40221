// CSV exports: fixed columns, CRLF line ends, RFC 4180 quoting, written page by page as a stream.
import { Readable } from "node:stream";

/** One cell: null is empty; a value with a comma, quote, CR or LF is quoted with its quotes doubled. */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  const s = Array.isArray(value) ? value.join(" ") : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const csvLine = (cells: unknown[]): string => cells.map(csvCell).join(",") + "\r\n";

/**
 * A stream of the header line and then each batch of rows as it is read: a large export never sits in
 * memory, and the store is read only as fast as the client (and the transporter) takes the lines.
 */
export function csvStream<R>(columns: readonly string[], batches: AsyncIterable<R[]>, cells: (row: R) => unknown[]): Readable {
  async function* lines() {
    yield Buffer.from(csvLine([...columns]));
    for await (const batch of batches) {
      if (batch.length) yield Buffer.from(batch.map((r) => csvLine(cells(r))).join(""));
    }
  }
  return Readable.from(lines(), { objectMode: false });
}

export function csvHeaders(fileName: string): Record<string, string> {
  return { "Content-Disposition": `attachment; filename="${fileName}"` };
}
