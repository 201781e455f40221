// `npm run bench`: the zones/gateway figures of the foundation issue beside a bare moleculer-web echo.
// Starts its own processes on loopback (gateway, zones, echo pair), runs bounded autocannon loads at
// 50 connections, prints req/s, p50/p99 and RSS, then stops what it started by PID.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import mongoose from "mongoose";
import autocannon from "autocannon";

const ROOT = join(__dirname, "..");
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 50;
const PORT = Number(process.env.BENCH_PORT ?? 3100);
const ECHO_PORT = PORT + 1;
const suffix = randomBytes(3).toString("hex");
const mongoUrl = (() => {
  const u = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  u.pathname = `/bench_${suffix}`;
  return u.toString();
})();
const token = "cat_" + randomBytes(32).toString("base64url");
const env = {
  ...process.env,
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
  READY_SERVICES: "zones",
  ECHO_PORT: String(ECHO_PORT),
  ECHO_NAMESPACE: `echo${suffix}`,
};

const children: { name: string; proc: ChildProcess }[] = [];
function launch(name: string, args: string[]): void {
  const proc = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: ROOT, env, stdio: ["ignore", "ignore", "inherit"] });
  children.push({ name, proc });
}
function stopAll(): void {
  for (const { proc } of children) if (proc.pid && proc.exitCode === null) proc.kill("SIGTERM");
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

const rssMb = (pid: number) => Math.round(Number(execFileSync("ps", ["-o", "rss=", "-p", String(pid)]).toString().trim()) / 1024);
const rssAll = () => Object.fromEntries(children.map(({ name, proc }) => [name, rssMb(proc.pid!)]));

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

interface Figures {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function load(name: string, opts: Partial<autocannon.Options>): Promise<Figures> {
  await new Promise<void>((resolve) => {
    autocannon({ ...opts, url: opts.url!, connections: CONNECTIONS, duration: 2 } as autocannon.Options, () => resolve());
  });
  const r = await autocannon({ ...opts, url: opts.url!, connections: CONNECTIONS, duration: DURATION } as autocannon.Options);
  console.error(`  ${name}: ${Math.round(r.requests.average)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, non-2xx ${r.non2xx}`);
  return { name, rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

async function timed(url: string, n: number): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    if (!res.ok) console.error(`  ${url.replace(/cursor=[^&]+/, "cursor=…")} → ${res.status}`);
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => Math.round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99) };
}

async function main(): Promise<void> {
  launch("gateway", ["deploy/local/service.ts", "gateway"]);
  launch("zones", ["deploy/local/service.ts", "zones"]);
  launch("echo-gateway", ["bench/echo.ts", "gateway"]);
  launch("echo-service", ["bench/echo.ts", "service"]);
  const base = `http://127.0.0.1:${PORT}`;
  await waitFor(`${base}/ready`);
  await waitFor(`http://127.0.0.1:${ECHO_PORT}/echo`);
  await new Promise((r) => setTimeout(r, 2000));
  const idle = rssAll();
  const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };

  const zone = (await (await fetch(`${base}/v1/zones`, { method: "POST", headers: auth, body: JSON.stringify({ name: "bench zone" }) })).json()) as { id: string };
  const results: Figures[] = [];
  results.push(await load("echo GET (bare moleculer-web → NATS)", { url: `http://127.0.0.1:${ECHO_PORT}/echo` }));
  results.push(await load("GET /v1/zones/:id", { url: `${base}/v1/zones/${zone.id}`, headers: auth }));
  let n = 0;
  results.push(
    await load("POST /v1/zones (+ signed event)", {
      url: `${base}/v1/zones`,
      method: "POST",
      headers: auth,
      requests: [{ method: "POST", setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ name: `bench ${n++}` }) }) }],
    } as Partial<autocannon.Options>),
  );
  const conn = await mongoose.createConnection(mongoUrl).asPromise();
  const zonesAfterPost = await conn.collection("zones").countDocuments({});
  results.push(await load(`GET /v1/zones?limit=200 (${zonesAfterPost} zones)`, { url: `${base}/v1/zones?limit=200`, headers: auth }));
  const loaded = rssAll();

  // Page 1 against page 500 (limit 20 → 10,000 rows deep), on the same collection.
  const rows = await conn.collection("zones").find({}, { projection: { created_at: 1 } }).sort({ created_at: -1, _id: -1 }).toArray();
  const deep = rows[500 * 20 - 1] ?? rows[rows.length - 1]!;
  const cursor = Buffer.from(JSON.stringify({ ts: new Date(deep.created_at).toISOString(), id: String(deep._id) })).toString("base64url");
  const page1 = await timed(`${base}/v1/zones?limit=20`, 20);
  const page500 = await timed(`${base}/v1/zones?limit=20&cursor=${cursor}`, 20);
  await conn.dropDatabase();
  await conn.close();

  console.log(`\nbench: ${DURATION}s per load after a 2s warm-up, ${CONNECTIONS} connections, loopback, 2 cores shared by load generator and servers`);
  console.log("| load | req/s | p50 ms | p99 ms | errors | non-2xx |\n|---|---|---|---|---|---|");
  for (const r of results) console.log(`| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} |`);
  console.log(`\nlist keyset, limit=20, ${rows.length} zones: page 1 p50 ${page1.p50} ms p99 ${page1.p99} ms; page ${rows.length >= 10000 ? 500 : Math.floor(rows.length / 20)} p50 ${page500.p50} ms p99 ${page500.p99} ms`);
  console.log("\nRSS MB (idle → after load):");
  for (const name of Object.keys(idle)) console.log(`  ${name}: ${idle[name]} → ${loaded[name]}`);
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
