// One error type for the whole project: a wire code, an HTTP status and optional details.
import { Errors } from "moleculer";

export type Details = Record<string, unknown>;

/**
 * Thrown where a rule is broken; the gateway shapes it into the envelope
 * `{error, error_description, details, request_id}`. `type` carries the wire code so the
 * error survives a NATS hop as a plain Moleculer error with the same fields.
 */
export class AppError extends Errors.MoleculerError {
  constructor(status: number, code: string, description?: string, details?: Details) {
    super(description ?? code.replace(/_/g, " "), status, code, details);
    this.name = "AppError";
  }
}

/** A refusal the client should retry after `retryAfterSec` (429/503): the gateway sends it as Retry-After. */
export function retryLater(status: number, code: string, description: string, retryAfterSec: number): AppError {
  // In `data`, not a property of its own: only the standard fields survive a NATS hop.
  return new AppError(status, code, description, { retry_after: retryAfterSec });
}

export const notFound = (code: string, description?: string) => new AppError(404, code, description);
export const badRequest = (code: string, description?: string, details?: Details) => new AppError(400, code, description, details);
export const conflict = (code: string, description?: string, details?: Details) => new AppError(409, code, description, details);
export const forbidden = (code: string, description?: string, details?: Details) => new AppError(403, code, description, details);

export interface Issue {
  path: (string | number)[];
  message: string;
}

/** A validation failure with every bad field listed. */
export function invalid(code: string, issues: Issue[], description = "Request failed validation"): AppError {
  return new AppError(400, code, description, { issues });
}

/** An issue found by a rule that has a wire code of its own (`upstream_url_required`, `invalid_provider_config`, …). */
export interface CodedIssue extends Issue {
  code: string;
}

/**
 * Collects every body problem of a request so one 400 reports them all. Add them in the reference's
 * order of checks: the answer's `error` is the first one's code (what a client of the reference, which
 * stops at the first failure, would read), `details.issues` lists all of them, each with its own `code`.
 */
export class Problems {
  readonly list: CodedIssue[] = [];

  add(code: string, path: (string | number)[], message: string): this {
    this.list.push({ code, path, message });
    return this;
  }

  addAll(code: string, issues: Issue[]): this {
    for (const i of issues) this.list.push({ code, ...i });
    return this;
  }

  /** Appends what a later group of checks found (they only add issues; the first code stays first). */
  concat(later: Problems): this {
    this.list.push(...later.list);
    return this;
  }

  /** Whether a field (its first path segment) already has a problem: later rules skip what failed its schema. */
  has(field: string): boolean {
    return this.list.some((i) => i.path[0] === field);
  }

  get size(): number {
    return this.list.length;
  }

  throwIfAny(): void {
    if (!this.list.length) return;
    const first = this.list[0]!;
    const description = this.list.length === 1 && first.message ? first.message : "Request failed validation";
    throw new AppError(400, first.code, description, { issues: this.list });
  }
}
