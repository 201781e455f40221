// Provider grants and the OAuth authorization-code flow against the real servers and a real HTTPS token
// endpoint on loopback (self-signed certificate trusted through the test-only settings): reference-policy
// test cases 48–57, the full authorize → callback round trip, denied / expired / replayed states, every
// client authentication method, the exchange's failure codes, and a secret scan of what came out.
import Redis from "ioredis";
import { createHash, randomBytes } from "node:crypto";
import { eventually, startCluster, type Cluster } from "../helpers/cluster";
import { startTokenServer, type TokenServer } from "../helpers/token-server";
import { fieldsOf } from "../../shared/signing";
import { open } from "../../shared/sealing";
import { loadZoneDataKey } from "../../shared/zone-keys";
import { activeKeyOf } from "../../services/grants/models/grant.model";
import { postForm, TOKEN_TIMEOUT_MS } from "../../services/grants/token-exchange";
import { readFileSync } from "node:fs";

let c: Cluster;
let redis: Redis;
let tokens: TokenServer;
const logLines: string[] = [];
/** Every response body this suite received, for the secret scan. */
const responses: string[] = [];
const clientSecret = "cs-" + randomBytes(16).toString("base64url");

beforeAll(async () => {
  tokens = await startTokenServer();
  c = await startCluster({
    processes: ["zones", "applications", "providers", "grants"],
    captureLogs: logLines,
    env: { DCR_GC_INTERVAL_MS: "3600000", OAUTH_TEST_ALLOW_LOOPBACK: "true", OAUTH_TEST_CA_FILE: tokens.caFile },
  });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
});
afterAll(async () => {
  redis.disconnect();
  await c.stop();
  await tokens.close();
});

type Res = { status: number; body: any; text: string; headers: Record<string, string> };
const record = async (p: PromiseLike<Res>): Promise<Res> => {
  const r = await p;
  responses.push(r.text ?? "");
  return r;
};
const post = (path: string, body: unknown) => record(c.http().post(path).set(c.auth()).send(body as object));
const patch = (path: string, body: unknown) => record(c.http().patch(path).set(c.auth()).send(body as object));
/** The callback, as a browser would call it: no Authorization header. */
const callback = (z: string, query: Record<string, string>, accept?: string) => {
  const req = c.http().get(`/v1/zones/${z}/provider-grants/oauth/callback?${new URLSearchParams(query)}`);
  return record(accept ? req.set("Accept", accept) : req);
};
const expectError = (r: { status: number; body: { error?: string } }, status: number, code: string) => expect([r.status, r.body.error]).toEqual([status, code]);
const rand = () => Math.random().toString(36).slice(2, 8);
const user = () => "user-" + rand();

interface World {
  z: string;
  y: string;
  app: string;
  /** oauth2_authorization_code, client_secret_basic, token endpoint on the loopback server. */
  p: string;
  r: string;
  /** api_key provider and its resource. */
  k: string;
  rk: string;
}
let w: World;

const oauthConfig = (extra: Record<string, unknown> = {}) => ({
  authorization_endpoint: "https://idp.example/authorize?prompt=consent",
  token_endpoint: `https://localhost:${tokens.port}/token`,
  redirect_uri: "https://app.example/oauth/cb",
  client_id: "c1",
  scopes: ["openid"],
  allowed_token_hosts: ["localhost"],
  client_secret: clientSecret,
  ...extra,
});

async function oauthProvider(z: string, extra: Record<string, unknown> = {}) {
  const p = await post(`/v1/zones/${z}/providers`, { name: "OAuth " + rand(), kind: "oauth2_authorization_code", config_json: oauthConfig(extra) });
  expect(p.status).toBe(201);
  return p.body.id as string;
}
async function resource(z: string, provider: string, app: string) {
  const r = await post(`/v1/zones/${z}/resources`, { name: "R " + rand(), scopes: ["example:read", "example:write"], upstream_url: "https://api.example", credential_provider_id: provider, gateway_application_id: app });
  expect(r.status).toBe(201);
  return r.body.id as string;
}
/** A provider and its resource in zone Z, for tests that change the provider. */
async function pair(extra: Record<string, unknown> = {}) {
  const p = await oauthProvider(w.z, extra);
  return { p, r: await resource(w.z, p, w.app) };
}

