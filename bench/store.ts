// `npm run bench:store`: what the local store costs the API at fixed collection sizes (zones and resources), each phase beside a bare echo.
//
// Phases (BENCH_PHASES, comma-separated; default all), in the order that needs the least seeding:
//   zones-list  GET /v1/zones?limit=200, page 1 and a deep page reached by walking, over 1,000 zones
//   post        POST /v1/zones for 10 s at 50 connections, then the outbox backlog watched until it is 0
//   zones-list  the same two rows over 20,000 zones
//   patch       PATCH /v1/zones/:id at 20 connections over distinct zones, then one at a time, and a burst on one zone
//   get         GET /v1/zones/:id at 50 connections, random ids among 100,000 zones, then one at a time; and the
//               store's findOne({_id}) (what findById sends) one at a time, from this process
//   resources   GET /v1/zones/:z/resources?limit=50, page 1 and a deep page, 20 sequential requests each:
//               in a zone of 10,000 among 100,000 resources (10 zones), then in one zone holding 100,000
// Everything is seeded through the public API (the store may add fields at creation), with bounded
// concurrency and a time budget per seeding step; a step that runs out of budget measures at the size it
// reached and says so (resources may be copied in the store instead: BENCH_RESOURCE_SEED=store). After a
// seeding step the bench waits (BENCH_DRAIN_S) for the outbox write-back to catch up, so rows do not
// measure it as well, and says how long it took. A list probe slower than BENCH_SLOW_MS (or answered 5xx) is sampled a few times
// sequentially instead of loaded at 50 connections. The gateway answers 504 after 10 s: such answers are
// counted as non-2xx. Sizes and counts are overridable (see the constants below) for a short smoke run.
//
// It starts its own processes (built gateway and services, the echo pair) on loopback, each stage in a
// database of its own, stops them by PID and drops the databases and this run's Redis keys at the end.
// Child logs go to bench/results/ (gitignored).
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { join } from "node:path";
import mongoose from "mongoose";
import autocannon from "autocannon";
import Redis from "ioredis";
import { ServiceBroker } from "moleculer";
import { ListSequence, bucketMarkSchema, type BucketMark } from "../shared/list/buckets";
import { newId } from "../shared/ids";

const ROOT = join(__dirname, "..");
const num = (name: string, def: number) => Number(process.env[name] ?? def);
const PHASES = new Set((process.env.BENCH_PHASES ?? "zones-list,post,patch,get,resources").split(",").map((s) => s.trim()).filter(Boolean));
const SECONDS = num("BENCH_SECONDS", 10);
const ECHO_SECONDS = num("BENCH_ECHO_SECONDS", 5);
const WARMUP_SECONDS = 2;
const CONNECTIONS = 50;
const PATCH_CONNECTIONS = 20;
const PATCH_BURST = num("BENCH_PATCH_BURST", 100);
const ZONES_SMALL = num("BENCH_ZONES_SMALL", 1_000);
const ZONES_MID = num("BENCH_ZONES_MID", 20_000);
const ZONES_MAX = num("BENCH_ZONES_MAX", 100_000);
const DEEP_SMALL = num("BENCH_DEEP_PAGE_SMALL", 5);
const DEEP_MID = num("BENCH_DEEP_PAGE_MID", 50);
const ZONE_PAGE = 200;
const RES_PAGE = 50;
const RES_ZONES = num("BENCH_RESOURCE_ZONES", 10);
const RES_PER_ZONE = num("BENCH_RESOURCES_PER_ZONE", 10_000);
const RES_ONE_ZONE = num("BENCH_RESOURCES_ONE_ZONE", 100_000);
/**
 * "api" (default): every resource through POST …/resources. "store": one resource per zone through the API,
 * the rest copied from it straight into the store in batches, each with its list fields from the same
 * sequence and marks the providers service uses (shared/list/buckets.ts), as after their events were
 * recorded. Creating 100,000 resources through the API takes longer than a bench run should (each create
 * checks the zone, the provider, the application and the zone's quota under its lock).
 */
const RES_SEED = process.env.BENCH_RESOURCE_SEED ?? "api";
const STORE_SEED_BATCH = 500;
/** Deep resources page; default the middle of the zone (page 100 of 200 at 10,000, page 1,000 at 100,000). */
const RES_DEEP = process.env.BENCH_RES_DEEP_PAGE ? Number(process.env.BENCH_RES_DEEP_PAGE) : null;
const SAMPLES = num("BENCH_SAMPLES", 20);
/** Requests one at a time (latency without queueing) for GET and PATCH by id, and store reads by `_id`. */
const ONE_AT_A_TIME = num("BENCH_ONE_AT_A_TIME", 300);
const SLOW_SAMPLES = num("BENCH_SLOW_SAMPLES", 3);
/** A probe slower than this: 50 connections would queue past the gateway's 10 s timeout on 2 cores. */
const SLOW_MS = num("BENCH_SLOW_MS", 1_000);
/** Sequential samples: a first request slower than this (or a 5xx) cuts them to BENCH_SLOW_SAMPLES. */
const SAMPLE_SLOW_MS = num("BENCH_SAMPLE_SLOW_MS", 5_000);
const SEED_CONCURRENCY = num("BENCH_SEED_CONCURRENCY", 48);
/** Creates in one zone queue on its quota lock (a waiter gives up after 5 s with 503): fewer in flight. */
const SEED_CONCURRENCY_ONE_ZONE = num("BENCH_SEED_CONCURRENCY_ONE_ZONE", 8);
const SEED_BUDGET_S = num("BENCH_SEED_BUDGET_S", 900);
const WALK_BUDGET_S = num("BENCH_WALK_BUDGET_S", 180);
const BACKLOG_WAIT_S = num("BENCH_BACKLOG_WAIT_S", 60);
const SETTLE_MAX_S = num("BENCH_SETTLE_S", 15);
/** After seeding, wait this long at most for the outbox write-back to catch up before measuring. */
const DRAIN_MAX_S = num("BENCH_DRAIN_S", 300);
const PORT = num("BENCH_PORT", 3120);
const ECHO_PORT = PORT + 1;
/** Walks take the largest page the API allows; cursors carry a position, not a page size. */
const WALK_LIMIT = 500;

