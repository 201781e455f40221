// Updates one document by `_id` through findAndModify rather than the update command.
//
// Why: FerretDB v1 (SQLite backend) pushes the `_id` filter of findAndModify down to the store, but runs
// the update command without any pushdown, decoding the whole collection (`explain` of an update by
// `_id`: SCAN, filterPushdown false). Measured on a 5,700-document collection: updateOne 170–380 ms,
// findOneAndUpdate 3–4 ms, same filter and change. On MongoDB both are one index lookup. Writers still
// hold the document's lock (shared/doc-lock.ts); this only changes how the write reaches the store.
// (No projection: FerretDB v1 has not implemented `fields` for findAndModify.)
import type { Model, UpdateQuery } from "mongoose";

export async function updateById(model: Model<any>, id: string, update: UpdateQuery<any>, opts: { upsert?: boolean } = {}): Promise<{ matchedCount: number }> {
  const before = await model.findOneAndUpdate({ _id: id }, update, { upsert: opts.upsert ?? false, returnDocument: "before" }).lean();
  return { matchedCount: before ? 1 : 0 };
}
