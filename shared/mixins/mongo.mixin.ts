// Gives a service its own mongoose connection and the models of its own collections only.
//
// Rules every service follows (the local stand-in is FerretDB v1 on PostgreSQL; see shared/store/):
// - Query by top-level equalities on scalar fields only (`{_id}`, `{zone_id, status}`; booleans or
//   sentinels instead of `null`): FerretDB pushes exactly those down to PostgreSQL, where the GIN indexes
//   of shared/store/ferret-indexes.ts serve them. Ranges, `$or`, `$in`, `null` and sorts run in FerretDB
//   over whatever the equalities selected, so lists select a bounded set by equality (shared/list/).
// - Updates of an existing document: `this.locked(model, id, async () => { findById; check; updateOne({_id: id}, …) })`.
//   FerretDB loses concurrent updates to one document without it (both backends, measured).
// - Uniqueness is a unique index (inserts and updates that break it throw; test with isDuplicateKey).
// - After a write that carries outbox entries: `await this.outboxKick("<Model>", id, entries)`.
import mongoose, { Connection, Model, Schema } from "mongoose";
import type { ServiceSchema } from "moleculer";
import { config } from "../config";
import { redisClient } from "../redis";
import { withDocLock } from "../doc-lock";
import { docLockKey } from "../outbox/relay";
import { ensureStandInIndexes, maintainStandIn } from "../store/ferret-indexes";
import { gateConnection, gateUpdates } from "../store/update-gate";
import { BUCKET_SIZE, ListSequence, bucketMarkSchema, type ListedFields, type ListRowsOptions, type ListRowsResult } from "../list/buckets";
import type { ListQuery } from "../pagination";

export interface MongoVars {
  db: Connection;
  models: Record<string, Model<any>>;
}

export interface MongoMethods {
  /** Runs an update of one existing document under its lock (see shared/doc-lock.ts for why). */
  locked<T>(model: Model<any>, id: string, write: () => Promise<T>): Promise<T>;
  /** Bucket fields for new documents of a listed model (one per timestamp), before they are inserted. */
  listFields(model: string, scope: string, timestamps: Date[]): Promise<ListedFields[]>;
  /**
   * Call after updating listed documents other than through `locked` (which does it): list pages serve
   * closed buckets from memory until this is called.
   */
  listUpdated(model: string): Promise<void>;
  /** One page's rows of a listed model (see shared/list/buckets.ts): give them to pageOf. */
  listRows<R extends Record<string, any>>(model: string, scope: string, q: ListQuery, opts?: ListRowsOptions<R>): Promise<ListRowsResult<R>>;
  /** Every bucket key of a scope, newest first: a whole-scope job (a reaper) reads or updates one bucket at a time. */
  listBuckets(model: string, scope: string): Promise<string[]>;
  /**
   * Does for this service's tables on the stand-in what autovacuum would (statistics, dead rows; see
   * maintainStandIn; a no-op on MongoDB): at start, every STORE_MAINTENANCE_MS, and whenever a service
   * whose collections grow fast asks.
   */
  analyzeStore(force?: boolean): void;
  /** After deleting the rows of whole buckets (retention): no page reads those buckets again. */
  retireListBuckets(model: string, scope: string, buckets: number[]): Promise<void>;
}

export interface MongoOptions {
  /** Models listed through bucketed pages; their documents carry `_seq` and `_bucket` (shared/list/buckets.ts). */
  listed?: string[];
  /** Bucket size (fixed for the life of its collection) and open rows of a listed model, when not the defaults. */
  listOptions?: Record<string, { bucketSize?: number; openRows?: number }>;
}

