// The API contract as /docs states it, held against the running cluster: the OpenAPI document passes a
// validator, every route is documented, every route answers its documented status and response schema,
// `null` is refused wherever a field is not nullable, and body rules are reported together.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020";
import { startCluster, type Cluster } from "../helpers/cluster";
import { ROUTES, type RouteDef } from "../../gateway/routes";
import { API_MODULES } from "../../gateway/api-modules";
import { buildOpenApi } from "../../gateway/openapi";
import { SLUG_PATTERN } from "../../services/zones/slug";

/** The services this suite walks and null-tests; a new service adds its rows to WRITES and its steps to the walk. */
const COVERED = ["adminTokens", "zones", "applications", "providers", "policies"];

const DOC = `# caracal:data-document
package caracal.authz
import rego.v1
app_ids := {"payments": "app-payments"}
grants := {"resource://example": {"application": "payments", "roles": {"payment-execution": ["example:read", "example:write"]}}}
`;

let c: Cluster;
let doc: Record<string, any>;
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addFormat("date-time", { type: "string", validate: (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(s) });

beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "applications", "providers", "policies"] });
  const r = await c.http().get("/docs/openapi.json");
  expect(r.status).toBe(200);
  doc = r.body;
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

const routeOf = (action: string): RouteDef => {
  const r = ROUTES.find((x) => x.action === action);
  if (!r) throw new Error(`no route for ${action}`);
  return r;
};
const opOf = (r: RouteDef) => doc.paths["/v1" + r.path.replace(/:([A-Za-z]+)/g, "{$1}")]?.[r.method.toLowerCase()];
const urlOf = (r: RouteDef, params: Record<string, string>) => "/v1" + r.path.replace(/:([A-Za-z]+)/g, (_m, n: string) => encodeURIComponent(params[n] ?? "missing"));

async function send(action: string, params: Record<string, string> = {}, body?: unknown, query = "") {
  const r = routeOf(action);
  let req = c.http()[r.method.toLowerCase() as "get" | "post" | "patch" | "delete"](urlOf(r, params) + query).set(c.auth());
  if (body !== undefined) req = req.send(body as object);
  return req;
}

