// Policies, policy sets, activation, simulation and templates against the real OPA, FerretDB, Redis and NATS
// (reference-policy "Test cases" 1–43 and 58, in our envelope).
import { createHash } from "node:crypto";
import Redis from "ioredis";
import { startCluster, eventually, TEST_STREAMS_KEY, type Cluster } from "../helpers/cluster";
import { verify } from "../../shared/signing";

let c: Cluster;
let Z: string;
let Y: string;
let RO: string;
let ZT: string;
let W: string;

const DOC = `# caracal:data-document
package caracal.authz
import rego.v1
app_ids := {"payments": "app-payments"}
grants := {"resource://example": {"application": "payments", "roles": {"payment-execution": ["example:read", "example:write"]}}}
`;
const sha = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

const post = (path: string, body: unknown, token?: string) => c.http().post(path).set(c.auth(token)).send(body as object);
const get = (path: string, token?: string) => c.http().get(path).set(c.auth(token));
const del = (path: string, token?: string) => c.http().delete(path).set(c.auth(token));

async function token(body: Record<string, unknown>): Promise<string> {
  const r = await post("/v1/admin-tokens", body);
  expect(r.status).toBe(201);
  return r.body.token as string;
}

async function zone(name: string): Promise<string> {
  const r = await post("/v1/zones", { name });
  expect(r.status).toBe(201);
  return r.body.id as string;
}

async function policy(zoneId: string, name: string, content = DOC): Promise<{ id: string; version_id: string }> {
  const r = await post(`/v1/zones/${zoneId}/policies`, { name, content });
  expect(r.status).toBe(201);
  return r.body;
}

async function policySet(zoneId: string, name: string): Promise<string> {
  const r = await post(`/v1/zones/${zoneId}/policy-sets`, { name });
  expect(r.status).toBe(201);
  return r.body.id as string;
}

async function setVersion(zoneId: string, setId: string, pvs: string[]): Promise<string> {
  const r = await post(`/v1/zones/${zoneId}/policy-sets/${setId}/versions`, { manifest: pvs.map((id) => ({ policy_version_id: id })) });
  expect(r.status).toBe(201);
  return r.body.id as string;
}

const validate = (content: string, extra: Record<string, unknown> = {}, tok?: string) => post("/v1/policies/validate", { content, ...extra }, tok);

beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "policies"] });
  Z = await zone("Policy Zone Z");
  Y = await zone("Policy Zone Y");
  RO = await token({ name: "ro", scope: "global", capability: "read" });
  ZT = await token({ name: "zt", scope: "zone", zone_id: Z });
  W = await token({ name: "w", scope: "global" });
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

