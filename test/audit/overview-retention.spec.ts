// The zone overview (§6), audit retention (§10, case 33) and the operational routes with the audit process
// in the cluster (cases 28–30), against the real servers.
import { startCluster, eventually, type Cluster } from "../helpers/cluster";
import { auditEntry, decisionEvent, publishAudit, AUDIT_STREAM } from "../../deploy/emit/audit";
import { AUDIT_KEY, publishDecisions, replaceAudit, testRedis, waitForAudit, zoneId } from "./helpers";

const redis = testRedis();
afterAll(() => redis.disconnect());

describe("with every service (dev mode)", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ processes: ["zones", "applications", "providers", "policies", "audit"] });
  }, 90_000);
  afterAll(async () => {
    await c.stop();
  });
  const get = (path: string, token?: string) => c.http().get(path).set(c.auth(token));
  const send = (method: "post" | "patch" | "put" | "delete", path: string, body?: unknown, token?: string) => c.http()[method](path).set(c.auth(token)).send(body as object);

  test("the overview counts what the owning services hold, decisions of the last 24 h and the 10 latest events", async () => {
    const z = (await send("post", "/v1/zones", { name: "Overview", dcr_enabled: true })).body.id as string;
    const apps: string[] = [];
    for (const name of ["a", "b", "c"]) apps.push((await send("post", `/v1/zones/${z}/applications`, { name, registration_method: "managed" })).body.id as string);
    expect((await send("delete", `/v1/zones/${z}/applications/${apps[2]}`)).status).toBe(204);
    expect((await send("post", `/v1/zones/${z}/applications/dcr`, { name: "short", expires_in: 60 })).status).toBe(201);
    const provider = (await send("post", `/v1/zones/${z}/providers`, { name: "key", kind: "api_key", config_json: { header_name: "Authorization", auth_scheme: "Bearer", api_key: "k" } })).body.id as string;
    await send("post", `/v1/zones/${z}/providers`, { name: "gone", kind: "caracal_mandate" }).then((r) => send("delete", `/v1/zones/${z}/providers/${r.body.id}`));
    const resource = (id: string, enforcement: string) => send("post", `/v1/zones/${z}/resources`, { identifier: `resource://${id}`, upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: apps[0], operation_enforcement: enforcement });
    expect((await resource("one", "enforced")).status).toBe(201);
    const loose = (await resource("two", "transport_uniform")).body.id as string;
    expect((await resource("three", "transport_uniform")).status).toBe(201);
    expect((await send("patch", `/v1/zones/${z}/resources/${loose}`, { operation_enforcement: "enforced" })).status).toBe(200);
    const header = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n";
    const pv = (await send("post", `/v1/zones/${z}/policies`, { name: "apps", content: `${header}app_ids := {}\n` })).body.version_id as string;
    const sets: string[] = [];
    for (const name of ["zeta", "alpha"]) sets.push((await send("post", `/v1/zones/${z}/policy-sets`, { name })).body.id as string);
    const version = (await send("post", `/v1/zones/${z}/policy-sets/${sets[0]}/versions`, { manifest: [{ policy_version_id: pv }] })).body.id as string;
    expect((await send("post", `/v1/zones/${z}/policy-sets/${sets[0]}/activate`, { version_id: version })).status).toBe(202);

    const now = Date.now();
    await publishDecisions(c, redis, [
      ...Array.from({ length: 9 }, (_, i) => ({ zoneId: z, decision: "allow" as const, at: new Date(now - 3600_000 - i * 1000) })),
      ...Array.from({ length: 3 }, (_, i) => ({ zoneId: z, decision: "deny" as const, at: new Date(now - 60_000 - i * 1000) })),
      { zoneId: z, decision: "deny", at: new Date(now - 49 * 3600_000) },
    ]);
    await waitForAudit(c, z, 13);

    const expected = {
      zone_id: z,
      generated_at: expect.stringMatching(/Z$/),
      applications: { total: 3, expired: 0, expiring_soon: 1 },
      resources: { total: 3, unenforced: 1 },
      providers: { total: 1 },
      policy_sets: { total: 2, enforcing: 1, active_name: "zeta" },
      sessions: { active: 0 },
      decisions_24h: { allowed: 9, denied: 3 },
      recent_events: expect.any(Array),
    };
    const o = await get(`/v1/zones/${z}/overview`);
    expect(o.status).toBe(200);
    expect(o.body).toEqual(expected);
    expect(o.body.recent_events).toHaveLength(10);
    expect(o.body.recent_events.map((e: any) => e.decision).slice(0, 3)).toEqual(["deny", "deny", "deny"]);
    expect(Object.keys(o.body.recent_events[0]).sort()).toEqual(["decision", "event_type", "id", "metadata_json", "occurred_at", "request_id"]);
    expect(o.body.recent_events[0].metadata_json.session_id).toBe("[redacted]");

    // Counters lost (a Redis without persistence, say) are recounted from the stores once.
    const keys = await redis.keys(`*zonestats*{${z}}*`);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    await redis.del(...keys);
    expect((await get(`/v1/zones/${z}/overview`)).body).toEqual(expected);
  });

  test("an unknown zone has zero counts; a malformed id is 400 invalid_params", async () => {
    const o = await get(`/v1/zones/${zoneId("nowhere")}/overview`);
    expect(o.status).toBe(200);
    expect(o.body).toMatchObject({ applications: { total: 0, expired: 0, expiring_soon: 0 }, resources: { total: 0, unenforced: 0 }, providers: { total: 0 }, policy_sets: { total: 0, enforcing: 0, active_name: null }, sessions: { active: 0 }, decisions_24h: { allowed: 0, denied: 0 }, recent_events: [] });
    expect((await get("/v1/zones/bad%20id/overview")).body.error).toBe("invalid_params");
  });

  test("audit retention: defaults, update, the ceiling, bad bodies, and the token gates (case 33)", async () => {
    expect((await get("/v1/audit-retention")).body).toEqual({ retention_days: 365, max_days: 365, updated_at: null });
    const put = await send("put", "/v1/audit-retention", { retention_days: 30 });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ retention_days: 30, max_days: 365, updated_at: expect.stringMatching(/Z$/) });
    expect((await get("/v1/audit-retention")).body.retention_days).toBe(30);
    const above = await send("put", "/v1/audit-retention", { retention_days: 400 });
    expect([above.status, above.body.error, above.body.details]).toEqual([400, "retention_above_limit", { max_days: 365 }]);
    for (const body of [{ retention_days: 0 }, { retention_days: 1.5 }, { retention_days: "30" }, { retention_days: 30, extra: 1 }, {}]) {
      const r = await send("put", "/v1/audit-retention", body);
      expect([r.status, r.body.error]).toEqual([400, "invalid_body"]);
    }
    const z = (await send("post", "/v1/zones", { name: "Gated" })).body.id as string;
    const zoneToken = (await send("post", "/v1/admin-tokens", { name: "zt", scope: "zone", zone_id: z })).body.token as string;
    const readToken = (await send("post", "/v1/admin-tokens", { name: "rt", scope: "global", capability: "read" })).body.token as string;
    expect((await get(`/v1/zones/${zoneId()}/audit`, zoneToken)).body.error).toBe("admin_token_zone_mismatch");
    expect((await get("/v1/audit-retention", zoneToken)).body.error).toBe("admin_token_zone_mismatch");
    expect((await send("put", "/v1/audit-retention", { retention_days: 10 }, readToken)).body.error).toBe("admin_token_read_only");
    expect((await get("/v1/audit-retention", readToken)).status).toBe(200);
    expect((await get(`/v1/zones/${z}/audit`, zoneToken)).status).toBe(200);
  });

  test("retention removes whole buckets past it, keeps the rest readable, and ingest goes on meanwhile", async () => {
    expect((await send("put", "/v1/audit-retention", { retention_days: 30 })).status).toBe(200);
    const z = zoneId("ret");
    const old = Date.now() - 40 * 86_400_000;
    let stored = 0;
    const publish = async (n: number, at: (i: number) => number) => {
      for (let i = 0; i < n; i += 100) {
        await publishAudit(redis, Array.from({ length: Math.min(100, n - i) }, (_, k) => auditEntry(decisionEvent({ zoneId: z, at: new Date(at(i + k)) }, i + k), AUDIT_KEY)), c.stream(AUDIT_STREAM));
        // In order: each batch is stored before the next, so the old rows fill the first buckets.
        stored += Math.min(100, n - i);
        await waitForAudit(c, z, stored);
      }
    };
    await publish(600, (i) => old + i * 1000);
    await publish(300, (i) => Date.now() - 60_000 + i);
    const during = publishAudit(redis, Array.from({ length: 50 }, (_, i) => auditEntry(decisionEvent({ zoneId: z }, 1000 + i), AUDIT_KEY)), c.stream(AUDIT_STREAM));
    const pass = await c.brokers.audit!.call<{ buckets: number; rows: number }, {}>("audit.retentionPass", {});
    await during;
    // 900 rows in buckets of 64: the first nine hold only rows past the retention; the tenth (576–639)
    // mixes 24 old rows with new ones and stays.
    expect(pass).toEqual({ buckets: 9, rows: 576 });
    const rows = await waitForAudit(c, z, 374);
    expect(rows).toHaveLength(374);
    expect(rows.filter((r) => Date.parse(r.occurred_at) < Date.now() - 30 * 86_400_000)).toHaveLength(24);
    const page = await get(`/v1/zones/${z}/audit?limit=100&until=${new Date(Date.now() - 30 * 86_400_000).toISOString()}`);
    expect(page.body.items).toHaveLength(24);
    expect((await c.brokers.audit!.call<{ buckets: number }, {}>("audit.retentionPass", {})).buckets).toBe(0);
    expect((await send("put", "/v1/audit-retention", { retention_days: 365 })).status).toBe(200);
  }, 60_000);

  test("/health, /ready with the audit service and without it, /docs in dev mode (cases 28, 30)", async () => {
    expect((await c.http().get("/health")).body).toEqual({ ok: true });
    expect((await c.http().get("/ready")).status).toBe(200);
    const docs = await c.http().get("/docs");
    expect(docs.status).toBe(200);
    expect((await c.http().get("/docs/openapi.json")).body.paths["/v1/zones/{zoneId}/audit"]).toBeDefined();
    await c.brokers.audit!.stop();
    const down = await eventually(async () => {
      const r = await c.http().get("/ready");
      return r.status === 503 ? r : undefined;
    }, 20_000, 200);
    expect(down.body).toEqual({ ok: false, error: "services_unavailable", dependency: "services", missing: ["audit"] });
    expect((await c.http().get("/health")).status).toBe(200);
    // Writes go on while the audit service is down (their admin-audit records wait in Redis).
    expect((await send("post", "/v1/zones", { name: "Still writable" })).status).toBe(201);
    expect((await get(`/v1/zones/${zoneId()}/audit`)).status).toBe(503);
    await replaceAudit(c);
  }, 60_000);
});

