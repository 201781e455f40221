// Params-schema building blocks (fastest-validator rules) shared by every service: bodies that refuse
// `null` where the field is not nullable, length caps on every string and array, readable enum messages.
// moleculer-web passes {params, query, body} with mergeParams off; the OpenAPI document is built from
// these same rule objects (gateway/openapi.ts), so a cap or a pattern written here is what /docs shows.
import Validator from "fastest-validator";
import { pathId } from "./ids";
import { invalid, type Issue } from "./errors";

/** Caps applied to every string and array a client can send (documented in the OpenAPI document). */
export const LIMITS = {
  name: 200,
  /** Resource and provider identifiers, URLs. */
  identifier: 2048,
  /** Ids of stored objects given in a body: the path-id length. */
  id: 128,
  scopes: 256,
  scope: 128,
  description: 4096,
  /** A provider's config_json, serialized. */
  providerConfigBytes: 64 * 1024,
  /** A simulate input document, serialized. */
  simulateInputBytes: 64 * 1024,
  /** One Rego module. */
  regoContent: 256 * 1024,
  operations: 256,
  operationMethod: 16,
  traits: 256,
  trait: 1024,
  secret: 4096,
  schemaVersion: 32,
} as const;

export type Rule = Record<string, unknown>;

/** How a value is shown inside a message: short, and never a whole large or secret-looking value. */
function preview(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : String(value);
}

/**
 * Custom checker added to every body object: fastest-validator lets `null` through any optional rule,
 * so this refuses it for each optional property whose rule does not say `nullable: true`.
 */
function nullRefuser(props: Record<string, unknown>) {
  const keys = Object.entries(props)
    .filter(([, rule]) => typeof rule === "object" && rule !== null && (rule as Rule).optional === true && (rule as Rule).nullable !== true)
    .map(([k]) => k);
  return function refuseNull(value: unknown, errors: Record<string, unknown>[], _schema: unknown, path: string) {
    if (!value || typeof value !== "object" || Array.isArray(value)) return value;
    const prefix = path && path !== "$$root" ? `${path}.` : "";
    for (const key of keys) {
      if ((value as Record<string, unknown>)[key] === null) errors.push({ type: "nullNotAllowed", field: prefix + key, actual: null, message: "The '{field}' field must not be null." });
    }
    return value;
  };
}

/** A strict JSON object: unknown keys are refused (reported with the route's invalid-body code). */
export const strictBody = (props: Record<string, unknown>) => ({ type: "object", strict: true, props, custom: nullRefuser(props) }) as const;

/** A lenient JSON object: unknown keys are dropped, as the reference does for providers/resources/policies. */
export const lenientBody = (props: Record<string, unknown>) => ({ type: "object", strict: "remove", props, custom: nullRefuser(props) }) as const;

/** Path parameters, each with the id shape (failures become 400 `invalid_params`). */
export const pathParams = (...names: string[]) => ({ type: "object", props: Object.fromEntries(names.map((n) => [n, pathId])) }) as const;

export const anyQuery = { type: "object", optional: true } as const;

// ---- field rules ----------------------------------------------------------------------------

export const optional = <R extends Rule>(rule: R) => ({ ...rule, optional: true }) as R & { optional: true };
export const nullable = <R extends Rule>(rule: R) => ({ ...rule, nullable: true }) as R & { nullable: true };

export const text = (min: number, max: number, extra: Rule = {}) => ({ type: "string", min, max, ...extra });

/** A name: 1..max characters (200 unless the reference says less). */
export const nameRule = (max: number = LIMITS.name, extra: Rule = {}) => text(1, max, extra);

/** The id of a stored object given in a body (the path-id length; the object is looked up). */
export const idRef = text(1, LIMITS.id);

/** A list of strings with both caps. */
export const stringList = (maxItems: number, maxLength: number, extra: Rule = {}) => ({ type: "array", max: maxItems, items: { type: "string", max: maxLength }, ...extra });

/** One of a fixed set of strings; the message names the value given and the allowed ones. */
export function oneOf(values: readonly string[], extra: Rule = {}) {
  return {
    type: "custom",
    enum: [...values],
    check(value: unknown, errors: Record<string, unknown>[]) {
      if (typeof value !== "string" || !values.includes(value)) {
        errors.push({ type: "enumValue", actual: preview(value), expected: values.join(", "), message: `The '{field}' field value ${preview(value)} is not one of the allowed values: ${values.join(", ")}.` });
      }
      return value;
    },
    ...extra,
  };
}

/** A free-form JSON object whose serialized form is at most `maxBytes`. */
export function jsonObject(maxBytes: number, extra: Rule = {}) {
  return {
    type: "object",
    maxBytes,
    custom(value: unknown, errors: Record<string, unknown>[]) {
      if (!value || typeof value !== "object") return value;
      let bytes: number;
      try {
        bytes = Buffer.byteLength(JSON.stringify(value));
      } catch {
        bytes = Infinity; // nested too deep to serialize: certainly over any cap
      }
      if (bytes > maxBytes) errors.push({ type: "objectMaxBytes", actual: "too large", expected: maxBytes, message: `The '{field}' field must be at most ${maxBytes} bytes as JSON.` });
      return value;
    },
    ...extra,
  };
}

// ---- checking inside a handler -----------------------------------------------------------------

const validator = new Validator({ useNewCustomCheckerFunction: true });
const compiled = new WeakMap<object, (value: unknown) => true | { field?: string; message?: string }[] | Promise<unknown>>();

/** Every schema failure of `body` against an object rule (empty when it passes). Strips unknown keys of lenient bodies. */
export function bodyIssues(schema: { props: Record<string, unknown> } & Record<string, unknown>, body: unknown): Issue[] {
  let check = compiled.get(schema);
  if (!check) {
    check = validator.compile({ $$root: true, ...schema }) as any;
    compiled.set(schema, check!);
  }
  const res = check!(body);
  if (res === true) return [];
  return (res as ValidatorError[]).flatMap((e) => issuesOf(e, fieldPath(e.field)));
}

/** One fastest-validator finding as it is sent over NATS. */
export interface ValidatorError {
  field?: string;
  message?: string;
  type?: string;
  actual?: unknown;
  expected?: unknown;
}

/**
 * The issues of one finding at `path`: an object with unknown keys becomes one issue per key (at the key's
 * path, naming the allowed ones), so a client sees each field it must drop.
 */
export function issuesOf(e: ValidatorError, path: (string | number)[], message = String(e.message ?? "invalid")): Issue[] {
  if (e.type === "objectStrict" && typeof e.actual === "string" && e.actual) {
    const allowed = String(e.expected ?? "").replace(/^"|"$/g, "");
    return e.actual.split(", ").map((key) => ({ path: [...path, key], message: `'${key.slice(0, 64)}' is not a field here${allowed ? `; the fields are: ${allowed}` : ""}.` }));
  }
  return [{ path, message }];
}

/**
 * Validates a body inside a handler, for routes whose order of checks puts something (such as the
 * zone's existence) before the body schema. Failures are 400 with `code` and every issue listed.
 */
export function checkBody(schema: { props: Record<string, unknown> } & Record<string, unknown>, body: unknown, code: string): void {
  const issues = bodyIssues(schema, body);
  if (issues.length) throw invalid(code, issues);
}

/** "operations[2].scope" → ["operations", 2, "scope"]. */
export function fieldPath(field: string | undefined): (string | number)[] {
  return String(field ?? "")
    .replace(/\[(\d+)\]/g, ".$1")
    .split(".")
    .filter((p) => p && p !== "$$root")
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}
