// Shorthands for route params schemas (moleculer-web passes {params, query, body} with mergeParams off).
import { pathId } from "./ids";

/** A strict JSON body: unknown keys are refused (reported as the route's invalid-body code). */
export const strictBody = (props: Record<string, unknown>) => ({ type: "object", strict: true, props }) as const;

/** A lenient JSON body: unknown top-level keys are dropped, as the reference does for providers/resources. */
export const lenientBody = (props: Record<string, unknown>) => ({ type: "object", strict: "remove", props }) as const;

/** Path parameters, each with the id shape (failures become 400 `invalid_params`). */
export const pathParams = (...names: string[]) => ({ type: "object", props: Object.fromEntries(names.map((n) => [n, pathId])) }) as const;

export const anyQuery = { type: "object", optional: true } as const;
