import { startCluster, type Cluster } from "../helpers/cluster";
import { CONSOLE_LABELS, deriveConsoleToken } from "../../gateway/tokens";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster();
});
afterAll(async () => {
  await c.stop();
});

const mint = async (body: Record<string, unknown>) => {
  const r = await c.http().post("/v1/admin-tokens").set(c.auth()).send(body);
  expect(r.status).toBe(201);
  return r.body as { id: string; token: string };
};

describe("health and conventions", () => {
  test("GET /health is 200 {ok:true} without auth (case 1)", async () => {
    const r = await c.http().get("/health");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ok: true });
  });

  test("GET /ready is 200 when Mongo, Redis, NATS and the services answer", async () => {
    const r = await c.http().get("/ready");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ok: true });
  });

  test("no token is 401 invalid_admin_token in the envelope with request id and security headers (case 2)", async () => {
    const r = await c.http().get("/v1/zones");
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ error: "invalid_admin_token", error_description: expect.any(String), request_id: r.headers["x-request-id"] });
    expect(r.headers["cache-control"]).toBe("no-store");
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
    expect(r.headers["referrer-policy"]).toBe("no-referrer");
  });

  test("a well-formed x-request-id is echoed, a malformed one replaced", async () => {
    const ok = await c.http().get("/v1/zones").set(c.auth()).set("x-request-id", "req-123.abc:1");
    expect(ok.headers["x-request-id"]).toBe("req-123.abc:1");
    const bad = await c.http().get("/v1/zones").set("x-request-id", "bad id with spaces");
    expect(bad.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(bad.body.request_id).toBe(bad.headers["x-request-id"]);
  });

  test.each([
    ["Basic"], ["bearer"], ["Bearer "], ["Bearer prefix"], ["Bearer suffix"], ["Token"],
  ])("malformed credential %s is 401 (case 3)", async (kind) => {
    const header =
      kind === "Bearer " ? "Bearer " : kind === "Bearer prefix" ? `Bearer ${c.adminToken.slice(0, 20)}` : kind === "Bearer suffix" ? `Bearer ${c.adminToken}-suffix` : `${kind} ${c.adminToken}`;
    const r = await c.http().get("/v1/zones").set("Authorization", header);
    expect(r.status).toBe(401);
    expect(r.body.error).toBe("invalid_admin_token");
  });

  test("a 4097-character token is 401 (case 4)", async () => {
    const r = await c.http().get("/v1/zones").set("Authorization", "Bearer " + "x".repeat(4097));
    expect(r.status).toBe(401);
    expect(r.body.error).toBe("invalid_admin_token");
  });

  test("the bootstrap token lists zones as {items, next_cursor} (case 5)", async () => {
    const r = await c.http().get("/v1/zones").set(c.auth());
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ items: expect.any(Array), next_cursor: null });
  });

  test("malformed JSON without a token is 400 invalid_json (case 8)", async () => {
    const r = await c.http().post("/v1/zones").set("Content-Type", "application/json").send("{ not valid json");
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_json");
    expect(r.body.request_id).toBe(r.headers["x-request-id"]);
  });

  test("a body over 1 MiB is 413 payload_too_large; a non-JSON body is 415", async () => {
    const big = await c.http().post("/v1/zones").set(c.auth()).set("Content-Type", "application/json").send(JSON.stringify({ name: "x".repeat(1024 * 1024 + 10) }));
    expect(big.status).toBe(413);
    expect(big.body.error).toBe("payload_too_large");
    const text = await c.http().post("/v1/zones").set(c.auth()).set("Content-Type", "text/plain").send("name=x");
    expect(text.status).toBe(415);
    expect(text.body.error).toBe("unsupported_media_type");
  });

  test("unknown route is 404 route_not_found; wrong method is 405 with Allow", async () => {
    const r = await c.http().get("/v1/nothing-here").set(c.auth());
    expect(r.status).toBe(404);
    expect(r.body.error).toBe("route_not_found");
    const m = await c.http().put("/v1/zones").set(c.auth()).send({});
    expect(m.status).toBe(405);
    expect(m.body.error).toBe("method_not_allowed");
    expect(m.headers.allow).toContain("GET");
  });
});

describe("token kinds and gates", () => {
  test("a read token may GET but not POST (case 6)", async () => {
    const r = await mint({ name: "reader", scope: "global", capability: "read" });
    const post = await c.http().post("/v1/zones").set(c.auth(r.token)).send({ name: "x" });
    expect(post.status).toBe(403);
    expect(post.body.error).toBe("admin_token_read_only");
    expect((await c.http().get("/v1/zones").set(c.auth(r.token))).status).toBe(200);
  });

  test("a zone token is confined to its zone (case 7)", async () => {
    const z = await c.http().post("/v1/zones").set(c.auth()).send({ name: "confined" });
    const z2 = await c.http().post("/v1/zones").set(c.auth()).send({ name: "other" });
    const t = await mint({ name: "zt", scope: "zone", zone_id: z.body.id });
    const list = await c.http().get("/v1/zones").set(c.auth(t.token));
    expect(list.status).toBe(403);
    expect(list.body.error).toBe("admin_token_zone_mismatch");
    expect((await c.http().get(`/v1/zones/${z.body.id}`).set(c.auth(t.token))).status).toBe(200);
    const other = await c.http().get(`/v1/zones/${z2.body.id}`).set(c.auth(t.token));
    expect(other.status).toBe(403);
    expect(other.body.error).toBe("admin_token_zone_mismatch");
    const tokens = await c.http().get("/v1/admin-tokens").set(c.auth(t.token));
    expect(tokens.body.error).toBe("admin_token_zone_mismatch");
    const own = await c.http().patch(`/v1/zones/${z.body.id}`).set(c.auth(t.token)).send({ name: "mine" });
    expect(own.status).toBe(200);
  });
});