describe("the OpenAPI document", () => {
  test("passes the OpenAPI 3.1 schema validator (@seriousme/openapi-schema-validator)", () => {
    const dir = mkdtempSync(join(tmpdir(), "caracal-openapi-"));
    const file = join(dir, "openapi.json");
    writeFileSync(file, JSON.stringify(doc));
    const cli = join(__dirname, "../../node_modules/@seriousme/openapi-schema-validator/bin/validate-api-cli.js");
    const run = spawnSync(process.execPath, [cli, file], { encoding: "utf8" });
    const result = JSON.parse(run.stdout) as { valid: boolean; errors?: unknown };
    if (!result.valid) console.error(JSON.stringify(result.errors, null, 2).slice(0, 4000));
    expect(result.valid).toBe(true);
    expect(run.status).toBe(0);
  });

  test("every route of the table has its schema-module entry (the strict build throws on a missing one)", () => {
    expect(() => buildOpenApi(ROUTES, API_MODULES, { version: "test", strict: true })).not.toThrow();
    expect(() => buildOpenApi([...ROUTES, { method: "GET", path: "/nowhere", action: "zones.nowhere", summary: "x" }], API_MODULES, { version: "test", strict: true })).toThrow(/zones\.nowhere/);
  });

  test("every route appears with its success status and response schema, and a non-empty body schema where it takes a body", () => {
    for (const r of ROUTES) {
      const op = opOf(r);
      expect({ route: `${r.method} ${r.path}`, documented: op !== undefined }).toEqual({ route: `${r.method} ${r.path}`, documented: true });
      const [service, action] = r.action.split(".") as [string, string];
      const entry = API_MODULES[service]![action]!;
      const success = op.responses[String(entry.status)];
      expect(success).toBeDefined();
      if (entry.status !== 204) expect(success.content[entry.contentType ?? "application/json"].schema).toMatchObject({ type: "object" });
      if (r.bodyError) {
        const schema = op.requestBody?.content["application/json"].schema;
        expect({ route: `${r.method} ${r.path}`, properties: Object.keys(schema?.properties ?? {}).length > 0 }).toEqual({ route: `${r.method} ${r.path}`, properties: true });
        expect(op.requestBody.content["application/json"].example).toBeDefined();
        expect(op.responses["400"].description).toContain(r.bodyError);
      }
      if (!r.public) expect(op.responses["401"].description).toContain("invalid_admin_token");
    }
    expect(doc.components.securitySchemes.bearer).toEqual(expect.objectContaining({ type: "http", scheme: "bearer" }));
  });

  test("what the newcomer found wrong: slug pattern, 200/202 statuses, policy bodies, list parameters", () => {
    expect(opOf(routeOf("zones.create")).requestBody.content["application/json"].schema.properties.slug.pattern).toBe(SLUG_PATTERN.source);
    expect(Object.keys(opOf(routeOf("policies.validate")).responses)).toContain("200");
    expect(Object.keys(opOf(routeOf("policies.simulate")).responses)).toContain("200");
    expect(Object.keys(opOf(routeOf("applications.rotateSecret")).responses)).toContain("200");
    expect(Object.keys(opOf(routeOf("applications.rotateSecret")).responses)).not.toContain("201");
    expect(Object.keys(opOf(routeOf("policies.activateSet")).responses)).toContain("202");
    expect(opOf(routeOf("policies.create")).requestBody.content["application/json"].schema.required).toEqual(expect.arrayContaining(["name", "content"]));
    expect(opOf(routeOf("policies.createSet")).requestBody.content["application/json"].schema.required).toEqual(["name"]);
    const kinds = opOf(routeOf("providers.createProvider")).requestBody.content["application/json"].schema.properties.kind.enum;
    expect(kinds).toEqual(expect.arrayContaining(["none", "api_key", "oauth2_client_credentials"]));
    for (const action of ["providers.listProviders", "providers.listResources", "policies.listSets", "policies.listSetVersions", "zones.list", "applications.list"]) {
      const names = (opOf(routeOf(action)).parameters as { name: string }[]).map((p) => p.name);
      expect({ action, names }).toEqual({ action, names: expect.arrayContaining(["limit", "cursor"]) });
    }
  });

  test("the caps of the schema modules are documented", () => {
    const resource = opOf(routeOf("providers.createResource")).requestBody.content["application/json"].schema.properties;
    expect(resource.scopes).toMatchObject({ maxItems: 256, items: { maxLength: 128 } });
    expect(resource.upstream_url.maxLength).toBe(2048);
    expect(resource.name.maxLength).toBe(200);
    expect(opOf(routeOf("providers.createProvider")).requestBody.content["application/json"].schema.properties.config_json["x-max-bytes"]).toBe(65536);
  });

  test("every example matches its own schema", () => {
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const body = op.requestBody?.content["application/json"];
        if (body?.example !== undefined) {
          const ok = ajv.validate(body.schema, body.example);
          expect({ where: `${method} ${path} request`, errors: ok ? null : ajv.errors }).toEqual({ where: `${method} ${path} request`, errors: null });
        }
        for (const [status, res] of Object.entries(op.responses as Record<string, any>)) {
          const content = res.content?.["application/json"];
          if (content?.example === undefined) continue;
          const ok = ajv.validate(content.schema, content.example);
          expect({ where: `${method} ${path} ${status}`, errors: ok ? null : ajv.errors }).toEqual({ where: `${method} ${path} ${status}`, errors: null });
        }
      }
    }
  });
});