describe("validate", () => {
  test("without a token is 401 invalid_admin_token (case 1)", async () => {
    const r = await c.http().post("/v1/policies/validate").send({ content: DOC });
    expect(r.status).toBe(401);
    expect(r.body.error).toBe("invalid_admin_token");
  });

  test("a data document is valid, with the output contract and preview (case 2)", async () => {
    const r = await validate(DOC);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      valid: true,
      schema_version: "2026-05-20",
      input_schema_version: "2026-05-20",
      output_contract: { package: "caracal.authz", rule: "result", decision: ["allow", "deny"], evaluation_status: ["complete"] },
      preview: { package: "caracal.authz", rules: ["app_ids", "grants"], default_result: false, decisions: [], inputs_referenced: [], data_referenced: [] },
    });
  });

  test("an empty body is 400 invalid_body naming content (case 3)", async () => {
    const r = await post("/v1/policies/validate", {});
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_body");
    expect(r.body.details.issues[0].path).toEqual(["content"]);
    expect(r.body.request_id).toEqual(expect.any(String));
  });

  test.each([
    ["x := 1", "missing_package_declaration"], // case 4
    ["# caracal:data-document\npackage other\ngrants := {}\n", "must_use_package_caracal_authz"], // case 5
    ["package caracal.authz\ngrants := {}\n", "must_be_data_document"], // case 6
    ['# caracal:data-document\npackage caracal.authz\ngrants := {}\nresult := {"decision": "allow"}\n', "data_document_must_not_define_result"], // case 7
    ["# caracal:data-document\npackage caracal.authz\n", "data_document_must_define_data"], // case 8
    ["# caracal:data-document\npackage caracal.authz\nx := http.send({})\n", "forbidden_builtin:http.send"], // case 9
    ['# caracal:data-document\npackage caracal.authz\nx := "open\n', "unterminated_string"], // case 10
    ["# caracal:data-document\npackage caracal.authz\nx := {\n", "unbalanced_delimiters"], // case 10
    ["# caracal:data-document\npackage 9abc\nx := 1\n", "invalid_package_name"], // case 11
  ])("structural failure %# is 422 invalid_rego with its detail (cases 4–11)", async (content, detail) => {
    const r = await validate(content);
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("invalid_rego");
    expect(r.body.details).toEqual({ valid: false, detail });
  });

  test("a forbidden call inside a comment is not a call: 200 (case 9)", async () => {
    const r = await validate(DOC + "# x := http.send({})\n");
    expect(r.status).toBe(200);
    expect(r.body.valid).toBe(true);
  });

  test("an unsupported schema_version is 422 invalid_schema_version, checked first (case 12)", async () => {
    const r = await validate("x := 1", { schema_version: "2099-01-01" });
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("invalid_schema_version");
    expect(r.body.details).toEqual({ valid: false, detail: "unsupported_schema_version:2099-01-01" });
  });

  test("schema_version 2026-03-16 is accepted (case 13)", async () => {
    const r = await validate(DOC, { schema_version: "2026-03-16" });
    expect(r.status).toBe(200);
    expect(r.body.schema_version).toBe("2026-03-16");
  });

  test("a zone token and a read token may validate (case 14)", async () => {
    for (const t of [ZT, RO]) {
      const r = await validate(DOC, {}, t);
      expect(r.status).toBe(200);
      expect(r.body.valid).toBe(true);
    }
  });

  test("the directive may sit on line 3 after other comments (case 15)", async () => {
    const r = await validate("# owner: payments team\n# reviewed\n# caracal:data-document\npackage caracal.authz\ngrants := {}\n");
    expect(r.status).toBe(200);
  });

  test("OPA's parse errors come back with row and column", async () => {
    const r = await validate("# caracal:data-document\npackage caracal.authz\nimport rego.v1\nallow := [1 2]\n");
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("invalid_rego");
    expect(r.body.details.valid).toBe(false);
    expect(r.body.details.detail).toBe("rego_parse_error");
    expect(r.body.details.errors[0]).toEqual({ code: "rego_parse_error", message: expect.any(String), row: 4, col: expect.any(Number) });
    expect(r.body.details.errors[0].col).toBeGreaterThan(0);
  });

  test("OPA's capabilities refuse clock and randomness built-ins the text check does not name", async () => {
    const r = await validate('# caracal:data-document\npackage caracal.authz\nimport rego.v1\nid := uuid.rfc4122("x")\n');
    expect(r.status).toBe(422);
    expect(r.body.details.detail).toBe("rego_type_error");
    expect(r.body.details.errors).toEqual([{ code: "rego_type_error", message: "undefined function uuid.rfc4122", row: 4, col: 7 }]);
    // io.jwt.decode_verify reads the clock: not on the reference's list, refused by the capabilities.
    const jwt = await validate('# caracal:data-document\npackage caracal.authz\nimport rego.v1\nok := io.jwt.decode_verify("t", {"secret": "s"})\n');
    expect(jwt.status).toBe(422);
    expect(jwt.body.details.errors).toEqual([{ code: "rego_type_error", message: "undefined function io.jwt.decode_verify", row: 4, col: 7 }]);
  });

  test("OPA's type errors come back too: a rule body without `if` in a rego.v1 module", async () => {
    const r = await validate("# caracal:data-document\npackage caracal.authz\nimport rego.v1\nallow { true }\n");
    expect(r.status).toBe(422);
    expect(r.body.details.detail).toBe("rego_parse_error");
    expect(r.body.details.errors[0].row).toBe(4);
  });
});