describe("admin tokens (cases 55-57)", () => {
  test("minting a global token, and the zone_id rules (case 55)", async () => {
    const zone = await c.http().post("/v1/zones").set(c.auth()).send({ name: "tok zone" });
    const r = await c.http().post("/v1/admin-tokens").set(c.auth()).send({ name: "ci", scope: "global" });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ id: expect.any(String), name: "ci", scope: "global", capability: "write", zone_id: null, created_by: expect.stringMatching(/^admin:/), created_at: expect.any(String), token: expect.stringMatching(/^cat_[A-Za-z0-9_-]{43}$/) });
    const list = await c.http().get("/v1/admin-tokens?limit=500").set(c.auth());
    const bootstrap = list.body.items.find((t: { created_by: string }) => t.created_by === "env-bootstrap");
    expect(r.body.created_by).toBe(`admin:${bootstrap.id}`);
    expect(JSON.stringify(list.body)).not.toMatch(/hash|digest|"token"/);
    const cases: [Record<string, unknown>, number, string][] = [
      [{ name: "t", scope: "zone" }, 400, "zone_id_required"],
      [{ name: "t", scope: "global", zone_id: zone.body.id }, 400, "zone_id_not_allowed_for_global"],
      [{ name: "t", scope: "zone", zone_id: "missing-zone" }, 404, "zone_not_found"],
      [{ name: "t", scope: "galaxy" }, 400, "invalid_admin_token_request"],
      [{ name: "t", scope: "global", extra: 1 }, 400, "invalid_admin_token_request"],
    ];
    for (const [body, status, code] of cases) {
      const res = await c.http().post("/v1/admin-tokens").set(c.auth()).send(body);
      expect([res.status, res.body.error]).toEqual([status, code]);
    }
  });

  test("the Console write token cannot manage tokens; a zone token is stopped by the zone gate (case 56)", async () => {
    const consoleWrite = deriveConsoleToken(c.adminToken, CONSOLE_LABELS.write);
    const r = await c.http().post("/v1/admin-tokens").set(c.auth(consoleWrite)).send({ name: "x", scope: "global" });
    expect(r.status).toBe(403);
    expect(r.body.error).toBe("admin_token_management_forbidden_for_derived_token");
    const zone = await c.http().post("/v1/zones").set(c.auth(consoleWrite)).send({ name: "console made" });
    expect(zone.status).toBe(201);
    const t = await mint({ name: "zt2", scope: "zone", zone_id: zone.body.id });
    const z = await c.http().post("/v1/admin-tokens").set(c.auth(t.token)).send({ name: "x", scope: "global" });
    expect(z.status).toBe(403);
    expect(z.body.error).toBe("admin_token_zone_mismatch");
  });

  test("revoking: 204, again 404, and the revoked token is refused at once (case 57)", async () => {
    const t = await mint({ name: "short-lived", scope: "global" });
    expect((await c.http().get("/v1/zones").set(c.auth(t.token))).status).toBe(200);
    const del = await c.http().delete(`/v1/admin-tokens/${t.id}`).set(c.auth());
    expect(del.status).toBe(204);
    const again = await c.http().delete(`/v1/admin-tokens/${t.id}`).set(c.auth());
    expect(again.status).toBe(404);
    expect(again.body.error).toBe("admin_token_not_found");
    const after = await c.http().get("/v1/zones").set(c.auth(t.token));
    expect(after.status).toBe(401);
    const bad = await c.http().delete(`/v1/admin-tokens/${"x".repeat(129)}`).set(c.auth());
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe("invalid_params");
  });
});

describe("metrics and docs", () => {
  test("/metrics serves request, outbox and Moleculer series (dev mode, no bearer set)", async () => {
    await c.http().get("/v1/zones").set(c.auth());
    const r = await c.http().get("/metrics");
    expect(r.status).toBe(200);
    expect(r.text).toContain("caracal_http_requests_total");
    expect(r.text).toContain('route="/v1/zones"');
    expect(r.text).toContain("caracal_api_outbox_dead_total 0");
    expect(r.text).toContain("caracal_api_outbox_oldest_pending_age_seconds");
    expect(r.text).toContain("moleculer_request_total");
  });

  test("/docs serves OpenAPI 3.1 built from the routes and the schema modules, and Swagger UI from local files", async () => {
    const r = await c.http().get("/docs/openapi.json");
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe("3.1.0");
    const create = r.body.paths["/v1/zones"].post;
    expect(create.requestBody.content["application/json"].schema).toMatchObject({ type: "object", additionalProperties: false, required: ["name"] });
    expect(r.body.paths["/v1/zones/{id}"].patch.parameters[0]).toMatchObject({ name: "id", in: "path" });
    const page = await c.http().get("/docs");
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toContain("default-src 'self'");
    for (const asset of ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js"]) {
      expect(page.text).toContain(asset);
      const a = await c.http().get(asset);
      expect(a.status).toBe(200);
      expect(a.headers["x-content-type-options"]).toBe("nosniff");
    }
  });
});