beforeAll(async () => {
  const z = (await post("/v1/zones", { name: "pg " + rand() })).body.id;
  const y = (await post("/v1/zones", { name: "pg other " + rand() })).body.id;
  const app = (await post(`/v1/zones/${z}/applications`, { name: "gw", registration_method: "managed" })).body.id;
  const p = await oauthProvider(z);
  const r = await resource(z, p, app);
  const k = (await post(`/v1/zones/${z}/providers`, { name: "Key " + rand(), kind: "api_key", config_json: { header_name: "X-Key", api_key: "k-" + rand() } })).body.id;
  const rk = await resource(z, k, app);
  w = { z, y, app, p, r, k, rk };
});

const grantsService = () => c.brokers.grants!.getLocalService("grants") as any;
/** The tokens sealed in a stored provider grant, opened with the grants service's data key of the zone. */
async function openTokens(doc: { zone_id: string; user_id: string; resource_id: string; provider_id: string; tokens_sealed: { nonce: string; ciphertext: string } }) {
  const key = await loadZoneDataKey(grantsService().models.ZoneKey, Buffer.from("11".repeat(32), "hex"), doc.zone_id);
  return JSON.parse(open(key, doc.tokens_sealed, `provider-grant:${activeKeyOf(doc.zone_id, doc.user_id, doc.resource_id, doc.provider_id)}`).toString("utf8"));
}
const authorize = (body: Record<string, unknown>, z = w.z) => post(`/v1/zones/${z}/provider-grants/oauth/authorize`, body);

