// Admin audit against the real servers: the gateway's hand-off, the per-zone hash chain, its verification,
// the list (reference-ops test cases 13–17), the audit process down during writes, two audit instances.
import { ServiceBroker } from "moleculer";
import mongoose from "mongoose";
import { startCluster, eventually, TEST_STREAMS_KEY, type Cluster } from "../helpers/cluster";
import { buildRecord } from "../../gateway/admin-audit";
import { ADMIN_AUDIT_STREAM } from "../../shared/admin-audit";
import { sign } from "../../shared/signing";
import { replaceAudit, testRedis } from "./helpers";

let c: Cluster;
let db: mongoose.Connection;
const redis = testRedis();
const get = (path: string) => c.http().get(path).set(c.auth());
const send = (method: "post" | "patch" | "delete", path: string, body?: unknown) => c.http()[method](path).set(c.auth()).send(body as object);

beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "applications", "audit"] });
  db = await mongoose.createConnection(c.mongoUrl).asPromise();
}, 60_000);
afterAll(async () => {
  await db.close();
  await c.stop();
  await redis.del(c.stream(ADMIN_AUDIT_STREAM));
  redis.disconnect();
});

async function newZone(): Promise<string> {
  const r = await send("post", "/v1/zones", { name: `Audit ${Math.random().toString(36).slice(2, 8)}` });
  expect(r.status).toBe(201);
  return r.body.id;
}

/** Waits until the zone's admin audit holds `n` rows matching `query`; newest first. */
async function adminRows(zoneId: string, n: number, query = "limit=1000"): Promise<any[]> {
  return eventually(async () => {
    const r = await get(`/v1/zones/${zoneId}/admin-audit?${query}`);
    return r.status === 200 && r.body.items.length >= n ? r.body.items : undefined;
  }, 15_000);
}

const stored = (id: string) => db.collection("admin_audit_events").findOne({ _id: id as any });

describe("what is recorded (§2.1)", () => {
  test("PATCH with a secret: changed_fields without it, secret_rotated, the value nowhere (case 13)", async () => {
    const z = await newZone();
    const app = await send("post", `/v1/zones/${z}/applications`, { name: "a", registration_method: "managed" });
    expect(app.status).toBe(201);
    const secret = "s3cr3t-never-stored-0001";
    const r = await send("patch", `/v1/zones/${z}/applications/${app.body.id}`, { name: "n", client_secret: secret });
    expect(r.status).toBe(200);
    const rows = await adminRows(z, 1, "method=PATCH");
    expect(rows[0]).toMatchObject({
      action: `PATCH /v1/zones/${z}/applications/${app.body.id}`,
      method: "PATCH",
      entity_type: "applications",
      entity_id: app.body.id,
      status_code: 200,
      request_id: r.headers["x-request-id"],
      actor_name: "bootstrap",
      actor_scope: "global",
      payload_json: { rls_mode: "control_plane_wildcard", rls_zone_guc: "*", changed_fields: ["name"], secret_rotated: true },
      signed: true,
    });
    expect(JSON.stringify(await stored(rows[0].id))).not.toContain(secret);
  });

  test("a create is recorded on the zone; a DELETE has changed_fields [] (case 14)", async () => {
    const z = await newZone();
    const app = await send("post", `/v1/zones/${z}/applications`, { name: "a", registration_method: "managed" });
    const del = await send("delete", `/v1/zones/${z}/applications/${app.body.id}`);
    expect(del.status).toBe(204);
    const rows = await adminRows(z, 2);
    const create = rows.find((x) => x.method === "POST")!;
    expect(create).toMatchObject({ entity_type: "zones", entity_id: z, status_code: 201 });
    expect(create.payload_json.changed_fields).toEqual(["name", "registration_method"]);
    expect(rows.find((x) => x.method === "DELETE")!.payload_json).toEqual({ rls_mode: "control_plane_wildcard", rls_zone_guc: "*", changed_fields: [] });
  });

  test("a successful GET is not recorded; a failed GET and an unauthenticated POST are (case 15)", async () => {
    const z = await newZone();
    expect((await get(`/v1/zones/${z}/audit`)).status).toBe(200);
    const missing = await get(`/v1/zones/${z}/audit/by-request/missing`);
    expect(missing.status).toBe(404);
    const anon = await c.http().post(`/v1/zones/${z}/applications`).send({ name: "x" });
    expect(anon.status).toBe(401);
    const rows = await adminRows(z, 2);
    expect(rows).toHaveLength(2);
    expect(rows.find((x) => x.method === "GET")).toMatchObject({ status_code: 404, path: `/v1/zones/${z}/audit/by-request/missing`, actor_id: expect.any(String) });
    expect(rows.find((x) => x.method === "POST")).toMatchObject({ status_code: 401, actor_id: null, actor_name: null, actor_scope: null, payload_json: { rls_mode: "control_plane_wildcard", rls_zone_guc: "*" } });
  });
});