const suffix = randomBytes(3).toString("hex");
const baseMongo = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
const mongoUrlFor = (db: string) => {
  const u = new URL(baseMongo.toString());
  u.pathname = `/${db}`;
  return u.toString();
};
const token = "cat_" + randomBytes(32).toString("base64url");
const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const benchActor = { id: "bench", name: "bench", scope: "global", capability: "write", zone_id: null, created_by: "bench", bootstrap: true };
const logDir = join(ROOT, "bench", "results");
const startedAt = Date.now();
const log = (msg: string) => console.error(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(5)} s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- processes -------------------------------------------------------------------------------------

interface Child {
  name: string;
  proc: ChildProcess;
}
const children: Child[] = [];

function launch(name: string, args: string[], env: NodeJS.ProcessEnv): Child {
  // Services run from the bundle `npm run bench:store` builds, as `npm start` runs them; the echo pair under tsx.
  // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") go to the services only: where their time goes.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const argv = args[0] === "service" ? [...nodeArgs, "dist/service.js", ...args.slice(1)] : ["--import", "tsx", ...args];
  const out = openSync(join(logDir, `store-${suffix}-${name}.log`), "a");
  const proc = spawn(process.execPath, argv, { cwd: ROOT, env, stdio: ["ignore", out, out] });
  const child = { name, proc };
  children.push(child);
  return child;
}

async function stopChild(child: Child): Promise<void> {
  const { proc } = child;
  children.splice(children.indexOf(child), 1);
  if (!proc.pid || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  proc.kill("SIGTERM");
  const done = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
  if (!done) {
    proc.kill("SIGKILL");
    await exited;
  }
}

process.on("exit", () => {
  for (const { proc } of children) if (proc.pid && proc.exitCode === null) proc.kill("SIGKILL");
});
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

/**
 * CPU seconds (user + system) a process has used so far, from /proc; with `reaped`, also those of the
 * children it has waited for (cutime + cstime).
 */
function cpuSeconds(pid: number, reaped = false): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12]) + (reaped ? Number(fields[13]) + Number(fields[14]) : 0)) / 100;
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

/**
 * A process and its children, live and exited (PostgreSQL runs one backend per connection, and backends
 * come and go: an exited one's time moves to the parent's reaped counters).
 */
function treeCpuSeconds(pid: number): number {
  let total = cpuSeconds(pid, true);
  try {
    for (const c of execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)]).toString().split("\n")) if (c.trim()) total += cpuSeconds(Number(c.trim()));
  } catch {
    /* no children */
  }
  return total;
}

const mongoPort = Number(baseMongo.port || 27017);
const watched: Record<string, () => number> = {};
for (const [name, port, tree] of [["ferretdb", mongoPort, false], ["postgres (all)", 5432, true], ["nats-server", 4222, false], ["redis-server", 6379, false]] as const) {
  const pid = listenerPid(port);
  if (pid) watched[name] = tree ? () => treeCpuSeconds(pid) : () => cpuSeconds(pid);
}
/** What answers on the store port: FerretDB's handler flag when it is FerretDB. */
function storeKind(): string {
  const pid = listenerPid(mongoPort);
  if (!pid) return "not on this machine";
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const handler = argv.find((a) => a.startsWith("--handler="));
    return `${argv[0]!.split("/").pop()}${handler ? ` ${handler}` : ""} (pid ${pid})`;
  } catch {
    return `pid ${pid}`;
  }
}
const storeCpu = () => (watched.ferretdb?.() ?? 0) + (watched["postgres (all)"]?.() ?? 0);

function cpuSnapshot(): Record<string, number> {
  const all: Record<string, number> = {};
  for (const { name, proc } of children) all[name] = cpuSeconds(proc.pid!);
  for (const [name, read] of Object.entries(watched)) all[name] = read();
  const u = process.cpuUsage();
  all["load generator"] = (u.user + u.system) / 1e6;
  return all;
}

interface CpuRow {
  phase: string;
  seconds: number;
  cpu: Record<string, number>;
  load1: number;
}
const cpuRows: CpuRow[] = [];

/** Runs `fn` and records the CPU seconds each process spent meanwhile. */
async function withCpu<T>(phase: string, fn: () => Promise<T>): Promise<T> {
  const before = cpuSnapshot();
  const t = Date.now();
  const out = await fn();
  const after = cpuSnapshot();
  cpuRows.push({
    phase,
    seconds: Math.round((Date.now() - t) / 100) / 10,
    cpu: Object.fromEntries(Object.keys(after).map((k) => [k, Math.round((after[k]! - (before[k] ?? after[k]!)) * 10) / 10])),
    load1: Math.round(loadavg()[0]! * 100) / 100,
  });
  return out;
}

async function waitFor(url: string, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until) throw new Error(`${url} did not answer within ${ms / 1000} s (logs in ${logDir})`);
    await sleep(250);
  }
}

function portFree(port: number): boolean {
  return listenerPid(port) === null && !execFileSync("ss", ["-ltnH", `sport = :${port}`]).toString().trim();
}

/**
 * Waits until the store has worked off what earlier loads left behind (requests the gateway gave up on
 * keep running there): store CPU under a quarter core over one second, at most SETTLE_MAX_S.
 */
async function settle(): Promise<number> {
  const t = Date.now();
  while (Date.now() - t < SETTLE_MAX_S * 1000) {
    const a = storeCpu();
    await sleep(1000);
    if (storeCpu() - a < 0.25) break;
  }
  return Math.round((Date.now() - t) / 1000);
}

// ---- one cluster per stage -------------------------------------------------------------------------

class Stage {
  readonly db: string;
  readonly namespace: string;
  readonly base = `http://127.0.0.1:${PORT}`;
  private procs: Child[] = [];
  broker: ServiceBroker | null = null;

  constructor(readonly label: string, readonly services: string[]) {
    this.db = `bench_${suffix}_${label}`;
    this.namespace = `bench${suffix}${label}`;
  }

