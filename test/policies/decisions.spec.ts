// The decision contract executed by the real OPA: worked examples E1–E11 of reference-policy §2.6, through
// simulate (and, for a zone's active set, the internal decideForZone action), plus failed evaluations.
import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
let Z: string;

const header = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n";
const APP_IDS = `${header}app_ids := {"payments": "app-payments"}\n`;
const GRANTS = `${header}grants := {"resource://example": {"application": "payments",
           "roles": {"payment-execution": ["example:read", "example:write"]}}}\n`;

const post = (path: string, body: unknown) => c.http().post(path).set(c.auth()).send(body as object);

let seq = 0;
async function policyVersion(content: string): Promise<string> {
  const r = await post(`/v1/zones/${Z}/policies`, { name: `doc-${++seq}`, content });
  expect(r.status).toBe(201);
  return r.body.version_id as string;
}

/** A set whose one version holds the given documents; returns ids for simulate. */
async function setOf(contents: string[]): Promise<{ setId: string; versionId: string }> {
  const pvs = [];
  for (const content of contents) pvs.push(await policyVersion(content));
  const s = await post(`/v1/zones/${Z}/policy-sets`, { name: `set-${++seq}` });
  expect(s.status).toBe(201);
  const v = await post(`/v1/zones/${Z}/policy-sets/${s.body.id}/versions`, { manifest: pvs.map((id) => ({ policy_version_id: id })) });
  expect(v.status).toBe(201);
  return { setId: s.body.id, versionId: v.body.id };
}

type Input = Record<string, any>;
const base = (principal: Input, context: Input, extra: Input = {}): Input => ({
  schema_version: "2026-05-20",
  principal: { type: "Application", zone_id: Z, ...principal },
  resource: { type: "resource", id: "r1", identifier: "resource://example", scopes: ["example:read", "example:write"] },
  action: { id: "TokenExchange" },
  context: { actor_claims: {}, ...context },
  ...extra,
});
const E1 = () => base({ id: "app-payments" }, { requested_scopes: ["agent:lifecycle"] });
const E3 = (over: { labels?: string[]; edgeScopes?: string[]; requested?: string[] } = {}) =>
  base(
    { id: "app-payments", labels: over.labels ?? ["payment-execution"] },
    { agent_session_id: "as1", requested_scopes: over.requested ?? ["example:read"] },
    { delegation_edge: { id: "e1", scopes: over.edgeScopes ?? ["example:read", "example:write"] } },
  );

async function simulate(set: { setId: string; versionId: string }, input: Input) {
  const r = await post(`/v1/zones/${Z}/policy-sets/${set.setId}/simulate`, { version_id: set.versionId, input });
  expect(r.status).toBe(200);
  return r.body;
}

const allow = (policy: string, diagnostics: unknown[] = []) => ({ decision: "allow", evaluation_status: "complete", determining_policies: [{ policy }], diagnostics });
const DENY = { decision: "deny", evaluation_status: "complete", determining_policies: [], diagnostics: [{ reason: "no_rule_matched" }] };

async function expectDecision(set: { setId: string; versionId: string }, input: Input, decision: unknown) {
  const body = await simulate(set, input);
  expect(body.warnings).toEqual([]);
  expect(body.would_activate).toBe(true);
  expect(body.explanation).toEqual({
    evaluation: "executed",
    decision: (decision as { decision: string }).decision,
    policy_set_version_id: set.versionId,
    manifest_sha256: body.manifest_sha256,
    reason: expect.any(String),
  });
  expect(body.result).toEqual(decision);
}

let baseSet: { setId: string; versionId: string };

beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "policies"] });
  const z = await post("/v1/zones", { name: "Decisions" });
  Z = z.body.id;
  baseSet = await setOf([APP_IDS, GRANTS]);
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

