// OpenAPI 3.1 built from the route table and the services' own schema modules (imported, not read from
// the registry: a params schema that crossed NATS as JSON has lost its RegExps and functions).
import { PATH_ID_PATTERN } from "../shared/ids";
import { OBJECT_LIMITS } from "../shared/pagination";
import { pageOf, type ActionDoc, type JsonSchema, type ServiceApi } from "../shared/api-doc";
import type { RouteDef } from "./routes";

type Rule = Record<string, any> | string | undefined;

/** A case-insensitive RegExp source as a plain ECMA pattern (JSON Schema has no flags): letters become [aA]. */
function patternOf(p: RegExp | string): string {
  if (typeof p === "string") return p;
  if (!p.flags.includes("i")) return p.source;
  let out = "";
  let inClass = false;
  for (let i = 0; i < p.source.length; i++) {
    const c = p.source[i]!;
    if (c === "\\") {
      out += c + (p.source[++i] ?? "");
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    out += !inClass && /[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c;
  }
  return out;
}

/** fastest-validator rule → JSON Schema, for the rule kinds our schema modules use. */
export function toJsonSchema(rule: Rule): JsonSchema {
  if (rule === undefined) return {};
  if (typeof rule === "string") return toJsonSchema({ type: rule.split("|")[0] });
  const out: JsonSchema = {};
  switch (rule.type) {
    case "string":
      out.type = "string";
      if (rule.min !== undefined) out.minLength = rule.min;
      if (rule.max !== undefined) out.maxLength = rule.max;
      if (rule.pattern) out.pattern = patternOf(rule.pattern);
      if (rule.enum) out.enum = rule.enum;
      break;
    case "url":
      Object.assign(out, { type: "string", format: "uri" });
      break;
    case "number":
      out.type = rule.integer ? "integer" : "number";
      if (rule.min !== undefined) out.minimum = rule.min;
      if (rule.max !== undefined) out.maximum = rule.max;
      break;
    case "boolean":
      out.type = "boolean";
      break;
    case "enum":
      Object.assign(out, { type: "string", enum: rule.values });
      break;
    case "equal":
      out.const = rule.value;
      break;
    case "custom":
      // oneOf() in shared/validation.ts: a string enum with a readable message.
      if (Array.isArray(rule.enum)) Object.assign(out, { type: "string", enum: rule.enum });
      break;
    case "array":
      out.type = "array";
      out.items = toJsonSchema(rule.items);
      if (rule.min !== undefined) out.minItems = rule.min;
      if (rule.max !== undefined) out.maxItems = rule.max;
      break;
    case "object": {
      out.type = "object";
      if (rule.maxBytes !== undefined) out["x-max-bytes"] = rule.maxBytes;
      if (!rule.props) break;
      const properties: Record<string, unknown> = {};
      const required: string[] = [];
      for (const [name, sub] of Object.entries(rule.props as Record<string, Rule>)) {
        properties[name] = toJsonSchema(sub);
        if (!(typeof sub === "object" && sub && sub.optional)) required.push(name);
      }
      out.properties = properties;
      if (required.length) out.required = required;
      // Strict bodies refuse unknown keys; lenient ones (strict: "remove") drop them, which a schema cannot say.
      if (rule.strict === true) out.additionalProperties = false;
      break;
    }
    default:
      break;
  }
  if (rule.description) out.description = rule.description;
  if (rule.nullable) {
    if (typeof out.type === "string" && !out.enum) out.type = [out.type, "null"];
    else return { anyOf: [out, { type: "null" }], ...(rule.description ? { description: rule.description } : {}) };
  }
  return out;
}

const errorSchema: JsonSchema = {
  type: "object",
  required: ["error", "error_description", "request_id"],
  properties: {
    error: { type: "string", description: "A stable snake_case code" },
    error_description: { type: "string" },
    details: {
      type: "object",
      properties: {
        issues: {
          type: "array",
          description: "Every field that failed validation",
          items: {
            type: "object",
            required: ["path", "message"],
            properties: { path: { type: "array", items: { type: ["string", "integer"] } }, message: { type: "string" }, code: { type: "string", description: "The rule's own code, when it has one" } },
          },
        },
      },
    },
    request_id: { type: "string", description: "Also in the X-Request-Id header" },
  },
};

const DESCRIPTION = `The management API of the Caracal control plane. Every /v1 route needs an admin bearer token
(\`Authorization: Bearer cat_…\`; in development \`ADMIN_TOKEN\` in \`.local/dev.env\`). Lists answer
\`{items, next_cursor}\` and a \`Link: <…>; rel="next"\` header; every error is the envelope
\`{error, error_description, details?, request_id}\`. Conventions and every difference from the
upstream Caracal Management API: docs/api.md in the repository.`;

const STATUS_TEXT: Record<number, string> = {
  400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Payload too large",
  415: "Unsupported media type", 422: "Unprocessable", 429: "Too many requests", 503: "Service unavailable",
};

/** The tag of a route: its entity, the first path segment after the zone (`/zones/:zoneId/resources` → resources). */
function tagOf(path: string): string {
  const parts = path.split("/").filter((p) => p && !p.startsWith(":"));
  return parts[0] === "zones" && parts.length > 1 && path.startsWith("/zones/:zoneId/") ? parts[1]! : parts[0]!;
}

/** The failures a route can answer: its own, plus what every route of its kind shares. */
function errorsOf(route: RouteDef, doc: ActionDoc | undefined, pathNames: string[]): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  const add = (status: number, ...codes: string[]) => {
    const set = out.get(status) ?? new Set<string>();
    for (const c of codes) set.add(c);
    out.set(status, set);
  };
  if (pathNames.length) add(400, "invalid_params");
  if (doc?.body) add(400, route.bodyError ?? "invalid_body", "invalid_json");
  if (doc?.list) add(400, "invalid_query", "invalid_cursor");
  for (const [status, codes] of Object.entries(doc?.errors ?? {})) add(Number(status), ...(codes ?? []));
  if (!route.public) {
    add(401, "invalid_admin_token");
    const write = route.method !== "GET";
    add(403, ...(write ? ["admin_token_read_only"] : []), "admin_token_zone_mismatch", ...(write && pathNames.includes("zoneId") ? ["system_zone_read_only"] : []));
    add(429, "rate_limited");
  }
  if (doc?.body) {
    add(413, "payload_too_large");
    add(415, "unsupported_media_type");
  }
  add(503, "service_unavailable");
  return out;
}

export interface OpenApiOptions {
  version: string;
  /** Every route must have a schema module entry; with `strict` a missing one throws (tests), else it is marked. */
  strict?: boolean;
}

/** The OpenAPI 3.1 document of `routes`, each documented from `apis[<service>][<action>]`. */
export function buildOpenApi(routes: RouteDef[], apis: Record<string, ServiceApi>, opts: OpenApiOptions): Record<string, any> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const [service, action] = r.action.split(".") as [string, string];
    const doc = apis[service]?.[action];
    if (!doc && opts.strict) throw new Error(`route ${r.method} ${r.path} (${r.action}) has no entry in its service's schema module`);
    const oaPath = "/v1" + r.path.replace(/:([A-Za-z]+)/g, "{$1}");
    const pathNames = [...r.path.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!);
    const parameters: unknown[] = pathNames.map((name) => ({ name, in: "path", required: true, schema: { type: "string", pattern: PATH_ID_PATTERN.source } }));
    if (doc?.list) {
      const limits = doc.listLimits ?? OBJECT_LIMITS;
      parameters.push(
        { name: "limit", in: "query", description: "Page size", schema: { type: "integer", minimum: 1, maximum: limits.maxLimit, default: limits.defaultLimit } },
        { name: "cursor", in: "query", description: "`next_cursor` of the previous page", schema: { type: "string", minLength: 1, maxLength: 512 } },
      );
    }
    for (const [name, q] of Object.entries(doc?.query ?? {})) parameters.push({ name, in: "query", description: q.description, schema: q.schema });

    const responses: Record<string, unknown> = {};
    if (doc) {
      const success: Record<string, unknown> = { description: STATUS_TEXT[doc.status] ?? successText(doc.status) };
      if (doc.response) {
        const schema = doc.list ? pageOf(doc.response) : doc.response;
        success.content = { [doc.contentType ?? "application/json"]: { schema, ...(doc.example?.response !== undefined ? { example: doc.example.response } : {}) } };
      }
      if (doc.list) success.headers = { Link: { description: 'The next page: `<…?cursor=…&limit=N>; rel="next"`', schema: { type: "string" } } };
      if (doc.status === 201) success.headers = { Location: { description: "The created object", schema: { type: "string" } } };
      responses[String(doc.status)] = success;
    } else {
      responses.default = { description: "Not documented yet" };
    }
    for (const [status, codes] of [...errorsOf(r, doc, pathNames)].sort((a, b) => a[0] - b[0])) {
      const list = [...codes];
      responses[String(status)] = {
        description: `${STATUS_TEXT[status] ?? "Error"}: ${list.map((c) => `\`${c}\``).join(", ")}`,
        content: { "application/json": { schema: { allOf: [{ $ref: "#/components/schemas/Error" }, { properties: { error: { enum: list } } }] } } },
      };
    }

    const op: Record<string, unknown> = {
      tags: [tagOf(r.path)],
      summary: r.summary,
      operationId: r.action.replace(".", "_"),
      ...(doc?.description ? { description: doc.description } : {}),
      ...(parameters.length ? { parameters } : {}),
      responses,
      ...(r.public ? { security: [] } : {}),
    };
    if (doc?.body) {
      op.requestBody = {
        required: !doc.bodyOptional,
        content: { "application/json": { schema: toJsonSchema(doc.body), ...(doc.example?.body !== undefined ? { example: doc.example.body } : {}) } },
      };
    }
    (paths[oaPath] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: "3.1.0",
    info: { title: "Caracal control plane API", version: opts.version, description: DESCRIPTION },
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    tags: [...new Set(routes.map((r) => tagOf(r.path)))].map((name) => ({ name })),
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "An admin token (cat_…)" } }, schemas: { Error: errorSchema } },
    paths,
  };
}

function successText(status: number): string {
  return status === 201 ? "Created" : status === 202 ? "Accepted" : status === 204 ? "No content" : "OK";
}

/** The reference UI: Swagger UI from the swagger-ui-dist package, served by the gateway itself (no CDN). */
export function docsPage(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title.replace(/[&<>"]/g, "")}</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;
}

/** Starts Swagger UI on /docs/openapi.json with try-it-out on (a separate file: the page allows no inline script). */
export const DOCS_INIT_JS = `window.ui = SwaggerUIBundle({
  url: "/docs/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
});
`;
