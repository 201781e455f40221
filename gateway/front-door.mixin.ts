// The gateway's front door, as a mixin of the api service: its own HTTP server (time limits, connection
// cap), the checks every request passes before moleculer-web routes it, per-request metrics and log
// line, the Idempotency-Key wrapper around an answer, and draining at shutdown.
import type { ServiceSchema } from "moleculer";
import { randomUUID } from "node:crypto";
import { config } from "../shared/config";
import { PATH_ID_PATTERN } from "../shared/ids";
import { AppError } from "../shared/errors";
import type { Actor } from "../shared/actor";
import { methodsForPath, routeFor } from "./routes";
import { enforceLimit } from "./limits";
import { allowedMethods, bodyHeaderProblem, UNCOUNTED_PATHS, urlProblem } from "./edge";
import { createGatewayServer } from "./http-server";
import { fingerprint, type IdempotencyStore, type StoredResponse } from "./idempotency";
import { requestPath, unavailable, type Req, type Res } from "./http";

/** Methods that become a label value as they are; anything else is "other" (labels stay a fixed set). */
const LABELLED_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** `opsPaths`: the paths outside /v1 the gateway serves (GET), routed and labelled as they are. */
export function FrontDoorMixin(opsPaths: ReadonlySet<string>): Partial<ServiceSchema> {
  return {
    methods: {
      /** moleculer-web's handler for errors it catches itself; ours logs once, in the envelope's terms. */
      errorHandler(this: any, req: Req, res: Res, err: unknown) {
        this.sendEnvelope(req, res, err);
      },

      /** Replaces moleculer-web's server: ours has the time limits, the connection cap and the front door. */
      createServer(this: any) {
        this.gatewayServer = createGatewayServer(config().http, (req, res) => this.frontDoor(req, res));
        this.server = this.gatewayServer.server;
        this.isHTTPS = false;
      },

      /**
       * Every request starts here: its id and headers, then the checks that need neither a token nor a
       * service (per-IP budget, URL, method, body headers); what passes goes on to moleculer-web.
       */
      async frontDoor(this: any, req: Req, res: Res) {
        const given = req.headers["x-request-id"];
        req.$requestId = typeof given === "string" && PATH_ID_PATTERN.test(given) ? given : randomUUID();
        req.$method = req.method ?? "GET";
        res.setHeader("X-Request-Id", req.$requestId);
        res.setHeader("X-Content-Type-Options", "nosniff");
        if ((req.url ?? "").startsWith("/v1")) {
          res.setHeader("Cache-Control", "no-store");
          res.setHeader("Referrer-Policy", "no-referrer");
        }
        if (this.draining) res.setHeader("Connection", "close");
        this.observe(req, res);
        try {
          if (await this.screen(req, res)) return;
        } catch (err) {
          // Node reads and drops an unread body after the answer, keeping the connection; a large one is
          // not worth reading (closing instead may reset the connection under the client's upload).
          const declared = Number(req.headers["content-length"] ?? 0);
          if (declared > 4 * config().bodyLimitBytes || (req.headers["transfer-encoding"] !== undefined && (err as AppError)?.code === 413)) res.setHeader("Connection", "close");
          return this.sendEnvelope(req, res, err);
        }
        return this.httpHandler(req, res);
      },

      /** Returns true when it has answered (OPTIONS); throws the rejection; else the request goes on. */
      async screen(this: any, req: Req, res: Res): Promise<boolean> {
        const cfg = config();
        const path = requestPath(req);
        if (!UNCOUNTED_PATHS.has(path)) {
          const ip = req.socket.remoteAddress ?? "unknown";
          await enforceLimit(this.redis, `${cfg.namespace}:api:v1_rl:ip`, ip, cfg.rateLimitPerMin).catch((err: unknown) => {
            throw unavailable(err);
          });
        }
        const bad = urlProblem(req.url ?? "/");
        if (bad) throw bad;
        const allowed = allowedMethods(path, opsPaths);
        if (!allowed.length) throw new AppError(404, "route_not_found", `No route ${req.$method} ${path}`);
        if (req.$method === "OPTIONS") {
          res.writeHead(204, { Allow: allowed.join(", ") });
          res.end();
          return true;
        }
        if (!allowed.includes(req.$method!)) {
          res.setHeader("Allow", allowed.join(", "));
          throw new AppError(405, "method_not_allowed", `${req.$method} is not allowed here`);
        }
        // Node sends no body for a HEAD request; served as GET it answers like GET, length included.
        if (req.$method === "HEAD") {
          req.method = "GET";
          const end = res.end.bind(res) as (...args: unknown[]) => Res;
          res.end = ((...args: unknown[]) => {
            const chunk = args[0];
            if (!res.headersSent && (typeof chunk === "string" || Buffer.isBuffer(chunk))) res.setHeader("Content-Length", Buffer.byteLength(chunk));
            return end(...args);
          }) as Res["end"];
        }
        const body = bodyHeaderProblem(req.method!, req.headers, cfg.bodyLimitBytes);
        if (body) throw body;
        return false;
      },

      /** Per-request bookkeeping: latency histogram, counter and one log line when the response ends. */
      observe(this: any, req: Req, res: Res) {
        const started = process.hrtime.bigint();
        res.once("finish", () => {
          const path = requestPath(req);
          const method = req.$method ?? req.method ?? "GET";
          // Label values come from fixed sets only (templates, not paths), so no client can add series.
          // OPTIONS and 405s take the template of a route on the same path.
          const route = path.startsWith("/v1") ? (routeFor(req.method ?? "GET", path) ?? routeFor(methodsForPath(path)[0] ?? "", path)) : undefined;
          const label = route ? `/v1${route.path}` : opsPaths.has(path) ? path : "unmatched";
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          const labels = { method: LABELLED_METHODS.has(method) ? method : "other", route: label, status: String(res.statusCode) };
          this.httpRequests.inc(labels);
          this.httpLatency.observe(labels, ms / 1000);
          this.adminAudit?.record({ method, path, status: res.statusCode, requestId: req.$requestId, actor: req.$actor, body: req.body });
          const line = { request_id: req.$requestId, ...labels, ms: Math.round(ms) };
          const probe = label === "/health" || label === "/ready" || label === "/metrics";
          // /ready answers 503 while the cluster starts: that is expected until it has once been ready.
          if (label === "/ready" && res.statusCode === 503 && !this.readyOnce) this.logger.debug(line, "request");
          else if (res.statusCode >= 500) this.logger.error(line, "request failed");
          else if (probe) this.logger.debug(line, "request");
          else this.logger.info(line, "request");
        });
      },

      /**
       * Idempotency-Key: a replay answers here; a first or retried attempt goes on, and its answer is
       * stored before it is sent, so a retry that arrives right after it already finds it.
       */
      async idempotent(this: any, req: Req, res: Res, actor: Actor, key: string, path: string): Promise<boolean> {
        const store: IdempotencyStore = this.idempotency;
        const begin = await store.begin(actor.id, key, fingerprint(req.method!, path, req.body)).catch((err: unknown) => {
          throw unavailable(err);
        });
        if (begin.kind === "mismatch") throw new AppError(422, "idempotency_key_reused", "This Idempotency-Key was used for a different request");
        if (begin.kind === "in_use") {
          throw Object.assign(new AppError(409, "idempotency_key_in_use", "A request with this Idempotency-Key is still being processed; retry later"), { retryAfter: 1 });
        }
        if (begin.kind === "replay") {
          const r = begin.response;
          res.writeHead(r.status, { "Content-Type": r.content_type || "application/json; charset=utf-8", "Idempotent-Replayed": "true", ...(r.location ? { Location: r.location } : {}) });
          res.end(r.status === 204 ? undefined : r.body);
          return true;
        }
        req.$idempotency = begin.handle;
        const end = res.end.bind(res) as (...args: unknown[]) => Res;
        res.end = ((...args: unknown[]) => {
          const chunk = typeof args[0] === "function" ? undefined : args[0];
          const response: StoredResponse = {
            status: res.statusCode,
            body: typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString("utf8") : "",
            ...(res.getHeader("location") ? { location: String(res.getHeader("location")) } : {}),
            ...(res.getHeader("content-type") ? { content_type: String(res.getHeader("content-type")) } : {}),
          };
          store
            .finish(begin.handle, response)
            .catch((err: Error) => this.logger.warn({ request_id: req.$requestId, err: err.message }, "idempotency record not stored"))
            .finally(() => end(...args));
          return res;
        }) as Res["end"];
        return false;
      },

      /** Shutdown, first step: stop accepting, answer what is in flight (at most `timeoutMs`), then let the broker stop. */
      async drain(this: any, timeoutMs = 10_000) {
        this.draining = true;
        await this.gatewayServer?.drain(timeoutMs);
      },
    },
  };
}