describe("every route answers what the document says", () => {
  const covered = new Set<string>();

  /** Sends, then checks the status and the body against the documented success response. */
  async function step(action: string, params: Record<string, string>, body?: unknown, query = "") {
    const res = await send(action, params, body, query);
    const op = opOf(routeOf(action));
    const [service, name] = action.split(".") as [string, string];
    const entry = API_MODULES[service]![name]!;
    expect({ action, status: res.status, body: res.status === entry.status ? undefined : res.body }).toEqual({ action, status: entry.status, body: undefined });
    if (entry.status !== 204) {
      const ok = ajv.validate(op.responses[String(entry.status)].content["application/json"].schema, res.body);
      expect({ action, errors: ok ? null : ajv.errors }).toEqual({ action, errors: null });
    }
    covered.add(action);
    return res.body;
  }

  test("a walk through every route of the covered services", async () => {
    const tok = await step("adminTokens.create", {}, { name: "walk", scope: "global" });
    await step("adminTokens.list", {});
    const Z = (await step("zones.create", {}, { name: "Walk zone" })).id as string;
    await step("zones.list", {});
    await step("zones.get", { id: Z });
    await step("zones.update", { id: Z }, { dcr_enabled: true });
    await step("zones.dcrStatus", { id: Z });
    const A = (await step("applications.create", { zoneId: Z }, { name: "Runner", registration_method: "managed", traits: ["team:walk"] })).id as string;
    const D = (await step("applications.registerDcr", { zoneId: Z }, { name: "Agent", expires_in: 600 })).id as string;
    await step("applications.list", { zoneId: Z });
    await step("applications.get", { zoneId: Z, id: A });
    await step("applications.update", { zoneId: Z, id: A }, { name: "Runner 2" });
    await step("applications.rotateSecret", { zoneId: Z, id: A });
    const P = (await step("providers.createProvider", { zoneId: Z }, { name: "Key", kind: "api_key", config_json: { header_name: "X-Key", api_key: "k-walk" } })).id as string;
    await step("providers.listProviders", { zoneId: Z });
    await step("providers.getProvider", { zoneId: Z, id: P });
    await step("providers.updateProvider", { zoneId: Z, id: P }, { config_json: { header_name: "X-Key-2" } });
    const R = (
      await step("providers.createResource", { zoneId: Z }, {
        identifier: "resource://walk", upstream_url: "https://walk.example.test", scopes: ["read"], credential_provider_id: P, gateway_application_id: A,
        operations: [{ method: "get", path: "/things", scope: "read" }],
      })
    ).id as string;
    await step("providers.listResources", { zoneId: Z });
    await step("providers.getResource", { zoneId: Z, id: R });
    await step("providers.updateResource", { zoneId: Z, id: R }, { name: "Walk resource" });
    await step("policies.validate", {}, { content: DOC });
    await step("policies.templates", {});
    const policy = await step("policies.create", { zoneId: Z }, { name: "walk-policy", content: DOC });
    await step("policies.list", { zoneId: Z });
    await step("policies.get", { zoneId: Z, id: policy.id });
    await step("policies.createVersion", { zoneId: Z, id: policy.id }, { content: DOC });
    const S = (await step("policies.createSet", { zoneId: Z }, { name: "walk-set" })).id as string;
    await step("policies.listSets", { zoneId: Z });
    await step("policies.getSet", { zoneId: Z, id: S });
    const SV = (await step("policies.createSetVersion", { zoneId: Z, id: S }, { manifest: [{ policy_version_id: policy.version_id }] })).id as string;
    await step("policies.listSetVersions", { zoneId: Z, id: S });
    await step("policies.getSetVersion", { zoneId: Z, id: S, versionId: SV });
    const activated = await step("policies.activateSet", { zoneId: Z, id: S }, { version_id: SV });
    await step("policies.activationStatus", { zoneId: Z, id: S }, undefined, `?version_id=${SV}&outbox_id=${activated.outbox_id}`);
    const sim = await step("policies.simulate", { zoneId: Z, id: S }, {
      version_id: SV,
      input: { principal: { type: "Application", id: "app-payments", zone_id: Z, registration_method: "managed", labels: [] }, resource: { identifier: "resource://example", scopes: [] }, action: { id: "TokenExchange" }, context: { requested_scopes: ["agent:lifecycle"] } },
    });
    expect(sim.explanation.evaluation).toBe("executed");
    await step("providers.removeResource", { zoneId: Z, id: R });
    await step("providers.removeProvider", { zoneId: Z, id: P });
    await step("applications.remove", { zoneId: Z, id: D });
    await step("policies.remove", { zoneId: Z, id: policy.id });
    await step("policies.removeSet", { zoneId: Z, id: S });
    await step("zones.remove", { id: Z });
    await step("adminTokens.revoke", { id: tok.id });

    const expected = ROUTES.filter((r) => COVERED.includes(r.action.split(".")[0]!)).map((r) => r.action).sort();
    expect([...covered].sort()).toEqual(expected);
  }, 60_000);
});

