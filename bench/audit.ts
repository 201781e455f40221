// `npm run bench:audit`: the audit figures of issue 13. Starts its own gateway and audit processes on
// loopback (own namespace, database and port), then prints:
//   - ingest: events/s sustained from caracal.audit.events into the store, with 1 and then 2 instances
//     (timed from the first publish until the group has nothing left to deliver or acknowledge);
//   - GET …/audit p50/p99 for page 1 and a deep page, with no filter, decision=deny and a one-hour
//     since/until window, at each size of BENCH_AUDIT_ROWS (default 100000,1000000) rows in one zone;
//   - GET …/audit/by-request/:id p50/p99.
// Rows are seeded through the same stream and ingest. Loads are bounded: the producer keeps at most
// BACKLOG entries undelivered, and stops at the row count. Everything started here is stopped by PID.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { mkdirSync, openSync } from "node:fs";
import Redis from "ioredis";
import mongoose from "mongoose";
import { auditEntry, decisionEvent, AUDIT_STREAM } from "../deploy/emit/audit";
import { filterDigest } from "../shared/pagination";

const ROOT = join(__dirname, "..");
const PORT = Number(process.env.BENCH_PORT ?? 3200);
const SIZES = (process.env.BENCH_AUDIT_ROWS ?? "100000,1000000").split(",").map(Number).filter((n) => n > 0);
const INGEST_EVENTS = Number(process.env.BENCH_AUDIT_INGEST ?? 20_000);
const SAMPLES = Number(process.env.BENCH_AUDIT_SAMPLES ?? 40);
const BACKLOG = 20_000;
/** Seeded rows span this much time, oldest first (with a minute of jitter, as late events do). */
const SPAN_MS = 30 * 86_400_000;
/** BENCH_REUSE=<suffix> measures the lists of a run kept with BENCH_KEEP_DB=1 (no ingest, no seeding). */
const REUSE = process.env.BENCH_REUSE ?? "";
const suffix = REUSE || randomBytes(3).toString("hex");
const namespace = `bench${suffix}`;
const mongoUrl = (() => {
  const u = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  u.pathname = `/bench_audit_${suffix}`;
  return u.toString();
})();
const token = "cat_" + randomBytes(32).toString("base64url");
// A kept run's key is derived from its suffix, so a reuse run verifies the same entries.
const auditKey = Buffer.from(createHash("sha256").update(`bench-audit-key-${suffix}`).digest());
const env = {
  ...process.env,
  CARACAL_MODE: "dev",
  NAMESPACE: namespace,
  MONGO_URL: mongoUrl,
  PORT: String(PORT),
  ADMIN_TOKEN: token,
  STREAMS_HMAC_KEY: randomBytes(32).toString("hex"),
  AUDIT_HMAC_KEY: auditKey.toString("hex"),
  ZONE_KEK: randomBytes(32).toString("hex"),
  LOG_LEVEL: "warn",
  API_V1_RATE_LIMIT_PER_MIN: "0",
  API_V1_ACTOR_RATE_LIMIT_PER_MIN: "0",
  READY_RATE_LIMIT_PER_MIN: "0",
  READY_SERVICES: "audit",
  // Streams of its own: nothing else reads or writes them.
  STREAM_PREFIX: `${namespace}:`,
};
const GROUP = "audit-ingestor";
const STREAM = `${namespace}:${AUDIT_STREAM}`;

mkdirSync(join(ROOT, ".local"), { recursive: true });
const logFd = openSync(join(ROOT, ".local", `bench-audit-${suffix}.log`), "a");
const children: { name: string; proc: ChildProcess }[] = [];
function launch(name: string, process: string): void {
  // Warnings of the processes (slow pages with what they read, …) go to .local/bench-audit-<suffix>.log.
  const proc = spawn(globalThis.process.execPath, ["--import", "tsx", "deploy/local/service.ts", process], { cwd: ROOT, env, stdio: ["ignore", logFd, "inherit"] });
  children.push({ name, proc });
}
function stopAll(): void {
  for (const { proc } of children) if (proc.pid && proc.exitCode === null) proc.kill("SIGTERM");
}
process.on("exit", stopAll);
process.on("SIGINT", () => process.exit(130));

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const base = `http://127.0.0.1:${PORT}`;
const auth = { authorization: `Bearer ${token}` };