  async start(): Promise<void> {
    if (!portFree(PORT)) throw new Error(`port ${PORT} is taken: set BENCH_PORT`);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CARACAL_MODE: "dev",
      NAMESPACE: this.namespace,
      MONGO_URL: mongoUrlFor(this.db),
      PORT: String(PORT),
      ADMIN_TOKEN: token,
      STREAMS_HMAC_KEY: randomBytes(32).toString("hex"),
      AUDIT_HMAC_KEY: randomBytes(32).toString("hex"),
      ZONE_KEK: randomBytes(32).toString("hex"),
      LOG_LEVEL: "warn",
      API_V1_RATE_LIMIT_PER_MIN: "0",
      API_V1_ACTOR_RATE_LIMIT_PER_MIN: "0",
      READY_RATE_LIMIT_PER_MIN: "0",
      READY_SERVICES: this.services.join(","),
      API_MAX_RESOURCES_PER_ZONE: "10000000",
    };
    this.procs.push(launch(`${this.label}-gateway`, ["service", "gateway"], env));
    for (const s of this.services) this.procs.push(launch(`${this.label}-${s}`, ["service", s], env));
    await waitFor(`${this.base}/ready`);
    // A broker of our own in the stage's namespace: walks call the list actions without the gateway's 10 s timeout.
    this.broker = new ServiceBroker({ namespace: this.namespace, nodeID: `bench-${suffix}-${this.label}`, transporter: { type: "NATS", options: { url: process.env.NATS_URL ?? "nats://127.0.0.1:4222" } }, logger: false, requestTimeout: 0 });
    await this.broker.start();
    await this.broker.waitForServices(this.services, 20_000);
  }

  async stop(): Promise<void> {
    await this.broker?.stop().catch(() => undefined);
    for (const p of this.procs.reverse()) await stopChild(p);
    this.procs = [];
    const conn = await mongoose.createConnection(mongoUrlFor(this.db), { serverSelectionTimeoutMS: 10_000 }).asPromise();
    await conn.dropDatabase().catch((err) => log(`dropping ${this.db} failed: ${(err as Error).message}`));
    await conn.close();
    // This stage's outbox state and document locks go with its database.
    const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
    let removed = 0;
    for (const pattern of [`outbox:{${this.db}:*`, `doclock:${this.db}:*`]) {
      const stream = redis.scanStream({ match: pattern, count: 1000 });
      for await (const keys of stream as AsyncIterable<string[]>) {
        if (keys.length) removed += await redis.unlink(...keys);
      }
    }
    redis.disconnect();
    log(`stage ${this.label} stopped, database ${this.db} dropped, ${removed} Redis keys removed`);
  }

  /** One page straight from the action (no gateway timeout): used to walk to a deep page. */
  async page(action: string, params: Record<string, string>, limit: number, cursor: string | null): Promise<{ items: { id: string }[]; next_cursor: string | null }> {
    return this.broker!.call(action, { params, query: { limit: String(limit), ...(cursor ? { cursor } : {}) } }, { timeout: 300_000, meta: { actor: benchActor } });
  }
}

// ---- measuring -------------------------------------------------------------------------------------

interface Row {
  row: string;
  rps: number | null;
  p50: number | null;
  p99: number | null;
  non2xx: string;
  echo: number | null;
  notes: string[];
}
const rows: Row[] = [];
const seeding: { what: string; from: number; target: number; reached: number; seconds: number; failed: string }[] = [];
let echoRps: number | null = null;

const statusSummary = (codes: Record<string, number>) =>
  Object.entries(codes)
    .filter(([c]) => !c.startsWith("2"))
    .map(([c, n]) => `${n}×${c}`)
    .join(", ");

interface Loaded {
  rps: number;
  p50: number;
  p99: number;
  total: number;
  ok: number;
  non2xx: number;
  codes: Record<string, number>;
  errors: number;
  /** Requests sent but not answered when the load ended (autocannon drops them; the server may still be working). */
  inFlight: number;
}

/**
 * An autocannon load. Every request goes through a setupRequest that counts it, so the requests still in
 * flight at the end (slower than the load was long) are known and reported instead of silently dropped.
 */
async function cannon(phase: string, opts: Partial<autocannon.Options> & { url: string }, warmup = false, count = true): Promise<Loaded> {
  let sent = 0;
  const counted = (opts.requests ?? [{}]).map((r: any) => ({
    ...r,
    setupRequest: (req: any, context: any) => {
      sent++;
      return r.setupRequest ? r.setupRequest(req, context) : req;
    },
  }));
  const base = { connections: CONNECTIONS, timeout: 30, ...opts, ...(count ? { requests: counted } : {}) } as autocannon.Options;
  if (warmup) await autocannon({ ...base, duration: WARMUP_SECONDS, amount: undefined } as autocannon.Options);
  sent = 0;
  const t = Date.now();
  const r = await withCpu(phase, () => autocannon({ ...(opts.amount ? {} : { duration: SECONDS }), ...base } as autocannon.Options));
  const seconds = (Date.now() - t) / 1000;
  const codes = Object.fromEntries(Object.entries((r as any).statusCodeStats ?? {}).map(([c, s]) => [c, (s as { count: number }).count]));
  const ok = (r as any)["2xx"] as number;
  const inFlight = count ? Math.max(0, sent - r.requests.total - r.errors) : 0;
  const out = { rps: Math.round(ok / Math.max(opts.amount ? seconds : (opts.duration as number | undefined) ?? SECONDS, 0.001)), p50: r.latency.p50, p99: r.latency.p99, total: r.requests.total, ok, non2xx: r.non2xx, codes, errors: r.errors, inFlight };
  log(`  ${phase}: ${out.rps} 2xx/s, p50 ${out.p50} ms, p99 ${out.p99} ms, ${out.total} answers, non-2xx ${out.non2xx}${out.non2xx ? ` (${statusSummary(codes)})` : ""}${r.errors ? `, ${r.errors} errors (${r.timeouts} timeouts)` : ""}${inFlight ? `, ${inFlight} still in flight at the end` : ""}`);
  return out;
}

