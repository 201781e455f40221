// The local stand-in's index layer: GIN indexes on the PostgreSQL tables behind FerretDB v1.
//
// FerretDB's PostgreSQL backend turns every top-level equality on a scalar into `_jsonb->$1 @> $2`; the
// btree expression indexes it makes for our declared indexes cannot serve `@>`, so without these every
// find (even by `_id`) is a sequential scan. A GIN `jsonb_path_ops` index on `(_jsonb->'field')` serves
// that exact predicate (bitmap index scan; PostgreSQL ANDs several of them). Measured at 100k rows:
// findOne by `_id` 76 → 1.7 ms through FerretDB.
//
// Which fields: `_id`, and every field of every index the model declares for MongoDB, except Date fields
// (declared for sorts and ranges, which FerretDB never pushes down) and `_seq` (a sort key). On MongoDB,
// and on a FerretDB whose PostgreSQL is not reachable, this does nothing.
import { Client } from "pg";
import type { Connection, Model } from "mongoose";

export interface StandInLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const SORT_ONLY = new Set(["_seq"]);

/** The fields FerretDB pushes down for this model's queries: the ones that get a GIN index. */
export function pushedDownFields(model: Model<any>): string[] {
  const fields = new Set<string>(["_id"]);
  for (const [keys] of model.schema.indexes()) {
    for (const field of Object.keys(keys)) {
      if (field.includes(".") || SORT_ONLY.has(field)) continue;
      const path = model.schema.path(field) as { instance?: string } | undefined;
      if (path?.instance === "Date") continue;
      fields.add(field);
    }
  }
  return [...fields];
}

