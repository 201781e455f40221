// Policies bench: simulate decisions per second on a policy set of 20 data documents (executed by OPA wasm in
// the policies process), and validate latency (structural checks + `opa check`). Starts its own gateway, zones
// and policies processes on loopback, runs bounded loads, prints the figures, stops what it started by PID.
//   node_modules/.bin/node --import tsx bench/policies.ts      (BENCH_SECONDS=10 BENCH_PORT=3200)
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import mongoose from "mongoose";
import autocannon from "autocannon";

const ROOT = join(__dirname, "..");
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 50;
const PORT = Number(process.env.BENCH_PORT ?? 3200);
const suffix = randomBytes(3).toString("hex");
const mongoUrl = (() => {
  const u = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  u.pathname = `/bench_${suffix}`;
  return u.toString();
})();
const token = "cat_" + randomBytes(32).toString("base64url");
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  CARACAL_MODE: "dev",
  NAMESPACE: `bench${suffix}`,
  MONGO_URL: mongoUrl,
  PORT: String(PORT),
  ADMIN_TOKEN: token,
  STREAMS_HMAC_KEY: randomBytes(32).toString("hex"),
  AUDIT_HMAC_KEY: randomBytes(32).toString("hex"),
  ZONE_KEK: randomBytes(32).toString("hex"),
  LOG_LEVEL: "warn",
  API_V1_RATE_LIMIT_PER_MIN: "0",
  API_V1_ACTOR_RATE_LIMIT_PER_MIN: "0",
  READY_RATE_LIMIT_PER_MIN: "0",
  READY_SERVICES: "zones,policies",
};

