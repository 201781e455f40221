// Every hot-path query, in the form FerretDB sends it to PostgreSQL, is served by an index (never a
// sequential scan), with the GIN indexes the services made at start (shared/store/ferret-indexes.ts).
import { Client } from "pg";
import { randomUUID } from "node:crypto";
import { startCluster, type Cluster } from "../helpers/cluster";
import { ferretTable } from "../../shared/store/ferret-indexes";

const pgUrl = process.env.STORE_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/ferretdb";

/** The queries of the hot paths: collection, the service and model that owns it, its equalities. */
const HOT_PATHS: { what: string; service: string; model: string; filter: Record<string, string | boolean> }[] = [
  { what: "zone by id (every request's zone check)", service: "zones", model: "Zone", filter: { _id: "Z" } },
  { what: "zones list bucket", service: "zones", model: "Zone", filter: { _bucket: "all:7", archived: false, reserved: false } },
  { what: "application by id", service: "applications", model: "Application", filter: { _id: "Z" } },
  { what: "applications list bucket", service: "applications", model: "Application", filter: { _bucket: "Z:3", archived: false } },
  { what: "live DCR applications of a zone", service: "applications", model: "Application", filter: { zone_id: "Z", registration_method: "dcr", archived: false } },
  { what: "DCR garbage collection by expiry day", service: "applications", model: "Application", filter: { expires_day: "2026-12-01", archived: false } },
  { what: "provider by id", service: "providers", model: "Provider", filter: { _id: "Z" } },
  { what: "providers list bucket", service: "providers", model: "Provider", filter: { _bucket: "Z:3", archived: false } },
  { what: "resource by id", service: "providers", model: "Resource", filter: { _id: "Z" } },
  { what: "resources list bucket", service: "providers", model: "Resource", filter: { _bucket: "Z:3", archived: false } },
  { what: "resources bound to a gateway application", service: "providers", model: "Resource", filter: { zone_id: "Z", gateway_application_id: "A" } },
  { what: "policies list bucket", service: "policies", model: "Policy", filter: { _bucket: "Z:3", archived: false } },
  { what: "the zone's active policy set", service: "policies", model: "PolicySet", filter: { active_slot: "active:Z" } },
  { what: "outbox sweep: open documents", service: "zones", model: "Zone", filter: { _outbox_open: true } },
  { what: "list marks of a scope", service: "zones", model: "ListMark", filter: { list: "zones|all" } },
];

describe("query plans on FerretDB's PostgreSQL", () => {
  let c: Cluster;
  let pg: Client;

  beforeAll(async () => {
    c = await startCluster({ processes: ["zones", "applications", "providers", "policies"] });
    pg = new Client({ connectionString: pgUrl });
    await pg.connect();
    // Enough rows, spread over many values, that the planner has a real choice between the index and a scan.
    for (const model of [...new Set(HOT_PATHS.map((h) => `${h.service}.${h.model}`))]) {
      const [service, name] = model.split(".");
      const m = (c.brokers[service!]!.getLocalService(service!) as any).models[name!];
      const rows = Array.from({ length: 4000 }, (_, i) => ({
        _id: randomUUID(),
        zone_id: `zone-${i % 200}`,
        _bucket: `zone-${i % 200}:${i % 7}`,
        archived: i % 5 === 0,
        reserved: false,
        registration_method: i % 2 ? "dcr" : "managed",
        expires_day: `2026-11-${String((i % 28) + 1).padStart(2, "0")}`,
        gateway_application_id: `app-${i % 300}`,
        active_slot: `idle:${i}`,
        _outbox_open: i % 100 === 0,
        list: `list-${i % 50}`,
        name: `filler ${i}`,
        slug: `filler-${randomUUID()}`,
        identifier_key: `k-${randomUUID()}`,
        active_key: `a-${randomUUID()}`,
      }));
      await m.collection.insertMany(rows);
      const table = await ferretTable(pg, m.db.name, m.collection.name);
      await pg.query(`ANALYZE "${m.db.name}"."${table}"`);
    }
  }, 120_000);

  afterAll(async () => {
    await pg?.end();
    await c?.stop();
  });

  test("the store's database plans every execution with its parameters (no generic plan over a scan)", async () => {
    expect((await pg.query("SHOW plan_cache_mode")).rows[0].plan_cache_mode).toBe("force_custom_plan");
  });

  test.each(HOT_PATHS)("$what: index scan, not a sequential scan", async ({ service, model, filter }) => {
    const m = (c.brokers[service]!.getLocalService(service) as any).models[model];
    const table = await ferretTable(pg, m.db.name, m.collection.name);
    expect(table).toBeTruthy();
    // FerretDB's own form: one `_jsonb->$k @> $v` term per top-level equality, keys and values as parameters.
    const keys = Object.keys(filter);
    const where = keys.map((_, i) => `_jsonb->$${2 * i + 1} @> $${2 * i + 2}`).join(" AND ");
    const types = keys.map(() => "text, jsonb").join(", ");
    const stmt = `q_${randomUUID().replace(/-/g, "")}`;
    await pg.query(`PREPARE ${stmt}(${types}) AS SELECT _jsonb FROM "${m.db.name}"."${table}" WHERE ${where}`);
    const args = keys.map((k) => `'${k}', '${JSON.stringify(filter[k])}'::jsonb`).join(", ");
    // Run it past the point where PostgreSQL may switch a prepared statement to a generic plan.
    for (let i = 0; i < 6; i++) await pg.query(`EXECUTE ${stmt}(${args})`);
    const plan = (await pg.query(`EXPLAIN EXECUTE ${stmt}(${args})`)).rows.map((r) => r["QUERY PLAN"]).join("\n");
    await pg.query(`DEALLOCATE ${stmt}`);
    expect(plan).toMatch(/Index Scan|Bitmap Index Scan/);
    expect(plan).not.toMatch(/Seq Scan/);
  });
});
