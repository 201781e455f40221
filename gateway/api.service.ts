// The HTTP gateway: /v1 aliases onto service actions, admin auth, the error envelope, health and metrics.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Context, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import { randomUUID, timingSafeEqual } from "node:crypto";
import client from "prom-client";
import type Redis from "ioredis";
import { config } from "../shared/config";
import { redisClient } from "../shared/redis";
import { PATH_ID_PATTERN } from "../shared/ids";
import { AppError } from "../shared/errors";
import type { Actor } from "../shared/actor";
import { ROUTES, routeFor, methodsForPath, routedServices } from "./routes";
import { toEnvelope } from "./errors";
import { bearerToken, lookupDigest } from "./tokens";
import { checkSystemZoneGate, checkTokenGates, zoneIdOfPath } from "./gates";
import { countInWindow, enforceLimit, rateLimited } from "./limits";
import { buildOpenApi, docsPage, DOCS_INIT_JS } from "./openapi";
import { API_MODULES } from "./api-modules";
import type { EmbeddedPrometheusReporter } from "../shared/broker";

type Req = IncomingMessage & { $ctx?: Context<any, any>; $actor?: Actor; $requestId?: string; $route?: unknown; body?: unknown; query?: Record<string, unknown>; originalUrl?: string; parsedUrl?: string };
type Res = ServerResponse;
type Next = (err?: unknown) => void;

const SYSTEM_ZONE_CACHE_MS = 30_000;

/** Where swagger-ui-dist keeps its built files (a dependency, read when /docs is first asked for). */
const swaggerUiDir = (): string => (require("swagger-ui-dist") as { getAbsoluteFSPath: () => string }).getAbsoluteFSPath();
const ACTOR_MEMO_MS = 1_000;

function pathOf(req: Req): string {
  const url = req.originalUrl ?? req.url ?? "/";
  const q = url.indexOf("?");
  const p = q === -1 ? url : url.slice(0, q);
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const payload = status === 204 ? "" : JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...headers });
  res.end(payload);
}

