// Checks a request passes before the gateway routes it: URL encoding, method, body headers and body shape.
import type { IncomingHttpHeaders } from "node:http";
import { AppError, type Issue } from "../shared/errors";
import { methodsForPath } from "./routes";

/** Deeper JSON than this is refused: nothing we accept nests past a few levels, and deep input costs recursion downstream. */
export const MAX_JSON_DEPTH = 64;
/** Keys that mean something to JavaScript objects; a body naming one is refused wherever it sits. */
export const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);
/** At most this many findings go back in details.issues. */
const MAX_ISSUES = 20;

/** Probes and scrapes, which have their own budget or none, are not counted against the per-IP limit. */
export const UNCOUNTED_PATHS = new Set(["/health", "/ready", "/metrics"]);

/** The path of a request target without its query, and without one trailing slash. */
export function pathOf(url: string): string {
  const q = url.indexOf("?");
  const p = q === -1 ? url : url.slice(0, q);
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

function decodeStrict(part: string, plusIsSpace: boolean): string | null {
  try {
    return decodeURIComponent(plusIsSpace ? part.replace(/\+/g, " ") : part);
  } catch {
    return null;
  }
}

/**
 * Every path segment must be valid percent-encoded UTF-8 without NUL. Query names and values are read
 * as the query parser reads them (a malformed escape stays literal, and the parameter's own check then
 * refuses it with its own code, such as invalid_cursor) but must not hold a NUL.
 * Returns the 400 to answer, or null.
 */
export function urlProblem(url: string): AppError | null {
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  for (const segment of path.split("/")) {
    const decoded = decodeStrict(segment, false);
    if (decoded === null || decoded.includes("\u0000")) {
      return new AppError(400, "invalid_path", "The path is not valid percent-encoded UTF-8 (or holds a NUL byte)");
    }
  }
  if (q === -1) return null;
  const issues: Issue[] = [];
  for (const pair of url.slice(q + 1).split("&")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? "" : pair.slice(eq + 1);
    const name = decodeStrict(rawName, true) ?? rawName;
    const value = decodeStrict(rawValue, true) ?? rawValue;
    if (name.includes("\u0000") || value.includes("\u0000")) {
      issues.push({ path: [name.replace(/\u0000/g, "\\u0000").slice(0, 128)], message: "must not contain NUL bytes" });
      if (issues.length >= MAX_ISSUES) break;
    }
  }
  return issues.length ? new AppError(400, "invalid_query", "The query string holds a NUL byte", { issues }) : null;
}

/** The methods a path answers, OPTIONS and HEAD included; empty when no route has this path. `opsPaths` answer GET. */
export function allowedMethods(path: string, opsPaths: ReadonlySet<string>): string[] {
  const methods = path === "/v1" || path.startsWith("/v1/") ? methodsForPath(path) : opsPaths.has(path) ? ["GET"] : [];
  if (!methods.length) return [];
  const all = new Set(methods);
  if (all.has("GET")) all.add("HEAD");
  all.add("OPTIONS");
  return [...all];
}

const hasBody = (headers: IncomingHttpHeaders): boolean => Number(headers["content-length"] ?? 0) > 0 || headers["transfer-encoding"] !== undefined;

/**
 * Body headers, checked before a byte of the body is read: an encoded body is refused (decoding it would
 * let a small request inflate into a large one), a declared length over the limit is 413, and a body of
 * any type but JSON on a method that takes one is 415.
 */
export function bodyHeaderProblem(method: string, headers: IncomingHttpHeaders, limit: number): AppError | null {
  if (!hasBody(headers)) return null;
  const encoding = String(headers["content-encoding"] ?? "identity").trim().toLowerCase();
  if (encoding !== "identity" && encoding !== "") {
    return new AppError(415, "unsupported_media_type", "Content-Encoding is not supported; send the body as plain application/json");
  }
  if (Number(headers["content-length"] ?? 0) > limit) return new AppError(413, "payload_too_large", `The request body exceeds the size limit (${limit} bytes)`);
  if (method === "POST" || method === "PATCH" || method === "PUT") {
    const type = String(headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/json") return new AppError(415, "unsupported_media_type", "Send the body as application/json");
  }
  return null;
}

/**
 * A parsed JSON body must nest at most MAX_JSON_DEPTH levels (else 400 `invalid_json`), and hold no NUL
 * byte in any string or key and no `__proto__`/`constructor`/`prototype` key (else 400 with the route's
 * invalid-body code and every finding in details.issues). Walks with an explicit stack: the input may be
 * deeper than the call stack.
 */
export function bodyShapeProblem(body: unknown, bodyError: string): AppError | null {
  if (body === null || typeof body !== "object") {
    return typeof body === "string" && body.includes("\u0000") ? new AppError(400, bodyError, "Request body failed validation", { issues: [{ path: [], message: "must not contain NUL bytes" }] }) : null;
  }
  const issues: Issue[] = [];
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: body, path: [] }];
  while (stack.length) {
    const { value, path } = stack.pop()!;
    if (path.length >= MAX_JSON_DEPTH) return new AppError(400, "invalid_json", `The request body nests deeper than ${MAX_JSON_DEPTH} levels`);
    const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value as Record<string, unknown>);
    for (const [key, child] of entries) {
      if (issues.length < MAX_ISSUES && typeof key === "string") {
        if (FORBIDDEN_KEYS.has(key)) issues.push({ path: [...path, key], message: `the key '${key}' is not allowed` });
        else if (key.includes("\u0000")) issues.push({ path: [...path, key.replace(/\u0000/g, "\\u0000")], message: "keys must not contain NUL bytes" });
      }
      if (typeof child === "string") {
        if (issues.length < MAX_ISSUES && child.includes("\u0000")) issues.push({ path: [...path, key], message: "must not contain NUL bytes" });
      } else if (child !== null && typeof child === "object") {
        stack.push({ value: child, path: [...path, key] });
      }
    }
  }
  return issues.length ? new AppError(400, bodyError, "Request body failed validation", { issues }) : null;
}
