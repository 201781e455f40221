// `node --import tsx bench/resources-list.ts`: GET /v1/zones/:z/resources?limit=200 on page 1 against
// page 500, with BENCH_RESOURCES (default 100,000) resources seeded straight into the store.
// FerretDB v1 scans the whole collection on every list (~80 µs a document): when one page of the
// first size takes longer than BENCH_PAGE_BUDGET_MS (5 s, half the gateway's 10 s request timeout, since
// deep pages cost more and 20 samples vary), the bench
// times BENCH_DIRECT_SAMPLES (5) calls of the action itself at that size, then measures 10,000 over HTTP.
import { randomUUID } from "node:crypto";
import { startCluster } from "../test/helpers/cluster";

const N = Number(process.env.BENCH_RESOURCES ?? 100_000);
const FALLBACK = 10_000;
const PAGE_BUDGET_MS = Number(process.env.BENCH_PAGE_BUDGET_MS ?? 5_000);
const LIMIT = 200;
const DEEP_PAGE = 500;
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 20);
const DIRECT_SAMPLES = Number(process.env.BENCH_DIRECT_SAMPLES ?? 5);

function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
  return { p50: at(0.5), p99: at(0.99) };
}

async function timed(url: string, headers: Record<string, string>, n: number) {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const res = await fetch(url, { headers });
    const body = (await res.json()) as { items?: unknown[] };
    if (res.status !== 200 || body.items?.length !== LIMIT) throw new Error(`${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    samples.push(performance.now() - t);
  }
  return percentiles(samples);
}

async function main() {
  const c = await startCluster({ processes: ["zones", "applications", "providers"], env: { API_V1_RATE_LIMIT_PER_MIN: "0", LOG_LEVEL: "error" } });
  try {
    const auth = { authorization: `Bearer ${c.adminToken}` };
    const newZone = async () => ((await (await fetch(`${c.url}/v1/zones`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ name: "bench " + randomUUID().slice(0, 8) }) })).json()) as { id: string }).id;
    const Resource = (c.brokers.providers!.getLocalService("providers") as any).models.Resource;

    const seed = async (zoneId: string, n: number) => {
      const t0 = Date.now();
      const start = Date.now() - n;
      for (let b = 0; b < n; b += 500) {
        await Resource.collection.insertMany(
          Array.from({ length: Math.min(500, n - b) }, (_, i) => {
            const at = new Date(start + b + i);
            const identifier = `resource://seeded-${b + i}`;
            return { _id: randomUUID(), zone_id: zoneId, name: identifier, identifier, identifier_key: `${zoneId}|${identifier}`, upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: "p", gateway_application_id: "a", operations: [], operation_enforcement: "enforced", created_at: at, updated_at: at, archived_at: null };
          }),
        );
        if (b && b % 20_000 === 0) console.log(`  seeded ${b} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      }
      return (Date.now() - t0) / 1000;
    };

    /** The cursor that ends page (deep - 1), as bench/run.ts does for zones: page 500 when there are enough rows. */
    const deepCursor = async (zoneId: string) => {
      const rows = await Resource.find({ zone_id: zoneId }, { created_at: 1 }).sort({ created_at: -1, _id: -1 }).lean();
      const deepPage = Math.min(DEEP_PAGE, Math.floor(rows.length / LIMIT));
      const last = rows[(deepPage - 1) * LIMIT - 1];
      return { deepPage, cursor: Buffer.from(JSON.stringify({ ts: new Date(last.created_at).toISOString(), id: String(last._id) })).toString("base64url") };
    };

    const measure = async (zoneId: string, n: number, seedSec: number) => {
      const { deepPage, cursor } = await deepCursor(zoneId);
      const base = `${c.url}/v1/zones/${zoneId}/resources?limit=${LIMIT}`;
      const page1 = await timed(base, auth, SAMPLES);
      const pageDeep = await timed(`${base}&cursor=${cursor}`, auth, SAMPLES);
      console.log(`resources in the zone (and the collection): ${n} (seeded in ${seedSec.toFixed(1)} s, insertMany of 500)`);
      console.log(`GET …/resources?limit=${LIMIT} over HTTP: page 1 p50 ${page1.p50} ms p99 ${page1.p99} ms; page ${deepPage} p50 ${pageDeep.p50} ms p99 ${pageDeep.p99} ms (${SAMPLES} sequential requests each)`);
    };

    /** One call of the action itself, past the gateway's request timeout. */
    const direct = async (zoneId: string, cursor?: string) => {
      const t = performance.now();
      const page = await c.brokers.gateway!.call<{ items: unknown[] }, Record<string, unknown>>("providers.listResources", { params: { zoneId }, query: { limit: String(LIMIT), ...(cursor ? { cursor } : {}) } }, { timeout: 300_000 });
      if (page.items.length !== LIMIT) throw new Error(`short page: ${page.items.length}`);
      return Math.round(performance.now() - t);
    };

    let zoneId = await newZone();
    let n = N;
    let seedSec = await seed(zoneId, n);
    const t = performance.now();
    const probe = await fetch(`${c.url}/v1/zones/${zoneId}/resources?limit=${LIMIT}`, { headers: auth });
    await probe.arrayBuffer();
    const probeMs = performance.now() - t;
    console.log(`first page over ${n} resources: ${Math.round(probeMs)} ms (status ${probe.status})`);
    if (probeMs > PAGE_BUDGET_MS && n > FALLBACK) {
      const { deepPage, cursor } = await deepCursor(zoneId);
      const first: number[] = [];
      const deep: number[] = [];
      for (let i = 0; i < DIRECT_SAMPLES; i++) {
        first.push(await direct(zoneId));
        deep.push(await direct(zoneId, cursor));
      }
      const a = percentiles(first);
      const b = percentiles(deep);
      console.log(`over ${n}, providers.listResources called through the broker (no gateway timeout), ${DIRECT_SAMPLES} calls each: page 1 p50 ${a.p50} ms p99 ${a.p99} ms; page ${deepPage} p50 ${b.p50} ms p99 ${b.p99} ms`);
      console.log(`one page took longer than ${PAGE_BUDGET_MS} ms: falling back to ${FALLBACK} resources`);
      await Resource.collection.drop();
      await Resource.createIndexes();
      zoneId = await newZone();
      n = FALLBACK;
      seedSec = await seed(zoneId, n);
    }
    await measure(zoneId, n, seedSec);
  } finally {
    await c.stop();
  }
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