async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > until) throw new Error(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Entries of our group not yet delivered (lag) plus delivered but not acknowledged (pending). */
async function backlog(): Promise<number> {
  const groups = (await redis.xinfo("GROUPS", STREAM)) as unknown[][];
  for (const g of groups) {
    const f: Record<string, unknown> = {};
    for (let i = 0; i + 1 < g.length; i += 2) f[String(g[i])] = g[i + 1];
    if (f.name === GROUP) return Number(f.lag ?? 0) + Number(f.pending ?? 0);
  }
  throw new Error("the audit group does not exist yet");
}

/**
 * Publishes `count` events for `zone`, keeping the backlog under BACKLOG, and waits until all are stored.
 * Events `i` happen at `at(i)`; request ids are `req-<zone>-<i>` so by-request can name them.
 */
async function ingest(zone: string, from: number, count: number, at: (i: number) => number): Promise<number> {
  const started = performance.now();
  for (let i = from; i < from + count; ) {
    if ((await backlog()) > BACKLOG) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const tx = redis.pipeline();
    for (const end = Math.min(from + count, i + 1000); i < end; i++) {
      const fields = auditEntry(decisionEvent({ zoneId: zone, requestId: `req-${zone}-${i}`, at: new Date(at(i)) }, i), auditKey);
      tx.xadd(STREAM, "MAXLEN", "~", 50_000, "*", ...Object.entries(fields).flat());
    }
    await tx.exec();
  }
  await waitFor(async () => (await backlog()) === 0, 3600_000, "ingest drain");
  return (performance.now() - started) / 1000;
}

/** `path` per sample: a function gives each sample its own (cold) position. */
async function timed(path: string | (() => string), n = SAMPLES): Promise<{ p50: number; p99: number; rows: number }> {
  const samples: number[] = [];
  let rows = 0;
  for (let i = 0; i < n; i++) {
    const url = typeof path === "string" ? path : path();
    const t = performance.now();
    const res = await fetch(`${base}${url}`, { headers: auth });
    const body = (await res.json()) as { items?: unknown[] } | unknown[];
    samples.push(performance.now() - t);
    if (!res.ok) throw new Error(`${url} → ${res.status} ${JSON.stringify(body)}`);
    rows = Array.isArray(body) ? body.length : (body.items?.length ?? 0);
  }
  samples.sort((a, b) => a - b);
  const q = (p: number) => Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]! * 10) / 10;
  return { p50: q(0.5), p99: q(0.99), rows };
}

const cursorAt = (ts: number, filters: Record<string, unknown> = {}) => {
  const f = filterDigest(filters);
  return Buffer.from(JSON.stringify({ ts: new Date(ts).toISOString(), id: "~", ...(f ? { f } : {}) })).toString("base64url");
};