/** Notes on what a load left out: errors, and requests still in flight when it ended. */
const loadNotes = (r: Loaded) => [...(r.errors ? [`${r.errors} connection errors/timeouts`] : []), ...(r.inFlight ? [`${r.inFlight} requests still in flight when the load ended (not in the figures)`] : [])];

/**
 * A row for a load; when the load got fewer answers than it had connections (requests slower than the
 * load was long), p50/p99 come from a few sequential requests instead, and the note says so.
 */
async function loadRow(name: string, r: Loaded, notes: string[], sample: Sample | null): Promise<void> {
  const row: Row = { row: name, rps: r.rps, p50: r.p50, p99: r.p99, non2xx: fmtNon2xx(r.non2xx, r.codes), echo: echoRps, notes: [...notes, `${r.total} answers`, ...loadNotes(r)] };
  if (sample && r.total < CONNECTIONS) {
    await settle();
    const s = await sequential(`${name} (sequential)`, sample, SLOW_SAMPLES);
    row.p50 = s.p50;
    row.p99 = s.p99;
    row.notes.push(`p50/p99 from ${s.n} sequential requests after the load (${s.non2xx ? `non-2xx ${fmtNon2xx(s.non2xx, s.codes)}` : "all 2xx"}): the load got fewer answers than connections`);
  }
  rows.push(row);
}

async function echo(phase: string): Promise<void> {
  const r = await cannon(`echo (${phase})`, { url: `http://127.0.0.1:${ECHO_PORT}/echo`, duration: ECHO_SECONDS }, true, false);
  echoRps = Math.round(r.total / ECHO_SECONDS);
}

const pct = (sorted: number[], q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]! * 10) / 10;

interface Sampled {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  codes: Record<string, number>;
  n: number;
}

/** `n` sequential requests. */
/** A request to sample: GET unless `init` says otherwise (called per request, so bodies can vary). */
interface Sample {
  url: string;
  init?: () => RequestInit;
}

async function sequential(phase: string, sample: Sample | (() => Sample), n: number, first?: { ms: number; status: number }): Promise<Sampled> {
  return withCpu(phase, async () => {
    const ms: number[] = [];
    const codes: Record<string, number> = {};
    if (first) {
      ms.push(first.ms);
      codes[first.status] = (codes[first.status] ?? 0) + 1;
    }
    const t0 = performance.now();
    while (ms.length < n) {
      const p = await probe(typeof sample === "function" ? sample() : sample);
      ms.push(p.ms);
      codes[p.status] = (codes[p.status] ?? 0) + 1;
    }
    const elapsed = (performance.now() - t0 + (first?.ms ?? 0)) / 1000;
    ms.sort((a, b) => a - b);
    const non2xx = Object.entries(codes).filter(([c]) => !c.startsWith("2")).reduce((s, [, k]) => s + k, 0);
    const out = { rps: Math.round((n / elapsed) * 10) / 10, p50: pct(ms, 0.5), p99: pct(ms, 0.99), non2xx, codes, n };
    log(`  ${phase}: ${n} sequential, p50 ${out.p50} ms, p99 ${out.p99} ms, non-2xx ${non2xx}${non2xx ? ` (${statusSummary(codes)})` : ""}`);
    return out;
  });
}

async function probe(sample: Sample): Promise<{ ms: number; status: number }> {
  const t = performance.now();
  try {
    const res = await fetch(sample.url, { headers: auth, signal: AbortSignal.timeout(60_000), ...sample.init?.() });
    await res.arrayBuffer();
    return { ms: performance.now() - t, status: res.status };
  } catch {
    return { ms: performance.now() - t, status: 0 };
  }
}

/** A list row: loaded at 50 connections when one request is quick enough, else a few sequential samples. */
async function listRow(name: string, url: string, rowNotes: string[]): Promise<void> {
  const settled = await settle();
  const notes = [...rowNotes, ...(settled >= SETTLE_MAX_S ? [`store still busy after ${settled} s settle`] : [])];
  const first = await probe({ url });
  if (first.status >= 500 || first.status === 0 || first.ms > SLOW_MS) {
    const s = await sequential(name, { url }, SLOW_SAMPLES, first);
    rows.push({ row: name, rps: s.rps, p50: s.p50, p99: s.p99, non2xx: fmtNon2xx(s.non2xx, s.codes), echo: echoRps, notes: [...notes, `probe ${Math.round(first.ms)} ms (${first.status}): ${s.n} sequential requests instead of 50 connections; req/s sequential`] });
    return;
  }
  const r = await cannon(name, { url, headers: auth }, true);
  await loadRow(name, r, [...notes, `probe ${Math.round(first.ms)} ms`], { url });
}

const fmtNon2xx = (n: number, codes: Record<string, number>) => (n ? `${n} (${statusSummary(codes)})` : "0");

/**
 * Walks a list to the start of `page` (pages of `pageSize`) through the action, in steps of whole pages,
 * within WALK_BUDGET_S; returns the cursor and the page it actually reached.
 */
async function walk(stage: Stage, action: string, params: Record<string, string>, pageSize: number, page: number): Promise<{ cursor: string | null; page: number; seconds: number; steps: number; note: string }> {
  const step = Math.floor(WALK_LIMIT / pageSize) * pageSize;
  const skip = (page - 1) * pageSize;
  let skipped = 0;
  let cursor: string | null = null;
  let steps = 0;
  let stopped = "";
  const t = Date.now();
  while (skipped < skip) {
    if (Date.now() - t > WALK_BUDGET_S * 1000) {
      stopped = `page ${page} not reached within the ${WALK_BUDGET_S} s walk budget`;
      break;
    }
    const limit = Math.min(step, skip - skipped);
    const got = await stage.page(action, params, limit, cursor);
    steps++;
    if (!got.next_cursor || got.items.length < limit) {
      stopped = `the list ends before page ${page}`;
      break;
    }
    skipped += got.items.length;
    cursor = got.next_cursor;
  }
  const seconds = Math.round((Date.now() - t) / 100) / 10;
  const reached = Math.floor(skipped / pageSize) + 1;
  const note = `cursor by walking ${steps} step(s) of ≤${step} through the action in ${seconds} s${stopped ? ` (${stopped})` : ""}`;
  log(`  walked to page ${reached} (of ${pageSize}): ${note}`);
  return { cursor, page: reached, seconds, steps, note };
}

