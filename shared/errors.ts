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
