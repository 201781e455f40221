// Shorthands for route params schemas (moleculer-web passes {params, query, body} with mergeParams off).
import Validator from "fastest-validator";
import { pathId } from "./ids";
import { invalid, type Issue } from "./errors";

/** A strict JSON body: unknown keys are refused (reported as the route's invalid-body code). */
export const strictBody = (props: Record<string, unknown>) => ({ type: "object", strict: true, props }) as const;

/** A lenient JSON body: unknown top-level keys are dropped, as the reference does for providers/resources. */
export const lenientBody = (props: Record<string, unknown>) => ({ type: "object", strict: "remove", props }) as const;

/** Path parameters, each with the id shape (failures become 400 `invalid_params`). */
export const pathParams = (...names: string[]) => ({ type: "object", props: Object.fromEntries(names.map((n) => [n, pathId])) }) as const;

export const anyQuery = { type: "object", optional: true } as const;

const validator = new Validator({ useNewCustomCheckerFunction: true });
const compiled = new WeakMap<object, (value: unknown) => true | { field?: string; message?: string }[] | Promise<unknown>>();

/** `scopes[0].name` → ["scopes", 0, "name"]. */
const fieldPath = (field: string | undefined): (string | number)[] =>
  String(field ?? "")
    .split(/[.[\]]/)
    .filter(Boolean)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));

/**
 * Validates a body inside a handler, for routes whose order of checks puts something (such as the
 * zone's existence) before the body schema. Failures are 400 with `code` and every issue listed.
 */
export function checkBody(schema: { props: Record<string, unknown> } & Record<string, unknown>, body: unknown, code: string): void {
  let check = compiled.get(schema);
  if (!check) {
    check = validator.compile({ $$root: true, ...schema }) as any;
    compiled.set(schema, check!);
  }
  const res = check!(body);
  if (res === true) return;
  const issues: Issue[] = (res as { type?: string; field?: string; actual?: unknown; message?: string }[]).flatMap((e) => {
    const path = fieldPath(e.field);
    // A strict object names its unknown keys in `actual`: one issue per key, at the key's own path.
    if (e.type === "objectStrict" && typeof e.actual === "string") return e.actual.split(", ").map((key) => ({ path: [...path, key], message: "is not an allowed field" }));
    return [{ path, message: String(e.message ?? "invalid") }];
  });
  throw invalid(code, issues);
}
