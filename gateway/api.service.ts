// The HTTP gateway: /v1 aliases onto service actions, admin auth, the error envelope, health and metrics.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Context, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import { randomUUID, timingSafeEqual } from "node:crypto";
import client from "prom-client";
import type Redis from "ioredis";
import { config } from "../shared/config";
import { redisClient } from "../shared/redis";
import { AppError } from "../shared/errors";
import { PATH_ID_PATTERN } from "../shared/ids";
import type { Actor } from "../shared/actor";
import { ROUTES, routeFor, routedServices } from "./routes";
import { toEnvelope } from "./errors";
import { bearerToken, lookupDigest } from "./tokens";
import { checkSystemZoneGate, checkTokenGates, zoneIdOfPath } from "./gates";
import { countInWindow, enforceLimit, rateLimited } from "./limits";
import { allowedMethods, bodyShapeProblem } from "./edge";
import { FrontDoorMixin } from "./front-door.mixin";
import { IdempotencyStore, parseIdempotencyKey } from "./idempotency";
import { requestPath, sendJson, unavailable, type Next, type Req, type Res } from "./http";
import { buildOpenApi, docsPage, DOCS_INIT_JS } from "./openapi";
import { API_MODULES } from "./api-modules";
import type { EmbeddedPrometheusReporter } from "../shared/broker";
import { rawAlias, serveZoneEventStream, startAuditHooks, stopAuditHooks } from "./audit-hooks";

const SYSTEM_ZONE_CACHE_MS = 30_000;

/** Where swagger-ui-dist keeps its built files (a dependency, read when /docs is first asked for). */
const swaggerUiDir = (): string => (require("swagger-ui-dist") as { getAbsoluteFSPath: () => string }).getAbsoluteFSPath();
const ACTOR_MEMO_MS = 1_000;

const WRITE_METHODS = new Set(["POST", "PATCH", "DELETE"]);

/** Routes outside /v1 (GET only; the front door also answers HEAD and OPTIONS for them). */
const OPS_ALIASES: Record<string, (this: any, req: Req, res: Res) => unknown> = {
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
};

/** Their paths, which the front door routes and metrics label as they are. */
const OPS_PATHS = new Set(Object.keys(OPS_ALIASES).map((k) => "/" + k.split(" ")[1]));