const ApiService: ServiceSchema<any> = {
  name: "api",
  mixins: [ApiGateway as unknown as ServiceSchema],

  settings: {
    port: config().port,
    ip: config().host,
    logRequest: null,
    logResponse: null,
    // Bodies carry secrets (client secrets, provider credentials): never log params or response data.
    logRequestParams: null,
    logResponseData: null,
    log4XXResponses: false,
    logRouteRegistration: false,
    // Runs before anything else for every request: the request id and the /v1 security headers.
    rootCallOptions(this: any, options: Record<string, unknown>, req: Req, res: Res) {
      const given = req.headers["x-request-id"];
      const requestId = typeof given === "string" && PATH_ID_PATTERN.test(given) ? given : randomUUID();
      options.requestID = requestId;
      req.$requestId = requestId;
      res.setHeader("X-Request-Id", requestId);
      if ((req.url ?? "").startsWith("/v1")) {
        res.setHeader("Cache-Control", "no-store");
        res.setHeader("X-Content-Type-Options", "nosniff");
        res.setHeader("Referrer-Policy", "no-referrer");
      }
      this.observe(req, res);
    },
    onError(this: any, req: Req, res: Res, err: any) {
      this.sendEnvelope(req, res, err);
    },
    routes: [
      {
        name: "ops",
        path: "/",
        mappingPolicy: "restrict",
        autoAliases: false,
        bodyParsers: false,
        aliases: {
          "GET health": (req: Req, res: Res) => sendJson(res, 200, { ok: true }),
          "GET ready"(this: any, req: Req, res: Res) {
            return this.ready(req, res);
          },
          "GET metrics"(this: any, req: Req, res: Res) {
            return this.metricsEndpoint(req, res);
          },
          "GET docs"(this: any, req: Req, res: Res) {
            return this.docs(req, res, "html");
          },
          "GET docs/openapi.json"(this: any, req: Req, res: Res) {
            return this.docs(req, res, "json");
          },
          "GET docs/init.js"(this: any, req: Req, res: Res) {
            return this.docs(req, res, "init.js");
          },
          "GET docs/swagger-ui.css"(this: any, req: Req, res: Res) {
            return this.docs(req, res, "swagger-ui.css");
          },
          "GET docs/swagger-ui-bundle.js"(this: any, req: Req, res: Res) {
            return this.docs(req, res, "swagger-ui-bundle.js");
          },
        },
      },
      {
        name: "v1",
        path: "/v1",
        mappingPolicy: "restrict",
        autoAliases: false,
        mergeParams: false,
        bodyParsers: { json: { strict: true, limit: config().bodyLimitBytes }, urlencoded: false },
        use: [
          function mediaType(this: any, req: Req, res: Res, next: Next) {
            this.checkMediaType(req).then(() => next(), next);
          },
          function admission(this: any, req: Req, res: Res, next: Next) {
            this.admit(req).then(() => next(), next);
          },
        ],
        aliases: Object.fromEntries(ROUTES.map((r) => [`${r.method} ${r.path}`, r.action])),
        onBeforeCall(this: any, ctx: Context<any, any>, route: unknown, req: Req) {
          ctx.meta.actor = req.$actor;
          if (routeFor(req.method ?? "GET", pathOf(req))?.negotiates && typeof req.headers.accept === "string") ctx.meta.accept = req.headers.accept;
        },
        onAfterCall(this: any, ctx: Context<any, any>, route: unknown, req: Req, res: Res, data: any) {
          if (data && typeof data === "object" && "next_cursor" in data && data.next_cursor) {
            res.setHeader("Link", this.nextLink(req, data.next_cursor));
          }
          return data;
        },
        onError(this: any, req: Req, res: Res, err: any) {
          this.sendEnvelope(req, res, err);
        },
      },
    ],
  },

  events: {
    "adminTokens.revoked"(this: any) {
      this.actorMemo.clear();
    },
  },

  methods: {
    /** Per-request bookkeeping: latency histogram, counter and one log line when the response ends. */
    observe(this: any, req: Req, res: Res) {
      const started = process.hrtime.bigint();
      res.once("finish", () => {
        const path = pathOf(req);
        const route = routeFor(req.method ?? "GET", path);
        const label = route ? `/v1${route.path}` : path.startsWith("/v1") ? "unmatched" : path;
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const labels = { method: req.method ?? "GET", route: label, status: String(res.statusCode) };
        this.httpRequests.inc(labels);
        this.httpLatency.observe(labels, seconds);
        if (res.statusCode >= 500) this.logger.error({ request_id: req.$requestId, ...labels, ms: Math.round(seconds * 1000) }, "request failed");
        else if (this.settings.$logEachRequest) this.logger.info({ request_id: req.$requestId, ...labels, ms: Math.round(seconds * 1000) }, "request");
      });
    },

    sendEnvelope(this: any, req: Req, res: Res, err: any) {
      const path = pathOf(req);
      let error = err;
      // moleculer-web's own "not found" means no alias matched: a known path with another method is 405.
      if (err?.name === "NotFoundError" && err?.type === "NOT_FOUND") {
        const allowed = methodsForPath(path);
        error = allowed.length
          ? Object.assign(new AppError(405, "method_not_allowed", `${req.method} is not allowed here`), { allow: allowed })
          : new AppError(404, "route_not_found", `No route ${req.method} ${path}`);
        if (allowed.length) res.setHeader("Allow", [...new Set(allowed)].join(", "));
      }
      const route = routeFor(req.method ?? "GET", path);
      const envelope = toEnvelope(error, req.$requestId ?? randomUUID(), route?.bodyError);
      if (envelope.status >= 500) this.logger.error({ request_id: req.$requestId, err: { name: err?.name, message: err?.message, type: err?.type } }, "request error");
      sendJson(res, envelope.status, envelope.body, envelope.headers);
    },

    /** JSON bodies only: a body with another content type is refused before anything else reads it. */
    async checkMediaType(req: Req) {
      const method = req.method ?? "GET";
      if (method === "GET" || method === "HEAD" || method === "DELETE") return;
      const length = Number(req.headers["content-length"] ?? 0);
      const hasBody = length > 0 || req.headers["transfer-encoding"] !== undefined;
      if (!hasBody) return;
      const type = String(req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
      if (type !== "application/json") throw new AppError(415, "unsupported_media_type", "Send the body as application/json");
    },

    /** Per-IP limit, authentication, the gates in order, then the per-actor limit. */
    async admit(req: Req) {
      const cfg = config();
      const redis: Redis = this.redis;
      const ip = req.socket.remoteAddress ?? "unknown";
      await enforceLimit(redis, `${cfg.namespace}:api:v1_rl:ip`, ip, cfg.rateLimitPerMin);

      const method = req.method ?? "GET";
      const path = pathOf(req);
      const route = routeFor(method, path);
      if (route?.public) return;

      const token = bearerToken(req.headers.authorization);
      const actor: Actor | null = token ? await this.actorFor(token, req.$requestId) : null;
      if (!actor) {
        const { count, retryAfterSec } = await countInWindow(redis, `${cfg.namespace}:api:auth_fail:ip`, ip);
        if (cfg.authFailLimitPerMin > 0 && count > cfg.authFailLimitPerMin) throw rateLimited(retryAfterSec);
        throw new AppError(401, "invalid_admin_token", "A valid admin bearer token is required");
      }
      checkTokenGates(actor, method, path);
      const zoneId = zoneIdOfPath(path);
      if (zoneId && method !== "GET" && method !== "HEAD" && !actor.bootstrap) {
        checkSystemZoneGate(actor, method, path, await this.zoneIsReserved(zoneId));
      }
      await enforceLimit(redis, `${cfg.namespace}:api:v1_rl:actor`, actor.id, cfg.actorRateLimitPerMin);
      req.$actor = actor;
    },

    /**
     * The actor of a bearer token. The adminTokens service owns verification (Argon2id once, row
     * re-read every 5 s); this per-request memo of one second saves the action call on the hot path
     * and is dropped with every revocation broadcast.
     */
    async actorFor(token: string, requestId: string | undefined): Promise<Actor | null> {
      const digest = lookupDigest(token);
      const hit = this.actorMemo.get(digest);
      if (hit && hit.until > Date.now()) return hit.actor;
      const actor: Actor | null = await this.broker.call("adminTokens.verify", { token }, { requestID: requestId });
      if (actor) {
        if (this.actorMemo.size > 1000) this.actorMemo.clear();
        this.actorMemo.set(digest, { actor, until: Date.now() + ACTOR_MEMO_MS });
      }
      return actor;
    },

    /** Whether a zone is the reserved system zone, cached briefly (it never changes back and forth). */
    async zoneIsReserved(zoneId: string): Promise<boolean> {
      if (!PATH_ID_PATTERN.test(zoneId)) return false;
      const hit = this.reservedZones.get(zoneId);
      if (hit && hit.expires > Date.now()) return hit.reserved;
      const zone = await this.broker.call<{ reserved: boolean } | null, { id: string }>("zones.resolve", { id: zoneId });
      const reserved = Boolean(zone?.reserved);
      this.reservedZones.set(zoneId, { reserved, expires: Date.now() + SYSTEM_ZONE_CACHE_MS });
      if (this.reservedZones.size > 10_000) this.reservedZones.clear();
      return reserved;
    },

    /** `Link` to the next page: the original query with `cursor` and `limit` replaced. */
    nextLink(req: Req, cursor: string): string {
      const url = new URL(req.originalUrl ?? req.url ?? "/", "http://gateway.invalid");
      const limit = url.searchParams.get("limit")?.trim();
      url.searchParams.set("cursor", cursor);
      if (limit) url.searchParams.set("limit", limit);
      return `<${url.pathname}?${url.searchParams.toString()}>; rel="next"`;
    },

    async ready(this: any, req: Req, res: Res) {
      const cfg = config();
      const ip = req.socket.remoteAddress ?? "unknown";
      const fail = (error: string, dependency: string, extra: Record<string, unknown> = {}) => sendJson(res, 503, { ok: false, error, dependency, ...extra });
      if (this.draining) return sendJson(res, 503, { ok: false, draining: true });
      try {
        await this.redis.ping();
      } catch {
        return fail("redis_unreachable", "redis");
      }
      if (cfg.readyRateLimitPerMin > 0) {
        const { count, retryAfterSec } = await countInWindow(this.redis, `${cfg.namespace}:api:ready_rl`, ip);
        if (count > cfg.readyRateLimitPerMin) return sendJson(res, 429, { error: "rate_limited", error_description: "Too many readiness probes", request_id: req.$requestId }, { "Retry-After": String(retryAfterSec) });
      }
      try {
        await this.broker.call("adminTokens.pingStore", {}, { timeout: 5000 });
      } catch {
        return fail("mongo_unreachable", "mongo");
      }
      if (!this.broker.transit?.connected) return fail("nats_unreachable", "nats");
      const missing = this.expectedServices().filter((name: string) => !this.broker.registry.hasService(name));
      if (missing.length) return fail("services_unavailable", "services", { missing });
      try {
        const outbox = await this.outboxTotals();
        if (outbox.dead > 0) return sendJson(res, 503, { ok: false, error: "outbox_dead_messages", dependency: "outbox", dead_count: outbox.dead, limit: 0 });
      } catch {
        return fail("outbox_unreachable", "outbox");
      }
      sendJson(res, 200, { ok: true });
    },

    /** Every service the route table names, or the READY_SERVICES list when a deployment runs fewer. */
    expectedServices(): string[] {
      return config().readyServices ?? routedServices().filter((s) => s !== "adminTokens");
    },

    /** Sums the outbox health of every service that has one. */
    async outboxTotals() {
      const totals = { pending: 0, dead: 0, oldestPendingAgeSec: 0, oldestDeadAgeSec: 0, unrecorded: 0 };
      const names: string[] = this.broker.registry
        .getActionList({ onlyAvailable: true, skipInternal: true })
        .map((a: { name: string }) => a.name)
        .filter((n: string) => n.endsWith(".outboxHealth"));
      for (const name of [...new Set(names)]) {
        const h: { pending: number; dead: number; oldestPendingAgeSec: number; oldestDeadAgeSec: number; unrecorded?: number } = await this.broker.call(name, {}, { timeout: 5000 });
        totals.pending += h.pending;
        totals.unrecorded += h.unrecorded ?? 0;
        totals.dead += h.dead;
        totals.oldestPendingAgeSec = Math.max(totals.oldestPendingAgeSec, h.oldestPendingAgeSec);
        totals.oldestDeadAgeSec = Math.max(totals.oldestDeadAgeSec, h.oldestDeadAgeSec);
      }
      return totals;
    },

    async metricsEndpoint(this: any, req: Req, res: Res) {
      const cfg = config();
      const unauthorized = () => sendJson(res, 401, { error: "unauthorized", error_description: "metrics bearer required", request_id: req.$requestId });
      if (cfg.metricsBearer) {
        const expected = Buffer.from(`Bearer ${cfg.metricsBearer}`);
        const given = Buffer.from(String(req.headers.authorization ?? ""));
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) return unauthorized();
      } else if (cfg.release) {
        return unauthorized();
      }
      try {
        const outbox = await this.outboxTotals();
        this.outboxGauges.pending.set(outbox.pending);
        this.outboxGauges.dead.set(outbox.dead);
        this.outboxGauges.oldestPending.set(outbox.oldestPendingAgeSec);
        this.outboxGauges.oldestDead.set(outbox.oldestDeadAgeSec);
        this.outboxGauges.unrecorded.set(outbox.unrecorded);
      } catch (err) {
        return sendJson(res, 500, { error: "internal_error", error_description: "outbox health unavailable", request_id: req.$requestId });
      }
      const reporter: EmbeddedPrometheusReporter | undefined = this.broker.metrics?.reporter?.[0];
      const body = (await this.registry.metrics()) + "\n" + (reporter ? reporter.text() : "");
      res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
      res.end(body);
    },

    /** /docs: Swagger UI over /docs/openapi.json, its two assets read from swagger-ui-dist once. */
    docs(this: any, req: Req, res: Res, what: "html" | "json" | "init.js" | "swagger-ui.css" | "swagger-ui-bundle.js") {
      if (!config().docsEnabled) return this.sendEnvelope(req, res, new AppError(404, "route_not_found", "docs are off in release mode"));
      res.setHeader("X-Content-Type-Options", "nosniff");
      if (what === "json") {
        this.openApi ??= buildOpenApi(ROUTES, API_MODULES, { version: process.env.CARACAL_VERSION ?? "0.0.0-dev" });
        return sendJson(res, 200, this.openApi);
      }
      const types = { html: "text/html", "init.js": "text/javascript", "swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript" } as const;
      let body: string | Buffer;
      if (what === "html") body = docsPage("Caracal control plane API");
      else if (what === "init.js") body = DOCS_INIT_JS;
      else body = this.docAssets[what] ??= readFileSync(join(swaggerUiDir(), what));
      res.writeHead(200, {
        "Content-Type": `${types[what]}; charset=utf-8`,
        "Cache-Control": "no-cache",
        // The page runs only these same-origin scripts; try-it-out calls this same origin.
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
      });
      res.end(body);
    },
  },

  created(this: any) {
    this.docAssets = {};
    this.reservedZones = new Map();
    this.actorMemo = new Map();
    this.draining = false;
    this.registry = new client.Registry();
    client.collectDefaultMetrics({ register: this.registry, prefix: "caracal_gateway_" });
    this.httpRequests = new client.Counter({ name: "caracal_http_requests_total", help: "HTTP requests by route and status", labelNames: ["method", "route", "status"], registers: [this.registry] });
    this.httpLatency = new client.Histogram({
      name: "caracal_http_request_duration_seconds",
      help: "HTTP request latency by route and status",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    const gauge = (name: string, help: string) => new client.Gauge({ name, help, registers: [this.registry] });
    this.outboxGauges = {
      pending: gauge("caracal_api_outbox_pending_total", "Outbox entries not yet published (including those waiting to retry)"),
      dead: gauge("caracal_api_outbox_dead_total", "Outbox entries that gave up after the maximum attempts"),
      oldestPending: gauge("caracal_api_outbox_oldest_pending_age_seconds", "Age of the oldest pending outbox entry"),
      oldestDead: gauge("caracal_api_outbox_oldest_dead_age_seconds", "Age of the oldest dead outbox entry"),
      unrecorded: gauge("caracal_api_outbox_unrecorded_documents", "Documents whose published entries are not yet marked in the document (results held in Redis)"),
    };
  },

  started(this: any) {
    this.redis = redisClient();
  },

  stopped(this: any) {
    this.draining = true;
    // Keep-alive sockets would otherwise hold the close open until clients hang up.
    this.server?.closeIdleConnections?.();
  },
};

export default ApiService;