/** Runs `create` with `concurrency` in flight until `target` succeed or the budget ends; prints the rate. */
async function seed(what: string, have: number, target: number, concurrency: number, create: (i: number) => Promise<number>): Promise<number> {
  if (have >= target) return have;
  let done = have;
  let inflight = 0;
  let next = have;
  const codes: Record<string, number> = {};
  const t0 = Date.now();
  let lastT = t0;
  let lastDone = done;
  const timer = setInterval(() => {
    const now = Date.now();
    log(`  seeding ${what}: ${done}/${target}, ${Math.round(((done - lastDone) * 1000) / (now - lastT))}/s lately, ${Math.round(((done - have) * 1000) / (now - t0))}/s overall${Object.keys(codes).length ? `, failed: ${statusSummary(codes)}` : ""}`);
    lastT = now;
    lastDone = done;
  }, 10_000);
  const worker = async () => {
    while (done + inflight < target && Date.now() - t0 < SEED_BUDGET_S * 1000) {
      inflight++;
      const status = await create(next++).catch(() => 0);
      inflight--;
      if (status >= 200 && status < 300) done++;
      else codes[status] = (codes[status] ?? 0) + 1;
    }
  };
  // A worker that finds the target covered by requests in flight waits for them: a failure reopens a slot.
  const loop = async () => {
    while (done < target && Date.now() - t0 < SEED_BUDGET_S * 1000) {
      await worker();
      if (done < target) await sleep(50);
    }
  };
  await withCpu(`seed ${what}`, () => Promise.all(Array.from({ length: concurrency }, loop)));
  clearInterval(timer);
  const seconds = (Date.now() - t0) / 1000;
  seeding.push({ what, from: have, target, reached: done, seconds: Math.round(seconds), failed: statusSummary(codes) || "0" });
  log(`  seeded ${what}: ${done}/${target} in ${seconds.toFixed(0)} s (${Math.round((done - have) / seconds)}/s)${done < target ? ` — stopped by the ${SEED_BUDGET_S} s budget` : ""}`);
  return done;
}

