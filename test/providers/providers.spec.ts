import Redis from "ioredis";
import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
let redis: Redis;
const logLines: string[] = [];
beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "applications", "providers"], captureLogs: logLines });
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

async function zone() {
  const r = await post("/v1/zones", { name: "prov " + Math.random().toString(36).slice(2, 7) });
  expect(r.status).toBe(201);
  return r.body.id as string;
}
const apiKeyProvider = (z: string, extra: Record<string, unknown> = {}) =>
  post(`/v1/zones/${z}/providers`, { name: "Key " + Math.random().toString(36).slice(2, 6), kind: "api_key", config_json: { header_name: "Authorization", auth_scheme: "Bearer", api_key: "k-secret-123" }, ...extra });
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
    expect((await patch(`/v1/zones/${z}/providers/${p.body.id}`, {})).body.error).toBe("no_fields");
    expect((await patch(`/v1/zones/${z}/providers/${p.body.id}`, { unknown_key: 1 })).body.error).toBe("no_fields");
    expect((await patch(`/v1/zones/${z}/providers/${p.body.id}`, { kind: "bearer_token" })).body.error).toBe("provider_config_required");
    expect((await patch(`/v1/zones/${z}/providers/${p.body.id}`, { identifier: "resource://pipernet" })).body.error).toBe("invalid_provider_identifier");
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
    const stream = JSON.stringify(await redis.xrevrange("caracal.zone.events", "+", "-", "COUNT", 3000));
    for (const r of reads) expect(JSON.stringify(r.body)).not.toContain(secret);
    expect(stream).toContain(p.body.id);
    expect(stream).not.toContain(secret);
    expect(logLines.join("\n")).not.toContain(secret);
  });
});

describe("resources", () => {
  async function bound(z: string) {
    const provider = (await apiKeyProvider(z)).body.id as string;
    const app = await managedApp(z);
    return { provider, app };
  }

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
    expect((await post(`/v1/zones/${z}/resources`, { identifier: "resource://a", scopes: ["read"], credential_provider_id: provider })).body.error).toBe("upstream_url_required");
    expect((await post(`/v1/zones/${z}/resources`, { identifier: "resource://a", scopes: ["read"], upstream_url: "https://x.example", gateway_application_id: app })).body.error).toBe("credential_provider_required");
    expect((await post(`/v1/zones/${z}/resources`, { identifier: "resource://a", scopes: ["read"], upstream_url: "https://x.example", credential_provider_id: provider })).body.error).toBe("gateway_application_required");
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
    expect(badScope.body.error).toBe("operation_scope_not_in_resource_scopes");
    const badPath = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://n3", operations: [{ method: "get", path: "api", scope: "read" }] });
    expect(badPath.body.error).toBe("operation_path_must_be_absolute");
    const dup = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://n4", operations: [{ method: "get", path: "/a", scope: "read" }, { method: "GET", path: "/a", scope: "read" }] });
    expect(dup.body.error).toBe("operation_duplicate");
    const noScopes = await post(`/v1/zones/${z}/resources`, { ...body, identifier: "resource://n5", scopes: [] });
    expect(noScopes.body.error).toBe("invalid_resource");
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
    expect((await get(`/v1/zones/${z}/resources/${control.body.id}`, t)).body.error).toBe("resource_not_found");
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
    expect((await patch(`/v1/zones/${z}/resources/${r.body.id}`, { upstream_url: null })).body.error).toBe("upstream_url_required");
    expect((await patch(`/v1/zones/${z}/resources/${r.body.id}`, { scopes: ["read"] })).body.error).toBe("operation_scope_not_in_resource_scopes");
    expect((await patch(`/v1/zones/${z}/resources/${r.body.id}`, { scopes: ["read", "write"] })).body.error).toBe("no_fields");
    const ok = await patch(`/v1/zones/${z}/resources/${r.body.id}`, { name: "Renamed" });
    expect([ok.status, ok.body.name]).toEqual([200, "Renamed"]);
    expect((await patch(`/v1/zones/${z}/resources/unknown`, { name: "x" })).body.error).toBe("resource_not_found");
  });
});
