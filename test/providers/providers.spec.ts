import Redis from "ioredis";
import { eventually, startCluster, type Cluster } from "../helpers/cluster";
import { open } from "../../services/providers/sealing";

let c: Cluster;
let redis: Redis;
const logLines: string[] = [];
beforeAll(async () => {
  // The applications background timer stays quiet (one tick an hour): the unbinding test runs its tick itself.
  c = await startCluster({ processes: ["zones", "applications", "providers"], captureLogs: logLines, env: { DCR_GC_INTERVAL_MS: "3600000" } });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
});
afterAll(async () => {
  redis.disconnect();
  await c.stop();
});

const post = (path: string, body: unknown, token?: string) => c.http().post(path).set(c.auth(token)).send(body as object);
const patch = (path: string, body: unknown, token?: string) => c.http().patch(path).set(c.auth(token)).send(body as object);
const get = (path: string, token?: string) => c.http().get(path).set(c.auth(token));
const del = (path: string, token?: string) => c.http().delete(path).set(c.auth(token));
const expectError = (r: { status: number; body: { error?: string } }, status: number, code: string) => expect([r.status, r.body.error]).toEqual([status, code]);

async function zone() {
  const r = await post("/v1/zones", { name: "prov " + Math.random().toString(36).slice(2, 7) });
  expect(r.status).toBe(201);
  return r.body.id as string;
}
const apiKeyProvider = (z: string, extra: Record<string, unknown> = {}) =>
  post(`/v1/zones/${z}/providers`, { name: "Key " + Math.random().toString(36).slice(2, 6), kind: "api_key", config_json: { header_name: "Authorization", auth_scheme: "Bearer", api_key: "k-secret-123" }, ...extra });
/** The caracal.zone.events entries about one entity, oldest first, once there are at least `count`. */
async function zoneEventsOf(entityId: string, count: number) {
  return eventually(async () => {
    const entries = await redis.xrevrange(c.stream("caracal.zone.events"), "+", "-", "COUNT", 5000);
    const mine = entries
      .map(([, fields]) => Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]])) as Record<string, string>)
      .filter((e) => e.entity_id === entityId)
      .reverse();
    return mine.length >= count ? mine : undefined;
  }, 8000);
}
const managedApp = async (z: string) => (await post(`/v1/zones/${z}/applications`, { name: "gw", registration_method: "managed" })).body.id as string;

