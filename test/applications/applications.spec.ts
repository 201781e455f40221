import Redis from "ioredis";
import { startCluster, eventually, type Cluster } from "../helpers/cluster";
import { fieldsOf } from "../../shared/signing";

let c: Cluster;
let redis: Redis;
const logLines: string[] = [];
beforeAll(async () => {
  // Every log call of every broker at debug level, to look for secrets afterwards.
  // The background timer stays quiet (one tick an hour): the GC test runs the one tick itself.
  c = await startCluster({ processes: ["zones", "applications"], captureLogs: logLines, env: { DCR_GC_INTERVAL_MS: "3600000" } });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
});
afterAll(async () => {
  redis.disconnect();
  await c.stop();
});

const post = (path: string, body: unknown, token?: string) => c.http().post(path).set(c.auth(token)).send(body as object);
const patch = (path: string, body: unknown, token?: string) => c.http().patch(path).set(c.auth(token)).send(body as object);
const get = (path: string, token?: string) => c.http().get(path).set(c.auth(token));

async function zone(dcr = false) {
  const r = await post("/v1/zones", { name: "apps " + Math.random().toString(36).slice(2, 7), dcr_enabled: dcr });
  expect(r.status).toBe(201);
  return r.body.id as string;
}
const mint = async (body: Record<string, unknown>) => (await post("/v1/admin-tokens", body)).body.token as string;

