// `npm run bench`: the zones/gateway figures of the foundation issue beside a bare moleculer-web echo.
// Starts its own processes on loopback (gateway, zones, echo pair), runs bounded autocannon loads at
// 50 connections, prints req/s, p50/p99 and RSS, then stops what it started by PID.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import mongoose from "mongoose";
import autocannon from "autocannon";
import Redis from "ioredis";

const ROOT = join(__dirname, "..");
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 50;
/** How long to watch the recorder write results back after the POST load (BENCH_RECORD_WAIT_S). */
const RECORD_WAIT_MS = Number(process.env.BENCH_RECORD_WAIT_S ?? 60) * 1000;
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
  // Services run from the bundle `npm run bench` builds, as `npm start` runs them; the echo pair under tsx.
  const argv = args[0] === "deploy/local/service.ts" ? ["dist/service.js", ...args.slice(1)] : ["--import", "tsx", ...args];
  const proc = spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ["ignore", "ignore", "inherit"] });
  children.push({ name, proc });
}
function stopAll(): void {
  for (const { proc } of children) if (proc.pid && proc.exitCode === null) proc.kill("SIGTERM");
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** The pid listening on a loopback port (for the servers this bench did not start). */
function listenerPid(port: number): number | null {
  try {
    const out = execFileSync("ss", ["-ltnpH", `sport = :${port}`]).toString();
    const m = /pid=(\d+)/.exec(out);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const watched: Record<string, number> = {};
function cpuSnapshot(): Record<string, number> {
  const all: Record<string, number> = Object.fromEntries(children.map(({ name, proc }) => [name, cpuSeconds(proc.pid!)]));
  for (const [name, pid] of Object.entries(watched)) all[name] = cpuSeconds(pid);
  all["load generator (this process)"] = process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
  return all;
}
const cpuSplit: { phase: string; seconds: Record<string, number> }[] = [];

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
  const before = cpuSnapshot();
  const r = await autocannon({ ...opts, url: opts.url!, connections: CONNECTIONS, duration: DURATION } as autocannon.Options);
  const after = cpuSnapshot();
  cpuSplit.push({ phase: name, seconds: Object.fromEntries(Object.keys(after).map((k) => [k, Math.round((after[k]! - (before[k] ?? 0)) * 10) / 10])) });
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
  const mongoPort = Number(new URL(mongoUrl).port || 27017);
  for (const [name, port] of [["ferretdb", mongoPort], ["nats-server", 4222], ["redis-server", 6379]] as const) {
    const pid = listenerPid(port);
    if (pid) watched[name] = pid;
  }
  const idle = rssAll();
  const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };

  const zone = (await (await fetch(`${base}/v1/zones`, { method: "POST", headers: auth, body: JSON.stringify({ name: "bench zone" }) })).json()) as { id: string };
  const results: Figures[] = [];
  results.push(await load("echo GET (bare moleculer-web → NATS)", { url: `http://127.0.0.1:${ECHO_PORT}/echo` }));
  results.push(await load("GET /v1/zones/:id", { url: `${base}/v1/zones/${zone.id}`, headers: auth }));

  // Lists read a collection of a fixed size, seeded through the API (listed documents carry the bucket
  // fields the service assigns at creation), 32 requests in flight.
  const conn = await mongoose.createConnection(mongoUrl).asPromise();
  const SEEDED = Number(process.env.BENCH_LIST_ZONES ?? 1000);
  let seededCount = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (seededCount < SEEDED) {
        const i = seededCount++;
        const res = await fetch(`${base}/v1/zones`, { method: "POST", headers: auth, body: JSON.stringify({ name: `seeded ${i}`, slug: `seeded-${suffix}-${i}` }) });
        if (res.status !== 201) throw new Error(`seeding a zone: ${res.status}`);
      }
    }),
  );
  const listed = await conn.collection("zones").countDocuments({});
  results.push(await load(`GET /v1/zones?limit=200 (${listed} zones)`, { url: `${base}/v1/zones?limit=200`, headers: auth }));

  // Page 1 against page 500 of the same list (limit 2 → 1,000 rows deep), 20 sequential requests each.
  const rows = await conn.collection("zones").find({}, { projection: { created_at: 1 } }).sort({ created_at: -1, _id: -1 }).toArray();
  const deep = rows[499 * 2 - 1] ?? rows[rows.length - 1]!;
  const cursor = Buffer.from(JSON.stringify({ ts: new Date(deep.created_at).toISOString(), id: String(deep._id) })).toString("base64url");
  const page1 = await timed(`${base}/v1/zones?limit=2`, 20);
  const page500 = await timed(`${base}/v1/zones?limit=2&cursor=${cursor}`, 20);

  let n = 0;
  results.push(
    await load("POST /v1/zones (+ signed event)", {
      url: `${base}/v1/zones`,
      method: "POST",
      headers: auth,
      requests: [{ method: "POST", setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ name: `bench ${n++}` }) }) }],
    } as Partial<autocannon.Options>),
  );
  // How long the relay needs after the load until every event of it is on the stream.
  const drainStart = Date.now();
  let pendingAfter = -1;
  while (Date.now() - drainStart < 120_000) {
    const text = await (await fetch(`${base}/metrics`)).text();
    pendingAfter = Number(/^caracal_api_outbox_pending_total (\d+)/m.exec(text)?.[1] ?? -1);
    if (pendingAfter === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const drainSec = (Date.now() - drainStart) / 1000;
  // The relay writes publish results back into the documents later (shared/outbox/relay.ts, recorder):
  // how many wait when the last event is out, and how long until none does.
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  const recordKey = `outbox:{bench_${suffix}:zones}:record`;
  const recordBacklog = await redis.zcard(recordKey);
  const recordStart = Date.now();
  let recordLeft = recordBacklog;
  while (recordLeft > 0 && Date.now() - recordStart < RECORD_WAIT_MS) {
    await new Promise((r) => setTimeout(r, 500));
    recordLeft = await redis.zcard(recordKey);
  }
  const recordSec = (Date.now() - recordStart) / 1000;
  // This run's outbox keys go with its database.
  for (const key of await redis.keys(`outbox:{bench_${suffix}:*`)) await redis.del(key);
  redis.disconnect();
  const zonesAfterPost = await conn.collection("zones").countDocuments({});
  const loaded = rssAll();
  await conn.dropDatabase();
  await conn.close();

  console.log(`\nbench: ${DURATION}s per load after a 2s warm-up, ${CONNECTIONS} connections, loopback, 2 cores shared by load generator and servers`);
  console.log("| load | req/s | p50 ms | p99 ms | errors | non-2xx |\n|---|---|---|---|---|---|");
  for (const r of results) console.log(`| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} |`);
  console.log(`\nlist keyset, limit=2, ${rows.length} zones: page 1 p50 ${page1.p50} ms p99 ${page1.p99} ms; page 500 p50 ${page500.p50} ms p99 ${page500.p99} ms`);
  console.log(`zones in the store after the POST load: ${zonesAfterPost}; every POST's event on the stream ${drainSec.toFixed(1)} s after the load ended (pending ${pendingAfter})`);
  console.log(`results written back into the documents: ${recordBacklog} waiting when the last event was out, ${recordLeft} left ${recordSec.toFixed(1)} s later (${(((recordBacklog - recordLeft) / Math.max(recordSec, 0.001))).toFixed(0)} documents/s)`);
  console.log(`\nCPU seconds per process during each ${DURATION}s load (where the time goes; 2 cores = ${2 * DURATION} s available):`);
  const procs = Object.keys(cpuSplit[0]?.seconds ?? {});
  console.log(`| load | ${procs.join(" | ")} |\n|---|${procs.map(() => "---").join("|")}|`);
  for (const row of cpuSplit) console.log(`| ${row.phase} | ${procs.map((p) => row.seconds[p]).join(" | ")} |`);
  console.log("\nRSS MB (idle → after load):");
  for (const name of Object.keys(idle)) console.log(`  ${name}: ${idle[name]} → ${loaded[name]}`);
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
