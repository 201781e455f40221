// `node --import tsx bench/sessions.ts`: runtime ingest throughput (1 and 2 sessions processes) and the
// agent-sessions list (page 1 and a deep page, with and without a filter) over 100,000 and 1,000,000 rows.
//
// Ingest: a backlog of BENCH_INGEST_ENTRIES (20,000) signed entries — 50 % sessions created, 25 % spawns (a
// third children of recent roots), 15 % terminations, 5 % revocations, 5 % challenges; BENCH_INGEST_MIX=sessions
// for creations only — is published while N sessions processes (separate Node processes,
// `deploy/local/service.ts sessions`) read it; entries/s is the backlog over the time until every entry is
// acknowledged, i.e. stored.
// Lists: rows are seeded in one zone through listFields + insertMany (BENCH_SEED_BATCH, 2,000), as the
// ingest path stores them. Each figure is BENCH_SAMPLES (20) sequential HTTP requests: "warm" as they come
// (closed buckets from the service's row cache), "cold" with the list's update version bumped before each
// request, as a running ingest of updates does, so every bucket is read from the store.
// BENCH_LIST_SIZES ("100000,1000000") sets the sizes; the seeding rate is printed as it goes.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import Redis from "ioredis";
import { startCluster, type Cluster } from "../test/helpers/cluster";
import { Emitter } from "../deploy/emit/emitter";
import { agentSpawn, agentTransition, challengeCreated, sessionCreated, sessionEnded } from "../deploy/emit/builders";
import { AGENTS_STREAM, CHALLENGES_STREAM, SESSIONS_STREAM } from "../services/sessions/entries";
import { filterDigest } from "../shared/pagination";
import { newId } from "../shared/ids";
import type { FlatFields } from "../shared/signing";

const ROOT = join(__dirname, "..");
const INGEST_ENTRIES = Number(process.env.BENCH_INGEST_ENTRIES ?? 20_000);
const LIST_SIZES = (process.env.BENCH_LIST_SIZES ?? "100000,1000000").split(",").map(Number).filter((n) => n > 0);
const SEED_BATCH = Number(process.env.BENCH_SEED_BATCH ?? 2000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 20);
const LIMIT = 100;
const MIX = process.env.BENCH_INGEST_MIX ?? "mixed";
const KEY_HEX = "ab".repeat(32);

function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
  return { p50: at(0.5), p99: at(0.99), max: Math.round(sorted[sorted.length - 1]!) };
}

async function newZone(c: Cluster): Promise<string> {
  const res = await fetch(`${c.url}/v1/zones`, { method: "POST", headers: { authorization: `Bearer ${c.adminToken}`, "content-type": "application/json" }, body: JSON.stringify({ name: "bench " + newId().slice(-8) }) });
  return ((await res.json()) as { id: string }).id;
}

/**
 * The mixed backlog, in a producer's order: per 20 entries, 10 sessions created, 5 agent spawns (3 roots, 2
 * children of a recent root: shallow trees, as agents delegate), 3 agent terminations (of earlier spawns), 1
 * session revoked, 1 challenge created.
 */
function backlog(zone: string, n: number): [string, FlatFields][] {
  // BENCH_INGEST_MIX=sessions|roots isolates one kind (to see where the time goes).
  if (MIX === "sessions") return Array.from({ length: n }, (_, i) => [SESSIONS_STREAM, sessionCreated({ zone, subject: `user-${i % 500}` })]);
  if (MIX === "roots") return Array.from({ length: n }, (_, i) => [AGENTS_STREAM, agentSpawn({ zone, application: "app", labels: [`l${i % 10}`] })]);
  const out: [string, FlatFields][] = [];
  const sessions: string[] = [];
  const roots: string[] = [];
  const agents: string[] = [];
  const app = newId();
  for (let i = 0; i < n; i++) {
    const k = i % 20;
    if (k < 10) {
      const id = newId();
      sessions.push(id);
      out.push([SESSIONS_STREAM, sessionCreated({ zone, id, subject: `user-${i % 500}` })]);
    } else if (k < 15) {
      const id = newId();
      const parent = k >= 13 && roots.length ? roots[roots.length - 1 - (i % Math.min(roots.length, 20))]! : null;
      if (!parent) roots.push(id);
      agents.push(id);
      out.push([AGENTS_STREAM, agentSpawn({ zone, id, application: app, parent, labels: [`l${i % 10}`] })]);
    } else if (k < 18) {
      // Terminations trail the spawns by a few hundred entries, as tasks end.
      out.push([AGENTS_STREAM, agentTransition({ zone, id: agents[Math.max(0, agents.length - 100 - ((i * 7) % 100))]!, event: "terminate" })]);
    } else if (k < 19) {
      out.push([SESSIONS_STREAM, sessionEnded({ zone, id: sessions[(i * 13) % sessions.length]!, event: "revoked", reason: "logout" })]);
    } else {
      out.push([CHALLENGES_STREAM, challengeCreated({ zone, session: sessions[sessions.length - 1] })]);
    }
  }
  return out;
}