describe("policies", () => {
  let p: { id: string; version_id: string };

  test("create answers 201 with version 1 and the content hash (case 16)", async () => {
    const r = await post(`/v1/zones/${Z}/policies`, { name: "p1", content: DOC });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({
      id: expect.any(String),
      version_id: r.body.version.id,
      zone_id: Z,
      name: "p1",
      description: null,
      version: { id: expect.any(String), policy_id: r.body.id, version: 1, content_sha256: sha(DOC), schema_version: "2026-05-20", created_at: expect.stringMatching(/Z$/) },
    });
    expect(r.headers.location).toBe(`/v1/zones/${Z}/policies/${r.body.id}`);
    p = r.body;
  });

  test("an unknown zone is 404 zone_not_found before the body is checked (case 17)", async () => {
    const r = await post("/v1/zones/UNKNOWN/policies", {});
    expect(r.status).toBe(404);
    expect(r.body.error).toBe("zone_not_found");
  });

  test("a bad body in an existing zone is 400 invalid_body", async () => {
    const r = await post(`/v1/zones/${Z}/policies`, { name: "" });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_body");
    expect(r.body.details.issues.map((i: { path: string[] }) => i.path[0]).sort()).toEqual(["content", "name"]);
  });

  test("a reserved name is 409 reserved_namespace (case 18)", async () => {
    const r = await post(`/v1/zones/${Z}/policies`, { name: "Caracal.SYS/x", content: DOC }, W);
    expect(r.status).toBe(409);
    expect(r.body.error).toBe("reserved_namespace");
    expect(r.body.error_description).toMatch(/reserved/);
  });

  test("content without the directive is 422 invalid_rego with no valid key (case 19)", async () => {
    const r = await post(`/v1/zones/${Z}/policies`, { name: "nodir", content: "package caracal.authz\ngrants := {}\n" });
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("invalid_rego");
    expect(r.body.details).toEqual({ detail: "must_be_data_document" });
  });

  test("a duplicate name is 409 policy_name_conflict, not 500 (case 20, decision 11)", async () => {
    const r = await post(`/v1/zones/${Z}/policies`, { name: "p1", content: DOC });
    expect(r.status).toBe(409);
    expect(r.body.error).toBe("policy_name_conflict");
    // The same name in another zone is fine.
    expect((await post(`/v1/zones/${Y}/policies`, { name: "p1", content: DOC })).status).toBe(201);
  });

  test("new versions are numbered 2 then 3, version_id == id (case 21)", async () => {
    for (const n of [2, 3]) {
      const r = await post(`/v1/zones/${Z}/policies/${p.id}/versions`, { content: DOC });
      expect(r.status).toBe(201);
      expect(r.body).toEqual({
        version_id: r.body.id, id: expect.any(String), policy_id: p.id, version: n, content_sha256: sha(DOC), schema_version: "2026-05-20", created_at: expect.stringMatching(/Z$/),
      });
    }
  });

  test("concurrent version creation leaves no gaps and no duplicates", async () => {
    const q = await policy(Z, "concurrent");
    const results = await Promise.all(Array.from({ length: 12 }, () => post(`/v1/zones/${Z}/policies/${q.id}/versions`, { content: DOC })));
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(201));
    const numbers = results.map((r) => r.body.version as number).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: 12 }, (_, i) => i + 2));
    const g = await get(`/v1/zones/${Z}/policies/${q.id}`);
    expect(g.body.versions.map((v: { version: number }) => v.version)).toEqual(Array.from({ length: 13 }, (_, i) => 13 - i));
  });

  test("on a missing policy, bad content is 422 and good content is 404 policy_not_found (case 22)", async () => {
    const bad = await post(`/v1/zones/${Z}/policies/missing/versions`, { content: "x := 1" });
    expect(bad.status).toBe(422);
    expect(bad.body.error).toBe("invalid_rego");
    const good = await post(`/v1/zones/${Z}/policies/missing/versions`, { content: DOC });
    expect(good.status).toBe(404);
    expect(good.body.error).toBe("policy_not_found");
  });

  test("GET lists versions newest first with content and hash (case 23)", async () => {
    const r = await get(`/v1/zones/${Z}/policies/${p.id}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: p.id, zone_id: Z, name: "p1", description: null, owner_type: "customer", created_by: expect.any(String), co_authored_by_operator: false });
    expect(r.body.versions.map((v: { version: number }) => v.version)).toEqual([3, 2, 1]);
    for (const v of r.body.versions) expect(v).toMatchObject({ policy_id: p.id, content: DOC, content_sha256: sha(DOC), schema_version: "2026-05-20", archived_at: null });
  });

  test("DELETE archives: 204, then GET 404, then DELETE 404 (case 24)", async () => {
    const q = await policy(Z, "to-delete");
    const d = await del(`/v1/zones/${Z}/policies/${q.id}`);
    expect(d.status).toBe(204);
    expect(d.text).toBe("");
    const g = await get(`/v1/zones/${Z}/policies/${q.id}`);
    expect(g.status).toBe(404);
    expect(g.body.error).toBe("policy_not_found");
    const again = await del(`/v1/zones/${Z}/policies/${q.id}`);
    expect(again.status).toBe(404);
    expect(again.body.error).toBe("policy_not_found");
    // The archived name stays taken.
    expect((await post(`/v1/zones/${Z}/policies`, { name: "to-delete", content: DOC })).status).toBe(409);
  });

  test("list: bad limit, bad cursor, and a next page with Link (case 25)", async () => {
    const l0 = await get(`/v1/zones/${Z}/policies?limit=0`);
    expect(l0.status).toBe(400);
    expect(l0.body.error).toBe("invalid_query");
    const bad = await get(`/v1/zones/${Z}/policies?cursor=@@`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe("invalid_cursor");
    const page = await get(`/v1/zones/${Z}/policies?limit=1`);
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(1);
    expect(page.body.next_cursor).toEqual(expect.any(String));
    expect(page.headers.link).toMatch(/^<\/v1\/zones\/[^?]+\/policies\?limit=1&cursor=[A-Za-z0-9_-]+>; rel="next"$/);
    expect(Object.keys(page.body.items[0]).sort()).toEqual(["co_authored_by_operator", "created_at", "created_by", "description", "id", "name", "owner_type", "zone_id"]);
  });
});

describe("policy sets", () => {
  let pv1: string;
  let s: string;
  let sv: string;
  let sv2: string;
  let outboxId: string;

  beforeAll(async () => {
    pv1 = (await policy(Z, "set-member")).version_id;
  });

  test("create answers 201 without active_version_id; GET shows it null (case 26)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets`, { name: "s1" });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ id: expect.any(String), zone_id: Z, name: "s1", description: null, created_by: expect.any(String), co_authored_by_operator: false, created_at: expect.stringMatching(/Z$/) });
    s = r.body.id;
    const g = await get(`/v1/zones/${Z}/policy-sets/${s}`);
    expect(g.status).toBe(200);
    expect(g.body.active_version_id).toBeNull();
  });

  test("a duplicate set name is 409 policy_set_name_conflict; an unknown zone 404 before the body", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets`, { name: "s1" });
    expect(r.status).toBe(409);
    expect(r.body.error).toBe("policy_set_name_conflict");
    const z = await post("/v1/zones/UNKNOWN/policy-sets", {});
    expect(z.status).toBe(404);
    expect(z.body.error).toBe("zone_not_found");
  });

  test("a version's manifest hash is the SHA-256 of the compact manifest (case 27)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest: [{ policy_version_id: pv1, extra: "dropped" }] });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({
      version_id: r.body.id, id: expect.any(String), policy_set_id: s, version: 1,
      manifest_sha256: sha(JSON.stringify([{ policy_version_id: pv1 }])), schema_version: "2026-05-20", created_at: expect.stringMatching(/Z$/),
    });
    sv = r.body.id;
  });

  test("an empty manifest and one of 257 entries are 400 invalid_body (case 28)", async () => {
    for (const manifest of [[], Array.from({ length: 257 }, (_, i) => ({ policy_version_id: `pv${i}` }))]) {
      const r = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe("invalid_body");
      expect(r.body.details.issues[0].path).toEqual(["manifest"]);
    }
  });

  test("duplicate entries are 422 invalid_policy_contract (case 29)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest: [{ policy_version_id: pv1 }, { policy_version_id: pv1 }] });
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("invalid_policy_contract");
    expect(r.body.details.detail).toBe("policy set manifest contains duplicate policy_version_id entries");
  });

  test("an unknown id, and a version of zone Y, are refused by the contract (case 30)", async () => {
    const missing = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest: [{ policy_version_id: "nope" }] });
    expect(missing.status).toBe(422);
    expect(missing.body.details.detail).toBe("policy set manifest references missing policy versions");
    const y = await policy(Y, "y-member");
    const other = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest: [{ policy_version_id: y.version_id }] });
    expect(other.status).toBe(422);
    expect(other.body.error).toBe("invalid_policy_contract");
    expect(other.body.details.detail).toBe(`policy version ${y.version_id} belongs to a different zone`);
  });

  test("a schema mismatch between set and member is refused (case 31)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest: [{ policy_version_id: pv1 }], schema_version: "2026-03-16" });
    expect(r.status).toBe(422);
    expect(r.body.details.detail).toBe(`policy version ${pv1} schema 2026-05-20 does not match policy set schema 2026-03-16`);
    const bad = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest: [{ policy_version_id: pv1 }], schema_version: "2099-01-01" });
    expect(bad.status).toBe(422);
    expect(bad.body.error).toBe("invalid_schema_version");
  });

  test("members that do not compile together are refused with OPA's errors", async () => {
    const a = await policy(Z, "conflict-a", '# caracal:data-document\npackage caracal.authz\nimport rego.v1\nrestrict := {"a": 1}\n');
    const b = await policy(Z, "conflict-b", '# caracal:data-document\npackage caracal.authz\nimport rego.v1\nrestrict contains "x"\n');
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/versions`, { manifest: [{ policy_version_id: a.version_id }, { policy_version_id: b.version_id }] });
    expect(r.status).toBe(422);
    expect(r.body.error).toBe("invalid_policy_contract");
    expect(r.body.details.detail).toBe("policy set bundle failed to compile with the decision contract");
    expect(r.body.details.errors[0]).toMatchObject({ code: expect.stringMatching(/^rego_/), row: expect.any(Number) });
  });

  test("a missing set is 404 policy_set_not_found (case 32)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/missing/versions`, { manifest: [{ policy_version_id: pv1 }] });
    expect(r.status).toBe(404);
    expect(r.body.error).toBe("policy_set_not_found");
  });

  test("GET version shows policies and manifest_json (case 33)", async () => {
    const r = await get(`/v1/zones/${Z}/policy-sets/${s}/versions/${sv}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      id: sv, policy_set_id: s, version: 1, manifest_json: [{ policy_version_id: pv1 }], manifest_sha256: sha(JSON.stringify([{ policy_version_id: pv1 }])),
      schema_version: "2026-05-20", created_at: expect.stringMatching(/Z$/), policies: [pv1],
    });
    const missing = await get(`/v1/zones/${Z}/policy-sets/${s}/versions/nope`);
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe("policy_set_version_not_found");
  });

  test("activate answers 202 with outbox_id and status_url, and a signed invalidation reaches the stream (case 34)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/activate`, { version_id: sv });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ activated: true, version_id: sv, shadow_version_id: null, outbox_id: expect.stringMatching(/^[0-9a-f-]{36}$/), status_url: expect.any(String) });
    outboxId = r.body.outbox_id;
    expect(r.body.status_url).toBe(`/v1/zones/${Z}/policy-sets/${s}/activation-status?version_id=${sv}&outbox_id=${outboxId}`);
    const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    try {
      const entry = await eventually(async () => {
        const rows = (await redis.xrange(c.stream("caracal.policy.invalidate"), "-", "+")) as [string, string[]][];
        for (const [, flat] of rows) {
          const f: Record<string, string> = {};
          for (let i = 0; i < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
          if (f.outbox_id === outboxId) return f;
        }
        return undefined;
      });
      expect(entry).toMatchObject({ zone_id: Z, policy_set_id: s, policy_set_version_id: sv, kid: expect.any(String), _sig: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(entry.shadow_version_id).toBeUndefined();
      expect(verify([{ kid: entry.kid!, key: Buffer.from(TEST_STREAMS_KEY, "hex") }], c.stream("caracal.policy.invalidate"), entry)).toBe(true);
    } finally {
      redis.disconnect();
    }
    const g = await get(`/v1/zones/${Z}/policy-sets/${s}`);
    expect(g.body.active_version_id).toBe(sv);
  });

  test("unknown versions are 404 version_not_found / shadow_version_not_found (case 35)", async () => {
    const a = await post(`/v1/zones/${Z}/policy-sets/${s}/activate`, { version_id: "nope" });
    expect(a.status).toBe(404);
    expect(a.body.error).toBe("version_not_found");
    const b = await post(`/v1/zones/${Z}/policy-sets/${s}/activate`, { version_id: sv, shadow_version_id: "nope" });
    expect(b.status).toBe(404);
    expect(b.body.error).toBe("shadow_version_not_found");
  });

  test("activation-status of a never-activated set is 404 active_policy_set_version_not_found (case 36)", async () => {
    const fresh = await policySet(Z, "never-activated");
    const r = await get(`/v1/zones/${Z}/policy-sets/${fresh}/activation-status`);
    expect(r.status).toBe(404);
    expect(r.body.error).toBe("active_policy_set_version_not_found");
    const empty = await get(`/v1/zones/${Z}/policy-sets/${fresh}/activation-status?version_id=`);
    expect(empty.status).toBe(400);
    expect(empty.body.error).toBe("invalid_body");
  });

  test("the status URL reads the real outbox state: dispatched, waiting for the STS (case 37)", async () => {
    const status = await eventually(async () => {
      const r = await get(`/v1/zones/${Z}/policy-sets/${s}/activation-status?version_id=${sv}&outbox_id=${outboxId}`);
      expect(r.status).toBe(200);
      return r.body.outbox.state === "dispatched" ? r.body : undefined;
    });
    expect(status).toEqual({
      zone_id: Z, policy_set_id: s, version_id: sv, active: true, active_version_id: sv, shadow_version_id: null,
      manifest_sha256: sha(JSON.stringify([{ policy_version_id: pv1 }])), propagation_status: "waiting_for_sts",
      outbox: { id: outboxId, state: "dispatched", attempts: 1, last_error: null, dispatched_at: expect.stringMatching(/Z$/) },
      sts: { state: "not_configured", detail: expect.any(String) },
    });
    // Without outbox_id the newest invalidation of that version is found.
    const implicit = await get(`/v1/zones/${Z}/policy-sets/${s}/activation-status`);
    expect(implicit.body.outbox.id).toBe(outboxId);
    // An unknown outbox id is missing; the id of a non-invalidation entry is a mismatch.
    const missing = await get(`/v1/zones/${Z}/policy-sets/${s}/activation-status?outbox_id=nope`);
    expect(missing.body.outbox).toEqual({ id: "nope", state: "missing", attempts: 0, last_error: null, dispatched_at: null });
    expect(missing.body.propagation_status).toBe("waiting_for_outbox");
  });

  test("another version of the set is not active: waiting_for_activation (case 38)", async () => {
    sv2 = await setVersion(Z, s, [pv1]);
    const r = await get(`/v1/zones/${Z}/policy-sets/${s}/activation-status?version_id=${sv2}`);
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(false);
    expect(r.body.propagation_status).toBe("waiting_for_activation");
    expect(r.body.outbox.state).toBe("missing");
  });

  test("an invalidation of another version, named by outbox_id, is a mismatch and propagation failed", async () => {
    const act = await post(`/v1/zones/${Z}/policy-sets/${s}/activate`, { version_id: sv2, shadow_version_id: sv });
    expect(act.status).toBe(202);
    expect(act.body.shadow_version_id).toBe(sv);
    const r = await get(`/v1/zones/${Z}/policy-sets/${s}/activation-status?version_id=${sv2}&outbox_id=${outboxId}`);
    expect(r.status).toBe(200);
    expect(r.body.outbox.state).toBe("mismatch");
    expect(r.body.propagation_status).toBe("failed");
    expect(r.body.shadow_version_id).toBe(sv);
    // Activating without a shadow clears it.
    const back = await post(`/v1/zones/${Z}/policy-sets/${s}/activate`, { version_id: sv });
    expect(back.body.shadow_version_id).toBeNull();
    const after = await get(`/v1/zones/${Z}/policy-sets/${s}/activation-status`);
    expect(after.body.shadow_version_id).toBeNull();
  });

  test("only one set may be active in a zone: a second activation is 409", async () => {
    const other = await policySet(Z, "second-set");
    const v = await setVersion(Z, other, [pv1]);
    const r = await post(`/v1/zones/${Z}/policy-sets/${other}/activate`, { version_id: v });
    expect(r.status).toBe(409);
    expect(r.body.error).toBe("active_policy_set_conflict");
    expect(r.body.details).toEqual({ active_policy_set_id: s });
  });

  test("simulate without input validates only (case 39)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/simulate`, { version_id: sv });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      dry_run: true, would_activate: true, policy_set_id: s, version_id: sv, schema_version: "2026-05-20", input_schema_version: "2026-05-20",
      manifest_sha256: sha(JSON.stringify([{ policy_version_id: pv1 }])), policies: [pv1], warnings: [],
      explanation: { evaluation: "not_executed", reason: expect.any(String) }, result: null,
    });
  });

  test("simulate with an empty input warns and still executes: deny (case 40)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/simulate`, { version_id: sv, input: {} });
    expect(r.status).toBe(200);
    expect(r.body.would_activate).toBe(false);
    expect(r.body.warnings).toEqual(["principal_zone_mismatch", "missing_resource", "missing_action", "missing_context"]);
    expect(r.body.explanation).toEqual({ evaluation: "executed", decision: "deny", policy_set_version_id: sv, manifest_sha256: r.body.manifest_sha256, reason: expect.any(String) });
    expect(r.body.result).toEqual({ decision: "deny", evaluation_status: "complete", determining_policies: [], diagnostics: [{ reason: "no_rule_matched" }] });
  });

  test("a wrong input schema warns first and fails evaluation; an array input is 400 (case 41)", async () => {
    const r = await post(`/v1/zones/${Z}/policy-sets/${s}/simulate`, { version_id: sv, input: { schema_version: "bad" } });
    expect(r.status).toBe(200);
    expect(r.body.warnings[0]).toBe("input_schema_mismatch:bad");
    expect(r.body.explanation.evaluation).toBe("failed");
    expect(r.body.warnings[r.body.warnings.length - 1]).toMatch(/^evaluation_failed:/);
    expect(r.body.result).toBeNull();
    for (const input of [[1], null]) {
      const bad = await post(`/v1/zones/${Z}/policy-sets/${s}/simulate`, { version_id: sv, input });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toBe("invalid_body");
    }
  });

  test("archiving a set: 204, then activate/simulate 404 version_not_found, status 404 binding (case 42)", async () => {
    const d = await del(`/v1/zones/${Z}/policy-sets/${s}`);
    expect(d.status).toBe(204);
    const a = await post(`/v1/zones/${Z}/policy-sets/${s}/activate`, { version_id: sv });
    expect(a.status).toBe(404);
    expect(a.body.error).toBe("version_not_found");
    const sim = await post(`/v1/zones/${Z}/policy-sets/${s}/simulate`, { version_id: sv });
    expect(sim.status).toBe(404);
    expect(sim.body.error).toBe("version_not_found");
    const st = await get(`/v1/zones/${Z}/policy-sets/${s}/activation-status`);
    expect(st.status).toBe(404);
    expect(st.body.error).toBe("policy_set_binding_not_found");
    // Versions stay readable, and the zone's active slot is free again.
    expect((await get(`/v1/zones/${Z}/policy-sets/${s}/versions/${sv}`)).status).toBe(200);
    const other = await policySet(Z, "after-archive");
    const v = await setVersion(Z, other, [pv1]);
    expect((await post(`/v1/zones/${Z}/policy-sets/${other}/activate`, { version_id: v })).status).toBe(202);
  });
});