describe("provider grants: import", () => {
  test("no access_token is 400 invalid_provider_grant (case 48)", async () => {
    const r = await post(`/v1/zones/${w.z}/provider-grants`, { user_id: user(), resource_id: w.r, provider_id: w.p, scopes: ["example:read"] });
    expectError(r, 400, "invalid_provider_grant");
    expect(r.body.details.issues).toEqual([{ path: ["access_token"], message: expect.any(String) }]);
  });

  test("an api_key provider is 400 provider_grant_unsupported (case 49)", async () => {
    const r = await post(`/v1/zones/${w.z}/provider-grants`, { user_id: user(), resource_id: w.rk, provider_id: w.k, scopes: ["example:read"], access_token: "at" });
    expectError(r, 400, "provider_grant_unsupported");
    expect(r.body.details.detail).toBe("only oauth2_authorization_code providers use delegated provider grants");
  });

  test("twice is an upsert: same id, new scopes, no token fields, tokens sealed (case 50)", async () => {
    const u = user();
    const at1 = "import-at-" + rand();
    const a = await post(`/v1/zones/${w.z}/provider-grants`, { user_id: u, resource_id: w.r, provider_id: w.p, scopes: ["example:read"], access_token: at1, refresh_token: "import-rt-" + rand(), expires_at: "2030-01-01T00:00:00Z" });
    expect(a.status).toBe(201);
    expect(a.body).toEqual({ id: expect.any(String), zone_id: w.z, user_id: u, resource_id: w.r, provider_id: w.p, scopes: ["example:read"], status: "active", expires_at: "2030-01-01T00:00:00.000Z", created_at: expect.stringMatching(/Z$/), updated_at: expect.stringMatching(/Z$/) });
    const at2 = "import-at-" + rand();
    const b = await post(`/v1/zones/${w.z}/provider-grants`, { user_id: u, resource_id: w.r, provider_id: w.p, scopes: ["example:write"], access_token: at2 });
    expect(b.status).toBe(201);
    expect(b.body).toMatchObject({ id: a.body.id, scopes: ["example:write"], expires_at: null, created_at: a.body.created_at });
    for (const body of [a.body, b.body]) expect(Object.keys(body).filter((k) => /token/.test(k))).toEqual([]);
    const doc = await grantsService().models.ProviderGrant.findById(a.body.id).lean();
    expect(doc).toMatchObject({ refresh_token_version: 1, refreshed_at: null, status: "active" });
    expect(JSON.stringify(doc)).not.toContain(at2);
    expect(await openTokens(doc)).toEqual({ access_token: at2, refresh_token: null });
  });

  test("concurrent imports for one tuple leave one active row", async () => {
    const u = user();
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => post(`/v1/zones/${w.z}/provider-grants`, { user_id: u, resource_id: w.r, provider_id: w.p, scopes: ["example:read"], access_token: `at-${i}` })));
    expect(results.map((r) => r.status)).toEqual(Array(6).fill(201));
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    const rows = await grantsService().models.ProviderGrant.find({ user_id: u }).lean();
    expect(rows).toHaveLength(1);
    expect(rows[0].refresh_token_version).toBe(5);
  });

  test("an expires_at with an offset is 400 invalid_provider_grant (case 51)", async () => {
    const r = await post(`/v1/zones/${w.z}/provider-grants`, { user_id: user(), resource_id: w.r, provider_id: w.p, scopes: ["example:read"], access_token: "at", expires_at: "2026-01-01T00:00:00+02:00" });
    expectError(r, 400, "invalid_provider_grant");
  });

  test("the checks run in the §3.6 order", async () => {
    const other = await pair();
    const base = { user_id: user(), resource_id: w.r, provider_id: w.p, scopes: ["example:read"], access_token: "at" };
    const imp = (body: Record<string, unknown>, z = w.z) => post(`/v1/zones/${z}/provider-grants`, body);
    expectError(await imp({ scopes: "x" }, "nope-" + rand()), 404, "zone_not_found");
    expectError(await imp({ ...base, provider_id: "nope", scopes: ["Bad"] }), 400, "invalid_provider_grant");
    expectError(await imp({ ...base, provider_id: "nope", resource_id: "nope" }), 404, "provider_not_found");
    expectError(await imp({ ...base, provider_id: w.k, resource_id: "nope" }), 400, "provider_grant_unsupported");
    expectError(await imp({ ...base, resource_id: "nope", scopes: ["admin:all"] }), 404, "resource_not_found");
    expectError(await imp({ ...base, resource_id: other.r, scopes: ["admin:all"] }), 400, "provider_resource_mismatch");
    expectError(await imp({ ...base, scopes: ["admin:all"] }), 403, "grant_scopes_exceed_resource");
    expectError(await imp({ ...base, provider_id: w.p }, w.y), 404, "provider_not_found");
  });

  test("revoke twice: 200 revoked, then 404 provider_grant_not_found (case 57)", async () => {
    const u = user();
    const made = await post(`/v1/zones/${w.z}/provider-grants`, { user_id: u, resource_id: w.r, provider_id: w.p, scopes: ["example:read"], access_token: "at-" + rand() });
    const first = await post(`/v1/zones/${w.z}/provider-grants/revoke`, { user_id: u, resource_id: w.r, provider_id: w.p });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id: made.body.id, status: "revoked" });
    expectError(await post(`/v1/zones/${w.z}/provider-grants/revoke`, { user_id: u, resource_id: w.r, provider_id: w.p }), 404, "provider_grant_not_found");
    expectError(await post(`/v1/zones/${w.z}/provider-grants/revoke`, { user_id: u }), 400, "invalid_provider_grant_revoke");
    // A new import after the revocation is a new row.
    const again = await post(`/v1/zones/${w.z}/provider-grants`, { user_id: u, resource_id: w.r, provider_id: w.p, scopes: ["example:read"], access_token: "at-" + rand() });
    expect(again.status).toBe(201);
    expect(again.body.id).not.toBe(made.body.id);
    const events = await eventually(async () => {
      const all = (await redis.xrevrange(c.stream("caracal.zone.events"), "+", "-", "COUNT", 5000)).map(([, f]) => fieldsOf(f)).filter((e) => e.entity_id === made.body.id);
      return all.length >= 2 ? all.reverse() : undefined;
    }, 8000);
    expect(events.map((e) => [e.entity_type, e.action])).toEqual([["provider_grant", "created"], ["provider_grant", "deleted"]]);
  });
});