describe("managed applications", () => {
  test("create returns the secret once, no traits key (case 26)", async () => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/applications`, { name: "Runner", registration_method: "managed" });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ id: expect.any(String), zone_id: z, name: "Runner", registration_method: "managed", expires_at: null, created_at: expect.any(String), client_secret: expect.stringMatching(/^cs_[A-Za-z0-9_-]{43}$/) });
    const again = await get(`/v1/zones/${z}/applications/${r.body.id}`);
    expect(again.status).toBe(200);
    expect(again.body.client_secret).toBeUndefined();
    expect(JSON.stringify(again.body)).not.toContain(r.body.client_secret);
  });

  test("missing zone is 404 even with a bad body (case 27)", async () => {
    const r = await post("/v1/zones/missing/applications", { nope: 1 });
    expect([r.status, r.body.error]).toEqual([404, "zone_not_found"]);
  });

  test.each([
    [{ name: "x".repeat(201), registration_method: "managed" }],
    [{ name: "d", registration_method: "dcr" }],
    [{ name: "x", registration_method: "managed", credential_type: "public" }],
    [{ name: "x", registration_method: "managed", consent: true }],
    [{ name: "x" }],
    [{ name: "x", registration_method: "managed", traits: "team:eng" }],
  ])("bad body %j is 400 invalid_application (case 28)", async (body) => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/applications`, body);
    expect([r.status, r.body.error]).toEqual([400, "invalid_application"]);
    expect(r.body.details.issues.length).toBeGreaterThan(0);
  });

  test("privileged traits need a global token; trait rules are 403 (cases 29, 30)", async () => {
    const z = await zone();
    const t = await mint({ name: "zt", scope: "zone", zone_id: z });
    const w = await mint({ name: "w", scope: "global" });
    const denied = await post(`/v1/zones/${z}/applications`, { name: "Backdoor", registration_method: "managed", traits: ["control:invoke"] }, t);
    expect([denied.status, denied.body.error]).toEqual([403, "trait_forbidden"]);
    const allowed = await post(`/v1/zones/${z}/applications`, { name: "Backdoor", registration_method: "managed", traits: ["control:invoke"] }, w);
    expect(allowed.status).toBe(201);
    expect("traits" in allowed.body).toBe(false);
    const cases: [string[], string][] = [
      [["1bad"], "trait_invalid"],
      [["team:eng", "team:eng"], "trait_duplicate"],
      [Array.from({ length: 33 }, (_, i) => `t${i}`), "trait_count_exceeded"],
    ];
    for (const [traits, code] of cases) {
      const r = await post(`/v1/zones/${z}/applications`, { name: "x", registration_method: "managed", traits });
      expect([r.status, r.body.error]).toEqual([403, code]);
    }
  });

  test("reserved name: 409 for minted tokens, allowed for bootstrap (case 31)", async () => {
    const z = await zone();
    const w = await mint({ name: "w3", scope: "global" });
    const r = await post(`/v1/zones/${z}/applications`, { name: "caracal.sys/operator", registration_method: "managed" }, w);
    expect([r.status, r.body.error]).toEqual([409, "reserved_namespace"]);
    expect((await post(`/v1/zones/${z}/applications`, { name: "caracal.sys/operator", registration_method: "managed" })).status).toBe(201);
  });

  test("traits shown to global tokens only (case 32)", async () => {
    const z = await zone();
    const t = await mint({ name: "zt", scope: "zone", zone_id: z });
    const a = await post(`/v1/zones/${z}/applications`, { name: "Labeled", registration_method: "managed", traits: ["team:eng"] });
    const asGlobal = await get(`/v1/zones/${z}/applications/${a.body.id}`);
    expect([asGlobal.status, asGlobal.body.traits]).toEqual([200, ["team:eng"]]);
    const asZone = await get(`/v1/zones/${z}/applications/${a.body.id}`, t);
    expect(asZone.status).toBe(200);
    expect("traits" in asZone.body).toBe(false);
    const list = await get(`/v1/zones/${z}/applications`, t);
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items.every((x: object) => !("traits" in x))).toBe(true);
    expect((await get(`/v1/zones/${z}/applications`)).body.items[0].traits).toEqual(["team:eng"]);
  });

  test("patch answers {id, name}; empty is no_fields; unknown is 404 (case 33)", async () => {
    const z = await zone();
    const a = await post(`/v1/zones/${z}/applications`, { name: "Old", registration_method: "managed" });
    const r = await patch(`/v1/zones/${z}/applications/${a.body.id}`, { name: "Renamed" });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ id: a.body.id, name: "Renamed" });
    const empty = await patch(`/v1/zones/${z}/applications/${a.body.id}`, {});
    expect([empty.status, empty.body.error]).toEqual([400, "no_fields"]);
    const emptyUnknown = await patch(`/v1/zones/${z}/applications/unknown`, {});
    expect([emptyUnknown.status, emptyUnknown.body.error]).toEqual([400, "no_fields"]);
    const unknown = await patch(`/v1/zones/${z}/applications/unknown`, { name: "x" });
    expect([unknown.status, unknown.body.error]).toEqual([404, "application_not_found"]);
    const secret = await patch(`/v1/zones/${z}/applications/unknown`, { client_secret: "cs_new" });
    expect([secret.status, secret.body.error]).toEqual([404, "application_not_found"]);
    const other = await zone();
    const elsewhere = await get(`/v1/zones/${other}/applications/${a.body.id}`);
    expect([elsewhere.status, elsewhere.body.error]).toEqual([404, "application_not_found"]);
    const renamed = await get(`/v1/zones/${z}/applications/${a.body.id}`);
    expect([renamed.status, renamed.body.name]).toEqual([200, "Renamed"]);
  });

  test("rotate-secret returns a new secret once and the old one stops working at once", async () => {
    const z = await zone();
    const a = await post(`/v1/zones/${z}/applications`, { name: "Rotating", registration_method: "managed" });
    const verify = (secret: string) => c.brokers.gateway!.call("applications.verifySecret", { zone_id: z, id: a.body.id, client_secret: secret }) as Promise<{ valid: boolean }>;
    expect((await verify(a.body.client_secret)).valid).toBe(true);
    const r = await post(`/v1/zones/${z}/applications/${a.body.id}/rotate-secret`, {});
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ id: a.body.id, client_secret: expect.stringMatching(/^cs_/) });
    expect(r.body.client_secret).not.toBe(a.body.client_secret);
    expect((await verify(a.body.client_secret)).valid).toBe(false);
    expect((await verify(r.body.client_secret)).valid).toBe(true);
    const stored = await (c.brokers.applications!.getLocalService("applications") as any).models.Application.findById(a.body.id).lean();
    expect(stored.secret_hash).toMatch(/^argon2id\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(JSON.stringify(stored)).not.toContain(r.body.client_secret);
  });

  test("delete archives: 204, then 404 (case 37, application part)", async () => {
    const z = await zone();
    const a = await post(`/v1/zones/${z}/applications`, { name: "Gone", registration_method: "managed" });
    expect((await c.http().delete(`/v1/zones/${z}/applications/${a.body.id}`).set(c.auth())).status).toBe(204);
    const again = await c.http().delete(`/v1/zones/${z}/applications/${a.body.id}`).set(c.auth());
    expect([again.status, again.body.error]).toEqual([404, "application_not_found"]);
    const list = await get(`/v1/zones/${z}/applications`);
    expect(list.status).toBe(200);
    expect(list.body.items.map((x: { id: string }) => x.id)).not.toContain(a.body.id);
    const read = await get(`/v1/zones/${z}/applications/${a.body.id}`);
    expect([read.status, read.body.error]).toEqual([404, "application_not_found"]);
    const rotate = await post(`/v1/zones/${z}/applications/${a.body.id}/rotate-secret`, {});
    expect([rotate.status, rotate.body.error]).toEqual([404, "application_not_found"]);
  });
});

