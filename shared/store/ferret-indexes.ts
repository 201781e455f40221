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
        const sql = `CREATE INDEX IF NOT EXISTS ${quoteIdent(name)} ON ${quoteIdent(database)}.${quoteIdent(table)} USING gin ((_jsonb->${quoteLiteral(field)}) jsonb_path_ops)`;
        try {
          await pg.query(sql);
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

/**
 * Refreshes PostgreSQL's statistics of these models' tables (ANALYZE; it samples, so it costs about the
 * same at a million rows as at ten thousand). Without statistics the planner guesses a third of a table for
 * an `@>` condition; past ~300,000 rows that guess crosses the JIT threshold and every find pays ~1 s of
 * compilation (measured at 1M rows: 669 ms for a 64-row bucket, 0.8 ms after ANALYZE). Autovacuum does
 * this where it runs; where it is off (the shared development PostgreSQL), services with fast-growing
 * collections call this now and then. No-op on MongoDB or an unreachable PostgreSQL.
 */
export async function analyzeStandIn(db: Connection, models: Model<any>[], pgUrl: string): Promise<number> {
  const info = (await db.db!.admin().command({ buildInfo: 1 }).catch(() => ({}))) as { ferretdbVersion?: unknown };
  if (typeof info.ferretdbVersion !== "string") return 0;
  const pg = new Client({ connectionString: pgUrl, connectionTimeoutMillis: 3000, application_name: "caracal-index-layer" });
  try {
    await pg.connect();
  } catch {
    return 0;
  }
  try {
    let done = 0;
    for (const model of models) {
      const table = await ferretTable(pg, db.db!.databaseName, model.collection.name);
      if (!table) continue;
      await pg.query(`ANALYZE ${quoteIdent(db.db!.databaseName)}.${quoteIdent(table)}`);
      done++;
    }
    return done;
  } finally {
    await pg.end().catch(() => undefined);
  }
}
