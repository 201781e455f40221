import mongoose from "mongoose";
async function main() {
  const c = await mongoose.createConnection(`mongodb://127.0.0.1:27017/admin`).asPromise();
  const dbs = (await c.db!.admin().listDatabases()).databases.map((d: any) => d.name).filter((n: string) => n.startsWith("bench_audit"));
  for (const n of dbs) {
    const db = c.useDb(n).db!;
    const cnt = await db.collection("audit_events").estimatedDocumentCount();
    console.log(n, cnt);
    if (cnt < 500000) continue;
    const sfx = n.replace("bench_audit_", "");
    const t = performance.now();
    const ex = await db.command({ explain: { find: "audit_events", filter: { _bucket: `list-${sfx}:15000` } }, verbosity: "executionStats" });
    console.log(performance.now() - t, JSON.stringify(ex.queryPlanner).slice(0, 700));
    const t2 = performance.now(); const r = await db.collection("audit_events").find({ _bucket: `list-${sfx}:15000` }).toArray(); console.log("find", (performance.now() - t2).toFixed(0), r.length);
  }
  await c.close();
}
main();