describe("worked examples (reference-policy §2.6)", () => {
  test("E1: the owner asking for agent:lifecycle alone gets the bootstrap allow", async () => {
    await expectDecision(baseSet, E1(), allow("caracal-bootstrap"));
  });

  test("E2: another application is not the owner: deny no_rule_matched", async () => {
    await expectDecision(baseSet, base({ id: "app-other" }, { requested_scopes: ["agent:lifecycle"] }), DENY);
  });

  test("E3: a role holding the scope, inside the edge, with an agent session: mint allow", async () => {
    await expectDecision(baseSet, E3(), allow("caracal-payments-mint"));
  });

  test("E4: a scope outside the delegation edge's narrowing: deny", async () => {
    await expectDecision(baseSet, E3({ edgeScopes: ["example:read"], requested: ["example:write"] }), DENY);
  });

  test("E5: no role of the principal grants the scope: deny", async () => {
    await expectDecision(baseSet, E3({ labels: ["auditor"] }), DENY);
  });

  test("E6: a customer: label confines the scopes to example:read", async () => {
    const set = await setOf([APP_IDS, GRANTS, `${header}confinement := [{"label_prefix":"customer:","scopes":["example:read"]}]\n`]);
    const labels = ["payment-execution", "customer:7"];
    await expectDecision(set, E3({ labels, requested: ["example:write"] }), DENY);
    await expectDecision(set, E3({ labels, requested: ["example:read"] }), allow("caracal-payments-mint"));
  });

  test("E7: any restriction denies everything in the zone", async () => {
    const set = await setOf([APP_IDS, GRANTS, `${header}restrict := {"freeze": "maintenance"}\n`]);
    await expectDecision(set, E1(), DENY);
    await expectDecision(set, E3(), DENY);
  });

  test("E8: a scope in an approval tier allows with the step-up and risk diagnostics", async () => {
    const set = await setOf([APP_IDS, GRANTS, `${header}risk := [{"scope":"example:write","tier":"high"}]\napproval_tiers := ["high"]\n`]);
    await expectDecision(
      set,
      E3({ requested: ["example:read", "example:write"] }),
      allow("caracal-payments-mint", [{ step_up_required: "human_approval" }, { risk: [{ scope: "example:write", tier: "high" }] }]),
    );
  });

  test("E9: a gateway presentation with subject claims targeting the resource: use allow", async () => {
    const input = base(
      { id: "app-payments", labels: ["payment-execution"] },
      { subject_claims: { delegation_edge_id: "e1", target: ["resource://example"] }, requested_scopes: [] },
    );
    await expectDecision(baseSet, input, allow("caracal-payments-use"));
  });

  test("E10: a set with grants but no app_ids has no principal app key: deny", async () => {
    const set = await setOf([GRANTS]);
    await expectDecision(set, E3(), DENY);
  });

  test("E11: a zone that was never activated denies with no_active_policy_set; once activated its set decides", async () => {
    const fresh = await post("/v1/zones", { name: "Never activated" });
    const gateway = c.brokers.gateway!;
    const none = await gateway.call("policies.decideForZone", { zone_id: fresh.body.id, input: E1() });
    expect(none).toEqual({
      policy_set_id: null,
      policy_set_version_id: null,
      result: { decision: "deny", evaluation_status: "complete", determining_policies: [], diagnostics: [{ reason: "no_active_policy_set" }] },
    });
    const act = await post(`/v1/zones/${Z}/policy-sets/${baseSet.setId}/activate`, { version_id: baseSet.versionId });
    expect(act.status).toBe(202);
    const live = await gateway.call("policies.decideForZone", { zone_id: Z, input: E1() });
    expect(live).toEqual({ policy_set_id: baseSet.setId, policy_set_version_id: baseSet.versionId, result: allow("caracal-bootstrap") });
  });
});

describe("failed evaluations are reported, never a 5xx", () => {
  test("two app keys for one application make the contract conflict: evaluation failed with a warning", async () => {
    const set = await setOf([`${header}app_ids := {"payments": "app-payments", "alias": "app-payments"}\n`, GRANTS]);
    const body = await simulate(set, E1());
    expect(body.explanation.evaluation).toBe("failed");
    expect(body.explanation.reason).toEqual(expect.any(String));
    expect(body.warnings).toEqual([`evaluation_failed:${body.explanation.reason}`]);
    expect(body.would_activate).toBe(true);
    expect(body.result).toBeNull();
  });

  test("an evaluation past the time limit fails, and the next evaluation works again", async () => {
    const slow = `${header}app_ids := {"payments": "app-payments"} if {
  arr := numbers.range(1, 4000)
  count([1 | some i in arr; some j in arr; i == j + 100000]) == 0
}
`;
    const set = await setOf([slow, GRANTS]);
    const started = Date.now();
    const body = await simulate(set, E1());
    expect(body.explanation).toEqual({ evaluation: "failed", reason: "evaluation exceeded 1000 ms" });
    expect(body.warnings).toEqual(["evaluation_failed:evaluation exceeded 1000 ms"]);
    expect(Date.now() - started).toBeLessThan(5000);
    await expectDecision(baseSet, E1(), allow("caracal-bootstrap"));
  });
});