async function post(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: "POST", headers: auth, body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

async function backlog(base: string): Promise<{ pending: number; unrecorded: number }> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+(?:\\.\\d+)?)`, "m").exec(text)?.[1] ?? NaN);
  return { pending: read("caracal_api_outbox_pending_total"), unrecorded: read("caracal_api_outbox_unrecorded_documents") };
}

/**
 * Seeding creates documents faster than the recorder writes their publish results back; a row measured
 * meanwhile measures that write-back too. Waits (up to DRAIN_MAX_S) and says what it waited for.
 */
async function drain(base: string): Promise<string[]> {
  const t = Date.now();
  const b0 = await backlog(base);
  if (!b0.unrecorded && !b0.pending) return [];
  let b = b0;
  while ((b.unrecorded || b.pending) && Date.now() - t < DRAIN_MAX_S * 1000) {
    await sleep(1000);
    b = await backlog(base);
  }
  const s = (Date.now() - t) / 1000;
  const note = `after seeding, ${b0.unrecorded} documents waited for the write-back: ${b.unrecorded ? `${b.unrecorded} still after ${DRAIN_MAX_S} s` : `drained in ${s.toFixed(0)} s (${Math.round(b0.unrecorded / Math.max(s, 1))}/s)`}`;
  log(`  ${note}`);
  return [note];
}

const shuffle = <T>(xs: T[]): T[] => {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
};

// ---- zones -----------------------------------------------------------------------------------------

async function zonesStage(): Promise<void> {
  const wants = (p: string) => PHASES.has(p);
  if (!["zones-list", "post", "patch", "get"].some(wants)) return;
  const stage = new Stage("z", ["zones"]);
  log(`stage zones: gateway + zones, database ${stage.db}`);
  await stage.start();
  try {
    const ids: string[] = [];
    const createZone = async (i: number) => {
      const r = await post(`${stage.base}/v1/zones`, { name: `z ${suffix} ${i}` });
      if (r.status === 201) ids.push(r.json.id);
      return r.status;
    };
    const seedTo = async (n: number) => seed(`zones to ${n}`, ids.length, n, SEED_CONCURRENCY, createZone);
    let drained: string[] = [];
    const startNotes = async () => {
      const b = await backlog(stage.base);
      const notes = [...drained, `outbox at start: ${b.pending} pending, ${b.unrecorded} unrecorded`];
      drained = [];
      return notes;
    };

    const lists = async (target: number, deep: number) => {
      await seedTo(target);
      drained = await drain(stage.base);
      const n = ids.length;
      log(`zones-list over ${n} zones`);
      await echo(`zones-list ${n}`);
      const notes = await startNotes();
      await listRow(`GET /v1/zones?limit=200, ${n} zones, page 1`, `${stage.base}/v1/zones?limit=${ZONE_PAGE}`, notes);
      const w = await walk(stage, "zones.list", {}, ZONE_PAGE, deep);
      const walkNote = w.note;
      if (w.page > 1) await listRow(`GET /v1/zones?limit=200, ${n} zones, page ${w.page}`, `${stage.base}/v1/zones?limit=${ZONE_PAGE}&cursor=${w.cursor}`, [...notes, walkNote]);
      else rows.push({ row: `GET /v1/zones?limit=200, ${n} zones, page ${deep}`, rps: null, p50: null, p99: null, non2xx: "–", echo: echoRps, notes: [walkNote, "not measured: no deeper page reached"] });
    };

    if (wants("zones-list")) await lists(ZONES_SMALL, DEEP_SMALL);

    if (wants("post")) {
      await seedTo(Math.min(ZONES_SMALL, ZONES_MAX));
      const before = ids.length;
      log(`post over ${before} zones`);
      await settle();
      await echo("post");
      const notes = await startNotes();
      let n = 0;
      const r = await cannon("POST /v1/zones", {
        url: `${stage.base}/v1/zones`,
        method: "POST",
        headers: auth,
        requests: [
          {
            method: "POST",
            setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ name: `p ${suffix} ${n++}` }) }),
            onResponse: (status: number, body: string) => {
              if (status === 201) ids.push(JSON.parse(body).id);
            },
          },
        ],
      } as any);
      // The backlog: entries not yet on the stream, and documents whose publish results are not yet written back.
      const t = Date.now();
      const b0 = await backlog(stage.base);
      let b = b0;
      let pendingZeroAt: number | null = b.pending === 0 ? 0 : null;
      let unrecordedZeroAt: number | null = b.unrecorded === 0 ? 0 : null;
      let lastPrint = 0;
      log(`  backlog when the burst ended: ${b.pending} pending, ${b.unrecorded} unrecorded`);
      while ((pendingZeroAt === null || unrecordedZeroAt === null) && Date.now() - t < BACKLOG_WAIT_S * 1000) {
        await sleep(250);
        b = await backlog(stage.base);
        const at = (Date.now() - t) / 1000;
        if (pendingZeroAt === null && b.pending === 0) pendingZeroAt = at;
        if (unrecordedZeroAt === null && b.unrecorded === 0) unrecordedZeroAt = at;
        if (Date.now() - lastPrint > 5000) {
          log(`  backlog after ${at.toFixed(0)} s: ${b.pending} pending, ${b.unrecorded} unrecorded`);
          lastPrint = Date.now();
        }
      }
      const fmtZero = (at: number | null, left: number) => (at === null ? `not 0 after ${BACKLOG_WAIT_S} s (${left} left)` : `0 after ${at.toFixed(1)} s`);
      rows.push({
        row: `POST /v1/zones (+ signed event), ${before} → ${ids.length} zones`,
        rps: r.rps,
        p50: r.p50,
        p99: r.p99,
        non2xx: fmtNon2xx(r.non2xx, r.codes),
        echo: echoRps,
        notes: [...notes, `${r.total} answers`, ...loadNotes(r), `backlog at the end of the burst: ${b0.pending} pending, ${b0.unrecorded} unrecorded; pending ${fmtZero(pendingZeroAt, b.pending)}; unrecorded ${fmtZero(unrecordedZeroAt, b.unrecorded)}`],
      });
    }

    if (wants("zones-list") && ZONES_MID !== ZONES_SMALL) await lists(ZONES_MID, DEEP_MID);

    if (wants("patch")) {
      await seedTo(ZONES_MID);
      drained = await drain(stage.base);
      const n = ids.length;
      log(`patch over ${n} zones`);
      await settle();
      await echo(`patch ${n}`);
      const notes = await startNotes();
      const order = shuffle(ids);
      let k = 0;
      const r = await cannon(`PATCH /v1/zones/:id, ${n} zones`, {
        url: `${stage.base}/v1/zones/x`,
        method: "PATCH",
        headers: auth,
        connections: PATCH_CONNECTIONS,
        requests: [{ method: "PATCH", setupRequest: (req: any) => ({ ...req, path: `/v1/zones/${order[k++ % order.length]}`, body: JSON.stringify({ name: `patched ${k}` }) }) }],
      } as any);
      const patchSample = { url: `${stage.base}/v1/zones/${order[order.length - 1]}`, init: () => ({ method: "PATCH", body: JSON.stringify({ name: `sampled ${k++}` }) }) };
      await loadRow(`PATCH /v1/zones/:id, ${n} zones, ${PATCH_CONNECTIONS} connections, distinct zones`, r, notes, patchSample);
      const settled = await settle();
      const one = order[0]!;
      let m = 0;
      const burst = await cannon(`PATCH one zone, ${PATCH_BURST} requests`, {
        url: `${stage.base}/v1/zones/${one}`,
        method: "PATCH",
        headers: auth,
        connections: PATCH_CONNECTIONS,
        amount: PATCH_BURST,
        requests: [{ method: "PATCH", setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ name: `burst ${m++}` }) }) }],
      } as any);
      const one1 = await sequential(`PATCH /v1/zones/:id, ${n} zones, one at a time, distinct zones`, () => ({ url: `${stage.base}/v1/zones/${order[k++ % order.length]}`, init: () => ({ method: "PATCH", body: JSON.stringify({ name: `one at a time ${k}` }) }) }), ONE_AT_A_TIME);
      rows.push({ row: `PATCH /v1/zones/:id, ${n} zones, one at a time, distinct zones`, rps: one1.rps, p50: one1.p50, p99: one1.p99, non2xx: fmtNon2xx(one1.non2xx, one1.codes), echo: echoRps, notes: [`${one1.n} sequential requests; req/s sequential`] });
      await settle();
      rows.push({
        row: `PATCH one zone, ${PATCH_BURST} requests at ${PATCH_CONNECTIONS} in flight, ${n} zones`,
        rps: burst.rps,
        p50: burst.p50,
        p99: burst.p99,
        non2xx: fmtNon2xx(burst.non2xx, burst.codes),
        echo: echoRps,
        notes: [`settled ${settled} s before; ${burst.ok} of ${PATCH_BURST} answered 2xx`, ...loadNotes(burst)],
      });
    }

    if (wants("get")) {
      await seedTo(ZONES_MAX);
      drained = await drain(stage.base);
      const n = ids.length;
      log(`get over ${n} zones`);
      await settle();
      await echo(`get ${n}`);
      const notes = await startNotes();
      const r = await cannon(
        `GET /v1/zones/:id, ${n} zones`,
        { url: `${stage.base}/v1/zones/x`, headers: auth, requests: [{ setupRequest: (req: any) => ({ ...req, path: `/v1/zones/${ids[Math.floor(Math.random() * ids.length)]}` }) }] } as any,
        true,
      );
      await loadRow(`GET /v1/zones/:id, ${n} zones, random ids`, r, [...notes, "the zones service caches a zone read for 30 s (up to 50,000)"], { url: `${stage.base}/v1/zones/${ids[0]}` });
      // Latency without queueing: ids the load above did not read are not in the zones service's cache.
      const unread = shuffle(ids).slice(0, ONE_AT_A_TIME * 2);
      let u = 0;
      const seqGet = await sequential(`GET /v1/zones/:id, ${n} zones, one at a time`, () => ({ url: `${stage.base}/v1/zones/${unread[u++ % unread.length]}` }), ONE_AT_A_TIME);
      rows.push({ row: `GET /v1/zones/:id, ${n} zones, one at a time, random ids`, rps: seqGet.rps, p50: seqGet.p50, p99: seqGet.p99, non2xx: fmtNon2xx(seqGet.non2xx, seqGet.codes), echo: echoRps, notes: [`${seqGet.n} sequential requests; req/s sequential; mostly ids not read before (not cached)`] });
      // What findById sends, straight to the store: the target's "every findById".
      const conn = await mongoose.createConnection(mongoUrlFor(stage.db)).asPromise();
      try {
        const zones = conn.collection("zones");
        const ms: number[] = [];
        for (let i = 0; i < ONE_AT_A_TIME; i++) {
          const t = performance.now();
          await zones.findOne({ _id: unread[(ONE_AT_A_TIME + i) % unread.length] as any });
          ms.push(performance.now() - t);
        }
        ms.sort((a, b) => a - b);
        log(`  store findOne({_id}): p50 ${pct(ms, 0.5)} ms, p99 ${pct(ms, 0.99)} ms`);
        rows.push({ row: `store findOne({_id}) (what findById sends), ${n} zones, one at a time`, rps: null, p50: pct(ms, 0.5), p99: pct(ms, 0.99), non2xx: "–", echo: echoRps, notes: [`${ONE_AT_A_TIME} reads of random ids from the bench process, straight to the store`] });
      } finally {
        await conn.close();
      }
    }
  } finally {
    await stage.stop();
  }
}

// ---- resources -------------------------------------------------------------------------------------

async function resourcesCase(label: string, zones: number, perZone: number, concurrency: number): Promise<void> {
  const stage = new Stage(label, ["zones", "applications", "providers"]);
  log(`stage resources ${label}: ${zones} zone(s) × ${perZone}, database ${stage.db}`);
  await stage.start();
  try {
    const setup: { zone: string; provider: string; app: string }[] = [];
    for (let i = 0; i < zones; i++) {
      const z = await post(`${stage.base}/v1/zones`, { name: `r ${suffix} ${label} ${i}` });
      const p = await post(`${stage.base}/v1/zones/${z.json.id}/providers`, { name: "bench none", kind: "none", config_json: {} });
      const a = await post(`${stage.base}/v1/zones/${z.json.id}/applications`, { name: "bench gateway", registration_method: "managed" });
      if (z.status !== 201 || p.status !== 201 || a.status !== 201) throw new Error(`resource setup failed: zone ${z.status}, provider ${p.status} ${JSON.stringify(p.json)}, application ${a.status} ${JSON.stringify(a.json)}`);
      setup.push({ zone: z.json.id, provider: p.json.id, app: a.json.id });
    }
    const total = zones * perZone;
    const createResource = async (i: number) => {
      const s = setup[i % zones]!;
      const r = await post(`${stage.base}/v1/zones/${s.zone}/resources`, { identifier: `resource://bench-${i}`, upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: s.provider, gateway_application_id: s.app });
      return r.status;
    };
    const reached = RES_SEED === "store" ? await seedResourcesInStore(stage, setup, perZone, createResource) : await seed(`resources ${zones}×${perZone}`, 0, total, concurrency, createResource);
    const inZone = Math.round(reached / zones);
    const where = zones === 1 ? `one zone holding ${reached}` : `zone of ≈${inZone} among ${reached} (${zones} zones)`;
    log(`resources list: ${where}`);
    const zone = setup[0]!.zone;
    const url = `${stage.base}/v1/zones/${zone}/resources?limit=${RES_PAGE}`;
    const drainedNotes = await drain(stage.base);
    await settle();
    await echo(`resources ${label}`);
    const b = await backlog(stage.base);
    const notes = [...drainedNotes, `outbox at start: ${b.pending} pending, ${b.unrecorded} unrecorded`];
    const sample = async (name: string, u: string, extra: string[]) => {
      const settled = await settle();
      const first = await probe({ url: u });
      const n = first.status >= 500 || first.status === 0 || first.ms > SAMPLE_SLOW_MS ? SLOW_SAMPLES : SAMPLES;
      const s = await sequential(name, { url: u }, n, first);
      rows.push({ row: name, rps: s.rps, p50: s.p50, p99: s.p99, non2xx: fmtNon2xx(s.non2xx, s.codes), echo: echoRps, notes: [...notes, ...extra, `${s.n} sequential requests${n < SAMPLES ? ` (not ${SAMPLES}: the first took ${Math.round(first.ms)} ms, status ${first.status})` : ""}`, ...(settled >= SETTLE_MAX_S ? [`store still busy after ${settled} s settle`] : [])] });
    };
    await sample(`GET …/resources?limit=50, ${where}, page 1`, url, []);
    const deep = RES_DEEP ?? Math.max(2, Math.floor(inZone / RES_PAGE / 2));
    const w = await walk(stage, "providers.listResources", { zoneId: zone }, RES_PAGE, deep);
    const walkNote = w.note;
    if (w.page > 1) await sample(`GET …/resources?limit=50, ${where}, page ${w.page}`, `${url}&cursor=${w.cursor}`, [walkNote]);
    else rows.push({ row: `GET …/resources?limit=50, ${where}, page ${deep}`, rps: null, p50: null, p99: null, non2xx: "–", echo: echoRps, notes: [walkNote, "not measured: no deeper page reached"] });
  } finally {
    await stage.stop();
  }
}