describe("OAuth authorize", () => {
  test("200 with the URL built as §3.6, the state kept in Redis for 600 s (case 52)", async () => {
    const before = Date.now();
    const r = await authorize({ user_id: user(), resource_id: w.r, provider_id: w.p, scopes: ["example:read"] });
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(["authorization_url", "expires_at", "state"]);
    expect(r.body.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const url = new URL(r.body.authorization_url);
    expect(`${url.origin}${url.pathname}`).toBe("https://idp.example/authorize");
    const q = url.searchParams;
    expect({ prompt: q.get("prompt"), response_type: q.get("response_type"), client_id: q.get("client_id"), redirect_uri: q.get("redirect_uri"), scope: q.get("scope"), state: q.get("state"), method: q.get("code_challenge_method") }).toEqual({
      prompt: "consent", response_type: "code", client_id: "c1", redirect_uri: "https://app.example/oauth/cb", scope: "openid", state: r.body.state, method: "S256",
    });
    const expires = Date.parse(r.body.expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 599_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 601_000);
    const key = `${c.namespace}:api:provider_oauth_state:${r.body.state}`;
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(590);
    expect(ttl).toBeLessThanOrEqual(600);
    const stored = JSON.parse((await redis.get(key))!);
    expect(stored.code_verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get("code_challenge")).toBe(createHash("sha256").update(stored.code_verifier).digest("base64url"));
    expect(stored).toMatchObject({ zone_id: w.z, resource_id: w.r, provider_id: w.p, scopes: ["example:read"] });
    expect(r.body.authorization_url).not.toContain("example%3Aread");
  });

  test("authorization_params come first and the protocol parameters override them", async () => {
    // The provider config refuses reserved names in authorization_params, so the override shows on the endpoint's own query.
    const { p, r } = await pair({ authorization_endpoint: "https://idp.example/authorize?client_id=evil&state=x", authorization_params: { audience: "api", access_type: "offline" }, scopes: ["openid", "email"] });
    const a = await authorize({ user_id: user(), resource_id: r, provider_id: p, scopes: ["example:read"] });
    const q = new URL(a.body.authorization_url).searchParams;
    expect([q.getAll("client_id"), q.getAll("state"), q.get("audience"), q.get("access_type"), q.get("scope")]).toEqual([["c1"], [a.body.state], "api", "offline", "openid email"]);
  });

  test("the checks run in the §3.6 order", async () => {
    const base = { user_id: user(), resource_id: w.r, provider_id: w.p, scopes: ["example:read"] };
    expectError(await authorize({}, "nope-" + rand()), 404, "zone_not_found");
    expectError(await authorize({ ...base, access_token: "x" }), 400, "invalid_provider_oauth_authorize");
    expectError(await authorize({ ...base, provider_id: "nope" }), 404, "provider_not_found");
    const unsupported = await authorize({ ...base, provider_id: w.k });
    expectError(unsupported, 400, "provider_grant_unsupported");
    expect(unsupported.body.details.detail).toBe("only oauth2_authorization_code providers use browser authorization");
    expectError(await authorize({ ...base, resource_id: "nope" }), 404, "resource_not_found");
    expectError(await authorize({ ...base, resource_id: w.rk }), 400, "provider_resource_mismatch");
    expectError(await authorize({ ...base, scopes: ["admin:all"] }), 403, "grant_scopes_exceed_resource");
  });
});

describe("OAuth callback", () => {
  const start = async (z = w.z, ids: { p: string; r: string } = { p: w.p, r: w.r }, u = user()) => {
    const a = await authorize({ user_id: u, resource_id: ids.r, provider_id: ids.p, scopes: ["example:read"] }, z);
    expect(a.status).toBe(200);
    return { state: a.body.state as string, user: u, challenge: new URL(a.body.authorization_url).searchParams.get("code_challenge")! };
  };

  test("a short state is 400 invalid_oauth_callback without auth (case 53)", async () => {
    expectError(await callback(w.z, { state: "short" }), 400, "invalid_oauth_callback");
  });

  test("an unknown state with Accept text/html is a 400 HTML page (case 54)", async () => {
    const r = await callback(w.z, { state: randomBytes(32).toString("base64url"), code: "x" }, "text/html,application/xhtml+xml");
    expect(r.status).toBe(400);
    expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(r.text).toContain("oauth_state_expired");
    const json = await callback(w.z, { state: randomBytes(32).toString("base64url") }, "text/html, application/json");
    expect(json.headers["content-type"]).toMatch(/^application\/json/);
    expectError(json, 400, "oauth_state_expired");
  });

  test("a bad path id is JSON 400 invalid_params even for a browser", async () => {
    const r = await record(c.http().get(`/v1/zones/${encodeURIComponent("a b")}/provider-grants/oauth/callback?state=${"s".repeat(43)}`).set("Accept", "text/html"));
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expectError(r, 400, "invalid_params");
  });

  test("denied, then the same state again is oauth_state_expired (case 55)", async () => {
    const { state } = await start();
    const denied = await callback(w.z, { state, error: "access_denied" });
    expectError(denied, 400, "provider_oauth_denied");
    expect(denied.body.details.detail).toBe("access_denied");
    expectError(await callback(w.z, { state, code: "abc" }), 400, "oauth_state_expired");
    const second = await start();
    const described = await callback(w.z, { state: second.state, error: "access_denied", error_description: "The user said no" });
    expect(described.body.details.detail).toBe("The user said no");
  });

  test("what the IdP sends back is escaped in the HTML page, which may load nothing", async () => {
    const { state } = await start();
    const r = await callback(w.z, { state, error: "access_denied", error_description: "<script>alert(1)</script>" }, "text/html");
    expect(r.status).toBe(400);
    expect(r.text).not.toContain("<script>");
    expect(r.text).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(r.headers["content-security-policy"]).toBe("default-src 'none'; frame-ancestors 'none'");
  });

  test("a state issued for Z on zone Y's path is oauth_state_mismatch and burns the state (case 56)", async () => {
    const { state } = await start();
    expectError(await callback(w.y, { state, code: "abc" }), 400, "oauth_state_mismatch");
    expectError(await callback(w.z, { state, code: "abc" }), 400, "oauth_state_expired");
  });

  test("a state past its 600 s is oauth_state_expired (Redis expiry, shortened here)", async () => {
    const { state } = await start();
    await redis.pexpire(`${c.namespace}:api:provider_oauth_state:${state}`, 50);
    await new Promise((r) => setTimeout(r, 150));
    expectError(await callback(w.z, { state, code: "abc" }), 400, "oauth_state_expired");
  });

  test("no code is authorization_code_required; a stored state of the wrong shape is oauth_state_invalid", async () => {
    const { state } = await start();
    expectError(await callback(w.z, { state }), 400, "authorization_code_required");
    const forged = randomBytes(32).toString("base64url");
    await redis.set(`${c.namespace}:api:provider_oauth_state:${forged}`, JSON.stringify({ zone_id: w.z }), "EX", 60);
    expectError(await callback(w.z, { state: forged, code: "abc" }), 400, "oauth_state_invalid");
  });

  test("round trip: authorize → callback → provider grant; PKCE, Basic auth, sealed tokens; replay refused", async () => {
    const before = tokens.requests.length;
    const { state, user: u, challenge } = await start();
    const r = await callback(w.z, { state, code: "the-code" });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ id: expect.any(String), zone_id: w.z, user_id: u, resource_id: w.r, provider_id: w.p, scopes: ["example:read"], status: "active", expires_at: expect.stringMatching(/Z$/), created_at: expect.any(String), updated_at: expect.any(String) });
    expect(Math.abs(Date.parse(r.body.expires_at) - (Date.now() + 3600_000))).toBeLessThan(60_000);
    expect(tokens.requests.length).toBe(before + 1);
    const sent = tokens.requests[before]!;
    expect(sent.path).toBe("/token");
    expect(sent.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(sent.headers.authorization).toBe("Basic " + Buffer.from(`c1:${clientSecret}`).toString("base64"));
    expect(Object.fromEntries(sent.form)).toEqual({ grant_type: "authorization_code", code: "the-code", redirect_uri: "https://app.example/oauth/cb", code_verifier: expect.any(String) });
    expect(createHash("sha256").update(sent.form.get("code_verifier")!).digest("base64url")).toBe(challenge);
    const doc = await grantsService().models.ProviderGrant.findById(r.body.id).lean();
    const [access, refresh] = tokens.issued.slice(-2);
    expect(await openTokens(doc)).toEqual({ access_token: access, refresh_token: refresh });
    expectError(await callback(w.z, { state, code: "the-code" }), 400, "oauth_state_expired");
    expect(tokens.requests.length).toBe(before + 1);
    // A second consent for the same tuple replaces the tokens of the same row.
    const again = await start(w.z, { p: w.p, r: w.r }, u);
    const html = await callback(w.z, { state: again.state, code: "code-2" }, "text/html");
    expect(html.status).toBe(201);
    expect(html.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(html.text).toContain("<title>OAuth provider connected</title>");
    const updated = await grantsService().models.ProviderGrant.findById(r.body.id).lean();
    expect(updated.refresh_token_version).toBe(1);
    expect((await openTokens(updated)).access_token).toBe(tokens.issued[tokens.issued.length - 2]);
  });

  test("client_secret_post and none put the client in the form", async () => {
    const post1 = await pair({ client_auth_method: "client_secret_post" });
    const none = await pair({ client_auth_method: "none", client_secret: undefined, token_params: { resource: "https://api.example" } });
    const a = await start(w.z, post1);
    const before = tokens.requests.length;
    expect((await callback(w.z, { state: a.state, code: "c" })).status).toBe(201);
    const sentPost = tokens.requests[before]!;
    expect(sentPost.headers.authorization).toBeUndefined();
    expect([sentPost.form.get("client_id"), sentPost.form.get("client_secret")]).toEqual(["c1", clientSecret]);
    const b = await start(w.z, none);
    expect((await callback(w.z, { state: b.state, code: "c" })).status).toBe(201);
    const sentNone = tokens.requests[before + 1]!;
    expect(sentNone.headers.authorization).toBeUndefined();
    expect([sentNone.form.get("client_id"), sentNone.form.has("client_secret"), sentNone.form.get("resource")]).toEqual(["c1", false, "https://api.example"]);
  });

  test("the provider and resource are checked again at the callback", async () => {
    const gone = await pair();
    const s = await start(w.z, gone);
    expect((await c.http().delete(`/v1/zones/${w.z}/providers/${gone.p}`).set(c.auth())).status).toBe(204);
    expectError(await callback(w.z, { state: s.state, code: "c" }), 404, "provider_not_found");
    const narrowed = await pair();
    const s2 = await start(w.z, narrowed);
    expect((await patch(`/v1/zones/${w.z}/resources/${narrowed.r}`, { scopes: ["example:write"] })).status).toBe(200);
    expectError(await callback(w.z, { state: s2.state, code: "c" }), 403, "grant_scopes_exceed_resource");
  });

  test("a token host outside allowed_token_hosts is 400 provider_token_endpoint_not_allowed: no secret fetched, nothing sent", async () => {
    const other = await pair({ allowed_token_hosts: ["auth.example"] });
    const s = await start(w.z, other);
    const before = tokens.requests.length;
    const spy = jest.spyOn(c.brokers.grants!, "call");
    try {
      const r = await callback(w.z, { state: s.state, code: "c" });
      expectError(r, 400, "provider_token_endpoint_not_allowed");
      expect(r.body.details.detail).toContain("localhost");
      expect(spy.mock.calls.map(([name]) => name)).not.toContain("providers.oauthClientSecret");
    } finally {
      spy.mockRestore();
    }
    expect(tokens.requests.length).toBe(before);
  });

  test("a zone archived since the consent started takes no grant: 404 zone_not_found", async () => {
    const z = (await post("/v1/zones", { name: "pg archived " + rand() })).body.id;
    const app = (await post(`/v1/zones/${z}/applications`, { name: "gw", registration_method: "managed" })).body.id;
    const p = await oauthProvider(z);
    const s = await start(z, { p, r: await resource(z, p, app) });
    expect((await c.http().delete(`/v1/zones/${z}`).set(c.auth())).status).toBe(204);
    const before = tokens.requests.length;
    expectError(await callback(z, { state: s.state, code: "c" }), 404, "zone_not_found");
    expect(tokens.requests.length).toBe(before);
  });

  test.each([
    ["a non-200 answer", 502, "provider_token_exchange_failed", (_q: unknown, res: any) => { res.writeHead(400, { "content-type": "application/json" }); res.end('{"error":"invalid_grant"}'); }],
    ["an answer over 64 KiB", 502, "provider_token_exchange_failed", (_q: unknown, res: any) => { res.writeHead(200, { "content-type": "application/json" }); res.end(JSON.stringify({ access_token: "a", pad: "x".repeat(70 * 1024) })); }],
    ["a chunked answer over 64 KiB", 502, "provider_token_exchange_failed", (_q: unknown, res: any) => { res.writeHead(200, { "content-type": "application/json" }); for (let i = 0; i < 70; i++) res.write("x".repeat(1024)); res.end(); }],
    ["an answer that is not JSON", 502, "provider_token_response_invalid", (_q: unknown, res: any) => { res.writeHead(200, { "content-type": "text/html" }); res.end("<html>hi</html>"); }],
    ["an answer without access_token", 502, "provider_token_response_invalid", (_q: unknown, res: any) => { res.writeHead(200, { "content-type": "application/json" }); res.end('{"token_type":"Bearer"}'); }],
    ["a redirect", 502, "provider_token_exchange_failed", (_q: unknown, res: any) => { res.writeHead(302, { location: "https://localhost/elsewhere" }); res.end(); }],
  ])("%s is %i %s", async (_name, status, code, handler) => {
    tokens.handle(handler as any);
    try {
      const s = await start();
      expectError(await callback(w.z, { state: s.state, code: "c" }), status, code);
    } finally {
      tokens.handle(null);
    }
  });
});

describe("token exchange deadline", () => {
  test("an endpoint that never answers is given up at the deadline (15 s in the service; 300 ms here)", async () => {
    expect(TOKEN_TIMEOUT_MS).toBe(15_000);
    tokens.handle(() => undefined);
    try {
      const err = await postForm(new URL(`https://localhost:${tokens.port}/token`), new URLSearchParams({ code: "c" }), {}, { allowLoopback: true, caPem: readFileSync(tokens.caFile, "utf8"), timeoutMs: 300 }).catch((e: Error) => e);
      expect(String(err)).toContain("no answer within 300 ms");
    } finally {
      tokens.handle(null);
    }
  });
});

describe("secrets", () => {
  test("no token, client secret or verifier in any response, zone event or log line (0 hits)", async () => {
    // One more round trip so this test obtains tokens of its own even when run alone.
    const a = await authorize({ user_id: user(), resource_id: w.r, provider_id: w.p, scopes: ["example:read"] });
    const verifier = JSON.parse((await redis.get(`${c.namespace}:api:provider_oauth_state:${a.body.state}`))!).code_verifier;
    expect((await callback(w.z, { state: a.body.state, code: "c" })).status).toBe(201);
    const secrets = [...tokens.issued, clientSecret, verifier].filter((s) => s.length >= 8);
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    const entries = (await redis.xrange(c.stream("caracal.zone.events"), "-", "+")).map(([, f]) => f.join("\n"));
    expect(entries.length).toBeGreaterThan(10);
    const haystacks = { responses: responses.join("\n"), events: entries.join("\n"), logs: logLines.join("\n") };
    const hits = Object.entries(haystacks).flatMap(([where, text]) => secrets.filter((s) => text.includes(s)).map((s) => `${where}: ${s.slice(0, 6)}…`));
    expect(hits).toEqual([]);
    expect(responses.length).toBeGreaterThan(20);
    expect(logLines.length).toBeGreaterThan(0);
    const docs = await grantsService().models.ProviderGrant.find({ zone_id: w.z }).lean();
    const stored = JSON.stringify(docs);
    expect(secrets.filter((s) => stored.includes(s))).toEqual([]);
  });
});
