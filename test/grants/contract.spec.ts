// The grant routes as /docs states them, held against the running cluster: every grant route answers
// its documented status and response schema (the OAuth round trip included, against the loopback token
// endpoint), and `null` in any field of a grant write body is a 400 with the route's code, writing nothing.
import Ajv2020 from "ajv/dist/2020";
import { startCluster, type Cluster } from "../helpers/cluster";
import { startTokenServer, type TokenServer } from "../helpers/token-server";
import { ROUTES, type RouteDef } from "../../gateway/routes";
import { API_MODULES } from "../../gateway/api-modules";

let c: Cluster;
let tokens: TokenServer;
let doc: Record<string, any>;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat("date-time", { type: "string", validate: (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(s) });

beforeAll(async () => {
  tokens = await startTokenServer();
  c = await startCluster({ processes: ["zones", "applications", "providers", "grants"], env: { OAUTH_TEST_ALLOW_LOOPBACK: "true", OAUTH_TEST_CA_FILE: tokens.caFile } });
  doc = (await c.http().get("/docs/openapi.json")).body;
}, 60_000);
afterAll(async () => {
  await c?.stop();
  await tokens?.close();
});

const routeOf = (action: string): RouteDef => ROUTES.find((x) => x.action === action)!;
const opOf = (r: RouteDef) => doc.paths["/v1" + r.path.replace(/:([A-Za-z]+)/g, "{$1}")]?.[r.method.toLowerCase()];
const urlOf = (r: RouteDef, params: Record<string, string>) => "/v1" + r.path.replace(/:([A-Za-z]+)/g, (_m, n: string) => encodeURIComponent(params[n] ?? "missing"));
const post = (path: string, body: unknown) => c.http().post(path).set(c.auth()).send(body as object);

async function send(action: string, params: Record<string, string> = {}, body?: unknown, query = "") {
  const r = routeOf(action);
  let req = c.http()[r.method.toLowerCase() as "get" | "post" | "delete"](urlOf(r, params) + query);
  if (!r.public) req = req.set(c.auth());
  if (body !== undefined) req = req.send(body as object);
  return req;
}

/** A zone with an application, an OAuth provider whose token endpoint is the loopback server, and a resource. */
async function world() {
  const Z = (await post("/v1/zones", { name: "grants contract " + Math.random().toString(36).slice(2, 7) })).body.id as string;
  const A = (await post(`/v1/zones/${Z}/applications`, { name: "Runner", registration_method: "managed" })).body.id as string;
  const config_json = {
    authorization_endpoint: "https://idp.example/authorize", token_endpoint: `https://localhost:${tokens.port}/token`, redirect_uri: "https://app.example/cb",
    client_id: "c1", scopes: ["openid"], allowed_token_hosts: ["localhost"], client_secret: "contract-secret",
  };
  const P = (await post(`/v1/zones/${Z}/providers`, { name: "OAuth", kind: "oauth2_authorization_code", config_json })).body.id as string;
  const R = (await post(`/v1/zones/${Z}/resources`, { name: "Payments", scopes: ["payments:read", "payments:write"], upstream_url: "https://api.example", credential_provider_id: P, gateway_application_id: A })).body.id as string;
  return { Z, A, P, R };
}

test("every grant route answers its documented status and response schema", async () => {
  const covered = new Set<string>();
  const step = async (action: string, params: Record<string, string>, body?: unknown, query = "") => {
    const res = await send(action, params, body, query);
    const entry = API_MODULES.grants![action.split(".")[1]!]!;
    expect({ action, status: res.status, body: res.status === entry.status ? undefined : res.body }).toEqual({ action, status: entry.status, body: undefined });
    if (entry.status !== 204) {
      const ok = ajv.validate(opOf(routeOf(action)).responses[String(entry.status)].content["application/json"].schema, res.body);
      expect({ action, errors: ok ? null : ajv.errors }).toEqual({ action, errors: null });
    }
    covered.add(action);
    return res.body;
  };
  const { Z, A, P, R } = await world();
  const G = (await step("grants.create", { zoneId: Z }, { application_id: A, user_id: "u1", resource_id: R, scopes: ["payments:read"] })).id;
  await step("grants.list", { zoneId: Z });
  await step("grants.get", { zoneId: Z, id: G });
  await step("grants.revoke", { zoneId: Z, id: G });
  await step("grants.createProviderGrant", { zoneId: Z }, { user_id: "u1", resource_id: R, provider_id: P, scopes: ["payments:read"], access_token: "imported-token" });
  const a = await step("grants.authorize", { zoneId: Z }, { user_id: "u2", resource_id: R, provider_id: P, scopes: ["payments:read"] });
  await step("grants.callback", { zoneId: Z }, undefined, `?state=${a.state}&code=contract-code`);
  await step("grants.revokeProviderGrant", { zoneId: Z }, { user_id: "u2", resource_id: R, provider_id: P });
  expect([...covered].sort()).toEqual(ROUTES.filter((r) => r.action.startsWith("grants.")).map((r) => r.action).sort());
}, 60_000);

test("null in each field of each grant write body is 400 with the route's code, and writes nothing", async () => {
  const { Z, A, P, R } = await world();
  const requestsBefore = tokens.requests.length;
  const WRITES: Record<string, Record<string, unknown>> = {
    "grants.create": { application_id: A, user_id: "n1", resource_id: R, scopes: ["payments:read"] },
    "grants.createProviderGrant": { user_id: "n1", resource_id: R, provider_id: P, scopes: ["payments:read"], access_token: "t", refresh_token: "r", expires_at: "2030-01-01T00:00:00Z" },
    "grants.authorize": { user_id: "n1", resource_id: R, provider_id: P, scopes: ["payments:read"] },
    "grants.revokeProviderGrant": { user_id: "n1", resource_id: R, provider_id: P },
  };
  const withBody = ROUTES.filter((r) => r.action.startsWith("grants.") && API_MODULES.grants![r.action.split(".")[1]!]!.body).map((r) => r.action);
  expect(Object.keys(WRITES).sort()).toEqual(withBody.sort());
  for (const [action, body] of Object.entries(WRITES)) {
    const props = Object.keys((API_MODULES.grants![action.split(".")[1]!]!.body as { props: Record<string, unknown> }).props);
    expect(props.sort()).toEqual(Object.keys(body).sort());
    for (const field of props) {
      const res = await send(action, { zoneId: Z }, { ...body, [field]: null });
      const flagged = (res.body.details?.issues ?? []).some((i: { path: unknown[] }) => i.path[0] === field);
      expect({ action, field, status: res.status, error: res.body.error, flagged }).toEqual({ action, field, status: 400, error: routeOf(action).bodyError, flagged: true });
    }
  }
  expect((await send("grants.list", { zoneId: Z })).body.items).toEqual([]);
  const none = await send("grants.revokeProviderGrant", { zoneId: Z }, { user_id: "n1", resource_id: R, provider_id: P });
  expect([none.status, none.body.error]).toEqual([404, "provider_grant_not_found"]);
  expect(tokens.requests.length).toBe(requestsBefore);
}, 60_000);