describe("providers", () => {
  test("an identifier without provider:// is 400 invalid_provider_identifier (case 38)", async () => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/providers`, { identifier: "oauth-main", kind: "caracal_mandate" });
    expect([r.status, r.body.error]).toEqual([400, "invalid_provider_identifier"]);
  });

  test("identifier generated from the name, -2 when taken (case 39)", async () => {
    const z = await zone();
    const a = await post(`/v1/zones/${z}/providers`, { identifier: "", name: "Hooli OAuth", kind: "caracal_mandate", config_json: {} });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ identifier: "provider://hooli-oauth", name: "Hooli OAuth", kind: "caracal_mandate", config_json: {}, secret_config_keys: [] });
    const b = await post(`/v1/zones/${z}/providers`, { name: "Hooli OAuth", kind: "caracal_mandate" });
    expect(b.body.identifier).toBe("provider://hooli-oauth-2");
  });

  test("api_key: defaults written back, secrets only as key names (case 40)", async () => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/providers`, { identifier: "provider://hooli-api-key", kind: "api_key", config_json: { header_name: "Authorization", auth_scheme: "Bearer", api_key: "k" } });
    expect(r.status).toBe(201);
    expect(r.body.config_json).toEqual({ auth_location: "header", header_name: "Authorization", auth_scheme: "Bearer" });
    expect(r.body.secret_config_keys).toEqual(["api_key"]);
  });

  test.each([
    [{ header_name: "Authorization Header", api_key: "k" }],
    [{ header_name: "X", auth_scheme: "Bearer Token", api_key: "k" }],
    [{ auth_location: "query", api_key: "k" }],
    [{ auth_location: "query", query_param_name: "key", auth_scheme: "Bearer", api_key: "k" }],
    [{ auth_location: "cookie", header_name: "X", api_key: "k" }],
    [{ header_name: "X", allow_runtime_injection: "yes", api_key: "k" }],
    [{ header_name: "X", auth_header: "X", api_key: "k" }],
    [{ header_name: "X" }],
  ])("api_key config %j is 400 invalid_provider_config (case 41)", async (config_json) => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/providers`, { name: "k", kind: "api_key", config_json });
    expect([r.status, r.body.error]).toEqual([400, "invalid_provider_config"]);
  });

  const cc = { token_endpoint: "https://auth.example/token", client_id: "c", allowed_token_hosts: ["api.example"], client_secret: "s" };
  test.each([
    [{ ...cc, token_endpoint: "http://auth.example/token" }],
    [{ ...cc, audience: "" }],
    [{ ...cc, client_auth_method: "private_key_jwt", client_secret: undefined }],
    [{ ...cc, client_auth_method: "private_key_jwt", private_key: "pk" }],
    [{ ...cc, key_id: "k1" }],
    [{ authorization_endpoint: "https://x" }],
    [{ ...cc, token_params: { grant_type: "x" } }],
    [{ ...cc, token_endpoint: "https://user:pw@auth.example/token" }],
  ])("client credentials config %j is 400 (case 42)", async (config_json) => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/providers`, { name: "cc", kind: "oauth2_client_credentials", config_json });
    expect([r.status, r.body.error]).toEqual([400, "invalid_provider_config"]);
  });

  test("a valid client-credentials provider stores client_secret_basic and its secret key name (case 42)", async () => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/providers`, { name: "cc", kind: "oauth2_client_credentials", config_json: cc });
    expect(r.status).toBe(201);
    expect(r.body.config_json.client_auth_method).toBe("client_secret_basic");
    expect(r.body.secret_config_keys).toEqual(["client_secret"]);
  });

  const ac = { authorization_endpoint: "https://auth.example/authorize", token_endpoint: "https://auth.example/token", redirect_uri: "https://app.example/cb", client_id: "c", allowed_token_hosts: ["api.example"], client_secret: "s" };
  test.each([[{ ...ac, redirect_uri: "/oauth/callback" }], [{ ...ac, authorization_params: { client_id: "x" } }], [{ ...ac, token_params: { grant_type: "x" } }]])(
    "authorization code config %j is 400 (case 43)",
    async (config_json) => {
      const z = await zone();
      const r = await post(`/v1/zones/${z}/providers`, { name: "ac", kind: "oauth2_authorization_code", config_json });
      expect([r.status, r.body.error]).toEqual([400, "invalid_provider_config"]);
    },
  );

  test("explicit identifier twice is 409; free again after delete (case 44)", async () => {
    const z = await zone();
    const first = await post(`/v1/zones/${z}/providers`, { identifier: "provider://dup", kind: "caracal_mandate" });
    expect(first.status).toBe(201);
    const second = await post(`/v1/zones/${z}/providers`, { identifier: "provider://dup", kind: "caracal_mandate" });
    expect([second.status, second.body.error]).toEqual([409, "provider_identifier_conflict"]);
    expect((await del(`/v1/zones/${z}/providers/${first.body.id}`)).status).toBe(204);
    expect((await post(`/v1/zones/${z}/providers`, { identifier: "provider://dup", kind: "caracal_mandate" })).status).toBe(201);
    const other = await zone();
    expect((await post(`/v1/zones/${other}/providers`, { identifier: "provider://dup", kind: "caracal_mandate" })).status).toBe(201);
  });

  test("patch rules: no_fields, provider_config_required, invalid identifier (case 45)", async () => {
    const z = await zone();
    const p = await apiKeyProvider(z);
    expectError(await patch(`/v1/zones/${z}/providers/${p.body.id}`, {}), 400, "no_fields");
    expectError(await patch(`/v1/zones/${z}/providers/${p.body.id}`, { unknown_key: 1 }), 400, "no_fields");
    expectError(await patch(`/v1/zones/${z}/providers/${p.body.id}`, { kind: "bearer_token" }), 400, "provider_config_required");
    expectError(await patch(`/v1/zones/${z}/providers/${p.body.id}`, { identifier: "resource://pipernet" }), 400, "invalid_provider_identifier");
  });

  test("config-only patch replaces public config and keeps secrets (case 46)", async () => {
    const z = await zone();
    const p = await apiKeyProvider(z);
    const r = await patch(`/v1/zones/${z}/providers/${p.body.id}`, { config_json: { header_name: "X-Key" } });
    expect(r.status).toBe(200);
    expect(r.body.secret_config_keys).toEqual(["api_key"]);
    expect(r.body.config_json).toEqual({ header_name: "X-Key", auth_location: "header" });
    const kindChange = await patch(`/v1/zones/${z}/providers/${p.body.id}`, { kind: "caracal_mandate", config_json: {} });
    expect(kindChange.body.secret_config_keys).toEqual([]);
  });

  test("secrets are encrypted at rest and never come back, in streams or logs", async () => {
    const z = await zone();
    const secret = "very-secret-api-key-" + Math.random().toString(36).slice(2);
    const p = await post(`/v1/zones/${z}/providers`, { name: "sealed", kind: "api_key", config_json: { header_name: "X", api_key: secret } });
    expect(p.status).toBe(201);
    const raw = await (c.brokers.providers!.getLocalService("providers") as any).models.Provider.findById(p.body.id).lean();
    expect(JSON.stringify(raw)).not.toContain(secret);
    expect(raw.secrets_sealed.ciphertext).toEqual(expect.any(String));
    await patch(`/v1/zones/${z}/providers/${p.body.id}`, { config_json: { header_name: "Y", api_key: secret + "-2" } });
    const reads = [await get(`/v1/zones/${z}/providers/${p.body.id}`), await get(`/v1/zones/${z}/providers`)];
    await new Promise((r) => setTimeout(r, 400));
    const stream = JSON.stringify(await redis.xrevrange(c.stream("caracal.zone.events"), "+", "-", "COUNT", 3000));
    for (const r of reads) expect(JSON.stringify(r.body)).not.toContain(secret);
    expect(stream).toContain(p.body.id);
    expect(stream).not.toContain(secret);
    expect(logLines.join("\n")).not.toContain(secret);
  });
});

/** A zone's API-key provider and managed app, for resources bound to both. */
async function bound(z: string) {
  const provider = (await apiKeyProvider(z)).body.id as string;
  const app = await managedApp(z);
  return { provider, app };
}

describe("resources", () => {
  test("a provider of another zone is 404 provider_not_found (case 47)", async () => {
    const z = await zone();
    const other = await zone();
    const foreign = (await apiKeyProvider(other)).body.id;
    const r = await post(`/v1/zones/${z}/resources`, { identifier: "resource://api", scopes: ["read"], credential_provider_id: foreign });
    expect([r.status, r.body.error]).toEqual([404, "provider_not_found"]);
  });

  test("missing pieces in order (case 48)", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    expectError(await post(`/v1/zones/${z}/resources`, { identifier: "resource://a", scopes: ["read"], credential_provider_id: provider }), 400, "upstream_url_required");
    expectError(await post(`/v1/zones/${z}/resources`, { identifier: "resource://a", scopes: ["read"], upstream_url: "https://x.example", gateway_application_id: app }), 400, "credential_provider_required");
    expectError(await post(`/v1/zones/${z}/resources`, { identifier: "resource://a", scopes: ["read"], upstream_url: "https://x.example", credential_provider_id: provider }), 400, "gateway_application_required");
  });

  test("identifier rules (case 49)", async () => {
    const z = await zone();
    for (const identifier of ["pipernet", "provider://pipernet"]) {
      const r = await post(`/v1/zones/${z}/resources`, { identifier, scopes: ["read"] });
      expect([r.status, r.body.error]).toEqual([400, "invalid_resource_identifier"]);
    }
    const w = (await post("/v1/admin-tokens", { name: "w", scope: "global" })).body.token;
    const reserved = await post(`/v1/zones/${z}/resources`, { identifier: "caracal-sys://x", scopes: ["read"] }, w);
    expect([reserved.status, reserved.body.error]).toEqual([409, "reserved_namespace"]);
  });

  test("a full resource, and operation rules (case 50)", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const body = { identifier: "resource://nucleus", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app, operations: [{ method: "get", path: "/api/get_payment", scope: "read" }] };
    const r = await post(`/v1/zones/${z}/resources`, body);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ identifier: "resource://nucleus", operations: [{ method: "GET", path: "/api/get_payment", scope: "read" }], operation_enforcement: "enforced", gateway_application_id: app });
    const badScope = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://n2", operations: [{ method: "get", path: "/x", scope: "write" }] });
    expectError(badScope, 400, "operation_scope_not_in_resource_scopes");
    const badPath = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://n3", operations: [{ method: "get", path: "api", scope: "read" }] });
    expectError(badPath, 400, "operation_path_must_be_absolute");
    const dup = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://n4", operations: [{ method: "get", path: "/a", scope: "read" }, { method: "GET", path: "/a", scope: "read" }] });
    expectError(dup, 400, "operation_duplicate");
    const noScopes = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://n5", scopes: [] });
    expectError(noScopes, 400, "invalid_resource");
  });

  test("gateway application must be a live managed app of the zone (case 51)", async () => {
    const z = await zone();
    await patch(`/v1/zones/${z}`, { dcr_enabled: true });
    const { provider } = await bound(z);
    const dcr = (await post(`/v1/zones/${z}/applications/dcr`, { name: "d" })).body.id;
    const base = { upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider };
    const r = await post(`/v1/zones/${z}/resources`, { ...base, identifier: "resource://d", gateway_application_id: dcr });
    expect([r.status, r.body.error]).toEqual([400, "gateway_exchange_application_must_be_managed"]);
    const u = await post(`/v1/zones/${z}/resources`, { ...base, identifier: "resource://u", gateway_application_id: "unknown-app" });
    expect([u.status, u.body.error]).toEqual([404, "gateway_application_not_found"]);
  });

  test("the Control resource: hidden from zone tokens, never deletable (case 52)", async () => {
    const z = await zone();
    const control = await post(`/v1/zones/${z}/resources`, { identifier: "caracal-control", scopes: ["control:invoke"] });
    expect(control.status).toBe(201);
    expect(control.body.credential_provider_id).toBe(`provider-none-${z}`);
    const t = (await post("/v1/admin-tokens", { name: "zt", scope: "zone", zone_id: z })).body.token;
    expectError(await get(`/v1/zones/${z}/resources/${control.body.id}`, t), 404, "resource_not_found");
    expect((await get(`/v1/zones/${z}/resources`, t)).body.items.map((x: { id: string }) => x.id)).not.toContain(control.body.id);
    const w = (await post("/v1/admin-tokens", { name: "w", scope: "global" })).body.token;
    const d = await del(`/v1/zones/${z}/resources/${control.body.id}`, w);
    expect([d.status, d.body.error]).toEqual([409, "protected_resource"]);
    const byZone = await post(`/v1/zones/${z}/resources`, { identifier: "caracal-control", scopes: ["x"] }, t);
    expect([byZone.status, byZone.body.error]).toEqual([409, "protected_resource"]);
  });

  test("a deleted resource's identifier stays taken (case 53)", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const body = { identifier: "resource://once", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app };
    const r = await post(`/v1/zones/${z}/resources`, body);
    expect((await del(`/v1/zones/${z}/resources/${r.body.id}`)).status).toBe(204);
    const again = await post(`/v1/zones/${z}/resources`, body);
    expect([again.status, again.body.error]).toEqual([409, "resource_identifier_conflict"]);
  });

  test("deleting a used provider is allowed; deleting the gateway app clears it (cases 37, 54)", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const r = await post(`/v1/zones/${z}/resources`, { name: "Uses both", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app });
    expect(r.status).toBe(201);
    expect(r.body.identifier).toBe("resource://uses-both");
    expect((await del(`/v1/zones/${z}/providers/${provider}`)).status).toBe(204);
    expect((await get(`/v1/zones/${z}/resources/${r.body.id}`)).body.credential_provider_id).toBe(provider);
    expect((await del(`/v1/zones/${z}/applications/${app}`)).status).toBe(204);
    const after = await get(`/v1/zones/${z}/resources/${r.body.id}`);
    expect(after.body.gateway_application_id).toBeNull();
  });

  test("patch: merged-state checks and no_fields", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const r = await post(`/v1/zones/${z}/resources`, { identifier: "resource://p", upstream_url: "https://api.example", scopes: ["read", "write"], credential_provider_id: provider, gateway_application_id: app, operations: [{ method: "POST", path: "/w", scope: "write" }] });
    expectError(await patch(`/v1/zones/${z}/resources/${r.body.id}`, { upstream_url: null }), 400, "upstream_url_required");
    expectError(await patch(`/v1/zones/${z}/resources/${r.body.id}`, { scopes: ["read"] }), 400, "operation_scope_not_in_resource_scopes");
    expectError(await patch(`/v1/zones/${z}/resources/${r.body.id}`, { scopes: ["read", "write"] }), 400, "no_fields");
    const ok = await patch(`/v1/zones/${z}/resources/${r.body.id}`, { name: "Renamed" });
    expect([ok.status, ok.body.name]).toEqual([200, "Renamed"]);
    expectError(await patch(`/v1/zones/${z}/resources/unknown`, { name: "x" }), 404, "resource_not_found");
  });
});

describe("providers: more rules", () => {
  test("generated identifiers take the lowest suffix free among active providers", async () => {
    const z = await zone();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await post(`/v1/zones/${z}/providers`, { name: "Same Name", kind: "none" });
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    }
    expect((await get(`/v1/zones/${z}/providers/${ids[1]}`)).body.identifier).toBe("provider://same-name-2");
    expect((await get(`/v1/zones/${z}/providers/${ids[2]}`)).body.identifier).toBe("provider://same-name-3");
    expect((await del(`/v1/zones/${z}/providers/${ids[1]}`)).status).toBe(204);
    const again = await post(`/v1/zones/${z}/providers`, { name: "provider://Same Name", kind: "none" });
    expect([again.status, again.body.identifier]).toEqual([201, "provider://same-name-2"]);
  });

  test("concurrent creates with one name get distinct identifiers", async () => {
    const z = await zone();
    const all = await Promise.all(Array.from({ length: 6 }, () => post(`/v1/zones/${z}/providers`, { name: "Busy", kind: "caracal_mandate" })));
    expect(all.map((r) => r.status)).toEqual(Array(6).fill(201));
    expect(new Set(all.map((r) => r.body.identifier)).size).toBe(6);
  });

  test("lenient body: unknown top-level keys are dropped, unknown config keys are not", async () => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/providers`, { name: "Lenient", kind: "caracal_mandate", colour: "red", id: "mine" });
    expect(r.status).toBe(201);
    expect(r.body.colour).toBeUndefined();
    expect(r.body.id).not.toBe("mine");
    const bad = await post(`/v1/zones/${z}/providers`, { name: "x", kind: "caracal_mandate", config_json: { forward_caracal_identity: true } });
    expect([bad.status, bad.body.error]).toEqual([400, "invalid_provider_config"]);
    for (const config_json of [null, ["a"]]) {
      const r2 = await post(`/v1/zones/${z}/providers`, { name: "x", kind: "none", config_json });
      expect([r2.status, r2.body.error]).toEqual([400, "invalid_provider"]);
    }
    const nullKind = await patch(`/v1/zones/${z}/providers/${r.body.id}`, { kind: null, config_json: {} });
    expect([nullKind.status, nullKind.body.error]).toEqual([400, "invalid_provider"]);
    const neither = await post(`/v1/zones/${z}/providers`, { name: "  ", kind: "none" });
    expect([neither.status, neither.body.error]).toEqual([400, "invalid_provider"]);
    const noKind = await post(`/v1/zones/${z}/providers`, { name: "x" });
    expect([noKind.status, noKind.body.error]).toEqual([400, "invalid_provider"]);
  });

  test("bearer_token and authorization-code rules, stored values trimmed", async () => {
    const z = await zone();
    const bearer = await post(`/v1/zones/${z}/providers`, { name: "b", kind: "bearer_token", config_json: { allowed_token_hosts: [" API.Example.com "], auth_header: "X-Auth", bearer_token: "t" } });
    expect(bearer.status).toBe(201);
    expect(bearer.body.config_json).toEqual({ allowed_token_hosts: ["api.example.com"], auth_header: "X-Auth" });
    expect(bearer.body.secret_config_keys).toEqual(["bearer_token"]);
    for (const config_json of [{ bearer_token: "t", allowed_token_hosts: ["https://api.example"] }, { bearer_token: "t", header_name: "X" }, {}, { bearer_token: "" }]) {
      const r = await post(`/v1/zones/${z}/providers`, { name: "b", kind: "bearer_token", config_json });
      expect([r.status, r.body.error]).toEqual([400, "invalid_provider_config"]);
    }
    const ac = { authorization_endpoint: "https://auth.example/authorize", token_endpoint: "https://auth.example/token", redirect_uri: "https://app.example/cb", client_id: " c ", allowed_token_hosts: ["api.example"], client_secret: "s" };
    const ok = await post(`/v1/zones/${z}/providers`, { name: "ac", kind: "oauth2_authorization_code", config_json: ac });
    expect(ok.status).toBe(201);
    expect(ok.body.config_json).toMatchObject({ client_id: "c", client_auth_method: "client_secret_basic" });
    const pkjwt = await post(`/v1/zones/${z}/providers`, { name: "ac", kind: "oauth2_authorization_code", config_json: { ...ac, client_auth_method: "private_key_jwt" } });
    expect([pkjwt.status, pkjwt.body.error]).toEqual([400, "invalid_provider_config"]);
    const publicClient = await post(`/v1/zones/${z}/providers`, { name: "ac", kind: "oauth2_authorization_code", config_json: { ...ac, client_secret: undefined, client_auth_method: "none" } });
    expect([publicClient.status, publicClient.body.secret_config_keys]).toEqual([201, []]);
  });

  test("reserved provider identifiers, explicit or generated, are 409 for all but bootstrap", async () => {
    const z = await zone();
    const w = (await post("/v1/admin-tokens", { name: "w", scope: "global" })).body.token;
    const explicit = await post(`/v1/zones/${z}/providers`, { identifier: "provider://caracal-sys-x", kind: "none" }, w);
    expect([explicit.status, explicit.body.error]).toEqual([409, "reserved_namespace"]);
    const generated = await post(`/v1/zones/${z}/providers`, { name: "Caracal Sys X", kind: "none" }, w);
    expect([generated.status, generated.body.error]).toEqual([409, "reserved_namespace"]);
    const p = (await post(`/v1/zones/${z}/providers`, { name: "ok", kind: "none" }, w)).body.id;
    const renamed = await patch(`/v1/zones/${z}/providers/${p}`, { identifier: "provider://caracal-sys-y" }, w);
    expect([renamed.status, renamed.body.error]).toEqual([409, "reserved_namespace"]);
    expect((await post(`/v1/zones/${z}/providers`, { identifier: "provider://caracal-sys-x", kind: "none" })).status).toBe(201);
  });

  test("zones: unknown or archived zone is 404 zone_not_found on create; other zones' providers are 404", async () => {
    const z = await zone();
    const p = (await apiKeyProvider(z)).body.id;
    const other = await zone();
    for (const r of [await get(`/v1/zones/${other}/providers/${p}`), await patch(`/v1/zones/${other}/providers/${p}`, { name: "x" }), await del(`/v1/zones/${other}/providers/${p}`)]) {
      expect([r.status, r.body.error]).toEqual([404, "provider_not_found"]);
    }
    const missing = await post(`/v1/zones/no-such-zone/providers`, { name: "x", kind: "none", config_json: "not even an object" });
    expect([missing.status, missing.body.error]).toEqual([404, "zone_not_found"]);
    expect((await del(`/v1/zones/${other}`)).status).toBe(204);
    const archived = await post(`/v1/zones/${other}/providers`, { name: "x", kind: "none" });
    expect([archived.status, archived.body.error]).toEqual([404, "zone_not_found"]);
    const res = await post(`/v1/zones/${other}/resources`, { identifier: "resource://x", scopes: ["read"] });
    expect([res.status, res.body.error]).toEqual([404, "zone_not_found"]);
    const bad = await get(`/v1/zones/${z}/providers/bad%20id`);
    expect([bad.status, bad.body.error]).toEqual([400, "invalid_params"]);
  });

  test("patch: identifier conflict 409, empty body on an unknown id 400 no_fields, unknown id 404", async () => {
    const z = await zone();
    const a = (await post(`/v1/zones/${z}/providers`, { identifier: "provider://a", kind: "none" })).body.id;
    await post(`/v1/zones/${z}/providers`, { identifier: "provider://b", kind: "none" });
    const clash = await patch(`/v1/zones/${z}/providers/${a}`, { identifier: "provider://b" });
    expect([clash.status, clash.body.error]).toEqual([409, "provider_identifier_conflict"]);
    const empty = await patch(`/v1/zones/${z}/providers/unknown`, {});
    expect([empty.status, empty.body.error]).toEqual([400, "no_fields"]);
    const unknown = await patch(`/v1/zones/${z}/providers/unknown`, { name: "x" });
    expect([unknown.status, unknown.body.error]).toEqual([404, "provider_not_found"]);
    const unknownConfig = await patch(`/v1/zones/${z}/providers/unknown`, { config_json: {} });
    expect([unknownConfig.status, unknownConfig.body.error]).toEqual([404, "provider_not_found"]);
    const ok = await patch(`/v1/zones/${z}/providers/${a}`, { identifier: "provider://c", name: " C " });
    expect([ok.status, ok.body.identifier, ok.body.name]).toEqual([200, "provider://c", "C"]);
    expect((await post(`/v1/zones/${z}/providers`, { identifier: "provider://a", kind: "none" })).status).toBe(201);
  });

  test("patch secrets: replaced when given, required by the new auth method, cleared by a kind change", async () => {
    const z = await zone();
    const cc = { token_endpoint: "https://auth.example/token", client_id: "c", allowed_token_hosts: ["api.example"] };
    const p = (await post(`/v1/zones/${z}/providers`, { name: "cc", kind: "oauth2_client_credentials", config_json: { ...cc, client_secret: "s1" } })).body.id;
    const noKey = await patch(`/v1/zones/${z}/providers/${p}`, { config_json: { ...cc, client_auth_method: "private_key_jwt" } });
    expect([noKey.status, noKey.body.error]).toEqual([400, "invalid_provider_config"]);
    const keyed = await patch(`/v1/zones/${z}/providers/${p}`, { config_json: { ...cc, client_auth_method: "private_key_jwt", key_id: "k1", private_key: "-----BEGIN KEY-----" } });
    expect([keyed.status, keyed.body.secret_config_keys, keyed.body.config_json.client_auth_method]).toEqual([200, ["private_key"], "private_key_jwt"]);
    const back = await patch(`/v1/zones/${z}/providers/${p}`, { config_json: cc });
    expect([back.status, back.body.error]).toEqual([400, "invalid_provider_config"]);
    const toKey = await patch(`/v1/zones/${z}/providers/${p}`, { kind: "api_key", config_json: { header_name: "X" } });
    expect([toKey.status, toKey.body.error]).toEqual([400, "invalid_provider_config"]);
    const toMandate = await patch(`/v1/zones/${z}/providers/${p}`, { kind: "caracal_mandate", config_json: {} });
    expect([toMandate.status, toMandate.body.kind, toMandate.body.config_json, toMandate.body.secret_config_keys]).toEqual([200, "caracal_mandate", {}, []]);
    expect(Date.parse(toMandate.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(keyed.body.updated_at));
  });

  test("lists: {items, next_cursor} newest first, Link header, archived rows left out", async () => {
    const z = await zone();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await post(`/v1/zones/${z}/providers`, { name: `p${i}`, kind: "none" })).body.id);
    await del(`/v1/zones/${z}/providers/${ids[0]}`);
    const first = await get(`/v1/zones/${z}/providers?limit=1`);
    expect(first.status).toBe(200);
    expect(first.body.items.map((p: { id: string }) => p.id)).toEqual([ids[2]]);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    expect(first.headers.link).toContain('rel="next"');
    const second = await get(`/v1/zones/${z}/providers?limit=1&cursor=${first.body.next_cursor}`);
    expect(second.body.items.map((p: { id: string }) => p.id)).toEqual([ids[1]]);
    expect(second.body.next_cursor).toBeNull();
    expect(second.headers.link).toBeUndefined();
    const badLimit = await get(`/v1/zones/${z}/providers?limit=501`);
    expect([badLimit.status, badLimit.body.error]).toEqual([400, "invalid_query"]);
    const badCursor = await get(`/v1/zones/${z}/resources?cursor=nope!`);
    expect([badCursor.status, badCursor.body.error]).toEqual([400, "invalid_cursor"]);
  });

  test("every provider write emits its caracal.zone.events entry", async () => {
    const z = await zone();
    const p = (await apiKeyProvider(z)).body.id;
    await patch(`/v1/zones/${z}/providers/${p}`, { name: "renamed" });
    await del(`/v1/zones/${z}/providers/${p}`);
    const events = await zoneEventsOf(p, 3);
    expect(events.map((e) => [e.entity_type, e.action, e.zone_id])).toEqual([
      ["provider", "created", z],
      ["provider", "updated", z],
      ["provider", "deleted", z],
    ]);
    expect(events[1]!.changed_fields).toBe("name");
    for (const e of events) expect(e).toMatchObject({ outbox_id: expect.any(String), _sig: expect.any(String), request_id: expect.any(String) });
  });

  test("sealed at rest: raw document and wrapped zone key hold no plaintext; the seal opens under the zone key", async () => {
    const z = await zone();
    const secret = "plain-" + Math.random().toString(36).slice(2);
    const p = await post(`/v1/zones/${z}/providers`, { name: "sealed", kind: "bearer_token", config_json: { bearer_token: secret } });
    expect(p.status).toBe(201);
    const svc = c.brokers.providers!.getLocalService("providers") as any;
    const raw = await svc.models.Provider.collection.findOne({ _id: p.body.id });
    expect(JSON.stringify(raw)).not.toContain(secret);
    expect(Object.keys(raw.config_json)).toEqual([]);
    const wrapped = await svc.models.ZoneKey.collection.findOne({ _id: z });
    const dataKey: Buffer = await svc.zoneDataKey(z);
    expect(dataKey.length).toBe(32);
    expect(JSON.stringify(wrapped)).not.toContain(dataKey.toString("base64"));
    expect(JSON.stringify(wrapped)).not.toContain(dataKey.toString("hex"));
    expect(JSON.parse(open(dataKey, raw.secrets_sealed, `provider:${p.body.id}`).toString())).toEqual({ bearer_token: secret });
    // Another key does not open it, and another zone has a key of its own.
    const other = await zone();
    expect(() => open(Buffer.alloc(32, 7), raw.secrets_sealed, `provider:${p.body.id}`)).toThrow();
    expect((await svc.zoneDataKey(other)).equals(dataKey)).toBe(false);
    // A patch that gives no secrets keeps the sealed blob as it was.
    await patch(`/v1/zones/${z}/providers/${p.body.id}`, { config_json: { allowed_token_hosts: ["api.example"] } });
    const after = await svc.models.Provider.collection.findOne({ _id: p.body.id });
    expect(after.secrets_sealed).toEqual(raw.secrets_sealed);
  });
});

