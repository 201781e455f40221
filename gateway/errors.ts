// Shapes every failure into the envelope {error, error_description, details?, request_id}.
import type { Issue } from "../shared/errors";
import { fieldPath, issuesOf, type ValidatorError } from "../shared/validation";

export interface Envelope {
  status: number;
  body: { error: string; error_description: string; details?: Record<string, unknown>; request_id: string };
  headers?: Record<string, string>;
}

interface AnyError {
  name?: string;
  message?: string;
  code?: number | string;
  type?: string;
  data?: unknown;
  status?: number;
  retryAfter?: number;
}

const WIRE_CODE = /^[a-z][a-z0-9_]*$/;

/**
 * Failures of the cluster rather than of the request: no node serves the action, the node serving it
 * went away mid-request (RequestRejectedError), the transport or a store is down. The client may retry.
 */
const UNAVAILABLE = new Set([
  "ServiceNotFoundError", "ServiceNotAvailableError", "ServiceUnavailableError", "RequestRejectedError",
  "QueueIsFullError", "BrokerDisconnectedError", "GracefulStopTimeoutError",
  "MongoServerSelectionError", "MongoNetworkError", "MongoNetworkTimeoutError", "MongoNotConnectedError", "MongoPoolClearedError", "MongoTopologyClosedError",
  "MaxRetriesPerRequestError",
]);

/** fastest-validator findings are grouped by where they came from: the path, the query or the body. */
function fromValidation(data: unknown, bodyError: string | undefined): { code: string; issues: Issue[] } {
  const items = Array.isArray(data) ? (data as ValidatorError[]) : [];
  const issues: Issue[] = [];
  let where: "params" | "query" | "body" = "body";
  for (const item of items) {
    const segments = fieldPath(item.field);
    const head = segments[0];
    if (head === "params") where = "params";
    else if (head === "query" && where !== "params") where = "query";
    const path = head === "params" || head === "query" || head === "body" ? segments.slice(1) : segments;
    issues.push(...issuesOf(item, path, String(item.message ?? "invalid").replace(/'(params|query|body)\./g, "'")));
  }
  const code = where === "params" ? "invalid_params" : where === "query" ? "invalid_query" : bodyError ?? "invalid_body";
  return { code, issues: where === "body" ? issues : issues.filter(() => true) };
}

export function toEnvelope(err: AnyError, requestId: string, bodyError?: string): Envelope {
  const env = (status: number, error: string, description: string, details?: Record<string, unknown>, headers?: Record<string, string>): Envelope => ({
    status,
    body: { error, error_description: description, ...(details && Object.keys(details).length ? { details } : {}), request_id: requestId },
    ...(headers ? { headers } : {}),
  });
  const status = typeof err.code === "number" ? err.code : 500;

  if (err.name === "ValidationError" || err.type === "VALIDATION_ERROR") {
    const { code, issues } = fromValidation(err.data, bodyError);
    return env(400, code, code === "invalid_params" ? "A path parameter is malformed" : code === "invalid_query" ? "The query string is invalid" : "Request body failed validation", { issues });
  }
  switch (err.type) {
    case "entity.parse.failed":
      return env(400, "invalid_json", "The request body is not valid JSON");
    case "entity.too.large":
      return env(413, "payload_too_large", "The request body exceeds the size limit");
    case "encoding.unsupported":
    case "charset.unsupported":
      return env(415, "unsupported_media_type", "Unsupported content encoding");
  }
  // The body reader's other refusals (an aborted upload, a length that does not match the bytes sent).
  if (typeof err.type === "string" && /^[a-z]+(\.[a-z]+)+$/.test(err.type) && typeof err.status === "number" && err.status >= 400 && err.status < 500) {
    return env(400, "bad_request", "The request body could not be read");
  }
  if (UNAVAILABLE.has(err.name ?? "")) return env(503, "service_unavailable", "A service needed for this request is not available; retry");
  if (err.name === "RequestTimeoutError") return env(504, "upstream_timeout", "A service did not answer in time");
  if (err.type && WIRE_CODE.test(err.type) && status >= 400 && status < 500) {
    const data = err.data && typeof err.data === "object" && !Array.isArray(err.data) ? { ...(err.data as Record<string, unknown>) } : undefined;
    // A service's retry hint travels in data (shared/errors.ts retryLater); the gateway's own on the error.
    const retryAfter = err.retryAfter ?? (typeof data?.retry_after === "number" ? data.retry_after : undefined);
    if (data) delete data.retry_after;
    const headers = retryAfter ? { "Retry-After": String(retryAfter) } : undefined;
    return env(status, err.type, err.message ?? err.type, data, headers);
  }
  if (err.type && WIRE_CODE.test(err.type) && status >= 500 && status < 600 && err.name === "AppError") {
    return env(status, err.type, err.message ?? err.type, err.data as Record<string, unknown> | undefined);
  }
  // moleculer-web's own client errors carry an upper-case type (UNABLE_DECODE_PARAM, …).
  if (status >= 400 && status < 500) return env(status === 413 ? 413 : 400, status === 413 ? "payload_too_large" : "bad_request", "The request could not be processed as sent");
  // Anything unexpected: the message may carry internals, so it stays in the log only.
  return env(500, "internal_error", "The service failed to process the request");
}