function startSessionsProcess(c: Cluster, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "deploy/local/service.ts"), "sessions"], { env: { ...process.env, ...env, NAMESPACE: c.namespace, MONGO_URL: c.mongoUrl }, stdio: ["ignore", "ignore", "inherit"] });
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
}

/** Waits until every group on these streams has read and acknowledged everything. */
async function drained(redis: Redis, streams: string[], group: string): Promise<void> {
  for (;;) {
    let open = 0;
    for (const s of streams) {
      const groups = (await redis.xinfo("GROUPS", s).catch(() => [])) as unknown[][];
      const asObject = (row: unknown[]) => {
        const o: Record<string, unknown> = {};
        for (let i = 0; i + 1 < row.length; i += 2) o[String(row[i])] = row[i + 1];
        return o;
      };
      const g = groups.map(asObject).find((x) => x.name === group);
      if (!g) open++;
      else open += Number(g.pending) + Number(g.lag ?? 0);
    }
    if (!open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ingestRun(c: Cluster, instances: number): Promise<number> {
  const prefix = `${c.namespace}-run${instances}-${newId().slice(-6)}:`;
  const env = { STREAM_PREFIX: prefix, STREAMS_HMAC_KEY: KEY_HEX, LOG_LEVEL: "error", STREAM_BATCH: process.env.STREAM_BATCH ?? "200" };
  const children = Array.from({ length: instances }, () => startSessionsProcess(c, env));
  const redis = new Redis("redis://127.0.0.1:6379");
  try {
    await c.brokers.gateway!.waitForServices(["sessions"], 60_000);
    // Every instance has joined (each made its groups and started reading).
    const streams = [SESSIONS_STREAM, AGENTS_STREAM, CHALLENGES_STREAM].map((s) => prefix + s);
    for (;;) {
      const consumers = (await redis.xinfo("CONSUMERS", streams[0]!, `${c.namespace}.sessions`).catch(() => [])) as unknown[];
      if (consumers.length >= instances) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const zone = await newZone(c);
    const emitter = new Emitter(redis, { kid: "k1", key: Buffer.from(KEY_HEX, "hex") }, prefix);
    const entries = backlog(zone, INGEST_ENTRIES);
    const t0 = performance.now();
    for (let i = 0; i < entries.length; i += 1000) {
      const chunk = entries.slice(i, i + 1000);
      for (const stream of [SESSIONS_STREAM, AGENTS_STREAM, CHALLENGES_STREAM]) {
        const list = chunk.filter(([s]) => s === stream).map(([, f]) => f);
        await emitter.publish(stream, list);
      }
    }
    const published = performance.now() - t0;
    await drained(redis, streams, `${c.namespace}.sessions`);
    const seconds = (performance.now() - t0) / 1000;
    const stats = await c.brokers.gateway!.call<any, any>("sessions.ingestStats", {});
    let parked = 0;
    for (const s of streams) parked += await redis.xlen(`${s}.dlq`);
    const rate = Math.round(INGEST_ENTRIES / seconds);
    console.log(`ingest, ${instances} sessions process(es): ${INGEST_ENTRIES} entries in ${seconds.toFixed(1)} s = ${rate} entries/s (published in ${(published / 1000).toFixed(1)} s; parked ${parked}; held ${stats.held})`);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    return rate;
  } finally {
    await Promise.all(children.map(stopProcess));
    redis.disconnect();
  }
}

async function listBench(c: Cluster): Promise<void> {
  const svc = c.brokers.sessions!.getLocalService("sessions") as any;
  const A = svc.models.AgentSession;
  const auth = { authorization: `Bearer ${c.adminToken}` };
  const zone = await newZone(c);
  const base = Date.now() - 10 * 24 * 3600 * 1000;
  let seeded = 0;
  const t0 = performance.now();
  const seedTo = async (n: number) => {
    while (seeded < n) {
      const count = Math.min(SEED_BATCH, n - seeded);
      const at = Array.from({ length: count }, (_, i) => new Date(base + (seeded + i) * 100));
      const listed = await svc.listFields("AgentSession", zone, at);
      const docs = at.map((ts, i) => {
        const k = seeded + i;
        const status = k % 10 < 7 ? "active" : k % 10 < 9 ? "terminated" : "suspended";
        return {
          _id: newId(),
          zone_id: zone,
          application_id: `app-${k % 50}`,
          parent_id: null,
          depth: 0,
          child_count: 0,
          max_children: 10,
          subject_session_id: null,
          status,
          lifecycle: k % 5 === 0 ? "service" : "task",
          labels: [`l${k % 10}`],
          spawned_at: ts,
          last_active_at: ts,
          terminated_at: status === "terminated" ? ts : null,
          termination_reason: status === "terminated" ? "requested" : null,
          ttl_seconds: 3600,
          metadata_json: null,
          transition_id: "0-0",
          entry_id: `0-${k}`,
          updated_at: ts,
          ...listed[i],
        };
      });
      await A.collection.insertMany(docs, { ordered: false });
      seeded += count;
      if (seeded % 100_000 === 0 || seeded === n) console.log(`  seeded ${seeded} agent sessions (${Math.round(seeded / ((performance.now() - t0) / 1000))} rows/s)`);
    }
  };
  const cursorAt = (rowFromTop: number, filters: Record<string, string>, matchEvery: number) => {
    // Rows are spawned 100 ms apart, newest last; the cursor of the row that many (matching) rows from the top.
    const k = seeded - 1 - rowFromTop * matchEvery;
    const f = filterDigest(filters);
    return Buffer.from(JSON.stringify({ ts: new Date(base + k * 100).toISOString(), id: "~", ...(f ? { f } : {}) })).toString("base64url");
  };
  const timed = async (url: string, cold: boolean) => {
    const samples: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      if (cold) await svc.listUpdated("AgentSession");
      const t = performance.now();
      const res = await fetch(url, { headers: auth });
      const body = (await res.json()) as { items?: unknown[] };
      if (res.status !== 200 || body.items?.length !== LIMIT) throw new Error(`${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      samples.push(performance.now() - t);
    }
    return percentiles(samples);
  };
  for (const size of LIST_SIZES) {
    await seedTo(size);
    const deep = Math.floor(size / 2);
    const cases: [string, string, Record<string, string>, number][] = [
      ["no filter", "", {}, 1],
      // Every fifth row matches (k % 10 is 0 or 5).
      ["status=active&lifecycle=service", "&status=active&lifecycle=service", { status: "active", lifecycle: "service" }, 5],
    ];
    for (const [label, q, filters, every] of cases) {
      const page1 = `${c.url}/v1/zones/${zone}/agent-sessions?limit=${LIMIT}${q}`;
      const deepUrl = `${page1}&cursor=${cursorAt(deep / every, filters, every)}`;
      const t = performance.now();
      await (await fetch(page1, { headers: auth })).arrayBuffer();
      const first = Math.round(performance.now() - t);
      const w1 = await timed(page1, false);
      const c1 = await timed(page1, true);
      const wd = await timed(deepUrl, false);
      const cd = await timed(deepUrl, true);
      console.log(
        `agent-sessions over ${size} rows, ${label}: page 1 first ${first} ms, warm p50 ${w1.p50} p99 ${w1.p99} ms, cold p50 ${c1.p50} p99 ${c1.p99} ms; ` +
          `deep page (row ${deep} from the top) warm p50 ${wd.p50} p99 ${wd.p99} ms, cold p50 ${cd.p50} p99 ${cd.p99} ms`,
      );
    }
    // Where a cold page's time goes: one bucket read straight from the store, and the action without HTTP.
    const bucketSize = 64;
    const bucketAt = (k: number) => `${zone}:${Math.floor(k / bucketSize)}`;
    const rawBucket: number[] = [];
    const rawFiltered: number[] = [];
    const action: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const b = bucketAt(Math.floor(Math.random() * seeded));
      let t = performance.now();
      const rows = await A.find({ _bucket: b }, { metadata_json: 0 }).lean();
      rawBucket.push(performance.now() - t);
      t = performance.now();
      await A.find({ _bucket: b, status: "active", lifecycle: "service" }, { metadata_json: 0 }).lean();
      rawFiltered.push(performance.now() - t);
      if (rows.length !== bucketSize) throw new Error(`bucket ${b} has ${rows.length} rows`);
      await svc.listUpdated("AgentSession");
      t = performance.now();
      await c.brokers.gateway!.call("sessions.listAgentSessions", { params: { zoneId: zone }, query: { limit: String(LIMIT), cursor: cursorAt(deep, {}, 1) } });
      action.push(performance.now() - t);
    }
    const [rb, rf, ac] = [percentiles(rawBucket), percentiles(rawFiltered), percentiles(action)];
    console.log(`  over ${size}: one bucket (${bucketSize} rows) from the store p50 ${rb.p50} p99 ${rb.p99} ms; with the two filters p50 ${rf.p50} p99 ${rf.p99} ms; the deep page through the broker, cold, p50 ${ac.p50} p99 ${ac.p99} ms`);
  }
}

/** The cluster's own streams (its STREAM_PREFIX), with their groups. */
async function dropStreams(c: Cluster): Promise<void> {
  const r = new Redis("redis://127.0.0.1:6379");
  const keys = await r.keys(c.stream("*"));
  if (keys.length) await r.del(...keys);
  r.disconnect();
}

async function main() {
  const common = { API_V1_RATE_LIMIT_PER_MIN: "0", LOG_LEVEL: "error", STREAMS_HMAC_KEY: KEY_HEX };
  if (INGEST_ENTRIES > 0) {
    const c = await startCluster({ processes: ["zones"], env: { ...common, READY_SERVICES: "zones" } });
    try {
      const one = await ingestRun(c, 1);
      const two = await ingestRun(c, 2);
      console.log(`ingest: 2 processes / 1 process = ${(two / one).toFixed(2)}`);
    } finally {
      await c.stop();
      await dropStreams(c);
    }
  }
  if (LIST_SIZES.length) {
    const c = await startCluster({ processes: ["zones", "sessions"], env: common });
    try {
      await listBench(c);
    } finally {
      await c.stop();
      await dropStreams(c);
    }
  }
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
