// The request id of the call being served, carried through async work so every log line can show it.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Middleware } from "moleculer";

export const requestContext = new AsyncLocalStorage<{ requestId: string }>();

/** Runs every local action and event handler inside its request's context. */
export const RequestContextMiddleware: Middleware = {
  name: "RequestContext",
  localAction(next: (ctx: any) => Promise<unknown>) {
    return (ctx: any) => (ctx.requestID ? requestContext.run({ requestId: ctx.requestID }, () => next(ctx)) : next(ctx));
  },
  localEvent(next: (ctx: any) => Promise<unknown>) {
    return (ctx: any) => (ctx.requestID ? requestContext.run({ requestId: ctx.requestID }, () => next(ctx)) : next(ctx));
  },
} as unknown as Middleware;

/** Pino `mixin`: adds `request_id` to a log line written while serving a request. */
export function requestIdMixin(): Record<string, string> {
  const store = requestContext.getStore();
  return store ? { request_id: store.requestId } : {};
}