describe("zone events", () => {
  test("every write announces itself on caracal.zone.events, signed", async () => {
    const zoneId = await zone("Evented");
    const p = await policy(zoneId, "p");
    const v2 = await post(`/v1/zones/${zoneId}/policies/${p.id}/versions`, { content: DOC });
    const setId = await policySet(zoneId, "s");
    const sv = await setVersion(zoneId, setId, [p.version_id]);
    expect((await post(`/v1/zones/${zoneId}/policy-sets/${setId}/activate`, { version_id: sv })).status).toBe(202);
    expect((await del(`/v1/zones/${zoneId}/policy-sets/${setId}`)).status).toBe(204);
    expect((await del(`/v1/zones/${zoneId}/policies/${p.id}`)).status).toBe(204);
    const expected = [
      ["policy", p.id, "created"],
      ["policy_version", v2.body.id, "created"],
      ["policy_set", setId, "created"],
      ["policy_set_version", sv, "created"],
      ["policy_set", setId, "updated"],
      ["policy_set", setId, "deleted"],
      ["policy", p.id, "deleted"],
    ];
    const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    try {
      const seen = await eventually(async () => {
        const rows = (await redis.xrange(c.stream("caracal.zone.events"), "-", "+", "COUNT", 100000)) as [string, string[]][];
        const mine = rows
          .map(([, flat]) => Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!])) as Record<string, string>)
          .filter((f) => f.zone_id === zoneId && f.entity_type !== "zone");
        return mine.length >= expected.length ? mine : undefined;
      }, 10_000);
      expect(seen.map((f) => [f.entity_type, f.entity_id, f.action]).sort()).toEqual([...expected].sort());
      for (const f of seen) expect(verify([{ kid: f.kid!, key: Buffer.from(TEST_STREAMS_KEY, "hex") }], c.stream("caracal.zone.events"), f)).toBe(true);
    } finally {
      redis.disconnect();
    }
  });
});

