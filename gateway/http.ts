// What the gateway's modules share about a request: its shape, its path, and the JSON answer.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context } from "moleculer";
import type { Actor } from "../shared/actor";
import { AppError } from "../shared/errors";
import { pathOf } from "./edge";
import type { Handle } from "./idempotency";

export type Req = IncomingMessage & {
  $ctx?: Context<any, any>;
  $actor?: Actor;
  $requestId?: string;
  /** The method as the client sent it (HEAD is served as GET). */
  $method?: string;
  $idempotency?: Handle;
  $route?: unknown;
  body?: unknown;
  query?: Record<string, unknown>;
  originalUrl?: string;
  parsedUrl?: string;
};
export type Res = ServerResponse;
export type Next = (err?: unknown) => void;

export const requestPath = (req: Req): string => pathOf(req.originalUrl ?? req.url ?? "/");

/** A dependency of the gateway itself (Redis) failing is not the client's fault: 503, never 500. */
export const unavailable = (err: unknown): unknown =>
  err instanceof AppError ? err : new AppError(503, "service_unavailable", "A dependency of the gateway is not reachable; retry");

export function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const payload = status === 204 ? "" : JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...(status === 204 ? {} : { "Content-Length": String(Buffer.byteLength(payload)) }), ...headers });
  res.end(payload);
}