async function main(): Promise<void> {
  await redis.xgroup("CREATE", STREAM, GROUP, "$", "MKSTREAM").catch(() => undefined);
  launch("gateway", "gateway");
  launch("audit-1", "audit");
  await waitFor(async () => (await fetch(`${base}/ready`)).ok, 120_000, "gateway ready");
  const out: string[] = [];
  const say = (line: string) => {
    out.push(line);
    console.error(line);
  };
  say(`audit bench ${new Date().toISOString()} (load average ${(await import("node:os")).loadavg().map((x) => x.toFixed(1)).join(" ")})`);

  // ---- ingest, 1 then 2 instances ---------------------------------------------------------------
  if (!REUSE) {
    const t1 = await ingest(`ingest-a-${suffix}`, 0, INGEST_EVENTS, () => Date.now());
    say(`ingest, 1 instance: ${INGEST_EVENTS} events in ${t1.toFixed(1)} s = ${Math.round(INGEST_EVENTS / t1)} events/s`);
    launch("audit-2", "audit");
    await new Promise((r) => setTimeout(r, 8000));
    const t2 = await ingest(`ingest-b-${suffix}`, 0, INGEST_EVENTS, () => Date.now());
    say(`ingest, 2 instances: ${INGEST_EVENTS} events in ${t2.toFixed(1)} s = ${Math.round(INGEST_EVENTS / t2)} events/s`);
  }

  // ---- list latency at each size ---------------------------------------------------------------
  const zone = `list-${suffix}`;
  // The seeded span ends when seeding starts; a reuse run reads it back from the newest row.
  const start = REUSE ? Number(await redis.get(`bench_audit_${suffix}:span_start`)) : Date.now() - SPAN_MS;
  if (!REUSE) await redis.set(`bench_audit_${suffix}:span_start`, String(start));
  const total = SIZES[SIZES.length - 1]!;
  const at = (i: number) => start + Math.floor((i / total) * SPAN_MS) + Math.floor(Math.random() * 60_000);
  let seeded = 0;
  for (const size of REUSE ? SIZES.slice(-1) : SIZES) {
    if (!REUSE) {
      const secs = await ingest(zone, seeded, size - seeded, at);
      say(`seeded ${size - seeded} rows into one zone in ${secs.toFixed(0)} s (${Math.round((size - seeded) / secs)} events/s, 2 instances)`);
    }
    seeded = size;
    // Deep pages and windows at a random place each time (10–90 % of the span): buckets not read before,
    // so no sample is served from the in-memory row cache of closed buckets. Page 1 reads the open
    // (newest) buckets, which are always read from the store.
    const somewhere = () => at(Math.floor(size * (0.1 + 0.8 * Math.random())));
    const window = () => {
      const end = somewhere();
      return { since: new Date(end - 3600_000).toISOString(), until: new Date(end).toISOString(), mid: end - 1800_000 };
    };
    const inWindow = (deep: boolean) => () => {
      const w = window();
      const f = { since: w.since, until: w.until };
      return `/v1/zones/${zone}/audit?limit=100&since=${w.since}&until=${w.until}${deep ? `&cursor=${cursorAt(w.mid, f)}` : ""}`;
    };
    const cases: [string, string | (() => string)][] = [
      ["page 1, no filter", `/v1/zones/${zone}/audit?limit=100`],
      ["deep page, no filter", () => `/v1/zones/${zone}/audit?limit=100&cursor=${cursorAt(somewhere())}`],
      ["page 1, decision=deny", `/v1/zones/${zone}/audit?limit=100&decision=deny`],
      ["deep page, decision=deny", () => `/v1/zones/${zone}/audit?limit=100&decision=deny&cursor=${cursorAt(somewhere(), { decision: "deny" })}`],
      ["page 1 of a one-hour window", inWindow(false)],
      ["deep page in a one-hour window", inWindow(true)],
    ];
    const first = await timed(`/v1/zones/${zone}/audit?limit=100`, 1);
    say(`  ${size} rows, first page after seeding (reads the zone's bucket marks again): ${first.p50} ms`);
    for (const [name, q] of cases) {
      const r = await timed(q);
      say(`  ${size} rows, ${name}: p50 ${r.p50} ms, p99 ${r.p99} ms (${r.rows} rows in the last)`);
    }
    // The same with ingest going on into the zone (1,000 events/s, newest rows): the marks of the new buckets
    // are picked up as the pages go.
    let live = true;
    let extra = 0;
    const producer = (async () => {
      while (live) {
        const tx = redis.pipeline();
        for (let k = 0; k < 100; k++, extra++) tx.xadd(STREAM, "MAXLEN", "~", 50_000, "*", ...Object.entries(auditEntry(decisionEvent({ zoneId: zone, requestId: `req-${zone}-live-${extra}` }, extra), auditKey)).flat());
        await tx.exec();
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await new Promise((r) => setTimeout(r, 2000));
    for (const [name, q] of cases.slice(0, 2)) {
      const r = await timed(q);
      say(`  ${size} rows + 1,000 events/s arriving, ${name}: p50 ${r.p50} ms, p99 ${r.p99} ms`);
    }
    live = false;
    await producer;
    await waitFor(async () => (await backlog()) === 0, 600_000, "live ingest drain");
    seeded += extra;

    const ids = Array.from({ length: SAMPLES }, () => `req-${zone}-${Math.floor(Math.random() * size)}`);
    const samples: number[] = [];
    for (const id of ids) samples.push((await timed(`/v1/zones/${zone}/audit/by-request/${id}`, 1)).p50);
    samples.sort((a, b) => a - b);
    say(`  ${size} rows, by-request: p50 ${samples[Math.floor(samples.length / 2)]} ms, p99 ${samples[Math.min(samples.length - 1, Math.floor(0.99 * samples.length))]} ms`);
  }
  console.log(out.join("\n"));
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    stopAll();
    await redis.del(STREAM, `${STREAM}.dlq`, `${namespace}:caracal.admin-audit.handoff`).catch(() => undefined);
    if (process.env.BENCH_KEEP_DB !== "1") {
      // The run's list sequences and counters (keys are prefixed with its database name).
      const keys: string[] = [];
      for (let cursor = "0"; ; ) {
        const [next, found] = await redis.scan(cursor, "MATCH", `bench_audit_${suffix}:*`, "COUNT", 1000);
        keys.push(...found);
        if ((cursor = next) === "0") break;
      }
      for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
    }
    redis.disconnect();
    if (process.env.BENCH_KEEP_DB !== "1") {
      const conn = await mongoose.createConnection(mongoUrl).asPromise().catch(() => null);
      await conn?.dropDatabase().catch(() => undefined);
      await conn?.close();
    }
  });
