// Bounds the updates (and deletes) one connection has in flight, separately from its pool size.
//
// Why: on FerretDB's PostgreSQL backend an update holds one pool connection for its read and then waits
// for a second for its write; when such half-done updates hold every connection of FerretDB's pool, they
// all wait forever (seen at 100 concurrent updates with the default pool of 50). Inserts and finds take one
// connection and give it back, so they cannot close that cycle. Keeping the updates of all clients
// together at most half of FerretDB's pool rules the wedge out while reads and inserts use a larger pool.
// On MongoDB the gate only caps one connection's concurrent writes, which costs nothing at these sizes.
import type { Connection, Schema } from "mongoose";

const GATED_QUERIES: ("updateOne" | "updateMany" | "findOneAndUpdate" | "findOneAndDelete" | "findOneAndReplace" | "replaceOne" | "deleteOne" | "deleteMany")[] = [
  "updateOne", "updateMany", "findOneAndUpdate", "findOneAndDelete", "findOneAndReplace", "replaceOne", "deleteOne", "deleteMany",
];
const GATED = Symbol.for("caracal.updateGate");

class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** Gives a connection its gate: at most `size` gated operations at once. */
export function gateConnection(db: Connection, size: number): void {
  (db as any)[GATED] = new Semaphore(size);
}

/**
 * Adds the gate's middleware to a schema (once, however many services compile models from it): a gated
 * query waits for a place on its connection's gate before it runs and gives it back when it ends.
 */
export function gateUpdates(schema: Schema): void {
  if ((schema as any)[GATED]) return;
  (schema as any)[GATED] = true;
  const held = Symbol("held");
  schema.pre(GATED_QUERIES, { document: false, query: true }, async function (this: any) {
    const gate: Semaphore | undefined = this.model?.db?.[GATED];
    if (!gate) return;
    await gate.acquire();
    this[held] = gate;
  });
  const release = function (this: any) {
    const gate: Semaphore | undefined = this[held];
    if (gate) {
      this[held] = undefined;
      gate.release();
    }
  };
  schema.post(GATED_QUERIES, { document: false, query: true }, function (this: any) {
    release.call(this);
  });
  schema.post(GATED_QUERIES, { document: false, query: true }, function (this: any, err: unknown, _res: unknown, next: (err?: unknown) => void) {
    release.call(this);
    next(err);
  } as any);
}
