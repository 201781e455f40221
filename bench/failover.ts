// `npm run bench:failover`: how soon requests fail fast after a service process dies, and how soon they
// succeed again once it is back, for each liveness mechanism the broker can use.
//
// Per variant: a gateway and a zones process (the built bundle, as `npm start` runs them) in a namespace
// and database of their own; four clients loop GET /v1/zones/:id; zones gets SIGKILL; once requests fail
// at once with 503 (or after 25 s) a new zones process starts. Prints, per variant: the time from the kill to the first
// 503, how long the requests caught in between waited, and the time from the new process being up (its
// broker started) to the first 200. Stops what it started by PID and drops its databases.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import mongoose from "mongoose";

const ROOT = join(__dirname, "..");
const PORT = Number(process.env.BENCH_PORT ?? 3110);
const CLIENTS = 4;

interface Variant {
  name: string;
  env: Record<string, string>;
}

const VARIANTS: Variant[] = [
  { name: "Moleculer heartbeat 5 s / timeout 15 s (before)", env: { CLUSTER_NODE_TIMEOUT_MS: "0", CLUSTER_HEARTBEAT_MS: "5000" } },
  { name: "Moleculer heartbeat 1 s / timeout 3 s", env: { CLUSTER_NODE_TIMEOUT_MS: "0", CLUSTER_HEARTBEAT_MS: "1000" } },
  { name: "request timeout 2 s + circuit breaker (heartbeat 5 s / 15 s)", env: { CLUSTER_NODE_TIMEOUT_MS: "0", CLUSTER_HEARTBEAT_MS: "5000", CLUSTER_REQUEST_TIMEOUT_MS: "2000", CLUSTER_CIRCUIT_BREAKER: "true" } },
  { name: "ms liveness: beat 500 ms / drop after 1,500 ms (chosen)", env: { CLUSTER_HEARTBEAT_MS: "500", CLUSTER_NODE_TIMEOUT_MS: "1500" } },
  { name: "ms liveness: beat 250 ms / drop after 750 ms", env: { CLUSTER_HEARTBEAT_MS: "250", CLUSTER_NODE_TIMEOUT_MS: "750" } },
];

interface Sample {
  start: number;
  end: number;
  status: number;
  error?: string;
}

const children = new Set<ChildProcess>();
process.on("exit", () => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));
process.on("SIGINT", () => process.exit(130));

/** Starts one service process; resolves with it and a promise of the moment its broker has started. */
function startProcess(name: string, env: NodeJS.ProcessEnv): { proc: ChildProcess; up: Promise<number> } {
  const proc = spawn(process.execPath, ["dist/service.js", name], { cwd: ROOT, env: { ...env, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "inherit"] });
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  const up = new Promise<number>((resolve) => {
    let buf = "";
    proc.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      if (/started successfully/.test(buf)) {
        resolve(Date.now());
        buf = "";
      } else if (buf.length > 100_000) buf = buf.slice(-1000);
    });
  });
  return { proc, up };
}

async function waitReady(url: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await fetch(`${url}/ready`).then((r) => r.ok).catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("cluster not ready in time");
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    proc.once("exit", () => resolve());
    proc.kill("SIGTERM");
  });
}