describe("the chain (§2.2)", () => {
  test("consecutive records are n and n+1 (strings), linked by hash, signed; the HMAC is the key's (case 16)", async () => {
    const z = await newZone();
    await send("patch", `/v1/zones/${z}`, { name: "first" });
    await send("patch", `/v1/zones/${z}`, { name: "second" });
    const [second, first] = await adminRows(z, 2);
    expect([first.chain_seq, second.chain_seq]).toEqual(["1", "2"]);
    expect(first.signed && second.signed).toBe(true);
    const [a, b] = [await stored(first.id), await stored(second.id)];
    expect(a!.prev_content_sha256).toBeNull();
    expect(b!.prev_content_sha256).toBe(a!.content_sha256);
    const { adminContentHash, chainHmac } = await import("../../services/audit/hashes");
    const content = adminContentHash({ ...(b as any), id: b!._id, occurred_at: new Date(b!.occurred_at).toISOString() });
    expect(content).toBe(b!.content_sha256);
    expect(b!.chain_hmac).toBe(chainHmac(Buffer.from(TEST_STREAMS_KEY, "hex"), content, a!.content_sha256));
  });

  test("verify answers ok, then the exact sequence number of a row changed in the store", async () => {
    const z = await newZone();
    for (const name of ["a", "b", "c", "d"]) await send("patch", `/v1/zones/${z}`, { name });
    const rows = await adminRows(z, 4);
    const ok = await get(`/v1/zones/${z}/admin-audit/verify`);
    expect(ok.body).toEqual({ zone_id: z, ok: true, checked: 4, last_seq: "4", complete: true, next_cursor: null });
    const third = rows.find((r) => r.chain_seq === "3")!;
    await db.collection("admin_audit_events").updateOne({ _id: third.id as any }, { $set: { status_code: 204 } });
    const bad = await get(`/v1/zones/${z}/admin-audit/verify`);
    expect(bad.body).toMatchObject({ zone_id: z, ok: false, broken_seq: "3", reason: "content_mismatch", last_seq: "2" });
    // Rewriting the content hash too does not help: the HMAC (and the next link) give it away.
    const { adminContentHash } = await import("../../services/audit/hashes");
    const row = (await stored(third.id))!;
    await db.collection("admin_audit_events").updateOne({ _id: third.id as any }, { $set: { content_sha256: adminContentHash({ ...(row as any), id: row._id, occurred_at: new Date(row.occurred_at).toISOString() }) } });
    expect((await get(`/v1/zones/${z}/admin-audit/verify`)).body).toMatchObject({ ok: false, broken_seq: "3", reason: "hmac_mismatch" });
    // A deleted row is a gap at its number.
    await db.collection("admin_audit_events").deleteOne({ _id: third.id as any });
    expect((await get(`/v1/zones/${z}/admin-audit/verify`)).body).toMatchObject({ ok: false, broken_seq: "3", reason: "missing" });
  });

  test("two audit instances appending to one zone's chain do not fork it", async () => {
    const { brokerOptions } = await import("../../shared/broker");
    const { PROCESSES } = await import("../../deploy/local/services");
    const second = new ServiceBroker(brokerOptions({ nodeID: `audit-two-${c.namespace}` }));
    for (const schema of await PROCESSES.audit!()) second.createService(schema);
    await second.start();
    try {
      const z = await newZone();
      const stream = c.stream(ADMIN_AUDIT_STREAM);
      const key = Buffer.from(TEST_STREAMS_KEY, "hex");
      const n = 120;
      for (let i = 0; i < n; i += 15) {
        const tx = redis.pipeline();
        for (let k = i; k < i + 15; k++) {
          const record = buildRecord({ method: "PATCH", path: `/v1/zones/${z}`, status: 200, requestId: `r-${k}`, body: { name: `n${k}` } });
          const fields: Record<string, string> = { record: JSON.stringify(record), kid: "k1" };
          fields._sig = sign(key, stream, fields);
          tx.xadd(stream, "*", ...Object.entries(fields).flat());
        }
        await tx.exec();
        await new Promise((r) => setTimeout(r, 30));
      }
      const rows = await adminRows(z, n);
      expect(rows.map((r) => Number(r.chain_seq)).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      const stats = await second.call("audit.ingestStats", {}, { nodeID: second.nodeID }) as any;
      expect(stats.admin.acked).toBeGreaterThan(0);
      const v = await get(`/v1/zones/${z}/admin-audit/verify`);
      expect(v.body).toMatchObject({ ok: true, checked: n, last_seq: String(n), complete: true });
    } finally {
      await second.stop();
    }
  });
});

describe("the list (§2.3)", () => {
  test("filters, fields, CSV and their errors (case 17)", async () => {
    const z = await newZone();
    const app = await send("post", `/v1/zones/${z}/applications`, { name: "a", registration_method: "managed" });
    const upd = await send("patch", `/v1/zones/${z}/applications/${app.body.id}`, { name: "n", traits: [] });
    expect(upd.status).toBe(200);
    await adminRows(z, 2);
    expect((await get(`/v1/zones/${z}/admin-audit?method=GET`)).body.error).toBe("invalid_query");
    expect((await get(`/v1/zones/${z}/admin-audit?fields=payload_json`)).body.error).toBe("invalid_fields");
    const byEntity = await get(`/v1/zones/${z}/admin-audit?entity_type=applications&entity_id=${app.body.id}`);
    expect(byEntity.body.items.map((r: any) => r.method)).toEqual(["PATCH"]);
    const byActor = await get(`/v1/zones/${z}/admin-audit?actor_id=${byEntity.body.items[0].actor_id}&method=POST`);
    expect(byActor.body.items.map((r: any) => r.method)).toEqual(["POST"]);
    const fields = await get(`/v1/zones/${z}/admin-audit?fields=chain_seq,method,changed_fields&method=PATCH`);
    expect(fields.body.items).toEqual([{ chain_seq: "2", method: "PATCH", changed_fields: ["name", "traits"] }]);
    const csv = await get(`/v1/zones/${z}/admin-audit?format=csv&fields=occurred_at,method,changed_fields&method=PATCH`);
    expect(csv.headers["content-disposition"]).toBe(`attachment; filename="admin-audit-${z}.csv"`);
    expect(csv.text).toMatch(/^occurred_at,method,changed_fields\r\n\d{4}-\d\d-\d\dT[\d:.]+Z,PATCH,name traits\r\n$/);
    const header = (await get(`/v1/zones/${z}/admin-audit?format=csv`)).text.split("\r\n")[0];
    expect(header).toBe("id,occurred_at,action,method,path,entity_type,entity_id,status_code,actor_id,actor_name,actor_scope,request_id,chain_seq,signed,changed_fields");
  });
});

describe("the hand-off (durable while the audit service is down)", () => {
  test("writes made while the audit process is stopped are all recorded, in one unbroken chain, once it is back", async () => {
    const z = await newZone();
    await send("patch", `/v1/zones/${z}`, { name: "before" });
    await adminRows(z, 1);
    await c.brokers.audit!.stop();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await send("patch", `/v1/zones/${z}`, { name: `while-down-${i}` });
      expect(r.status).toBe(200);
      ids.push(String(r.headers["x-request-id"]));
    }
    // The records wait in Redis, not in the gateway.
    const gateway = c.brokers.gateway!.getLocalService("api") as any;
    expect(await gateway.adminAudit.drain()).toBe(true);
    expect(await redis.xlen(c.stream(ADMIN_AUDIT_STREAM))).toBeGreaterThanOrEqual(6);

    await replaceAudit(c);

    const rows = await adminRows(z, 7);
    expect(rows.map((r) => r.request_id).slice(0, 6).reverse()).toEqual(ids);
    expect(rows.map((r) => r.chain_seq)).toEqual(["7", "6", "5", "4", "3", "2", "1"]);
    expect((await get(`/v1/zones/${z}/admin-audit/verify`)).body).toMatchObject({ ok: true, checked: 7 });
    // What is stored leaves the hand-off stream (the service trims below the oldest unacknowledged entry).
    await (c.brokers.audit!.getLocalService("audit") as any).trimHandoff();
    expect(await redis.xlen(c.stream(ADMIN_AUDIT_STREAM))).toBeLessThanOrEqual(1);
  });
});