const children: { name: string; proc: ChildProcess }[] = [];
function launch(name: string, args: string[]): void {
  // BENCH_PROFILE=<process name> writes a V8 CPU profile of that process to bench/results/ when it stops.
  const profile = process.env.BENCH_PROFILE === name ? ["--cpu-prof", "--cpu-prof-dir", join(ROOT, "bench", "results")] : [];
  const proc = spawn(process.execPath, [...profile, "--import", "tsx", ...args], { cwd: ROOT, env, stdio: ["ignore", "ignore", "inherit"] });
  children.push({ name, proc });
}
function stopAll(): void {
  for (const { proc } of children) if (proc.pid && proc.exitCode === null) process.kill(proc.pid, "SIGTERM");
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

async function waitFor(url: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until) throw new Error(`${url} did not answer`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const header = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n";
/** Twenty data documents: the contract's six plus fourteen catalogue documents of realistic size. */
function documents(): string[] {
  const docs = [
    `${header}app_ids := {"payments": "app-payments", "ledger": "app-ledger"}\n`,
    `${header}grants := {"resource://example": {"application": "payments", "roles": {"payment-execution": ["example:read", "example:write"]}}}\n`,
    `${header}confinement := [{"label_prefix": "customer:", "scopes": ["example:read", "example:write"]}]\n`,
    `${header}risk := [{"scope": "example:admin", "tier": "high"}]\n`,
    `${header}approval_tiers := ["high"]\n`,
    `${header}restrict := {}\n`,
  ];
  for (let i = 0; docs.length < 20; i++) {
    const entries = Array.from({ length: 25 }, (_, j) => `  "item-${i}-${j}": {"owner": "team-${j % 5}", "scopes": ["s${j}:read", "s${j}:write"]}`).join(",\n");
    docs.push(`${header}catalog_${i} := {\n${entries},\n}\n`);
  }
  return docs;
}

const MINT_INPUT = (zoneId: string) => ({
  schema_version: "2026-05-20",
  principal: { type: "Application", id: "app-payments", zone_id: zoneId, labels: ["payment-execution", "customer:42"] },
  resource: { type: "resource", id: "r1", identifier: "resource://example", scopes: ["example:read", "example:write"] },
  action: { id: "TokenExchange" },
  delegation_edge: { id: "e1", scopes: ["example:read", "example:write"] },
  context: { actor_claims: {}, agent_session_id: "as1", requested_scopes: ["example:read"] },
});

const pct = (xs: number[], q: number) => Math.round(xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]! * 10) / 10;

async function main(): Promise<void> {
  launch("gateway", ["deploy/local/service.ts", "gateway"]);
  launch("zones", ["deploy/local/service.ts", "zones"]);
  launch("policies", ["deploy/local/service.ts", "policies"]);
  const base = `http://127.0.0.1:${PORT}`;
  await waitFor(`${base}/ready`);
  const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (await res.json()) as any;
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  // The gateway seeds the bootstrap token as it starts; /ready can answer a moment before.
  let zone: { id: string } | undefined;
  for (let i = 0; !zone; i++) {
    try {
      zone = await call("POST", "/v1/zones", { name: "policies bench" });
    } catch (err) {
      if (i > 40) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  const pvs: string[] = [];
  for (const [i, content] of documents().entries()) pvs.push((await call("POST", `/v1/zones/${zone.id}/policies`, { name: `bench-${i}`, content })).version_id);
  const set = await call("POST", `/v1/zones/${zone.id}/policy-sets`, { name: "bench set" });
  const version = await call("POST", `/v1/zones/${zone.id}/policy-sets/${set.id}/versions`, { manifest: pvs.map((id) => ({ policy_version_id: id })) });
  const simulatePath = `/v1/zones/${zone.id}/policy-sets/${set.id}/simulate`;
  const body = { version_id: version.id, input: MINT_INPUT(zone.id) };
  const check = await call("POST", simulatePath, body);
  if (check.explanation.evaluation !== "executed" || check.result.decision !== "allow") throw new Error(`unexpected decision ${JSON.stringify(check)}`);

  // 1. Through the gateway: autocannon, bounded, after a warm-up.
  const opts = { url: `${base}${simulatePath}`, method: "POST", headers: auth, body: JSON.stringify(body), connections: CONNECTIONS } as autocannon.Options;
  await autocannon({ ...opts, duration: 2, debug: process.env.BENCH_DEBUG === "1" } as autocannon.Options);
  const http = await autocannon({ ...opts, duration: DURATION });
  // The same path with a trivial action: what the gateway, auth and NATS cost without any policy work.
  const floor = await autocannon({ url: `${base}/v1/policy-templates`, headers: auth, connections: CONNECTIONS, duration: DURATION } as autocannon.Options);

  // 2. Direct broker calls over NATS to policies.simulate (no HTTP, no auth), 64 in flight.
  const broker = new ServiceBroker({ namespace: env.NAMESPACE, nodeID: `bench-${suffix}`, transporter: { type: "NATS", options: { url: process.env.NATS_URL ?? "nats://127.0.0.1:4222" } }, logger: false });
  await broker.start();
  await broker.waitForServices(["policies"], 20_000);
  const params = { params: { zoneId: zone.id, id: set.id }, body, query: {} };
  let direct = 0;
  let directErrors = 0;
  const until = Date.now() + DURATION * 1000;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (Date.now() < until) {
        try {
          const r = await broker.call<any, any>("policies.simulate", params);
          if (r.explanation.evaluation === "executed") direct++;
          else directErrors++;
        } catch {
          directErrors++;
        }
      }
    }),
  );
  await broker.stop();

  // 3. Validate latency, one request at a time. Each content is new (a numbered comment), so every request
  // runs the structural checks and a real `opa check` (results are remembered by content hash).
  const samples: number[] = [];
  const doc = documents()[1]!;
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await call("POST", "/v1/policies/validate", { content: `${doc}# sample ${i} ${suffix}\n` });
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);

  const conn = await mongoose.createConnection(mongoUrl).asPromise();
  await conn.dropDatabase();
  await conn.close();

  console.log(`\npolicies bench: 20 data documents + decision contract, ${DURATION}s per load after a 2s warm-up, loopback, 2 cores shared by load generator and servers`);
  console.log("| load | decisions/s | p50 ms | p99 ms | errors | non-2xx |\n|---|---|---|---|---|---|");
  console.log(`| POST simulate via gateway (autocannon, ${CONNECTIONS} connections) | ${Math.round(http.requests.average)} | ${http.latency.p50} | ${http.latency.p99} | ${http.errors + http.timeouts} | ${http.non2xx} |`);
  console.log(`| GET /v1/policy-templates via gateway (floor: gateway + auth + NATS, no policy work) | ${Math.round(floor.requests.average)} | ${floor.latency.p50} | ${floor.latency.p99} | ${floor.errors + floor.timeouts} | ${floor.non2xx} |`);
  console.log(`| policies.simulate direct broker calls over NATS (64 in flight) | ${Math.round(direct / DURATION)} | – | – | ${directErrors} | – |`);
  console.log(`\nPOST /v1/policies/validate (sequential, 200 requests): p50 ${pct(samples, 0.5)} ms, p99 ${pct(samples, 0.99)} ms`);
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