describe("in release mode (cases 29, 30)", () => {
  let c: Cluster;
  const BEARER = "metrics-bearer-for-tests-0001";
  beforeAll(async () => {
    c = await startCluster({ processes: ["zones", "audit"], env: { CARACAL_MODE: "stable", METRICS_BEARER: BEARER } });
  }, 60_000);
  afterAll(async () => {
    await c.stop();
    process.env.CARACAL_MODE = "dev";
  });

  test("/metrics needs the bearer exactly; without one configured it is always 401; /docs is 404", async () => {
    for (const auth of [undefined, `Bearer ${BEARER.slice(0, -1)}`, `Bearer ${BEARER}x`, BEARER]) {
      const r = await c.http().get("/metrics").set(auth ? { Authorization: auth } : {});
      expect([r.status, r.body.error]).toEqual([401, "unauthorized"]);
    }
    const ok = await c.http().get("/metrics").set({ Authorization: `Bearer ${BEARER}` });
    expect(ok.status).toBe(200);
    expect(ok.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(ok.text).toContain("# TYPE caracal_api_outbox_dead_total gauge");
    expect((await c.http().get("/docs")).status).toBe(404);
    // The same gateway with no bearer configured: published mode refuses every scrape.
    const { resetConfig } = await import("../../shared/config");
    delete process.env.METRICS_BEARER;
    resetConfig();
    try {
      expect((await c.http().get("/metrics").set({ Authorization: `Bearer ${BEARER}` })).status).toBe(401);
    } finally {
      process.env.METRICS_BEARER = BEARER;
      resetConfig();
    }
  });
});
