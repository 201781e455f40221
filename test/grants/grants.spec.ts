// Delegated grants against the real servers: reference-policy test cases 44–47, list filters and names,
// one call per owning service per page, and the signed revocation announcement sessions consume.
import Redis from "ioredis";
import { eventually, startCluster, TEST_STREAMS_KEY, type Cluster } from "../helpers/cluster";
import { fieldsOf, verify } from "../../shared/signing";

let c: Cluster;
let redis: Redis;
beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "applications", "providers", "grants"], env: { DCR_GC_INTERVAL_MS: "3600000" } });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
});
afterAll(async () => {
  redis.disconnect();
  await c.stop();
});

const post = (path: string, body: unknown) => c.http().post(path).set(c.auth()).send(body as object);
const get = (path: string) => c.http().get(path).set(c.auth());
const del = (path: string) => c.http().delete(path).set(c.auth());
const expectError = (r: { status: number; body: { error?: string } }, status: number, code: string) => expect([r.status, r.body.error]).toEqual([status, code]);
const rand = () => Math.random().toString(36).slice(2, 8);

interface Fixture {
  z: string;
  app: string;
  appName: string;
  provider: string;
  providerName: string;
  resource: string;
  resourceName: string;
}

/** Zone Z with app A, an api_key provider P and resource R (scopes example:read, example:write) bound to P. */
async function fixture(): Promise<Fixture> {
  const z = (await post("/v1/zones", { name: "grants " + rand() })).body.id as string;
  const appName = "App " + rand();
  const app = (await post(`/v1/zones/${z}/applications`, { name: appName, registration_method: "managed" })).body.id as string;
  const providerName = "Key " + rand();
  const p = await post(`/v1/zones/${z}/providers`, { name: providerName, kind: "api_key", config_json: { header_name: "X-Key", api_key: "k-" + rand() } });
  expect(p.status).toBe(201);
  const resourceName = "Res " + rand();
  const r = await post(`/v1/zones/${z}/resources`, { name: resourceName, scopes: ["example:read", "example:write"], upstream_url: "https://api.example", credential_provider_id: p.body.id, gateway_application_id: app });
  expect(r.status).toBe(201);
  return { z, app, appName, provider: p.body.id, providerName, resource: r.body.id, resourceName };
}

const grant = (f: Fixture, extra: Record<string, unknown> = {}) => post(`/v1/zones/${f.z}/grants`, { application_id: f.app, user_id: "u1", resource_id: f.resource, scopes: ["example:read"], ...extra });

/** The caracal.zone.events entries about one entity, oldest first, once there are at least `count`. */
async function zoneEventsOf(entityId: string, count: number) {
  return eventually(async () => {
    const entries = await redis.xrevrange(c.stream("caracal.zone.events"), "+", "-", "COUNT", 5000);
    const mine = entries.map(([, fields]) => fieldsOf(fields)).filter((e) => e.entity_id === entityId).reverse();
    return mine.length >= count ? mine : undefined;
  }, 8000);
}