async function runVariant(v: Variant, port: number) {
  const suffix = randomBytes(3).toString("hex");
  const mongo = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  mongo.pathname = `/failover_${suffix}`;
  const token = "cat_" + randomBytes(32).toString("base64url");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CARACAL_MODE: "dev",
    NAMESPACE: `failover${suffix}`,
    MONGO_URL: mongo.toString(),
    PORT: String(port),
    ADMIN_TOKEN: token,
    STREAMS_HMAC_KEY: randomBytes(32).toString("hex"),
    AUDIT_HMAC_KEY: randomBytes(32).toString("hex"),
    ZONE_KEK: randomBytes(32).toString("hex"),
    API_V1_RATE_LIMIT_PER_MIN: "0",
    API_V1_ACTOR_RATE_LIMIT_PER_MIN: "0",
    READY_RATE_LIMIT_PER_MIN: "0",
    READY_SERVICES: "zones",
    ...v.env,
  };
  const url = `http://127.0.0.1:${port}`;
  const gateway = startProcess("gateway", { ...env, LOG_LEVEL: "warn" });
  let zones = startProcess("zones", env);
  await waitReady(url);
  const auth = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  const zone = (await (await fetch(`${url}/v1/zones`, { method: "POST", headers: auth, body: JSON.stringify({ name: "failover" }) })).json()) as { id: string };

  const samples: Sample[] = [];
  let running = true;
  const client = async () => {
    while (running) {
      const start = Date.now();
      const { status, error } = await fetch(`${url}/v1/zones/${zone.id}`, { headers: auth, signal: AbortSignal.timeout(30_000) })
        .then(async (r) => ({ status: r.status, error: ((await r.json().catch(() => ({}))) as { error?: string }).error }))
        .catch(() => ({ status: 0, error: "network" }));
      samples.push({ start, end: Date.now(), status, ...(error ? { error } : {}) });
      // A failing request answers at once; do not spin on it.
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
  };
  const load = Array.from({ length: CLIENTS }, client);
  await new Promise((r) => setTimeout(r, 2000));

  const killedAt = Date.now();
  zones.proc.kill("SIGKILL");
  // Down phase: until requests are refused at once (a 503) for a second, or 25 s.
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const first = samples.find((s) => s.end > killedAt && s.status === 503);
    if ((first && Date.now() - first.end > 1000) || Date.now() - killedAt > 25_000) break;
  }
  const spawnedAt = Date.now();
  zones = startProcess("zones", env);
  const upAt = await zones.up;
  const until = Date.now() + 15_000;
  while (Date.now() < until && !samples.some((s) => s.start > upAt && s.status === 200)) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  running = false;
  await Promise.all(load);

  await Promise.all([stopProcess(zones.proc), stopProcess(gateway.proc)]);
  const conn = await mongoose.createConnection(env.MONGO_URL!).asPromise();
  await conn.dropDatabase().catch(() => undefined);
  await conn.close();

  const during = samples.filter((s) => s.end > killedAt && s.start < spawnedAt);
  const failed = during.filter((s) => s.status !== 200);
  const first503 = samples.find((s) => s.end > killedAt && s.status === 503);
  const firstOkAfterUp = samples.find((s) => s.end > upAt && s.status === 200);
  const firstOkAfterSpawn = samples.find((s) => s.end > spawnedAt && s.status === 200);
  const statuses: Record<string, number> = {};
  for (const s of failed) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  const afterUp: Record<string, number> = {};
  for (const s of samples.filter((x) => x.end > upAt && x.status !== 200)) afterUp[`${s.status} ${s.error ?? ""}`] = (afterUp[`${s.status} ${s.error ?? ""}`] ?? 0) + 1;
  return {
    variant: v.name,
    first503Ms: first503 ? first503.end - killedAt : null,
    longestFailedWaitMs: failed.length ? Math.max(...failed.map((s) => s.end - s.start)) : 0,
    failed: failed.length,
    statuses,
    upAfterSpawnMs: upAt - spawnedAt,
    firstOkAfterUpMs: firstOkAfterUp ? firstOkAfterUp.end - upAt : null,
    firstOkAfterSpawnMs: firstOkAfterSpawn ? firstOkAfterSpawn.end - spawnedAt : null,
    failuresAfterUp: afterUp,
  };
}

async function main(): Promise<void> {
  const only = process.env.FAILOVER_VARIANTS?.split(",").map(Number);
  const rows = [];
  for (const [i, v] of VARIANTS.entries()) {
    if (only && !only.includes(i + 1)) continue;
    const row = await runVariant(v, PORT + i);
    console.log(JSON.stringify(row));
    rows.push(row);
  }
  console.log("\n| mechanism | first 503 after kill (ms) | longest wait of a failed request (ms) | failed (status: count) | new process up → first 200 (ms) | spawn → first 200 (ms) |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.variant} | ${r.first503Ms ?? "none"} | ${r.longestFailedWaitMs} | ${r.failed} (${Object.entries(r.statuses).map(([s, n]) => `${s}: ${n}`).join(", ")}) | ${r.firstOkAfterUpMs ?? "none"} | ${r.firstOkAfterSpawnMs ?? "none"} |`);
  }
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
