// OpenAPI 3.1 built from the route table and the params schemas the services registered.
import { ROUTES } from "./routes";

type Rule = Record<string, any> | string | undefined;

/** fastest-validator rule → JSON Schema, for the rule kinds our services use. */
export function toJsonSchema(rule: Rule): Record<string, unknown> {
  if (rule === undefined) return {};
  if (typeof rule === "string") return { type: rule.split("|")[0] };
  const type = rule.type ?? (rule.$$type ? String(rule.$$type).split("|")[0] : undefined);
  const out: Record<string, unknown> = {};
  switch (type) {
    case "string":
      out.type = "string";
      if (rule.min !== undefined) out.minLength = rule.min;
      if (rule.max !== undefined) out.maxLength = rule.max;
      if (rule.pattern) out.pattern = String(rule.pattern instanceof RegExp ? rule.pattern.source : rule.pattern);
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
      out.enum = rule.values;
      break;
    case "array":
      out.type = "array";
      out.items = toJsonSchema(rule.items);
      if (rule.min !== undefined) out.minItems = rule.min;
      if (rule.max !== undefined) out.maxItems = rule.max;
      break;
    case "object": {
      out.type = "object";
      const props = rule.props ?? Object.fromEntries(Object.entries(rule).filter(([k]) => !k.startsWith("$$") && !["type", "optional", "props", "strict"].includes(k)));
      const properties: Record<string, unknown> = {};
      const required: string[] = [];
      for (const [name, sub] of Object.entries(props as Record<string, Rule>)) {
        properties[name] = toJsonSchema(sub);
        if (!(typeof sub === "object" && sub && sub.optional)) required.push(name);
      }
      out.properties = properties;
      if (required.length) out.required = required;
      if (rule.$$strict === true || rule.strict === true) out.additionalProperties = false;
      break;
    }
    default:
      break;
  }
  if (typeof rule === "object" && rule.nullable) out.type = [out.type ?? "string", "null"];
  return out;
}

const errorSchema = {
  type: "object",
  required: ["error", "error_description", "request_id"],
  properties: {
    error: { type: "string" },
    error_description: { type: "string" },
    details: { type: "object" },
    request_id: { type: "string" },
  },
};

/** `actionParams` gives the params schema of an action as the registry knows it (any node). */
export function buildOpenApi(actionParams: (action: string) => Record<string, any> | undefined, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const oaPath = "/v1" + r.path.replace(/:([A-Za-z]+)/g, "{$1}");
    const schema = actionParams(r.action) ?? {};
    const pathNames = [...r.path.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!);
    const op: Record<string, unknown> = {
      summary: r.summary,
      operationId: r.action,
      parameters: pathNames.map((name) => ({ name, in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9_.\\-:]{1,128}$" } })),
      responses: {
        default: { description: "Error envelope", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
        [r.method === "POST" ? "201" : r.method === "DELETE" ? "204" : "200"]: { description: "Success" },
      },
      ...(r.public ? { security: [] } : {}),
    };
    if (schema.body) op.requestBody = { required: true, content: { "application/json": { schema: toJsonSchema(schema.body) } } };
    if (r.method === "GET" && /\.list$/.test(r.action)) {
      (op.parameters as unknown[]).push(
        { name: "limit", in: "query", schema: { type: "integer", minimum: 1 } },
        { name: "cursor", in: "query", schema: { type: "string", maxLength: 512 } },
      );
    }
    (paths[oaPath] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: "3.1.0",
    info: { title: "Caracal control plane API", version },
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } }, schemas: { Error: errorSchema } },
    paths,
  };
}

/** A small browsable page over the same document (no third-party assets). */
export function docsPage(doc: Record<string, any>): string {
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
  const rows: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
    for (const [method, op] of Object.entries(ops)) {
      const body = op.requestBody ? `<pre>${esc(JSON.stringify(op.requestBody.content["application/json"].schema, null, 2))}</pre>` : "";
      rows.push(`<details><summary><code>${method.toUpperCase()} ${esc(path)}</code> — ${esc(op.summary)}</summary>${body}</details>`);
    }
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(doc.info.title)}</title></head><body><h1>${esc(doc.info.title)}</h1><p><a href="/docs/openapi.json">openapi.json</a></p>${rows.join("\n")}</body></html>`;
}