describe("null is refused wherever the field is not nullable", () => {
  let Z: string, A: string, P: string, R: string, PID: string, PV: string, S: string, SV: string;

  beforeAll(async () => {
    const ok = async (r: Promise<any>, status = 201) => {
      const res = await r;
      expect(res.status).toBe(status);
      return res.body;
    };
    Z = (await ok(send("zones.create", {}, { name: "Null zone" }))).id;
    A = (await ok(send("applications.create", { zoneId: Z }, { name: "App", registration_method: "managed" }))).id;
    P = (await ok(send("providers.createProvider", { zoneId: Z }, { name: "None", kind: "none" }))).id;
    R = (await ok(send("providers.createResource", { zoneId: Z }, { identifier: "resource://null-r", upstream_url: "https://n.example.test", scopes: ["read"], credential_provider_id: P, gateway_application_id: A }))).id;
    const policy = await ok(send("policies.create", { zoneId: Z }, { name: "null-policy", content: DOC }));
    PID = policy.id;
    PV = policy.version_id;
    S = (await ok(send("policies.createSet", { zoneId: Z }, { name: "null-set" }))).id;
    SV = (await ok(send("policies.createSetVersion", { zoneId: Z, id: S }, { manifest: [{ policy_version_id: PV }] }))).id;
  }, 60_000);

  /**
   * Every write route with a body: its path, a valid body, and the answer for each nullable field (what
   * the reference answers for null there). Every other field must give 400 with the route's code.
   */
  const bindings = { upstream_url: "upstream_url_required", credential_provider_id: "credential_provider_required", gateway_application_id: "gateway_application_required" };
  const WRITES: Record<string, { params: () => Record<string, string>; body: () => Record<string, unknown>; nullable?: Record<string, string> }> = {
    "adminTokens.create": { params: () => ({}), body: () => ({ name: "n", scope: "global" }) },
    "zones.create": { params: () => ({}), body: () => ({ name: "N" }) },
    "zones.update": { params: () => ({ id: Z }), body: () => ({}) },
    "applications.create": { params: () => ({ zoneId: Z }), body: () => ({ name: "n", registration_method: "managed" }) },
    "applications.registerDcr": { params: () => ({ zoneId: Z }), body: () => ({ name: "n" }) },
    "applications.update": { params: () => ({ zoneId: Z, id: A }), body: () => ({}) },
    "providers.createProvider": { params: () => ({ zoneId: Z }), body: () => ({ name: "n", kind: "none" }) },
    "providers.updateProvider": { params: () => ({ zoneId: Z, id: P }), body: () => ({}) },
    "providers.createResource": {
      params: () => ({ zoneId: Z }),
      body: () => ({ identifier: "resource://null-new", upstream_url: "https://n.example.test", scopes: ["read"], credential_provider_id: P, gateway_application_id: A }),
      nullable: bindings,
    },
    "providers.updateResource": { params: () => ({ zoneId: Z, id: R }), body: () => ({}), nullable: bindings },
    "policies.validate": { params: () => ({}), body: () => ({ content: DOC }) },
    "policies.create": { params: () => ({ zoneId: Z }), body: () => ({ name: "n", content: DOC }) },
    "policies.createVersion": { params: () => ({ zoneId: Z, id: PID }), body: () => ({ content: DOC }) },
    "policies.createSet": { params: () => ({ zoneId: Z }), body: () => ({ name: "n" }) },
    "policies.createSetVersion": { params: () => ({ zoneId: Z, id: S }), body: () => ({ manifest: [{ policy_version_id: PV }] }) },
    "policies.activateSet": { params: () => ({ zoneId: Z, id: S }), body: () => ({ version_id: SV }) },
    "policies.simulate": { params: () => ({ zoneId: Z, id: S }), body: () => ({ version_id: SV }) },
  };

  test("the table covers every write route with a body", () => {
    const withBody = ROUTES.filter((r) => COVERED.includes(r.action.split(".")[0]!) && API_MODULES[r.action.split(".")[0]!]![r.action.split(".")[1]!]!.body).map((r) => r.action);
    expect(Object.keys(WRITES).sort()).toEqual(withBody.sort());
  });

  test("null in each field of each write route gets the spec's answer, and writes nothing", async () => {
    const snapshot = async () => ({
      zone: (await send("zones.get", { id: Z })).body,
      app: (await send("applications.get", { zoneId: Z, id: A })).body,
      provider: (await send("providers.getProvider", { zoneId: Z, id: P })).body,
      resource: (await send("providers.getResource", { zoneId: Z, id: R })).body,
      policy: (await send("policies.get", { zoneId: Z, id: PID })).body,
      set: (await send("policies.getSet", { zoneId: Z, id: S })).body,
      counts: [
        (await send("zones.list", {})).body.items.length,
        (await send("applications.list", { zoneId: Z })).body.items.length,
        (await send("providers.listProviders", { zoneId: Z })).body.items.length,
        (await send("providers.listResources", { zoneId: Z })).body.items.length,
        (await send("policies.list", { zoneId: Z })).body.items.length,
        (await send("policies.listSets", { zoneId: Z })).body.items.length,
        (await send("policies.listSetVersions", { zoneId: Z, id: S })).body.items.length,
        (await send("adminTokens.list", {})).body.items.length,
      ],
    });
    const before = await snapshot();
    const answers: string[] = [];
    for (const [action, row] of Object.entries(WRITES)) {
      const [service, name] = action.split(".") as [string, string];
      const props = Object.keys((API_MODULES[service]![name]!.body as { props: Record<string, unknown> }).props);
      const code = routeOf(action).bodyError ?? "invalid_body";
      for (const field of props) {
        const res = await send(action, row.params(), { ...row.body(), [field]: null });
        const expected = row.nullable?.[field] ?? code;
        const got = { action, field, status: res.status, error: res.body.error, flagged: (res.body.details?.issues ?? []).some((i: { path: unknown[] }) => i.path[0] === field) };
        expect(got).toEqual({ action, field, status: 400, error: expected, flagged: true });
        answers.push(`${action}.${field}: ${res.status} ${res.body.error}`);
      }
    }
    expect(answers.length).toBeGreaterThan(40);
    expect(await snapshot()).toEqual(before);
  }, 60_000);
});