const ApiService: ServiceSchema<any> = {
  name: "api",
  // The front door first: its createServer replaces moleculer-web's.
  mixins: [FrontDoorMixin(OPS_PATHS), ApiGateway as unknown as ServiceSchema],

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
    // The request id was fixed by the front door (frontDoor) before moleculer-web saw the request.
    rootCallOptions(this: any, options: Record<string, unknown>, req: Req) {
      options.requestID = req.$requestId;
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
        aliases: OPS_ALIASES,
      },
      {
        name: "v1",
        path: "/v1",
        mappingPolicy: "restrict",
        autoAliases: false,
        mergeParams: false,
        // Encoded bodies never get here (the front door answers 415), so nothing is inflated.
        bodyParsers: { json: { strict: true, limit: config().bodyLimitBytes, inflate: false }, urlencoded: false },
        use: [
          function bodyShape(this: any, req: Req, res: Res, next: Next) {
            const route = routeFor(req.method ?? "GET", requestPath(req));
            const problem = bodyShapeProblem(req.body, route?.bodyError ?? "invalid_body");
            next(problem ?? undefined);
          },
          function admission(this: any, req: Req, res: Res, next: Next) {
            this.admit(req, res).then((answered: boolean) => (answered ? undefined : next()), next);
          },
        ],
        aliases: Object.fromEntries(ROUTES.map((r) => [`${r.method} ${r.path}`, r.raw ? rawAlias(r.raw) : r.action])),
        onBeforeCall(this: any, ctx: Context<any, any>, route: unknown, req: Req) {
          ctx.meta.actor = req.$actor;
          if (req.$idempotency) ctx.meta.idempotency = req.$idempotency.meta;
          if (routeFor(req.method ?? "GET", requestPath(req))?.negotiates && typeof req.headers.accept === "string") ctx.meta.accept = req.headers.accept;
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
    sendEnvelope(this: any, req: Req, res: Res, err: any) {
      const path = requestPath(req);
      let error = err;
      // moleculer-web's own "not found" (the front door routes first, so rarely): 404 or 405.
      if (err?.name === "NotFoundError" && err?.type === "NOT_FOUND") {
        const allowed = allowedMethods(path, OPS_PATHS);
        error = allowed.length
          ? new AppError(405, "method_not_allowed", `${req.method} is not allowed here`)
          : new AppError(404, "route_not_found", `No route ${req.method} ${path}`);
        if (allowed.length && !res.headersSent) res.setHeader("Allow", allowed.join(", "));
      }
      const route = routeFor(req.method ?? "GET", path);
      const envelope = toEnvelope(error, req.$requestId ?? randomUUID(), route?.bodyError);
      if (envelope.status >= 500) this.logger.error({ request_id: req.$requestId, err: { name: err?.name, message: err?.message, type: err?.type } }, "request error");
      // A body over the limit that was being read (chunked) is left unread: the connection cannot go on.
      if (envelope.status === 413 && !res.headersSent && req.headers["content-length"] === undefined) res.setHeader("Connection", "close");
      sendJson(res, envelope.status, envelope.body, envelope.headers);
    },

    zoneEventStream(this: any, req: Req, res: Res) {
      serveZoneEventStream(this, req, res, (err) => this.sendEnvelope(req, res, err));
    },

    /** Authentication, the gates in order, the per-actor limit, then Idempotency-Key. True when answered (a replay). */
    async admit(this: any, req: Req, res: Res): Promise<boolean> {
      const cfg = config();
      const redis: Redis = this.redis;
      const ip = req.socket.remoteAddress ?? "unknown";
      const method = req.method ?? "GET";
      const path = requestPath(req);
      const route = routeFor(method, path);
      if (route?.public) return false;

      const token = bearerToken(req.headers.authorization);
      const actor: Actor | null = token ? await this.actorFor(token, req.$requestId) : null;
      if (!actor) {
        const { count, retryAfterSec } = await countInWindow(redis, `${cfg.namespace}:api:auth_fail:ip`, ip).catch((err: unknown) => {
          throw unavailable(err);
        });
        if (cfg.authFailLimitPerMin > 0 && count > cfg.authFailLimitPerMin) throw rateLimited(retryAfterSec);
        throw new AppError(401, "invalid_admin_token", "A valid admin bearer token is required");
      }
      checkTokenGates(actor, method, path);
      const zoneId = zoneIdOfPath(path);
      if (zoneId && method !== "GET" && method !== "HEAD" && !actor.bootstrap) {
        checkSystemZoneGate(actor, method, path, await this.zoneIsReserved(zoneId));
      }
      await enforceLimit(redis, `${cfg.namespace}:api:v1_rl:actor`, actor.id, cfg.actorRateLimitPerMin).catch((err: unknown) => {
        throw unavailable(err);
      });
      req.$actor = actor;
      if (WRITE_METHODS.has(method)) {
        const key = parseIdempotencyKey(req.headers["idempotency-key"]);
        if (key) return this.idempotent(req, res, actor, key, path);
      }
      return false;
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
      this.readyOnce = true;
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
    const cfg = config();
    this.redis = redisClient();
    // An attempt holds its key at most as long as a request can take, with room to spare.
    this.idempotency = new IdempotencyStore(this.redis, cfg.namespace, cfg.idempotencyTtlSec, 2 * cfg.cluster.requestTimeoutMs + 5_000);
    this.draining = false;
    this.readyOnce = false;
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
    Object.assign(this, startAuditHooks(this.redis, this.broker, this.logger));
  },

  async stopped(this: any) {
    // Live streams end first (they would hold the drain open), queued admin-audit records go out last.
    await this.zoneStreams?.stop();
    // Keep-alive sockets would otherwise hold the close open until clients hang up.
    await this.drain(5_000);
    await stopAuditHooks(this);
  },
};

export default ApiService;
