// The first decision after a restart: the evaluator is warmed at start and on activation, and only the
// evaluation itself counts against the time limit (not booting the worker, building or loading a bundle).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startCluster, type Cluster } from "../helpers/cluster";
import { Evaluator } from "../../services/policies/evaluator";
import { Opa } from "../../services/policies/opa";
import { loadConfig } from "../../shared/config";

const DOC = `# caracal:data-document
package caracal.authz
import rego.v1
app_ids := {"payments": "app-payments"}
grants := {"resource://example": {"application": "payments", "roles": {"payment-execution": ["example:read", "example:write"]}}}
`;
const CONTRACT = ["decision-contract", "decision-result"].map((name) => ({ name, content: readFileSync(join(__dirname, `../../services/policies/${name}.rego`), "utf8") }));
const bootstrapInput = (zoneId: string) => ({
  principal: { type: "Application", id: "app-payments", zone_id: zoneId, registration_method: "managed", labels: [] },
  resource: { identifier: "resource://example", scopes: [] },
  action: { id: "TokenExchange" },
  context: { requested_scopes: ["agent:lifecycle"] },
});

test("a worker that boots slowly and a bundle that builds slowly do not count against a 100 ms limit", async () => {
  const opa = new Opa(loadConfig({ CARACAL_MODE: "dev" }).opaBin);
  await opa.init();
  try {
    const built = await opa.buildWasm([{ name: "p", content: DOC }, ...CONTRACT]);
    if (!built.ok) throw new Error(JSON.stringify(built.errors));
    const evaluator = new Evaluator(100, { workerFile: join(__dirname, "slow-boot.worker.js") });
    const slowBundle = () => new Promise<Buffer>((resolve) => setTimeout(() => resolve(built.wasm), 300));
    const first = await evaluator.evaluate("v1", slowBundle, bootstrapInput("Z"));
    expect(first).toEqual({ ok: true, result: [{ result: expect.objectContaining({ decision: "allow", determining_policies: [{ policy: "caracal-bootstrap" }] }) }] });
    // The module is loaded now: the next decision needs no bundle at all.
    const second = await evaluator.evaluate("v1", () => Promise.reject(new Error("not needed")), bootstrapInput("Z"));
    expect(second.ok).toBe(true);
    await evaluator.stop();
  } finally {
    await opa.close();
  }
}, 60_000);

describe("simulate right after the policies service restarts", () => {
  let c: Cluster;
  beforeAll(async () => {
    // A tight limit: with the old accounting the worker's boot alone used it up.
    c = await startCluster({ processes: ["zones", "policies"], env: { POLICY_EVAL_TIMEOUT_MS: "100" } });
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  test("the first simulate after a restart executes (the active version was warmed at start)", async () => {
    const post = (path: string, body: object) => c.http().post(path).set(c.auth()).send(body);
    const zone = (await post("/v1/zones", { name: "Warm zone" })).body.id as string;
    const policy = (await post(`/v1/zones/${zone}/policies`, { name: "warm", content: DOC })).body;
    const set = (await post(`/v1/zones/${zone}/policy-sets`, { name: "warm-set" })).body.id as string;
    const version = (await post(`/v1/zones/${zone}/policy-sets/${set}/versions`, { manifest: [{ policy_version_id: policy.version_id }] })).body.id as string;
    expect((await post(`/v1/zones/${zone}/policy-sets/${set}/activate`, { version_id: version })).status).toBe(202);

    const restarted = await c.restart("policies");
    const svc = restarted.getLocalService("policies") as any;
    const sim = await post(`/v1/zones/${zone}/policy-sets/${set}/simulate`, { version_id: version, input: bootstrapInput(zone) });
    expect(sim.status).toBe(200);
    expect(sim.body.explanation).toMatchObject({ evaluation: "executed", decision: "allow" });
    expect(sim.body.warnings).toEqual([]);
    // And the evaluator of the fresh instance is the one that answered, with its bundle cached.
    expect(svc.bundles.has(version)).toBe(true);
  }, 60_000);

  test("a version never activated, asked for the first time, still executes within the limit", async () => {
    const post = (path: string, body: object) => c.http().post(path).set(c.auth()).send(body);
    const zone = (await post("/v1/zones", { name: "Cold zone" })).body.id as string;
    const policy = (await post(`/v1/zones/${zone}/policies`, { name: "cold", content: DOC })).body;
    const set = (await post(`/v1/zones/${zone}/policy-sets`, { name: "cold-set" })).body.id as string;
    const version = (await post(`/v1/zones/${zone}/policy-sets/${set}/versions`, { manifest: [{ policy_version_id: policy.version_id }] })).body.id as string;
    await c.restart("policies");
    const sim = await post(`/v1/zones/${zone}/policy-sets/${set}/simulate`, { version_id: version, input: bootstrapInput(zone) });
    expect(sim.status).toBe(200);
    expect(sim.body.explanation).toMatchObject({ evaluation: "executed", decision: "allow" });
  }, 60_000);
});
