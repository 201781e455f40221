// What a service's schema module (`<service>.api.ts`) declares per action for the API reference:
// the body rule the action validates with, the success status, the response schema, errors and examples.
// Small JSON Schema helpers for response shapes live here too; the mappers' outputs are tested against them.

export type JsonSchema = Record<string, unknown>;

export interface QueryParamDoc {
  schema: JsonSchema;
  description: string;
}

export interface ActionDoc {
  /** The fastest-validator object rule of the JSON body: the same object the action validates with. */
  body?: Record<string, unknown>;
  /** The route also accepts no body at all. */
  bodyOptional?: boolean;
  /** A keyset list: `limit` and `cursor` are documented and `response` is the item schema. */
  list?: boolean;
  /** Default and maximum page size when they are not the object lists' 200/500. */
  listLimits?: { defaultLimit: number; maxLimit: number };
  query?: Record<string, QueryParamDoc>;
  status: 200 | 201 | 202 | 204;
  /** The success body's media type when it is not JSON (a live stream). */
  contentType?: string;
  /** The success body (for a list: one item); absent for 204. */
  response?: JsonSchema;
  /** Route-specific failures by status; the builder adds auth, params, body-parsing and list ones. */
  errors?: Partial<Record<number, string[]>>;
  example?: { body?: unknown; response?: unknown };
  description?: string;
}

/** A service's schema module: its actions by name (the part after the dot in the route table). */
export type ServiceApi = Record<string, ActionDoc>;

// ---- response schema helpers ----------------------------------------------------------------------

export const J = {
  string: (extra: JsonSchema = {}): JsonSchema => ({ type: "string", ...extra }),
  id: { type: "string", description: "UUIDv7" } as JsonSchema,
  timestamp: { type: "string", format: "date-time" } as JsonSchema,
  boolean: { type: "boolean" } as JsonSchema,
  integer: (extra: JsonSchema = {}): JsonSchema => ({ type: "integer", ...extra }),
  /** Any JSON object. */
  object: { type: "object" } as JsonSchema,
  enum: (values: readonly string[]): JsonSchema => ({ type: "string", enum: [...values] }),
  array: (items: JsonSchema, extra: JsonSchema = {}): JsonSchema => ({ type: "array", items, ...extra }),
  nullable(schema: JsonSchema): JsonSchema {
    if (typeof schema.type === "string" && !schema.enum) return { ...schema, type: [schema.type, "null"] };
    return { anyOf: [schema, { type: "null" }] };
  },
  /** An object with exactly these properties, all present unless listed in `optional`. */
  obj(properties: Record<string, JsonSchema>, optional: string[] = []): JsonSchema {
    return { type: "object", properties, required: Object.keys(properties).filter((k) => !optional.includes(k)), additionalProperties: false };
  },
};

/** The list envelope every list answers with. */
export const pageOf = (item: JsonSchema): JsonSchema =>
  J.obj({ items: J.array(item), next_cursor: { ...J.nullable(J.string()), description: "Opaque cursor of the next page; null on the last page" } });
