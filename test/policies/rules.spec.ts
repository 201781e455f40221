// The named rules of the policies service, called directly: §2.2 checks, the §3.3.1 contract messages, the
// §3.3.4 input warnings, and the §3.3.3 outbox states and propagation table (dead and pending included).
import { checkRego } from "../../services/policies/rego-check";
import { manifestContractFailure, inputWarnings, type ManifestMember } from "../../services/policies/manifest";
import { outboxStatus, newestInvalidation, propagationStatus, type StoredEntry } from "../../services/policies/activation-status";

const DIRECTIVE = "# caracal:data-document\npackage caracal.authz\n";

describe("§2.2 structural checks", () => {
  test("preview lists rules, decisions and references", () => {
    const r = checkRego(`${DIRECTIVE}default allow := false\nnote := {"decision": "deny"}\nx := input.principal.id\ny := data.caracal.authz.grants\n`);
    expect(r).toEqual({
      ok: true,
      preview: { package: "caracal.authz", rules: ["allow", "note", "x", "y"], default_result: false, decisions: ["deny"], inputs_referenced: ["input.principal.id"], data_referenced: ["data.caracal.authz.grants"] },
    });
  });

  test("keyed heads count as rules: grants[k] is data, result[k] is refused (reference quirks fixed)", () => {
    expect(checkRego(`${DIRECTIVE}grants["resource://a"] := {"application": "a"}\n`)).toMatchObject({ ok: true, preview: { rules: ["grants"] } });
    expect(checkRego(`${DIRECTIVE}grants := {}\nresult["x"] := 1\n`)).toEqual({ ok: false, code: "data_document_must_not_define_result" });
  });

  test("`x == 1` is not a rule, and a forbidden name inside a string is not a call", () => {
    expect(checkRego(`${DIRECTIVE}x == 1\n`)).toEqual({ ok: false, code: "data_document_must_define_data" });
    expect(checkRego(`${DIRECTIVE}doc := "http.send(x)"\n`)).toMatchObject({ ok: true });
    expect(checkRego(`${DIRECTIVE}x := data.http.send\n`)).toMatchObject({ ok: true });
  });

  test("a forbidden built-in is reported before the package name check", () => {
    expect(checkRego("# caracal:data-document\npackage other\nx := rand.intn(\"a\", 3)\n")).toEqual({ ok: false, code: "forbidden_builtin:rand.intn" });
  });
});

describe("§3.3.1 manifest contract", () => {
  const member = (id: string, content: string, over: Partial<ManifestMember> = {}): [string, ManifestMember] => [id, { id, zone_id: "Z", schema_version: "2026-05-20", content, ...over }];
  const ok = `${DIRECTIVE}grants := {}\n`;

  test.each([
    [`# caracal:data-document\npackage other\ngrants := {}\n`, "policy version a must use package caracal.authz"],
    [`package caracal.authz\ngrants := {}\n`, "policy version a must be a data document marked # caracal:data-document"],
    [`${DIRECTIVE}grants := {}\nresult := 1\n`, "policy version a must not define result; the platform decision contract owns every decision"],
    [`${DIRECTIVE}x := "open\n`, "policy version a failed validation: unterminated_string"],
  ])("member content %# gives its message", (content, detail) => {
    expect(manifestContractFailure([{ policy_version_id: "a" }], "2026-05-20", "Z", new Map([member("a", content)]))).toBe(detail);
  });

  test("rules in order: schema, size, duplicates, missing, zone, schema match", () => {
    const members = new Map([member("a", ok), member("b", ok, { zone_id: "Y" })]);
    expect(manifestContractFailure([{ policy_version_id: "a" }], "2020-01-01", "Z", members)).toBe("unsupported_schema_version:2020-01-01");
    expect(manifestContractFailure([], "2026-05-20", "Z", members)).toBe("policy set manifest must reference at least one policy version");
    expect(manifestContractFailure(Array.from({ length: 257 }, () => ({ policy_version_id: "a" })), "2026-05-20", "Z", members)).toBe("policy set manifest exceeds maximum of 256 entries");
    expect(manifestContractFailure([{ policy_version_id: "a" }, { policy_version_id: "a" }], "2026-05-20", "Z", members)).toBe("policy set manifest contains duplicate policy_version_id entries");
    expect(manifestContractFailure([{ policy_version_id: "a" }, { policy_version_id: "x" }], "2026-05-20", "Z", members)).toBe("policy set manifest references missing policy versions");
    expect(manifestContractFailure([{ policy_version_id: "b" }], "2026-05-20", "Z", members)).toBe("policy version b belongs to a different zone");
    expect(manifestContractFailure([{ policy_version_id: "a" }], "2026-03-16", "Z", members)).toBe("policy version a schema 2026-05-20 does not match policy set schema 2026-03-16");
    expect(manifestContractFailure([{ policy_version_id: "a" }], "2026-05-20", "Z", members)).toBeNull();
  });
});