describe("delegated grants: create", () => {
  test("a valid grant is 201 active with the §3.5 fields and a Location (case 44)", async () => {
    const f = await fixture();
    const r = await grant(f);
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ id: expect.any(String), zone_id: f.z, application_id: f.app, user_id: "u1", resource_id: f.resource, scopes: ["example:read"], status: "active", created_at: expect.stringMatching(/Z$/) });
    expect(r.headers.location).toBe(`/v1/zones/${f.z}/grants/${r.body.id}`);
    expect((await get(`/v1/zones/${f.z}/grants/${r.body.id}`)).body).toEqual(r.body);
  });

  test("scopes beyond the resource, bad scope syntax, unknown app, unknown resource (case 45)", async () => {
    const f = await fixture();
    const exceed = await grant(f, { scopes: ["admin:all"] });
    expectError(exceed, 403, "grant_scopes_exceed_resource");
    const upper = await grant(f, { scopes: ["Example:Read"] });
    expectError(upper, 400, "invalid_body");
    expect(upper.body.details.issues).toEqual([{ path: ["scopes", 0], message: expect.any(String) }]);
    expectError(await grant(f, { application_id: "nope" }), 404, "application_not_found");
    expectError(await grant(f, { resource_id: "nope" }), 404, "resource_not_found");
  });

  test("checks run in the spec's order: zone, body, application, resource, scopes", async () => {
    const f = await fixture();
    expectError(await post(`/v1/zones/nope-${rand()}/grants`, { scopes: "bad" }), 404, "zone_not_found");
    expectError(await grant(f, { application_id: "nope", scopes: [] }), 400, "invalid_body");
    expectError(await grant(f, { application_id: "nope", resource_id: "nope", scopes: ["admin:all"] }), 404, "application_not_found");
    expectError(await grant(f, { resource_id: "nope", scopes: ["admin:all"] }), 404, "resource_not_found");
  });

  test("the body is strict and every bad field is listed", async () => {
    const f = await fixture();
    const r = await post(`/v1/zones/${f.z}/grants`, { application_id: "", user_id: 5, scopes: Array(65).fill("a"), extra: true });
    expectError(r, 400, "invalid_body");
    const paths = (r.body.details.issues as { path: string[] }[]).map((i) => i.path[0]);
    expect(new Set(paths)).toEqual(new Set(["application_id", "user_id", "resource_id", "scopes", "extra"]));
    expectError(await grant(f, { scopes: ["x".repeat(201)] }), 400, "invalid_body");
  });

  test("an archived application, an expired DCR application and an archived resource are not found", async () => {
    const f = await fixture();
    const other = (await post(`/v1/zones/${f.z}/applications`, { name: "gone", registration_method: "managed" })).body.id;
    expect((await del(`/v1/zones/${f.z}/applications/${other}`)).status).toBe(204);
    expectError(await grant(f, { application_id: other }), 404, "application_not_found");
    expect((await c.http().patch(`/v1/zones/${f.z}`).set(c.auth()).send({ dcr_enabled: true })).status).toBe(200);
    const dcr = await post(`/v1/zones/${f.z}/applications/dcr`, { name: "short", expires_in: 1 });
    expect(dcr.status).toBe(201);
    await new Promise((r) => setTimeout(r, 1100));
    expectError(await grant(f, { application_id: dcr.body.id }), 404, "application_not_found");
    expect((await del(`/v1/zones/${f.z}/resources/${f.resource}`)).status).toBe(204);
    expectError(await grant(f), 404, "resource_not_found");
  });

  test("repeated creates are not deduplicated", async () => {
    const f = await fixture();
    const a = await grant(f);
    const b = await grant(f);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.body.id).not.toBe(b.body.id);
  });
});

describe("delegated grants: get and revoke", () => {
  test("DELETE twice is 204 both times; the grant reads revoked; each announces the subject (case 47)", async () => {
    const f = await fixture();
    const g = (await grant(f)).body;
    expect((await del(`/v1/zones/${f.z}/grants/${g.id}`)).status).toBe(204);
    expect((await del(`/v1/zones/${f.z}/grants/${g.id}`)).status).toBe(204);
    const after = await get(`/v1/zones/${f.z}/grants/${g.id}`);
    expect(after.status).toBe(200);
    expect(after.body).toEqual({ ...g, status: "revoked" });
    const events = await zoneEventsOf(g.id, 3);
    expect(events.map((e) => e.action)).toEqual(["created", "deleted", "deleted"]);
    for (const e of events.slice(1)) {
      expect(e).toMatchObject({ zone_id: f.z, entity_type: "grant", entity_id: g.id, action: "deleted", subject_id: "u1", grant_id: g.id, outbox_id: expect.any(String), request_id: expect.any(String) });
      expect(verify([{ kid: "k1", key: Buffer.from(TEST_STREAMS_KEY, "hex") }], c.stream("caracal.zone.events"), e)).toBe(true);
    }
    expect(events[1]!.outbox_id).not.toBe(events[2]!.outbox_id);
  });

  test("unknown ids and grants of another zone are 404 grant_not_found", async () => {
    const f = await fixture();
    const other = await fixture();
    const g = (await grant(f)).body;
    expectError(await get(`/v1/zones/${f.z}/grants/nope`), 404, "grant_not_found");
    expectError(await get(`/v1/zones/${other.z}/grants/${g.id}`), 404, "grant_not_found");
    expectError(await del(`/v1/zones/${other.z}/grants/${g.id}`), 404, "grant_not_found");
    expect((await get(`/v1/zones/${f.z}/grants/${g.id}`)).body.status).toBe("active");
  });

  test("a bad path id is 400 invalid_params", async () => {
    expectError(await get(`/v1/zones/z/grants/${encodeURIComponent("a b")}`), 400, "invalid_params");
  });
});

