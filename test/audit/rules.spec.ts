// The audit rules as plain functions: the §7.5 vectors, what the gateway records, CSV cells, redaction,
// the reconstructed policy input.
import { adminContentHash, auditEntrySig, chainHmac, decisionContentHash, unixNanos } from "../../services/audit/hashes";
import { buildRecord, entityOf, isRecorded, payloadOf } from "../../gateway/admin-audit";
import { csvCell, csvLine } from "../../services/audit/export";
import { redact } from "../../services/audit/redact";
import { explain, policyInput } from "../../services/audit/explain";
import { parseDecision } from "../../services/audit/ingest";
import type { Actor } from "../../shared/actor";

const KEY = Buffer.from("0123456789abcdef".repeat(4), "hex");

describe("the HMACs of reference-ops §7.5", () => {
  test("audit stream entry sig over the exact data text", () => {
    const data = '{"id":"e1","zone_id":"z1","event_type":"control.invoke","request_id":"r1","decision":"allow","evaluation_status":"complete","determining_policies_json":[],"diagnostics_json":[],"metadata_json":{},"occurred_at":"2026-07-01T00:00:00.000Z"}';
    expect(auditEntrySig(KEY, data)).toBe("0b4b561aef7a35459e8cb909c76df879d40237821dbee2f305a72521c7ebd541");
  });

  test("admin chain: content hash and first-link HMAC of the example record (case 16)", () => {
    const record = {
      id: "aa1", request_id: "r1", actor_id: "tok1", actor_name: "ops", actor_scope: "global",
      action: "POST /v1/zones/z1/policies", method: "POST", path: "/v1/zones/z1/policies", zone_id: "z1",
      entity_type: "zones", entity_id: "z1", status_code: 201,
      payload: '{"rls_mode":"control_plane_wildcard","rls_zone_guc":"*","changed_fields":["name"]}',
      occurred_at: "2026-07-01T00:00:00.000Z",
    };
    const content = adminContentHash(record);
    expect(content).toBe("1aef500c13271381a65a733a56c8bf1b1fb9325ab00682551043ae28484c2f7c");
    expect(chainHmac(KEY, content, null)).toBe("990ceb91b10ae69657dc28420d3a5fdc71f7011b6b32875ca288447566d2afac");
  });

  test("the gateway builds that very record from the request", () => {
    const actor: Actor = { id: "tok1", name: "ops", scope: "global", capability: "write", zone_id: null, created_by: "x", bootstrap: false };
    const r = buildRecord({ method: "POST", path: "/v1/zones/z1/policies", status: 201, requestId: "r1", actor, body: { name: "p" }, at: new Date("2026-07-01T00:00:00.000Z") });
    expect(adminContentHash({ ...r, id: "aa1" })).toBe("1aef500c13271381a65a733a56c8bf1b1fb9325ab00682551043ae28484c2f7c");
  });

  test("a decision's content hash ignores key order and sees every value", () => {
    const base = { id: "e1", zone_id: "z1", occurred_at: "2026-07-01T00:00:00.123456Z", metadata_json: { a: 1, b: [1, { c: 2, d: 3 }] } };
    const nanos = unixNanos(base.occurred_at)!;
    expect(nanos).toBe(1782864000123456000n);
    const h = decisionContentHash(base, nanos);
    expect(decisionContentHash({ ...base, metadata_json: { b: [1, { d: 3, c: 2 }], a: 1 } }, nanos)).toBe(h);
    expect(decisionContentHash({ ...base, metadata_json: { a: 2, b: [1, { c: 2, d: 3 }] } }, nanos)).not.toBe(h);
    expect(decisionContentHash(base, nanos + 1000n)).not.toBe(h);
  });

  test("events without id, zone or a readable time are refused with json_parse_error", () => {
    expect(parseDecision("{not json")).toEqual({ ok: false, reason: expect.stringMatching(/^json_parse_error:/) });
    expect(parseDecision('{"id":"e","zone_id":"z"}')).toEqual({ ok: false, reason: "json_parse_error:missing occurred_at" });
    expect(parseDecision('{"id":"e","zone_id":"z","occurred_at":"yesterday"}')).toEqual({ ok: false, reason: expect.stringMatching(/^json_parse_error:/) });
    expect(parseDecision('{"id":"e","zone_id":"z","occurred_at":"2026-07-01T00:00:00Z"}')).toMatchObject({ ok: true });
  });
});

