// What the gateway puts in ctx.meta and what actions set there for the HTTP response.
import type { Context } from "moleculer";
import type { Actor } from "./actor";

export interface RequestMeta {
  actor?: Actor;
  $statusCode?: number;
  $location?: string;
  $responseHeaders?: Record<string, string>;
  /** Content type of a non-JSON answer (a CSV stream, an HTML page). */
  $responseType?: string;
  /** The request's Accept header, for routes that answer HTML or JSON (RouteDef.negotiates). */
  accept?: string;
}

export type ApiContext<P = Record<string, any>> = Context<P, RequestMeta>;

/** Route input as moleculer-web passes it with `mergeParams: false`. */
export interface RouteParams<Path = Record<string, string>, Body = Record<string, any>, Query = Record<string, string>> {
  params: Path;
  body: Body;
  query: Query;
}

export function created<T extends { id: string }>(ctx: ApiContext, location: string, entity: T): T {
  ctx.meta.$statusCode = 201;
  ctx.meta.$location = location;
  return entity;
}

export function noContent(ctx: ApiContext): null {
  ctx.meta.$statusCode = 204;
  return null;
}

/** Duplicate-key errors from a unique index, the only source of truth for uniqueness. */
export const isDuplicateKey = (err: unknown): boolean =>
  (err as { code?: number })?.code === 11000 ||
  // FerretDB v1 reports a unique-index violation on update as an internal error carrying PostgreSQL's
  // message (SQLSTATE 23505).
  /SQLSTATE 23505|duplicate key value violates unique constraint/.test(String((err as { message?: string })?.message ?? ""));
