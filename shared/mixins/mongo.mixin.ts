// Gives a service its own mongoose connection and the models of its own collections only.
//
// Rules every service follows on FerretDB v1 (measured; see shared/doc-lock.ts and git log):
// - Only `{_id: x}` is answered without a full collection scan. Read one object with findById and check
//   archived/zone in code; keep other filters (lists) off hot paths.
// - Updates of an existing document: `this.locked(model, id, async () => { findById; check; updateOne({_id: id}, …) })`.
//   FerretDB loses concurrent updates to one document without it.
// - Uniqueness is a unique index (inserts and updates that break it throw; test with isDuplicateKey). On
//   FerretDB only the unique indexes are created (see started); the rest are declared for MongoDB.
// - After a write that carries outbox entries: `await this.outboxKick("<Model>", id, count)`.
import mongoose, { Connection, Model, Schema } from "mongoose";
import type { ServiceSchema } from "moleculer";
import { config } from "../config";
import { redisClient } from "../redis";
import { withDocLock } from "../doc-lock";
import { docLockKey } from "../outbox/relay";

export interface MongoVars {
  db: Connection;
  models: Record<string, Model<any>>;
}

export interface MongoMethods {
  /** Runs an update of one existing document under its lock (see shared/doc-lock.ts for why). */
  locked<T>(model: Model<any>, id: string, write: () => Promise<T>): Promise<T>;
}

/** `models` maps a model name to its schema and collection; indexes are declared on the schemas. */
export function MongoMixin(models: Record<string, { schema: Schema; collection: string }>): Partial<ServiceSchema> {
  return {
    created(this: any) {
      const url = this.settings?.mongoUrl ?? config().mongoUrl;
      this.db = mongoose.createConnection(url, { maxPoolSize: 20, serverSelectionTimeoutMS: 5000, autoIndex: false });
      // Without a listener a dropped connection emits an unhandled 'error'; reconnects are automatic.
      this.db.on("error", (err: Error) => this.logger.warn({ err: err.message }, "mongo connection error"));
      this.models = {};
      for (const [name, { schema, collection }] of Object.entries(models)) {
        this.models[name] = this.db.model(name, schema, collection);
      }
    },
    async started(this: any) {
      await this.db.asPromise();
      const ferret = await isFerretDb(this.db);
      for (const model of Object.values(this.models) as Model<any>[]) {
        if (!ferret) {
          await model.createIndexes();
          continue;
        }
        // FerretDB v1 (SQLite) plans every query as a table scan, so its indexes only enforce uniqueness;
        // the others would only slow each insert (measured: 3,000 zone inserts at 50 in flight, 1,577–1,859/s
        // with the unique index alone against 1,406–1,429/s with the three others too).
        for (const [fields, options] of model.schema.indexes()) if (options?.unique) await model.collection.createIndex(fields as any, options as any);
      }
    },
    async stopped(this: any) {
      // The outbox relay (if any) uses this connection: let its pass finish first.
      await this.relay?.stop();
      await this.db.close();
    },
    methods: {
      locked<T>(this: any, model: Model<any>, id: string, write: () => Promise<T>): Promise<T> {
        return withDocLock(redisClient(this.settings?.redisUrl ?? config().redisUrl), docLockKey(model, id), write);
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

/** Whether the server is FerretDB (its buildInfo names its own version beside the MongoDB one it emulates). */
async function isFerretDb(db: Connection): Promise<boolean> {
  const info = await db.db!.admin().command({ buildInfo: 1 }).catch(() => ({}));
  return typeof (info as { ferretdbVersion?: unknown }).ferretdbVersion === "string";
}

/** Common stored-document options: string `_id` (UUIDv7), no mongoose version key. */
export const storedOptions = { versionKey: false, _id: false, strict: true } as const;