/** `models` maps a model name to its schema and collection; indexes are declared on the schemas. */
export function MongoMixin(models: Record<string, { schema: Schema; collection: string }>, options: MongoOptions = {}): Partial<ServiceSchema> {
  const listed = options.listed ?? [];
  return {
    created(this: any) {
      const url = this.settings?.mongoUrl ?? config().mongoUrl;
      this.db = mongoose.createConnection(url, { maxPoolSize: config().mongoPoolSize, serverSelectionTimeoutMS: 5000, autoIndex: false });
      // Without a listener a dropped connection emits an unhandled 'error'; reconnects are automatic.
      this.db.on("error", (err: Error) => this.logger.warn({ err: err.message }, "mongo connection error"));
      gateConnection(this.db, config().mongoUpdateConcurrency);
      this.models = {};
      for (const [name, { schema, collection }] of Object.entries(models)) {
        gateUpdates(schema);
        if (listed.includes(name)) countStored(schema);
        this.models[name] = this.db.model(name, schema, collection);
      }
      if (listed.length) {
        gateUpdates(bucketMarkSchema);
        this.models.ListMark = this.db.model("ListMark", bucketMarkSchema, `${this.name}_list_marks`);
      }
      this.listSequences = {};
      this.listOptions = options.listOptions ?? {};
    },
    async started(this: any) {
      await this.db.asPromise();
      const models = Object.values(this.models) as Model<any>[];
      if (!(await isFerretDb(this.db))) {
        for (const model of models) await model.createIndexes();
        return;
      }
      // FerretDB: it enforces the unique indexes; its btree indexes serve none of its queries, so the
      // others are GIN indexes made directly in its PostgreSQL (a no-op where that is not reachable).
      for (const model of models) {
        for (const [fields, options] of model.schema.indexes()) if (options?.unique) await model.collection.createIndex(fields as any, options as any);
      }
      await ensureStandInIndexes(this.db, models, this.settings?.storePostgresUrl ?? config().storePostgresUrl, this.logger);
      // PostgreSQL plans FerretDB's queries from table statistics; where autovacuum is off (these machines'
      // shared PostgreSQL) nothing else refreshes them as collections grow.
      this.analyzeStore(true);
      this.statsTimer = setInterval(() => this.analyzeStore(), STORE_MAINTENANCE_MS);
      this.statsTimer.unref?.();
    },
    async stopped(this: any) {
      clearInterval(this.statsTimer);
      await this.analyzing;
      // The outbox relay (if any) uses this connection: let its pass finish first.
      await this.relay?.stop();
      await this.db.close();
    },
    methods: {
      async locked<T>(this: any, model: Model<any>, id: string, write: () => Promise<T>): Promise<T> {
        const result = await withDocLock(redisClient(this.settings?.redisUrl ?? config().redisUrl), docLockKey(model, id), write);
        // After the write: a list page that read the old rows before this point re-reads them next time.
        const name = listed.find((n) => this.models[n] === model);
        if (name) await listSequence(this, name).updated();
        return result;
      },
      listFields(this: any, model: string, scope: string, timestamps: Date[]) {
        return listSequence(this, model).assign(scope, timestamps);
      },
      listUpdated(this: any, model: string) {
        return listSequence(this, model).updated();
      },
      listRows(this: any, model: string, scope: string, q: ListQuery, opts: ListRowsOptions<any> = {}) {
        return listSequence(this, model).rows(this.models[model], scope, q.limit, q.after, opts);
      },
      async listBuckets(this: any, model: string, scope: string) {
        const top = await listSequence(this, model).top(scope);
        const size = options.listOptions?.[model]?.bucketSize ?? BUCKET_SIZE;
        const out: string[] = [];
        for (let b = Math.floor(top / size); top >= 0 && b >= 0; b--) out.push(`${scope}:${b}`);
        return out;
      },
      analyzeStore(this: any, force = false) {
        if (this.analyzing) return;
        this.analyzing = maintainStandIn(this.db, Object.values(this.models) as Model<any>[], this.settings?.storePostgresUrl ?? config().storePostgresUrl, force)
          .then((done: string[]) => done.length && this.logger.debug({ tables: done }, "store maintenance"))
          .catch((err: Error) => this.logger.warn({ err: err.message }, "refreshing the store's statistics failed"))
          .finally(() => (this.analyzing = null));
      },
      retireListBuckets(this: any, model: string, scope: string, buckets: number[]) {
        return listSequence(this, model).retire(scope, buckets);
      },
    },
    actions: {
      /** Readiness probe of this service's store, used by the gateway's /ready. */
      pingStore: {
        visibility: "public",
        async handler(this: any) {
          await this.db.db.admin().ping();
          return { ok: true };
        },
      },
    },
  };
}

const STORE_MAINTENANCE_MS = 30_000;

const LIST_SEQUENCE = Symbol.for("caracal.listSequence");
const COUNTS_STORED = Symbol.for("caracal.countsStored");

/**
 * After a listed document is inserted (create or insertMany), its bucket's count of stored documents goes
 * up, before the insert's caller goes on (see ListSequence.stored). Added once per schema.
 */
function countStored(schema: Schema): void {
  if ((schema as any)[COUNTS_STORED]) return;
  (schema as any)[COUNTS_STORED] = true;
  schema.post("save", async function (this: any, doc: any) {
    const seq: ListSequence | undefined = this.constructor?.[LIST_SEQUENCE];
    if (seq && doc?._bucket) await seq.stored([doc]);
  });
  schema.post("insertMany", async function (this: any, docs: unknown) {
    const seq: ListSequence | undefined = this?.[LIST_SEQUENCE];
    if (seq && Array.isArray(docs)) await seq.stored(docs);
  } as any);
}

/** The sequence and marks of one listed model, made on first use. */
function listSequence(service: any, model: string): ListSequence {
  let seq = service.listSequences[model];
  if (!seq) {
    const m = service.models[model] as Model<any>;
    if (!m || !service.models.ListMark) throw new Error(`${model} is not a listed model of ${service.name}`);
    // The database name keeps test databases (one per suite) apart on a shared Redis.
    seq = (m as any)[LIST_SEQUENCE] = new ListSequence(redisClient(service.settings?.redisUrl ?? config().redisUrl), service.models.ListMark, m.collection.name, `${m.db.name}:`, service.listOptions?.[model]?.bucketSize, service.listOptions?.[model]?.openRows);
    service.listSequences[model] = seq;
  }
  return seq;
}

/** Whether the server is FerretDB (its buildInfo names its own version beside the MongoDB one it emulates). */
async function isFerretDb(db: Connection): Promise<boolean> {
  const info = await db.db!.admin().command({ buildInfo: 1 }).catch(() => ({}));
  return typeof (info as { ferretdbVersion?: unknown }).ferretdbVersion === "string";
}

/** Common stored-document options: string `_id` (UUIDv7), no mongoose version key. */
export const storedOptions = { versionKey: false, _id: false, strict: true } as const;