describe("DCR", () => {
  test("off by default: 403 dcr_disabled; missing zone 404 (case 34)", async () => {
    const z = await zone();
    const r = await post(`/v1/zones/${z}/applications/dcr`, { name: "Dynamic App" });
    expect([r.status, r.body.error]).toEqual([403, "dcr_disabled"]);
    const missing = await post("/v1/zones/missing/applications/dcr", { name: "d" });
    expect([missing.status, missing.body.error]).toEqual([404, "zone_not_found"]);
  });

  test("enabled: 201 with expiry; bad expires_in or traits are 400 (case 35)", async () => {
    const z = await zone();
    await patch(`/v1/zones/${z}`, { dcr_enabled: true });
    const r = await post(`/v1/zones/${z}/applications/dcr`, { name: "Dynamic App" });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ id: expect.any(String), zone_id: z, name: "Dynamic App", registration_method: "dcr", expires_at: expect.any(String), created_at: expect.any(String), client_secret: expect.stringMatching(/^cs_[A-Za-z0-9_-]{43}$/) });
    const short = await post(`/v1/zones/${z}/applications/dcr`, { name: "Short", expires_in: 60 });
    expect(short.status).toBe(201);
    expect(Math.abs(Date.parse(short.body.expires_at) - Date.parse(short.body.created_at) - 60_000)).toBeLessThan(1000);
    expect(Math.abs(Date.parse(r.body.expires_at) - Date.now() - 3600_000)).toBeLessThan(10_000);
    expect(r.body.client_secret).toMatch(/^cs_/);
    for (const body of [{ name: "d", expires_in: 3601 }, { name: "d", expires_in: 0 }, { name: "d", traits: ["control:invoke"] }, { name: "d", expires_in: "60" }, { name: "d", expires_in: 1.5 }]) {
      const bad = await post(`/v1/zones/${z}/applications/dcr`, body);
      expect([bad.status, bad.body.error]).toEqual([400, "invalid_application"]);
    }
  });

  test("11 registrations within a second: the 11th is 429 dcr_rate_limit_exceeded (case 36)", async () => {
    const z = await zone(true);
    const t = await mint({ name: "burst-other", scope: "zone", zone_id: z });
    // Start right after a second boundary so the eleven calls share one one-second window.
    await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
    const replies = await Promise.all(Array.from({ length: 11 }, () => post(`/v1/zones/${z}/applications/dcr`, { name: "burst", expires_in: 60 })));
    const outcome = replies.map((r) => `${r.status} ${r.body.error ?? ""}`.trim()).sort();
    expect(outcome).toEqual([...Array(10).fill("201"), "429 dcr_rate_limit_exceeded"]);
    // The budget is per (zone, actor): another token in the same second still registers.
    const other = await post(`/v1/zones/${z}/applications/dcr`, { name: "other actor", expires_in: 60 }, t);
    expect(other.status).toBe(201);
  });

  test("a zone with 1000 live DCR applications refuses the next with 429 dcr_limit_exceeded; expired ones do not count", async () => {
    const z = await zone(true);
    const Application = (c.brokers.applications!.getLocalService("applications") as any).models.Application;
    const now = Date.now();
    const row = (i: number, expiresAt: Date) => ({ _id: `cap-${z}-${i}`, zone_id: z, name: `cap ${i}`, registration_method: "dcr", traits: [], expires_at: expiresAt, created_at: new Date(now), archived_at: null, archived: false, secret_hash: null });
    await Application.collection.insertMany(Array.from({ length: 999 }, (_, i) => row(i, new Date(now + 3600_000))));
    await Application.collection.insertOne(row(999, new Date(now - 1000)));
    const last = await post(`/v1/zones/${z}/applications/dcr`, { name: "the 1000th" });
    expect(last.status).toBe(201);
    expect((await get(`/v1/zones/${z}/dcr-status`)).body).toEqual({ id: z, dcr_enabled: true, live_dcr_applications: 1000 });
    const over = await post(`/v1/zones/${z}/applications/dcr`, { name: "one too many" });
    expect([over.status, over.body.error]).toEqual([429, "dcr_limit_exceeded"]);
  });

  test("DCR shutdown: 409 with the live count, keep_live, revoke_live (cases 22-24)", async () => {
    const z = await zone(true);
    const a1 = await post(`/v1/zones/${z}/applications/dcr`, { name: "d1" });
    const a2 = await post(`/v1/zones/${z}/applications/dcr`, { name: "d2" });
    expect((await get(`/v1/zones/${z}/dcr-status`)).body).toEqual({ id: z, dcr_enabled: true, live_dcr_applications: 2 });
    const required = await patch(`/v1/zones/${z}`, { dcr_enabled: false });
    expect(required.status).toBe(409);
    expect(required.body.error).toBe("dcr_shutdown_required");
    expect(required.body.details).toEqual({ live_dcr_applications: 2 });
    const keep = await patch(`/v1/zones/${z}`, { dcr_enabled: false, dcr_shutdown: "keep_live" });
    expect(keep.status).toBe(200);
    expect(keep.body.dcr_enabled).toBe(false);
    expect((await get(`/v1/zones/${z}/dcr-status`)).body.live_dcr_applications).toBe(2);
    const closed = await post(`/v1/zones/${z}/applications/dcr`, { name: "d3" });
    expect([closed.status, closed.body.error]).toEqual([403, "dcr_disabled"]);
    expect((await get(`/v1/zones/${z}/applications`)).body.items).toHaveLength(2);

    const revoke = await patch(`/v1/zones/${z}`, { dcr_enabled: false, dcr_shutdown: "revoke_live" });
    expect(revoke.status).toBe(200);
    expect((await get(`/v1/zones/${z}/dcr-status`)).body.live_dcr_applications).toBe(0);
    const list = await get(`/v1/zones/${z}/applications`);
    expect(list.body.items.map((x: { id: string }) => x.id)).not.toEqual(expect.arrayContaining([a1.body.id]));
    expect(list.body.items).toHaveLength(0);
    const deleted = await eventually(async () => {
      const rows = (await redis.xrevrange(c.stream("caracal.zone.events"), "+", "-", "COUNT", 3000)).map(([, f]) => fieldsOf(f));
      const hits = rows.filter((f) => f.zone_id === z && f.entity_type === "application" && f.action === "deleted");
      return hits.length === 2 ? hits : undefined;
    });
    expect(deleted.map((f) => f.reason)).toEqual(["dcr_shutdown", "dcr_shutdown"]);
    expect(new Set(deleted.map((f) => f.entity_id))).toEqual(new Set([a1.body.id, a2.body.id]));
  });

  test("two service instances run the GC: each app expired over 24 h ago is archived exactly once", async () => {
    const second = await c.restart("applications").then(async () => {
      // restart() replaced the first instance; start one more beside it.
      const { ServiceBroker } = await import("moleculer");
      const { brokerOptions } = await import("../../shared/broker");
      const { PROCESSES } = await import("../../deploy/local/services");
      const b = new ServiceBroker(brokerOptions({ nodeID: `applications-second-${Date.now()}` }));
      for (const s of await PROCESSES.applications!()) b.createService(s);
      await b.start();
      return b;
    });
    try {
      const z = await zone(true);
      const svcA = c.brokers.applications!.getLocalService("applications") as any;
      const svcB = second.getLocalService("applications") as any;
      const old = new Date(Date.now() - 25 * 3600 * 1000);
      const ids = ["gc-a", "gc-b", "gc-c"].map((p) => `${p}-${Date.now()}`);
      for (const id of ids) await svcA.models.Application.create({ _id: id, zone_id: z, name: id, registration_method: "dcr", traits: [], expires_at: old, created_at: old, archived_at: null, secret_hash: null });
      const fresh = `gc-fresh-${Date.now()}`;
      await svcA.models.Application.create({ _id: fresh, zone_id: z, name: "fresh", registration_method: "dcr", traits: [], expires_at: new Date(Date.now() - 3600_000), created_at: old, archived_at: null, secret_hash: null });
      // Both instances run a pass at the same moment; only the one holding the tick lock acts.
      const [x, y] = await Promise.all([svcA.backgroundPass(), svcB.backgroundPass()]);
      expect(x.archived + y.archived).toBe(3);
      expect(Math.min(x.archived, y.archived)).toBe(0);
      // The same tick again on either instance: the lock is still held, nothing runs twice.
      expect(await svcB.backgroundPass()).toEqual({ archived: 0, unbound: 0 });
      for (const id of ids) expect((await svcA.models.Application.findById(id).lean()).archived_at).not.toBeNull();
      expect((await svcA.models.Application.findById(fresh).lean()).archived_at).toBeNull();
      const events = await eventually(async () => {
        const rows = (await redis.xrevrange(c.stream("caracal.zone.events"), "+", "-", "COUNT", 3000)).map(([, f]) => fieldsOf(f));
        const hits = rows.filter((f) => ids.includes(f.entity_id!) && f.action === "deleted");
        return hits.length >= 3 ? hits : undefined;
      });
      expect(events).toHaveLength(3);
      expect(events.every((e) => e.reason === "dcr_expired")).toBe(true);
    } finally {
      await second.stop();
    }
  });
});

