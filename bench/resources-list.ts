// `node --import tsx bench/resources-list.ts`: GET /v1/zones/:z/resources?limit=200 on page 1 against
// page 500, with BENCH_RESOURCES (default 100,000) resources seeded straight into the store.
import { randomUUID } from "node:crypto";
import { startCluster } from "../test/helpers/cluster";

const N = Number(process.env.BENCH_RESOURCES ?? 100_000);
const LIMIT = 200;

async function timed(url: string, headers: Record<string, string>, n: number) {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const res = await fetch(url, { headers });
    const body = (await res.json()) as { items?: unknown[] };
    if (res.status !== 200 || body.items?.length !== LIMIT) throw new Error(`${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => Math.round(samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!);
  return { p50: at(0.5), p99: at(0.99) };
}

async function main() {
  const c = await startCluster({ processes: ["zones", "applications", "providers"], env: { API_V1_RATE_LIMIT_PER_MIN: "0" } });
  try {
    const auth = { authorization: `Bearer ${c.adminToken}` };
    const zone = (await (await fetch(`${c.url}/v1/zones`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ name: "bench" }) })).json()) as { id: string };
    const Resource = (c.brokers.providers!.getLocalService("providers") as any).models.Resource;
    const t0 = Date.now();
    const start = Date.now() - N;
    for (let b = 0; b < N; b += 500) {
      await Resource.collection.insertMany(
        Array.from({ length: Math.min(500, N - b) }, (_, i) => {
          const at = new Date(start + b + i);
          const identifier = `resource://seeded-${b + i}`;
          return { _id: randomUUID(), zone_id: zone.id, name: identifier, identifier, identifier_key: `${zone.id}|${identifier}`, upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: "p", gateway_application_id: "a", operations: [], operation_enforcement: "enforced", created_at: at, updated_at: at, archived_at: null };
        }),
      );
    }
    const seedSec = (Date.now() - t0) / 1000;
    const rows = await Resource.find({ zone_id: zone.id }, { created_at: 1 }).sort({ created_at: -1, _id: -1 }).lean();
    // The cursor that ends page (deep - 1): page 500 when there are enough rows, else the last full page.
    const deepPage = Math.min(500, Math.floor(rows.length / LIMIT));
    const last = rows[(deepPage - 1) * LIMIT - 1];
    const cursor = Buffer.from(JSON.stringify({ ts: new Date(last.created_at).toISOString(), id: String(last._id) })).toString("base64url");
    const base = `${c.url}/v1/zones/${zone.id}/resources?limit=${LIMIT}`;
    const page1 = await timed(base, auth, 10);
    const deep = deepPage;
    const pageDeep = await timed(`${base}&cursor=${cursor}`, auth, 10);
    console.log(`resources in the zone: ${rows.length} (seeded in ${seedSec.toFixed(1)} s)`);
    console.log(`GET …/resources?limit=${LIMIT}: page 1 p50 ${page1.p50} ms p99 ${page1.p99} ms; page ${deep} p50 ${pageDeep.p50} ms p99 ${pageDeep.p99} ms (10 sequential requests each)`);
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