/** BENCH_RESOURCE_SEED=store: see RES_SEED. Returns how many resources the zones hold. */
async function seedResourcesInStore(stage: Stage, setup: { zone: string }[], perZone: number, createResource: (i: number) => Promise<number>): Promise<number> {
  const what = `resources ${setup.length}×${perZone} (store)`;
  for (let i = 0; i < setup.length; i++) if ((await createResource(i)) !== 201) throw new Error("resource create through the API failed");
  await settle();
  const conn = await mongoose.createConnection(mongoUrlFor(stage.db)).asPromise();
  const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  const t0 = Date.now();
  let done = setup.length;
  try {
    const resources = conn.collection("resources");
    const counters = conn.collection("provider_counters");
    const marks = conn.model<BucketMark>("ListMark", bucketMarkSchema, "providers_list_marks");
    // The providers service's sequence: the same Redis keys (database-prefixed) and marks collection.
    const seq = new ListSequence(redis, marks, "resources", `${stage.db}:`);
    const templates = new Map<string, any>();
    for (const { zone } of setup) {
      // As an API-made resource looks once its event is published and recorded (nothing for the relay).
      const { _outbox_next_at, _outbox_pending_since, _outbox_dead_since, ...t } = (await resources.findOne({ zone_id: zone } as any)) as any;
      templates.set(zone, { ...t, _outbox: [], _outbox_v: 2, _outbox_pending: 0, _outbox_dead: 0, _outbox_open: false, _outbox_has_dead: false });
    }
    await withCpu(`seed ${what}`, async () => {
      let lastLog = Date.now();
      for (const { zone } of setup) {
        const t = templates.get(zone)!;
        for (let made = 1; made < perZone && Date.now() - t0 < SEED_BUDGET_S * 1000; ) {
          const n = Math.min(STORE_SEED_BATCH, perZone - made);
          const stamps = Array.from({ length: n }, () => new Date());
          const fields = await seq.assign(zone, stamps);
          const docs = fields.map((f, k) => {
            const identifier = `resource://bench-store-${zone}-${made + k}`;
            return { ...t, ...f, _id: newId(), name: identifier, identifier, identifier_key: `${zone}|${identifier}`, created_at: stamps[k], updated_at: stamps[k] };
          });
          await resources.insertMany(docs as any[], { ordered: false });
          await seq.stored(docs);
          made += n;
          done += n;
          if (Date.now() - lastLog > 10_000) {
            log(`  seeding ${what}: ${done}/${setup.length * perZone}, ${Math.round((done * 1000) / (Date.now() - t0))}/s`);
            lastLog = Date.now();
          }
        }
        // The zone's quota counter agrees with what it holds.
        await counters.updateOne({ _id: `resources:${zone}` } as any, { $set: { value: perZone } }, { upsert: true });
      }
    });
  } finally {
    redis.disconnect();
    await conn.close();
  }
  const seconds = (Date.now() - t0) / 1000;
  seeding.push({ what, from: 0, target: setup.length * perZone, reached: done, seconds: Math.round(seconds), failed: "0" });
  log(`  seeded ${what}: ${done} in ${seconds.toFixed(0)} s`);
  return done;
}