describe("what the gateway records (§2.1)", () => {
  test.each([
    ["POST", "/v1/zones/z1/applications", 201, true],
    ["PATCH", "/v1/zones/z1", 400, true],
    ["GET", "/v1/zones/z1/audit", 200, false],
    ["GET", "/v1/zones/z1/audit/by-request/missing", 404, true],
    ["GET", "/v1/zones/z1/provider-grants/oauth/callback", 302, true],
    ["GET", "/health", 500, false],
    ["HEAD", "/v1/zones", 200, false],
  ])("%s %s %i → %s", (method, path, status, recorded) => {
    expect(isRecorded(method as string, path as string, status as number)).toBe(recorded);
  });

  test.each([
    ["/v1/zones/z1/applications", "zones", "z1"],
    ["/v1/zones/z1/policy-sets/ps1/activate", "policy-sets", "ps1"],
    ["/v1/zones/z1/step-up-challenges/c1/satisfy", "step-up-challenges", "c1"],
    ["/v1/zones/z1/applications/a1", "applications", "a1"],
    ["/v1/zones", null, null],
    ["/v1/audit-retention", null, null],
    ["/v1/admin-tokens/t%201", "admin-tokens", "t 1"],
  ])("entity of %s", (path, type, id) => {
    expect(entityOf(path as string)).toEqual({ entity_type: type, entity_id: id });
  });

  test("changed_fields: sorted names without secrets, flagged; DELETE gives []; failures none (cases 13, 14)", () => {
    expect(payloadOf("PATCH", "/v1/zones/z1/applications/a1", 200, { name: "n", client_secret: "x" }, undefined)).toEqual({ rls_mode: "control_plane_wildcard", rls_zone_guc: "*", changed_fields: ["name"], secret_rotated: true });
    expect(payloadOf("PATCH", "/v1/zones/z1/providers/p1", 200, { Password: "x", labels: [], name: "n" }, undefined)).toEqual({ rls_mode: "control_plane_wildcard", rls_zone_guc: "*", changed_fields: ["labels", "name"], secret_rotated: true });
    expect(payloadOf("DELETE", "/v1/zones/z1/grants/g1", 204, undefined, undefined)).toEqual({ rls_mode: "control_plane_wildcard", rls_zone_guc: "*", changed_fields: [] });
    expect(payloadOf("POST", "/v1/zones/z1/applications", 400, { name: "n" }, undefined)).toEqual({ rls_mode: "control_plane_wildcard", rls_zone_guc: "*" });
    const zoneActor: Actor = { id: "t", name: "n", scope: "zone", capability: "write", zone_id: "z1", created_by: "x", bootstrap: false };
    expect(payloadOf("POST", "/v1/zones/z1/applications/a1/rotate-secret", 200, undefined, zoneActor)).toEqual({ rls_mode: "zone_scoped", rls_zone_guc: "z1", secret_rotated: true });
    const r = buildRecord({ method: "PATCH", path: "/v1/zones/z1/applications/a1", status: 200, requestId: "r", body: { name: "n", client_secret: "s3cr3t-value" } });
    expect(JSON.stringify(r)).not.toContain("s3cr3t-value");
  });
});

describe("export and redaction (§1.3)", () => {
  test("CSV cells: empty for null, arrays space-joined, quoting only when needed, CRLF", () => {
    expect(csvCell(null)).toBe("");
    expect(csvCell(["a", "b"])).toBe("a b");
    expect(csvCell("Son, of Anton")).toBe('"Son, of Anton"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell("two\nlines")).toBe('"two\nlines"');
    expect(csvCell({ a: 1 })).toBe("[object Object]");
    expect(csvCell(3)).toBe("3");
    expect(csvLine(["2026-05-01T00:00:00.000Z", "deny", "Son, of Anton", ["a", "b"]])).toBe('2026-05-01T00:00:00.000Z,deny,"Son, of Anton",a b\r\n');
  });

  test("secret-like keys are redacted at any depth and any case; others pass (case 6)", () => {
    expect(redact({ token: "t", nested: { Authorization: "a", list: [{ api_key: "k", ok: 1 }] }, session_id: "s1", agent_session_id: "as1", jti: "j" })).toEqual({
      token: "[redacted]", nested: { Authorization: "[redacted]", list: [{ api_key: "[redacted]", ok: 1 }] }, session_id: "[redacted]", agent_session_id: "as1", jti: "j",
    });
  });
});

describe("explain (§1.5)", () => {
  const ev = (id: string, decision: string | null, meta: Record<string, unknown> = {}) => ({
    id, zone_id: "z1", event_type: "token_exchange", request_id: "r1", decision, evaluation_status: "complete", policy_set_id: null, policy_set_version_id: null,
    manifest_sha: null, determining_policies_json: [{ policy: "p" }], diagnostics_json: null, metadata_json: meta, occurred_at: "2026-07-01T00:00:00.000Z", ingested_at: "2026-07-01T00:00:00.000Z",
  });

  test("the policy input rebuilt from raw metadata; the shown metadata redacted (case 11)", () => {
    const meta = { application_id: "a1", application_registration_method: "managed", resource: "https://r", requested_scopes: ["s"], session_id: "s1", agent_session_id: "as1", agent_labels: ["x"], delegation_edge_id: "" };
    const out = explain("z1", "r1", [ev("e1", "allow"), ev("e2", "deny", meta)]);
    expect(out.final_decision).toBe("deny");
    expect(out.denied).toHaveLength(1);
    expect(out.denied[0]!.metadata.session_id).toBe("[redacted]");
    expect(out.denied[0]!.policy_input).toEqual({
      schema_version: "2026-05-20",
      principal: { type: "Application", id: "a1", zone_id: "z1", registration_method: "managed", agent_session_id: "as1", labels: ["x"] },
      resource: { type: "Resource", identifier: "https://r", scopes: ["s"] },
      action: { id: "TokenExchange" },
      context: { actor_claims: {}, requested_scopes: ["s"], challenge_resolved: false, session_id: "s1", agent_session_id: "as1", delegation_edge_id: "" },
      session: { id: "s1" },
      delegation_edge: { id: "" },
    });
  });

  test("only allows → allow; a last event without decision → unknown (case 12)", () => {
    expect(explain("z1", "r1", [ev("e1", "allow")]).final_decision).toBe("allow");
    expect(explain("z1", "r1", [ev("e1", "allow")]).denied).toEqual([]);
    expect(explain("z1", "r1", [ev("e1", "allow"), ev("e2", null)]).final_decision).toBe("unknown");
    expect(policyInput("z1", {}).principal).toEqual({ type: "Application", id: "", zone_id: "z1" });
  });
});