describe("delegated grants: list", () => {
  test("filters scopes and subject_id, rows carry provider id, kind and names (case 46)", async () => {
    const f = await fixture();
    const a = (await grant(f, { scopes: ["example:read", "example:write"] })).body;
    await grant(f, { scopes: ["example:write"] });
    await grant(f, { user_id: "u2" });
    const r = await get(`/v1/zones/${f.z}/grants?scopes=example:read&subject_id=u1`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      items: [
        {
          id: a.id, zone_id: f.z, application_id: f.app, user_id: "u1", resource_id: f.resource, provider_id: f.provider,
          application_name: f.appName, resource_name: f.resourceName, provider_name: f.providerName, provider_kind: "api_key",
          scopes: ["example:read", "example:write"], status: "active", created_at: a.created_at,
        },
      ],
      next_cursor: null,
    });
    expectError(await get(`/v1/zones/${f.z}/grants?scopes=BAD`), 400, "invalid_query");
  });

  test("each filter selects its rows; user_id wins over subject_id; revoked rows are listed", async () => {
    const f = await fixture();
    const otherApp = (await post(`/v1/zones/${f.z}/applications`, { name: "second", registration_method: "managed" })).body.id;
    const p2 = (await post(`/v1/zones/${f.z}/providers`, { name: "P2 " + rand(), kind: "caracal_mandate" })).body.id;
    const r2 = (await post(`/v1/zones/${f.z}/resources`, { name: "R2 " + rand(), scopes: ["example:read"], upstream_url: "https://b.example", credential_provider_id: p2, gateway_application_id: f.app })).body.id;
    const g1 = (await grant(f)).body.id;
    const g2 = (await grant(f, { application_id: otherApp, user_id: "u2" })).body.id;
    const g3 = (await grant(f, { resource_id: r2 })).body.id;
    expect((await del(`/v1/zones/${f.z}/grants/${g1}`)).status).toBe(204);
    const ids = async (query: string) => ((await get(`/v1/zones/${f.z}/grants?${query}`)).body.items as { id: string }[]).map((i) => i.id);
    expect(await ids("")).toEqual([g3, g2, g1]);
    expect(await ids(`application_id=${otherApp}`)).toEqual([g2]);
    expect(await ids("user_id=u2&subject_id=u1")).toEqual([g2]);
    expect(await ids(`resource_id=${r2}`)).toEqual([g3]);
    expect(await ids(`provider_id=${p2}`)).toEqual([g3]);
    expect(await ids(`provider_id=${f.provider}`)).toEqual([g2, g1]);
    expect(await ids(`provider_id=${p2}&resource_id=${f.resource}`)).toEqual([]);
    expect(await ids("status=revoked")).toEqual([g1]);
    expect(await ids("status=anything")).toEqual([]);
    const row = (await get(`/v1/zones/${f.z}/grants?resource_id=${r2}`)).body.items[0];
    expect(row).toMatchObject({ provider_id: p2, provider_kind: "caracal_mandate", application_name: f.appName });
  });

  test.each([
    ["an empty user_id", "user_id="],
    ["an empty scope in the list", "scopes=a,,b"],
    ["an id over 128 characters", "application_id=" + "x".repeat(129)],
    ["a subject over 256 characters", "user_id=" + "x".repeat(257)],
    ["65 scopes", "scopes=" + Array.from({ length: 65 }, (_, i) => `s${i}`).join(",")],
    ["limit 0", "limit=0"],
    ["limit 501", "limit=501"],
    ["a repeated filter", "status=a&status=b"],
  ])("%s is 400 invalid_query", async (_label, query) => {
    expectError(await get(`/v1/zones/z-${rand()}/grants?${query}`), 400, "invalid_query");
  });

  test("pages with Link and next_cursor; a cursor from other filters is invalid_cursor (case 25 rules)", async () => {
    const f = await fixture();
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.unshift((await grant(f)).body.id);
    const first = await get(`/v1/zones/${f.z}/grants?limit=2&user_id=u1`);
    expect(first.body.items.map((i: { id: string }) => i.id)).toEqual(made.slice(0, 2));
    expect(first.headers.link).toBe(`</v1/zones/${f.z}/grants?limit=2&user_id=u1&cursor=${first.body.next_cursor}>; rel="next"`);
    const second = await get(`/v1/zones/${f.z}/grants?limit=2&user_id=u1&cursor=${first.body.next_cursor}`);
    expect(second.body.items.map((i: { id: string }) => i.id)).toEqual(made.slice(2, 4));
    const third = await get(`/v1/zones/${f.z}/grants?limit=2&user_id=u1&cursor=${second.body.next_cursor}`);
    expect([third.body.items.map((i: { id: string }) => i.id), third.body.next_cursor]).toEqual([made.slice(4), null]);
    expectError(await get(`/v1/zones/${f.z}/grants?limit=2&cursor=${first.body.next_cursor}`), 400, "invalid_cursor");
    expectError(await get(`/v1/zones/${f.z}/grants?cursor=@@`), 400, "invalid_cursor");
  });

  test("a zone that does not exist lists nothing", async () => {
    expect((await get(`/v1/zones/nope-${rand()}/grants`)).body).toEqual({ items: [], next_cursor: null });
  });

  test("names come from one call per owning service per page, and follow renames", async () => {
    const f = await fixture();
    const apps = [f.app];
    for (let i = 0; i < 3; i++) apps.push((await post(`/v1/zones/${f.z}/applications`, { name: `app ${i}`, registration_method: "managed" })).body.id);
    for (const app of apps) for (let i = 0; i < 3; i++) expect((await grant(f, { application_id: app, user_id: `user-${i}` })).status).toBe(201);
    expect((await c.http().patch(`/v1/zones/${f.z}/applications/${apps[1]}`).set(c.auth()).send({ name: "renamed" })).status).toBe(200);
    const broker = c.brokers.grants!;
    const spy = jest.spyOn(broker, "call");
    try {
      const page = await get(`/v1/zones/${f.z}/grants?limit=10`);
      expect(page.body.items).toHaveLength(10);
      const called = spy.mock.calls.map(([name]) => name as string);
      expect(called.sort()).toEqual(["applications.namesByIds", "providers.resourceNamesByIds"]);
      expect(page.body.items.filter((i: { application_id: string }) => i.application_id === apps[1]).map((i: { application_name: string }) => i.application_name)).toEqual(["renamed", "renamed", "renamed"]);
      spy.mockClear();
      await get(`/v1/zones/${f.z}/grants?limit=10&provider_id=${f.provider}`);
      expect(spy.mock.calls.map(([name]) => name as string).sort()).toEqual(["applications.namesByIds", "providers.resourceNamesByIds"]);
    } finally {
      spy.mockRestore();
    }
  });
});