describe("secrets stay secret", () => {
  test("a client secret never appears in later responses, stream entries or logs", async () => {
    const z = await zone(true);
    const a = await post(`/v1/zones/${z}/applications`, { name: "Secretive", registration_method: "managed" });
    const d = await post(`/v1/zones/${z}/applications/dcr`, { name: "Dyn" });
    const rotated = await post(`/v1/zones/${z}/applications/${a.body.id}/rotate-secret`, {});
    await patch(`/v1/zones/${z}/applications/${a.body.id}`, { client_secret: "cs_caller_chosen_secret_value" });
    const secrets = [a.body.client_secret, d.body.client_secret, rotated.body.client_secret, "cs_caller_chosen_secret_value"];
    const later = [await get(`/v1/zones/${z}/applications/${a.body.id}`), await get(`/v1/zones/${z}/applications`), await get(`/v1/zones/${z}/applications/${d.body.id}`)];
    await new Promise((r) => setTimeout(r, 500));
    const stream = JSON.stringify(await redis.xrevrange(c.stream("caracal.zone.events"), "+", "-", "COUNT", 3000));
    const logs = logLines.join("\n");
    for (const s of secrets) {
      for (const r of later) expect(JSON.stringify(r.body)).not.toContain(s);
      expect(stream).not.toContain(s);
      expect(logs).not.toContain(s);
    }
    expect(stream).toContain(a.body.id);
    expect(logLines.length).toBeGreaterThan(0);
    expect(logs).toContain("applications");
  });
});