describe("archived zones", () => {
  test("an archived zone takes no new policies, versions, sets or activations: 404 zone_not_found (decision 4)", async () => {
    const zoneId = await zone("Soon archived");
    const p = await policy(zoneId, "p");
    const setId = await policySet(zoneId, "s");
    const v = await setVersion(zoneId, setId, [p.version_id]);
    expect((await del(`/v1/zones/${zoneId}`)).status).toBe(204);
    const attempts = [
      post(`/v1/zones/${zoneId}/policies`, { name: "q", content: DOC }),
      post(`/v1/zones/${zoneId}/policies/${p.id}/versions`, { content: DOC }),
      post(`/v1/zones/${zoneId}/policy-sets`, { name: "t" }),
      post(`/v1/zones/${zoneId}/policy-sets/${setId}/versions`, { manifest: [{ policy_version_id: p.version_id }] }),
      post(`/v1/zones/${zoneId}/policy-sets/${setId}/activate`, { version_id: v }),
    ];
    for (const r of await Promise.all(attempts)) {
      expect(r.status).toBe(404);
      expect(r.body.error).toBe("zone_not_found");
    }
  });
});

describe("templates and gates", () => {
  test("four templates for a zone token, each passing validate (case 43)", async () => {
    const r = await get("/v1/policy-templates", ZT);
    expect(r.status).toBe(200);
    expect(r.body.next_cursor).toBeNull();
    expect(r.body.items.map((t: { id: string }) => t.id)).toEqual(["application-bindings", "resource-grants", "label-confinement", "zone-restriction"]);
    for (const t of r.body.items) {
      expect(Object.keys(t).sort()).toEqual(["content", "description", "id", "name"]);
      expect(t.content.split("\n").slice(0, 5)).toEqual(["# caracal:data-document", "package caracal.authz", "", "import rego.v1", ""]);
      const v = await validate(t.content, {}, ZT);
      expect(v.status).toBe(200);
    }
  });

  test("a read token cannot create; a zone token cannot reach another zone (case 58)", async () => {
    const ro = await post(`/v1/zones/${Z}/policies`, { name: "ro", content: DOC }, RO);
    expect(ro.status).toBe(403);
    expect(ro.body.error).toBe("admin_token_read_only");
    const zt = await post(`/v1/zones/${Y}/policies`, { name: "zt", content: DOC }, ZT);
    expect(zt.status).toBe(403);
    expect(zt.body.error).toBe("admin_token_zone_mismatch");
  });
});