describe("resources: more rules", () => {
  test("generated resource identifiers skip archived ones; a name starting resource:// is used as is", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const body = { name: "Orders API", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app };
    const a = await post(`/v1/zones/${z}/resources`, body);
    const b = await post(`/v1/zones/${z}/resources`, body);
    expect([a.body.identifier, b.body.identifier]).toEqual(["resource://orders-api", "resource://orders-api-2"]);
    await del(`/v1/zones/${z}/resources/${b.body.id}`);
    expect((await post(`/v1/zones/${z}/resources`, body)).body.identifier).toBe("resource://orders-api-3");
    const verbatim = await post(`/v1/zones/${z}/resources`, { ...body, name: "resource://Verbatim" });
    expect([verbatim.status, verbatim.body.identifier, verbatim.body.name]).toEqual([201, "resource://Verbatim", "resource://Verbatim"]);
    const userinfo = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "https://u:p@api.example" });
    expect([userinfo.status, userinfo.body.error]).toEqual([400, "invalid_resource_identifier"]);
    const urn = await post(`/v1/zones/${z}/resources`, { ...body, name: undefined, identifier: "urn:x:y" });
    expect([urn.status, urn.body.identifier, urn.body.name]).toEqual([201, "urn:x:y", "urn:x:y"]);
  });

  test("schema failures are 400 invalid_resource; unknown keys are dropped", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const body = { identifier: "resource://s", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app };
    for (const bad of [{ ...body, scopes: undefined }, { ...body, name: "n".repeat(201) }, { ...body, upstream_url: "ftp://api.example" }, { ...body, upstream_url: "not a url" }, { ...body, operation_enforcement: "sometimes" }, { ...body, gateway_application_id: "" }]) {
      const r = await post(`/v1/zones/${z}/resources`, bad);
      expect([r.status, r.body.error]).toEqual([400, "invalid_resource"]);
    }
    const lenient = await post(`/v1/zones/${z}/resources`, { ...body, colour: "red", operation_enforcement: "transport_uniform" });
    expect([lenient.status, lenient.body.colour, lenient.body.operation_enforcement, lenient.body.name]).toEqual([201, undefined, "transport_uniform", "resource://s"]);
    const empty = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://e", operations: [{ method: " ", path: "/x", scope: "read" }] });
    expect([empty.status, empty.body.error]).toEqual([400, "operation_method_and_path_required"]);
    const foreignApp = await managedApp(await zone());
    const fa = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://fa", gateway_application_id: foreignApp });
    expect([fa.status, fa.body.error]).toEqual([404, "gateway_application_not_found"]);
    const archivedProvider = (await apiKeyProvider(z)).body.id;
    await del(`/v1/zones/${z}/providers/${archivedProvider}`);
    const ap = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://ap", credential_provider_id: archivedProvider });
    expect([ap.status, ap.body.error]).toEqual([404, "provider_not_found"]);
  });

  test("patch: a binding-only change keeps updated_at; unknown keys only are no_fields, 404 first", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const r = (await post(`/v1/zones/${z}/resources`, { identifier: "resource://b", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app })).body;
    const app2 = await managedApp(z);
    const moved = await patch(`/v1/zones/${z}/resources/${r.id}`, { gateway_application_id: app2 });
    expect([moved.status, moved.body.gateway_application_id, moved.body.updated_at]).toEqual([200, app2, r.updated_at]);
    const same = await patch(`/v1/zones/${z}/resources/${r.id}`, { gateway_application_id: app2 });
    expect(same.status).toBe(200);
    for (const nulled of [{ scopes: null }, { operations: null }, { name: null }]) {
      const n = await patch(`/v1/zones/${z}/resources/${r.id}`, nulled);
      expect([n.status, n.body.error]).toEqual([400, "invalid_resource"]);
    }
    const onlyUnknown = await patch(`/v1/zones/${z}/resources/${r.id}`, { colour: "red" });
    expect([onlyUnknown.status, onlyUnknown.body.error]).toEqual([400, "no_fields"]);
    const missing = await patch(`/v1/zones/${z}/resources/nope`, { colour: "red" });
    expect([missing.status, missing.body.error]).toEqual([404, "resource_not_found"]);
    const clearApp = await patch(`/v1/zones/${z}/resources/${r.id}`, { gateway_application_id: null });
    expect([clearApp.status, clearApp.body.error]).toEqual([400, "gateway_application_required"]);
    const other = (await post(`/v1/zones/${z}/resources`, { identifier: "resource://other", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app })).body.id;
    const clash = await patch(`/v1/zones/${z}/resources/${other}`, { identifier: "resource://b" });
    expect([clash.status, clash.body.error]).toEqual([409, "resource_identifier_conflict"]);
    const staleProvider = (await apiKeyProvider(z)).body.id;
    await del(`/v1/zones/${z}/providers/${staleProvider}`);
    const stale = await patch(`/v1/zones/${z}/resources/${r.id}`, { credential_provider_id: staleProvider });
    expect([stale.status, stale.body.error]).toEqual([404, "provider_not_found"]);
    const renamed = await patch(`/v1/zones/${z}/resources/${r.id}`, { identifier: "resource://b2" });
    expect([renamed.status, renamed.body.identifier]).toEqual([200, "resource://b2"]);
    expect(Date.parse(renamed.body.updated_at)).toBeGreaterThan(Date.parse(r.updated_at) - 1);
  });

  test("the Control resource: zone tokens get 409 on patch and delete; its none provider holds provider://none", async () => {
    const z = await zone();
    const control = (await post(`/v1/zones/${z}/resources`, { identifier: "caracal-control", scopes: ["control:invoke"] })).body;
    const t = (await post("/v1/admin-tokens", { name: "zt", scope: "zone", zone_id: z })).body.token;
    for (const r of [await patch(`/v1/zones/${z}/resources/${control.id}`, { name: "mine" }, t), await patch(`/v1/zones/${z}/resources/${control.id}`, { identifier: "resource://away" }, t), await del(`/v1/zones/${z}/resources/${control.id}`, t), await del(`/v1/zones/${z}/resources/${control.id}`)]) {
      expect([r.status, r.body.error]).toEqual([409, "protected_resource"]);
    }
    const none = await get(`/v1/zones/${z}/providers/provider-none-${z}`);
    expect([none.status, none.body.identifier, none.body.kind, none.body.name]).toEqual([200, "provider://none", "none", "No credential"]);
    const taken = await post(`/v1/zones/${z}/providers`, { identifier: "provider://none", kind: "none" });
    expect([taken.status, taken.body.error]).toEqual([409, "provider_identifier_conflict"]);
    const app = await managedApp(z);
    const patched = await patch(`/v1/zones/${z}/resources/${control.id}`, { name: "Control", gateway_application_id: app });
    expect([patched.status, patched.body.name, patched.body.gateway_application_id]).toEqual([200, "Control", null]);
    const { provider } = await bound(z);
    const normal = (await post(`/v1/zones/${z}/resources`, { identifier: "resource://n", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app })).body.id;
    const hijack = await patch(`/v1/zones/${z}/resources/${normal}`, { identifier: "caracal-control" }, t);
    expect([hijack.status, hijack.body.error]).toEqual([409, "protected_resource"]);
    const dupControl = await post(`/v1/zones/${z}/resources`, { identifier: "caracal-control", scopes: ["x"] });
    expect([dupControl.status, dupControl.body.error]).toEqual([409, "resource_identifier_conflict"]);
    expect((await get(`/v1/zones/${z}/resources`)).body.items.map((x: { id: string }) => x.id)).toContain(control.id);
  });

  test("a user provider://none first: the Control resource still gets its none provider", async () => {
    const z = await zone();
    const mine = await post(`/v1/zones/${z}/providers`, { identifier: "provider://none", kind: "caracal_mandate" });
    expect(mine.status).toBe(201);
    const control = await post(`/v1/zones/${z}/resources`, { identifier: "caracal-control", scopes: ["control:invoke"] });
    expect([control.status, control.body.credential_provider_id]).toEqual([201, `provider-none-${z}`]);
  });

  test("clearGatewayApplication clears every binding of the app once, with events", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const body = { upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app };
    const r1 = (await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://g1" })).body.id;
    const r2 = (await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://g2" })).body.id;
    const gw = c.brokers.gateway!;
    expect(await gw.call("providers.clearGatewayApplication", { zone_id: z, application_id: app })).toEqual({ cleared: 2 });
    expect(await gw.call("providers.clearGatewayApplication", { zone_id: z, application_id: app })).toEqual({ cleared: 0 });
    for (const id of [r1, r2]) {
      expect((await get(`/v1/zones/${z}/resources/${id}`)).body.gateway_application_id).toBeNull();
      const events = await zoneEventsOf(id, 2);
      expect(events.map((e) => [e.entity_type, e.action, e.changed_fields ?? null])).toEqual([
        ["resource", "created", null],
        ["resource", "updated", "gateway_application_id"],
      ]);
    }
  });

  test("an app archived by a process that died before unbinding, or while providers was down, is unbound by the background pass", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const app2 = await managedApp(z);
    const body = { upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider };
    const r1 = (await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://crash", gateway_application_id: app })).body.id;
    const r2 = (await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://down", gateway_application_id: app2 })).body.id;
    const Application = () => (c.brokers.applications!.getLocalService("applications") as any).models.Application;

    // A crash right after the archive write: the document as that write leaves it, nothing after.
    await Application().updateOne({ _id: app }, { $set: { archived_at: new Date(), gateway_unbind_pending: true } });
    // Providers down during a delete: the delete still answers 204 and leaves the flag.
    await c.brokers.providers!.stop();
    const gone = await del(`/v1/zones/${z}/applications/${app2}`);
    expect(gone.status).toBe(204);
    expect((await Application().findById(app2).lean()).gateway_unbind_pending).toBe(true);
    await c.restart("providers");
    for (const id of [r1, r2]) expect((await get(`/v1/zones/${z}/resources/${id}`)).body.gateway_application_id).not.toBeNull();

    expect(await c.brokers.gateway!.call("applications.backgroundPass")).toEqual({ archived: 0, unbound: 2 });
    for (const id of [r1, r2]) {
      const after = await get(`/v1/zones/${z}/resources/${id}`);
      expect([after.status, after.body.gateway_application_id]).toEqual([200, null]);
    }
    for (const id of [app, app2]) expect((await Application().findById(id).lean()).gateway_unbind_pending).toBeUndefined();
  });

  test("every resource write emits its caracal.zone.events entry", async () => {
    const z = await zone();
    const { provider, app } = await bound(z);
    const r = (await post(`/v1/zones/${z}/resources`, { identifier: "resource://ev", upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app })).body.id;
    await patch(`/v1/zones/${z}/resources/${r}`, { scopes: ["read", "write"] });
    await del(`/v1/zones/${z}/resources/${r}`);
    expectError(await get(`/v1/zones/${z}/resources/${r}`), 404, "resource_not_found");
    expect((await del(`/v1/zones/${z}/resources/${r}`)).status).toBe(404);
    const events = await zoneEventsOf(r, 3);
    expect(events.map((e) => [e.entity_type, e.action, e.zone_id])).toEqual([
      ["resource", "created", z],
      ["resource", "updated", z],
      ["resource", "deleted", z],
    ]);
    expect(events[1]!.changed_fields).toBe("scopes");
  });
});
