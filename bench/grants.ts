// `node --import tsx bench/grants.ts`: GET /v1/zones/:z/grants?limit=200 over BENCH_GRANTS (10,000) grants
// in one zone, page 1 against a deep page, then a selective filter; p50/p99 over BENCH_SAMPLES (20)
// sequential requests each, the calls the grants service makes to other services per page, and how many
// documents the store decoded for a page. Grants are seeded straight into the store with their list
// buckets; the applications, providers and resources they name are made through the API.
import { startCluster } from "../test/helpers/cluster";
import { newId } from "../shared/ids";
import { withNewEvents } from "../shared/outbox/entry";
import { parseListQuery } from "../shared/pagination";

const N = Number(process.env.BENCH_GRANTS ?? 10_000);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 20);
const LIMIT = 200;
const APPS = 10;
const RESOURCES = 10;
const USERS = 100;

function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99) };
}

async function main() {
  const c = await startCluster({ processes: ["zones", "applications", "providers", "grants"], env: { API_V1_RATE_LIMIT_PER_MIN: "0", API_V1_ACTOR_RATE_LIMIT_PER_MIN: "0", LOG_LEVEL: "error" } });
  try {
    const headers = { authorization: `Bearer ${c.adminToken}`, "content-type": "application/json" };
    const api = async (path: string, body?: unknown) => {
      const res = await fetch(`${c.url}${path}`, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
      const json = (await res.json()) as any;
      if (res.status >= 300) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const z = (await api("/v1/zones", { name: "bench grants " + newId().slice(-6) })).id as string;
    const apps: string[] = [];
    for (let i = 0; i < APPS; i++) apps.push((await api(`/v1/zones/${z}/applications`, { name: `app ${i}`, registration_method: "managed" })).id);
    const providers: string[] = [];
    for (let i = 0; i < 2; i++) providers.push((await api(`/v1/zones/${z}/providers`, { name: `key ${i}`, kind: "api_key", config_json: { header_name: "X-Key", api_key: "k" } })).id);
    const resources: string[] = [];
    for (let i = 0; i < RESOURCES; i++) {
      resources.push((await api(`/v1/zones/${z}/resources`, { name: `res ${i}`, scopes: ["example:read", "example:write"], upstream_url: "https://api.example", credential_provider_id: providers[i % 2], gateway_application_id: apps[0] })).id);
    }

    const service = c.brokers.grants!.getLocalService("grants") as any;
    const Grant = service.models.Grant;
    const t0 = Date.now();
    // A second apart, as grants are made at a human pace (bucket ranges then do not overlap).
    const start = Date.now() - N * 1000;
    const rows: { _id: string; created_at: Date }[] = [];
    for (let b = 0; b < N; b += 500) {
      const n = Math.min(500, N - b);
      const stamps = Array.from({ length: n }, (_, i) => new Date(start + (b + i) * 1000));
      const listed = await service.listFields("Grant", z, stamps);
      const docs = stamps.map((at, i) => {
        const k = b + i;
        const doc = { _id: newId(), zone_id: z, application_id: apps[k % APPS], user_id: `user-${k % USERS}`, resource_id: resources[k % RESOURCES], scopes: k % 3 ? ["example:read"] : ["example:read", "example:write"], status: k % 10 ? "active" : "revoked", created_at: at, revoked_at: null };
        rows.push({ _id: doc._id, created_at: at });
        return { ...doc, ...listed[i], ...withNewEvents([]) };
      });
      await Grant.collection.insertMany(docs);
    }
    const seedSec = (Date.now() - t0) / 1000;
    rows.sort((a, b) => b.created_at.getTime() - a.created_at.getTime() || (b._id < a._id ? -1 : 1));
    const pages = Math.floor(N / LIMIT);
    const deepPage = Math.max(2, pages - 5);
    const lastOfPrevious = rows[(deepPage - 1) * LIMIT - 1]!;
    const deepCursor = Buffer.from(JSON.stringify({ ts: lastOfPrevious.created_at.toISOString(), id: lastOfPrevious._id })).toString("base64url");

    // Every call the grants service makes to another service, by action name, and where a page's time goes:
    // the store walk (listRows) and the name calls (made together, so their longest is what a page waits).
    const calls: string[] = [];
    let storeMs = 0;
    let namesMs = 0;
    const original = c.brokers.grants!.call.bind(c.brokers.grants!);
    (c.brokers.grants as any).call = async (name: string, ...rest: unknown[]) => {
      calls.push(name);
      const t = performance.now();
      try {
        return await (original as any)(name, ...rest);
      } finally {
        namesMs = Math.max(namesMs, performance.now() - t);
      }
    };
    const listRows = service.listRows.bind(service);
    service.listRows = async (...args: unknown[]) => {
      const t = performance.now();
      try {
        return await listRows(...args);
      } finally {
        storeMs += performance.now() - t;
      }
    };

    const timed = async (query: string, expectItems: number | null) => {
      const samples: number[] = [];
      const store: number[] = [];
      const names: number[] = [];
      let perPage: Record<string, number> = {};
      for (let i = 0; i < SAMPLES; i++) {
        calls.length = 0;
        storeMs = 0;
        namesMs = 0;
        const t = performance.now();
        const res = await fetch(`${c.url}/v1/zones/${z}/grants?${query}`, { headers });
        const body = (await res.json()) as { items?: { application_name: string | null; resource_name: string | null }[] };
        samples.push(performance.now() - t);
        store.push(storeMs);
        names.push(namesMs);
        if (res.status !== 200 || (expectItems !== null && body.items?.length !== expectItems)) throw new Error(`${res.status} ${JSON.stringify(body).slice(0, 200)}`);
        if (body.items?.some((it) => !it.application_name || !it.resource_name)) throw new Error("a row without its names");
        perPage = {};
        for (const name of calls) perPage[name] = (perPage[name] ?? 0) + 1;
      }
      return { ...percentiles(samples), store: percentiles(store).p50, names: percentiles(names).p50, perPage };
    };
    const decoded = async (cursor: string | null, where: Record<string, string> = {}) => {
      const q = parseListQuery({ limit: String(LIMIT), ...(cursor ? { cursor } : {}) }, undefined, {});
      const page = await service.listRows("Grant", z, q, { where, projection: { _outbox: 0 } });
      return `${page.decoded} documents in ${page.buckets} buckets`;
    };

    // One warm-up request per shape (first reads of the bucket marks, connections).
    await fetch(`${c.url}/v1/zones/${z}/grants?limit=${LIMIT}`, { headers }).then((r) => r.arrayBuffer());
    const first = await timed(`limit=${LIMIT}`, LIMIT);
    const deep = await timed(`limit=${LIMIT}&cursor=${deepCursor}`, LIMIT);
    const filtered = await timed(`limit=${LIMIT}&user_id=user-7`, N / USERS);
    console.log(`grants in the zone: ${N} (seeded in ${seedSec.toFixed(1)} s); ${APPS} applications, ${RESOURCES} resources, 2 providers, ${USERS} users`);
    console.log(`GET …/grants?limit=${LIMIT} over HTTP, ${SAMPLES} sequential requests each:`);
    const line = (r: typeof first) => `p50 ${r.p50} ms  p99 ${r.p99} ms  (p50 of its parts: store walk ${r.store} ms, name calls ${r.names} ms)`;
    console.log(`  page 1:            ${line(first)}; store decoded ${await decoded(null)}`);
    console.log(`  page ${deepPage} of ${pages}:     ${line(deep)}; store decoded ${await decoded(deepCursor)}`);
    console.log(`  user_id filter:    ${line(filtered)}; ${N / USERS} rows, store decoded ${await decoded(null, { user_id: "user-7" })}`);
    console.log(`calls to other services per page: page 1 ${JSON.stringify(first.perPage)}; page ${deepPage} ${JSON.stringify(deep.perPage)}; filtered ${JSON.stringify(filtered.perPage)}`);
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