describe("body rules are reported together, with readable messages", () => {
  let Z: string;
  beforeAll(async () => {
    Z = (await send("zones.create", {}, { name: "Rules zone" })).body.id;
  });

  test("a resource missing provider, upstream and gateway app: one 400 listing the three (code of the first)", async () => {
    const r = await send("providers.createResource", { zoneId: Z }, { identifier: "resource://three", scopes: ["read"] });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("credential_provider_required");
    expect(r.body.details.issues.map((i: { code: string }) => i.code)).toEqual(["credential_provider_required", "upstream_url_required", "gateway_application_required"]);
    expect(r.body.details.issues.map((i: { path: string[] }) => i.path)).toEqual([["credential_provider_id"], ["upstream_url"], ["gateway_application_id"]]);
  });

  test("schema failures and rule failures of one body come back in one answer", async () => {
    const r = await send("providers.createResource", { zoneId: Z }, { identifier: "not a uri", scopes: [], operations: [{ method: "GET", path: "x", scope: "nope" }] });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_resource");
    const codes = r.body.details.issues.map((i: { code: string }) => i.code);
    expect(codes).toEqual(expect.arrayContaining(["invalid_resource", "invalid_resource_identifier", "credential_provider_required", "upstream_url_required", "gateway_application_required"]));
    const p = await send("providers.createProvider", { zoneId: Z }, { identifier: "bad", kind: "oauth2_client_credentials", config_json: { token_endpoint: "http://x", allowed_token_hosts: [] } });
    expect(p.status).toBe(400);
    expect(p.body.error).toBe("invalid_provider_identifier");
    const paths = p.body.details.issues.map((i: { path: string[] }) => i.path.join("."));
    expect(paths).toEqual(expect.arrayContaining(["identifier", "config_json.token_endpoint", "config_json.client_id", "config_json.allowed_token_hosts", "config_json.client_secret"]));
  });

  test("an enum message names the value given and the allowed ones", async () => {
    const r = await send("providers.createProvider", { zoneId: Z }, { name: "x", kind: "nonee" });
    expect(r.status).toBe(400);
    const message = r.body.details.issues.find((i: { path: string[] }) => i.path[0] === "kind").message as string;
    expect(message).toBe(`The 'kind' field value "nonee" is not one of the allowed values: none, caracal_mandate, oauth2_authorization_code, oauth2_client_credentials, api_key, bearer_token.`);
  });

  test("each unknown key of a strict body is its own issue, naming the fields there are", async () => {
    const r = await send("zones.create", {}, { name: "x", login_flow: "magic", owner: "me" });
    expect([r.status, r.body.error]).toEqual([400, "invalid_zone"]);
    expect(r.body.details.issues).toEqual([
      { path: ["login_flow"], message: "'login_flow' is not a field here; the fields are: name, slug, dcr_enabled." },
      { path: ["owner"], message: "'owner' is not a field here; the fields are: name, slug, dcr_enabled." },
    ]);
    const app = await send("applications.create", { zoneId: Z }, { name: "x", registration_method: "managed", consent: true });
    expect(app.body.details.issues).toEqual([{ path: ["consent"], message: expect.stringContaining("'consent' is not a field here") }]);
  });

  test("caps: names, URLs, scopes and provider config are bounded", async () => {
    const long = await send("applications.create", { zoneId: Z }, { name: "a".repeat(201), registration_method: "managed" });
    expect([long.status, long.body.error]).toEqual([400, "invalid_application"]);
    const scopes = await send("providers.createResource", { zoneId: Z }, { identifier: "resource://caps", scopes: Array.from({ length: 257 }, (_, i) => `s${i}`) });
    expect(scopes.body.details.issues.some((i: { path: string[] }) => i.path[0] === "scopes")).toBe(true);
    const scope = await send("providers.createResource", { zoneId: Z }, { identifier: "resource://caps", scopes: ["s".repeat(129)] });
    expect(scope.body.details.issues.some((i: { path: unknown[] }) => i.path[0] === "scopes")).toBe(true);
    const url = await send("providers.createResource", { zoneId: Z }, { identifier: "resource://caps", scopes: ["r"], upstream_url: "https://x.test/" + "p".repeat(2048) });
    expect(url.body.details.issues.some((i: { path: string[] }) => i.path[0] === "upstream_url")).toBe(true);
    const config = await send("providers.createProvider", { zoneId: Z }, { name: "big", kind: "bearer_token", config_json: { bearer_token: "t".repeat(70 * 1024) } });
    expect([config.status, config.body.error]).toEqual([400, "invalid_provider"]);
    expect(config.body.details.issues[0].path).toEqual(["config_json"]);
    const name = await send("providers.createProvider", { zoneId: Z }, { name: "n".repeat(201), kind: "none" });
    expect([name.status, name.body.error]).toEqual([400, "invalid_provider"]);
  });
});