/** PostgreSQL identifiers are at most 63 bytes: long names keep their start and a hash of the whole. */
function indexName(table: string, field: string): string {
  const raw = `${table}_gin_${field}`.replace(/[^A-Za-z0-9_]/g, "_");
  if (raw.length <= 63) return raw;
  let h = 0;
  for (const c of raw) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${raw.slice(0, 54)}_${h.toString(16).padStart(8, "0")}`;
}

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;
const quoteLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The table FerretDB keeps a collection in (its metadata table in the database's schema says which). */
export async function ferretTable(pg: Client, database: string, collection: string): Promise<string | null> {
  const res = await pg.query(`SELECT _jsonb->>'table' AS t FROM ${quoteIdent(database)}._ferretdb_database_metadata WHERE _jsonb->>'_id' = $1`, [collection]);
  return (res.rows[0]?.t as string | undefined) ?? null;
}

/**
 * Makes the GIN indexes of every model (idempotent; run when a service starts, after its collections
 * exist). Returns the indexes it made or found, by collection, or null when the store is not a FerretDB
 * on a reachable PostgreSQL.
 */
export async function ensureStandInIndexes(db: Connection, models: Model<any>[], pgUrl: string, logger?: StandInLogger): Promise<Record<string, string[]> | null> {
  const info = (await db.db!.admin().command({ buildInfo: 1 }).catch(() => ({}))) as { ferretdbVersion?: unknown };
  if (typeof info.ferretdbVersion !== "string") return null;
  const pg = new Client({ connectionString: pgUrl, connectionTimeoutMillis: 3000, application_name: "caracal-index-layer" });
  try {
    await pg.connect();
  } catch (err) {
    logger?.warn({ err: (err as Error).message }, "FerretDB's PostgreSQL is not reachable: no GIN indexes (queries will scan)");
    return null;
  }
  try {
    const database = db.db!.databaseName;
    const made: Record<string, string[]> = {};
    for (const model of models) {
      // The collection (and so its table) must exist first; creating it is idempotent.
      await db.db!.createCollection(model.collection.name).catch(() => undefined);
      const table = await ferretTable(pg, database, model.collection.name);
      if (!table) continue;
      made[model.collection.name] = [];
      for (const field of pushedDownFields(model)) {
        const name = indexName(table, field);
        // fastupdate off: new entries go into the tree at once. With it on they wait in a pending list that
        // every search scans until a vacuum merges it (measured: 76 ms for a 256-row bucket at 20,000 rows).
        const sql = `CREATE INDEX IF NOT EXISTS ${quoteIdent(name)} ON ${quoteIdent(database)}.${quoteIdent(table)} USING gin ((_jsonb->${quoteLiteral(field)}) jsonb_path_ops) WITH (fastupdate = off)`;
        try {
          await pg.query(sql);
          // An index made before fastupdate was turned off: switched (its pending list empties at the next vacuum).
          await pg.query(`ALTER INDEX ${quoteIdent(database)}.${quoteIdent(name)} SET (fastupdate = off)`);
        } catch (err) {
          // Two instances starting together: the loser of the race sees the winner's index.
          if (!/already exists|duplicate key/.test((err as Error).message)) throw err;
        }
        made[model.collection.name]!.push(name);
      }
    }
    return made;
  } finally {
    await pg.end().catch(() => undefined);
  }
}

/** When a table's statistics are refreshed (like autovacuum's defaults, a little more eager). */
const ANALYZE_BASE = 200;
const ANALYZE_SHARE = 0.1;
/** When its dead rows (each update leaves one) are vacuumed. */
const VACUUM_BASE = 1000;
const VACUUM_SHARE = 0.2;

/**
 * What autovacuum would do for these models' tables, where it does not run (it is off on these machines'
 * shared PostgreSQL): ANALYZE a table once enough rows changed since its last statistics, VACUUM it once
 * enough dead rows piled up. Without statistics the planner picks a GIN index that matches every row
 * (`archived: false`) over the one that selects a bucket (measured at 20,000 zones: 689 ms against 0.5 ms
 * a bucket), and without vacuum every update's dead row stays in the table. Cheap when nothing is due:
 * one query on pg_stat_user_tables. An advisory lock keeps two instances off the same table. `force`
 * analyses every table. No-op on MongoDB or an unreachable PostgreSQL. Returns the tables it worked on.
 */
export async function maintainStandIn(db: Connection, models: Model<any>[], pgUrl: string, force = false): Promise<string[]> {
  const info = (await db.db!.admin().command({ buildInfo: 1 }).catch(() => ({}))) as { ferretdbVersion?: unknown };
  if (typeof info.ferretdbVersion !== "string") return [];
  const pg = new Client({ connectionString: pgUrl, connectionTimeoutMillis: 3000, application_name: "caracal-index-layer" });
  try {
    await pg.connect();
  } catch {
    return [];
  }
  const schema = db.db!.databaseName;
  try {
    const tables = new Map<string, string>();
    for (const model of models) {
      const table = await ferretTable(pg, schema, model.collection.name);
      if (table) tables.set(table, model.collection.name);
    }
    if (!tables.size) return [];
    const stats = await pg.query(
      "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = ANY($2)",
      [schema, [...tables.keys()]],
    );
    const done: string[] = [];
    for (const row of stats.rows as { relname: string; n_live_tup: string; n_dead_tup: string; n_mod_since_analyze: string }[]) {
      const live = Number(row.n_live_tup);
      const vacuum = Number(row.n_dead_tup) >= VACUUM_BASE + VACUUM_SHARE * live;
      const analyze = force || Number(row.n_mod_since_analyze) >= ANALYZE_BASE + ANALYZE_SHARE * live;
      if (!vacuum && !analyze) continue;
      const name = `${quoteIdent(schema)}.${quoteIdent(row.relname)}`;
      const lock = (await pg.query("SELECT pg_try_advisory_lock(hashtext($1)) AS ok", [name])).rows[0].ok as boolean;
      if (!lock) continue;
      try {
        await pg.query(vacuum ? `VACUUM (ANALYZE) ${name}` : `ANALYZE ${name}`);
        done.push(`${vacuum ? "vacuum+analyze" : "analyze"} ${tables.get(row.relname)}`);
      } finally {
        await pg.query("SELECT pg_advisory_unlock(hashtext($1))", [name]);
      }
    }
    return done;
  } finally {
    await pg.end().catch(() => undefined);
  }
}