// ---- report ----------------------------------------------------------------------------------------

function report(): void {
  const f = (v: number | null) => (v === null ? "–" : v.toLocaleString("en-US"));
  const overrides = Object.entries(process.env).filter(([k]) => k.startsWith("BENCH_")).map(([k, v]) => `${k}=${v}`).join(" ");
  console.log(`\nbench:store, ${new Date().toISOString()}, store ${baseMongo.host}: ${storeKind()}; ${overrides || "no BENCH_ overrides"}`);
  console.log(`run of ${((Date.now() - startedAt) / 60_000).toFixed(1)} min; loads ${SECONDS} s after a ${WARMUP_SECONDS} s warm-up (reads), ${CONNECTIONS} connections unless said; echo ${ECHO_SECONDS} s at ${CONNECTIONS} connections at the start of each phase; 2 cores shared by load generator, servers and other users`);
  console.log("\n| row | req/s (2xx) | p50 ms | p99 ms | non-2xx | echo req/s | notes |\n|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.row} | ${f(r.rps)} | ${f(r.p50)} | ${f(r.p99)} | ${r.non2xx} | ${f(r.echo)} | ${r.notes.join("; ")} |`);
  console.log("\nSeeding (through the API; rows marked (store): see BENCH_RESOURCE_SEED):\n\n| what | from → reached / target | seconds | created per second | failed |\n|---|---|---|---|---|");
  for (const s of seeding) console.log(`| ${s.what} | ${s.from.toLocaleString("en-US")} → ${s.reached.toLocaleString("en-US")} / ${s.target.toLocaleString("en-US")} | ${s.seconds} | ${Math.round((s.reached - s.from) / Math.max(s.seconds, 1))} | ${s.failed} |`);
  const procs = [...new Set(cpuRows.flatMap((r) => Object.keys(r.cpu)))];
  console.log(`\nCPU seconds per process during each load and seeding step (2 cores = 2 CPU-seconds per second):\n\n| phase | seconds | load avg | ${procs.join(" | ")} |\n|---|---|---|${procs.map(() => "---").join("|")}|`);
  for (const r of cpuRows) console.log(`| ${r.phase} | ${r.seconds} | ${r.load1} | ${procs.map((p) => (r.cpu[p] === undefined ? "–" : r.cpu[p])).join(" | ")} |`);
}

async function main(): Promise<void> {
  mkdirSync(logDir, { recursive: true });
  if (!portFree(ECHO_PORT)) throw new Error(`port ${ECHO_PORT} is taken: set BENCH_PORT`);
  log(`bench:store ${suffix}: phases ${[...PHASES].join(",")}; store ${baseMongo.host}; child logs in ${logDir}/store-${suffix}-*.log`);
  const echoEnv = { ...process.env, ECHO_PORT: String(ECHO_PORT), ECHO_NAMESPACE: `echo${suffix}` };
  const echoPair = [launch("echo-gateway", ["bench/echo.ts", "gateway"], echoEnv), launch("echo-service", ["bench/echo.ts", "service"], echoEnv)];
  try {
    await waitFor(`http://127.0.0.1:${ECHO_PORT}/echo`);
    await zonesStage();
    if (PHASES.has("resources")) {
      await resourcesCase("r10", RES_ZONES, RES_PER_ZONE, SEED_CONCURRENCY);
      await resourcesCase("r1", 1, RES_ONE_ZONE, SEED_CONCURRENCY_ONE_ZONE);
    }
  } finally {
    for (const c of echoPair) await stopChild(c);
    report();
  }
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