describe("§3.3.4 input warnings", () => {
  test("in their order", () => {
    expect(inputWarnings({ schema_version: "x", principal: { zone_id: "Y" } }, "Z", "2026-05-20")).toEqual(["input_schema_mismatch:x", "principal_zone_mismatch", "missing_resource", "missing_action", "missing_context"]);
    expect(inputWarnings({ schema_version: "", principal: { zone_id: "Z" }, resource: {}, action: {}, context: {} }, "Z", "2026-05-20")).toEqual([]);
    expect(inputWarnings({ principal: { zone_id: "Z" }, resource: [], action: null, context: "c" }, "Z", "2026-05-20")).toEqual(["missing_resource", "missing_action", "missing_context"]);
  });
});

describe("§3.3.3 outbox state and propagation", () => {
  const expected = { zoneId: "Z", setId: "S", versionId: "V" };
  const entry = (over: Partial<StoredEntry> = {}): StoredEntry => ({
    id: "o1", stream: "caracal.policy.invalidate", payload: { zone_id: "Z", policy_set_id: "S", policy_set_version_id: "V" },
    attempts: 0, last_error: null, dispatched_at: null, dead_at: null, ...over,
  });

  test("pending, dispatched, dead, mismatch and missing", () => {
    expect(outboxStatus(entry(), "o1", expected)).toEqual({ id: "o1", state: "pending", attempts: 0, last_error: null, dispatched_at: null });
    expect(outboxStatus(entry({ attempts: 1, dispatched_at: new Date("2026-01-01T00:00:00Z") }), "o1", expected)).toMatchObject({ state: "dispatched", dispatched_at: "2026-01-01T00:00:00.000Z" });
    expect(outboxStatus(entry({ attempts: 100, dead_at: new Date(), last_error: "WRONGTYPE" }), "o1", expected)).toMatchObject({ state: "dead", attempts: 100, last_error: "WRONGTYPE" });
    expect(outboxStatus(entry({ stream: "caracal.zone.events" }), "o1", expected).state).toBe("mismatch");
    expect(outboxStatus(entry({ payload: { zone_id: "Z", policy_set_id: "S", policy_set_version_id: "V2" } }), "o1", expected).state).toBe("mismatch");
    expect(outboxStatus(undefined, "o9", expected)).toEqual({ id: "o9", state: "missing", attempts: 0, last_error: null, dispatched_at: null });
    expect(outboxStatus(undefined, undefined, expected).id).toBeNull();
  });

  test("without an id the newest invalidation of the version is chosen", () => {
    const entries = [entry({ id: "a" }), entry({ id: "b", stream: "caracal.zone.events" }), entry({ id: "c" }), entry({ id: "d", payload: { zone_id: "Z", policy_set_id: "S", policy_set_version_id: "other" } })];
    expect(newestInvalidation(entries, expected)?.id).toBe("c");
  });

  test("propagation takes the first matching row", () => {
    const none = { state: "not_configured" };
    expect(propagationStatus(false, "dead", none, "V")).toBe("waiting_for_activation");
    expect(propagationStatus(true, "dead", none, "V")).toBe("failed");
    expect(propagationStatus(true, "mismatch", none, "V")).toBe("failed");
    expect(propagationStatus(true, "pending", none, "V")).toBe("waiting_for_outbox");
    expect(propagationStatus(true, "missing", none, "V")).toBe("waiting_for_outbox");
    expect(propagationStatus(true, "dispatched", { state: "loaded", loadedVersionId: "V" }, "V")).toBe("loaded");
    expect(propagationStatus(true, "dispatched", { state: "failed" }, "V")).toBe("failed");
    expect(propagationStatus(true, "dispatched", none, "V")).toBe("waiting_for_sts");
  });
});
