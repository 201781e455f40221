// The request being served (its id, and when its caller stops waiting), carried through async work so
// every log line can show the id and a queued write can tell how long it may wait.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Middleware } from "moleculer";

export const requestContext = new AsyncLocalStorage<{ requestId?: string; deadline?: number }>();

/** What the store holds for one call: the caller's timeout counts from the moment the handler starts. */
function storeOf(ctx: any): { requestId?: string; deadline?: number } | null {
  const timeout = Number(ctx.options?.timeout ?? 0);
  if (!ctx.requestID && !(timeout > 0)) return null;
  return { ...(ctx.requestID ? { requestId: ctx.requestID } : {}), ...(timeout > 0 ? { deadline: Date.now() + timeout } : {}) };
}

/** Runs every local action and event handler inside its request's context. */
export const RequestContextMiddleware: Middleware = {
  name: "RequestContext",
  localAction(next: (ctx: any) => Promise<unknown>) {
    return (ctx: any) => {
      const store = storeOf(ctx);
      return store ? requestContext.run(store, () => next(ctx)) : next(ctx);
    };
  },
  localEvent(next: (ctx: any) => Promise<unknown>) {
    return (ctx: any) => (ctx.requestID ? requestContext.run({ requestId: ctx.requestID }, () => next(ctx)) : next(ctx));
  },
} as unknown as Middleware;

/** Pino `mixin`: adds `request_id` to a log line written while serving a request. */
export function requestIdMixin(): Record<string, string> {
  const id = requestContext.getStore()?.requestId;
  return id ? { request_id: id } : {};
}
