import { startCluster, eventually, type Cluster } from "../helpers/cluster";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster();
});
afterAll(async () => {
  await c.stop();
});

const post = (path: string, body: unknown, token?: string) => c.http().post(path).set(c.auth(token)).send(body as object);
const patch = (path: string, body: unknown, token?: string) => c.http().patch(path).set(c.auth(token)).send(body as object);
const get = (path: string, token?: string) => c.http().get(path).set(c.auth(token));

async function newZone(name = "Zone " + Math.random().toString(36).slice(2, 8)) {
  const r = await post("/v1/zones", { name });
  expect(r.status).toBe(201);
  return r.body as { id: string; slug: string; name: string };
}

describe("zones: create", () => {
  test("trims the name and generates a slug, then -2 for the same name (cases 9, 10)", async () => {
    const a = await post("/v1/zones", { name: "  My Zone  " });
    expect(a.status).toBe(201);
    expect(a.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      name: "My Zone",
      slug: "my-zone",
      dcr_enabled: false,
      operator_coauthor_badge: true,
      created_at: expect.stringMatching(/Z$/),
      updated_at: expect.stringMatching(/Z$/),
    });
    expect(a.headers.location).toBe(`/v1/zones/${a.body.id}`);
    const b = await post("/v1/zones", { name: "  My Zone  " });
    expect(b.status).toBe(201);
    expect(b.body.slug).toBe("my-zone-2");
  });

  test("an explicit slug already taken is 409 zone_slug_conflict, and stays taken after delete (case 11)", async () => {
    const z = await post("/v1/zones", { name: "Taken", slug: "taken-slug" });
    expect(z.status).toBe(201);
    const dup = await post("/v1/zones", { name: "A", slug: "taken-slug" });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toBe("zone_slug_conflict");
    expect(dup.body.request_id).toBe(dup.headers["x-request-id"]);
    expect((await c.http().delete(`/v1/zones/${z.body.id}`).set(c.auth())).status).toBe(204);
    const again = await post("/v1/zones", { name: "A", slug: "taken-slug" });
    expect(again.status).toBe(409);
    expect(again.body.error).toBe("zone_slug_conflict");
  });

  test.each([
    [{ name: "Test Zone", slug: "INVALID SLUG" }, ["slug"]],
    [{ name: "z".repeat(121) }, ["name"]],
    [{ name: "My Zone", login_flow: "magic" }, ["login_flow"]],
    [{ name: "   " }, ["name"]],
    [{}, ["name"]],
  ])("invalid body %j is 400 invalid_zone with issues (case 12)", async (body, paths) => {
    const r = await post("/v1/zones", body);
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_zone");
    expect(Array.isArray(r.body.details.issues)).toBe(true);
    for (const p of paths) expect(r.body.details.issues.map((i: { path: string[] }) => i.path[0])).toContain(p);
  });

  test("reserved name or slug is 409 reserved_namespace for a minted token, allowed for bootstrap (case 13)", async () => {
    const w = await post("/v1/admin-tokens", { name: "w", scope: "global" });
    expect(w.status).toBe(201);
    for (const body of [{ name: "caracal.sys/evil" }, { name: "  CARACAL.SYS/x" }, { name: "ok", slug: "caracal-sys-x" }]) {
      const r = await post("/v1/zones", body, w.body.token);
      expect(r.status).toBe(409);
      expect(r.body.error).toBe("reserved_namespace");
      expect(r.body.error_description).toMatch(/reserved/);
    }
    const lookAlike = await post("/v1/zones", { name: "my-caracal-sys-zone" }, w.body.token);
    expect(lookAlike.status).toBe(201);
  });
});

describe("zones: stored shape", () => {
  test("once its event is recorded, a zone's document keeps no published entries (every read decodes every field)", async () => {
    const z = await newZone();
    const Zone = (c.brokers.zones!.getLocalService("zones") as any).models.Zone;
    const doc = await eventually(async () => {
      const d = await Zone.findById(z.id).lean();
      return d && d._outbox_open === false ? d : undefined;
    });
    expect(doc._outbox).toEqual([]);
    expect(doc._outbox_pending).toBe(0);
  });
});

describe("zones: list and get", () => {
  test.each(["limit=0", "limit=501", "limit=abc", "limit=10.5", "limit=", "cursor="])("?%s is 400 invalid_query (case 14)", async (q) => {
    const r = await get(`/v1/zones?${q}`);
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_query");
  });

  test("an undecodable cursor, or one with a bad timestamp, is 400 invalid_cursor (case 15)", async () => {
    const bad = Buffer.from(JSON.stringify({ ts: "garbage", id: "x" })).toString("base64url");
    for (const cursor of ["not-base64-encoded-json", bad, "%%%"]) {
      const r = await get(`/v1/zones?cursor=${cursor}`);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe("invalid_cursor");
    }
  });

  test("pages newest first with next_cursor and Link, and the last page has neither (case 16)", async () => {
    await newZone();
    await newZone();
    await newZone();
    const all: string[] = [];
    let r = await get("/v1/zones?limit=2");
    expect(r.status).toBe(200);
    expect(r.body.items).toHaveLength(2);
    expect(r.body.next_cursor).toEqual(expect.any(String));
    expect(r.headers.link).toMatch(/^<\/v1\/zones\?.*cursor=.*>; rel="next"$/);
    expect(r.headers.link).toContain("limit=2");
    const t0 = Date.parse(r.body.items[0].created_at);
    const t1 = Date.parse(r.body.items[1].created_at);
    expect(t0).toBeGreaterThanOrEqual(t1);
    all.push(...r.body.items.map((z: { id: string }) => z.id));
    let pages = 1;
    while (r.body.next_cursor) {
      const link = /^<([^>]+)>/.exec(String(r.headers.link))![1]!;
      r = await get(link);
      expect(r.status).toBe(200);
      all.push(...r.body.items.map((z: { id: string }) => z.id));
      pages++;
    }
    expect(r.headers.link).toBeUndefined();
    expect(r.body.next_cursor).toBeNull();
    expect(new Set(all).size).toBe(all.length);
    const full = await get("/v1/zones?limit=500");
    expect(full.body.items.map((z: { id: string }) => z.id)).toEqual(all);
    expect(full.body.next_cursor).toBeNull();
    expect(pages).toBeGreaterThan(1);
  });

  test("unknown zone is 404 zone_not_found; a malformed id is 400 invalid_params (case 17)", async () => {
    const r = await get("/v1/zones/missing-id");
    expect(r.status).toBe(404);
    expect(r.body.error).toBe("zone_not_found");
    const bad = await get("/v1/zones/bad%20id");
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe("invalid_params");
  });

  test("dcr-status of a fresh zone and of a missing one (case 18)", async () => {
    const z = await newZone();
    const r = await get(`/v1/zones/${z.id}/dcr-status`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ id: z.id, dcr_enabled: false, live_dcr_applications: 0 });
    const missing = await get("/v1/zones/missing/dcr-status");
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe("zone_not_found");
  });
});

describe("zones: patch and delete", () => {
  test("an empty patch is 400 no_fields, even for a missing zone (case 19)", async () => {
    const z = await newZone();
    for (const id of [z.id, "nonexistent"]) {
      const r = await patch(`/v1/zones/${id}`, {});
      expect(r.status).toBe(400);
      expect(r.body.error).toBe("no_fields");
    }
  });

  test("patching a missing zone is 404 zone_not_found (case 20)", async () => {
    const r = await patch("/v1/zones/missing", { slug: "new-slug" });
    expect(r.status).toBe(404);
    expect(r.body.error).toBe("zone_not_found");
  });

  test("dcr_shutdown without dcr_enabled:false is 400 dcr_shutdown_not_applicable (case 21)", async () => {
    const z = await newZone();
    for (const body of [{ dcr_shutdown: "keep_live" }, { dcr_enabled: true, dcr_shutdown: "revoke_live" }]) {
      const r = await patch(`/v1/zones/${z.id}`, body);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe("dcr_shutdown_not_applicable");
    }
  });

  test("patch returns the full zone and bumps updated_at; a taken slug is 409, not 500", async () => {
    const z = await newZone();
    const other = await newZone();
    const r = await patch(`/v1/zones/${z.id}`, { name: "Renamed", dcr_enabled: true, operator_coauthor_badge: false });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: z.id, name: "Renamed", slug: z.slug, dcr_enabled: true, operator_coauthor_badge: false });
    expect(Date.parse(r.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(r.body.created_at));
    const clash = await patch(`/v1/zones/${z.id}`, { slug: other.slug });
    expect(clash.status).toBe(409);
    expect(clash.body.error).toBe("zone_slug_conflict");
    const off = await patch(`/v1/zones/${z.id}`, { dcr_enabled: false, dcr_shutdown: "keep_live" });
    expect(off.status).toBe(200);
    expect(off.body.dcr_enabled).toBe(false);
  });

  test("delete archives: 204, then 404 everywhere, slug kept (case 25)", async () => {
    const z = await newZone();
    const del = await c.http().delete(`/v1/zones/${z.id}`).set(c.auth());
    expect(del.status).toBe(204);
    expect(del.text).toBe("");
    const again = await c.http().delete(`/v1/zones/${z.id}`).set(c.auth());
    expect(again.status).toBe(404);
    expect(again.body.error).toBe("zone_not_found");
    expect((await get(`/v1/zones/${z.id}`)).status).toBe(404);
    expect((await patch(`/v1/zones/${z.id}`, { name: "x" })).body.error).toBe("zone_not_found");
    const list = await get("/v1/zones?limit=500");
    expect(list.body.items.map((x: { id: string }) => x.id)).not.toContain(z.id);
    const reuse = await post("/v1/zones", { name: "x", slug: z.slug });
    expect(reuse.status).toBe(409);
  });
});

describe("system zone (case 58)", () => {
  test("only the bootstrap identity may write it; everyone may read it; lists never show it", async () => {
    const sys = await post("/v1/zones", { name: "caracal.sys/system", slug: "caracal-sys-internal" });
    expect(sys.status).toBe(201);
    const w = await post("/v1/admin-tokens", { name: "w2", scope: "global" });
    const denied = await patch(`/v1/zones/${sys.body.id}`, { name: "x" }, w.body.token);
    expect(denied.status).toBe(403);
    expect(denied.body.error).toBe("system_zone_read_only");
    const read = await get(`/v1/zones/${sys.body.id}`, w.body.token);
    expect(read.status).toBe(200);
    expect(read.body.slug).toBe("caracal-sys-internal");
    const list = await get("/v1/zones?limit=500");
    expect(list.body.items.map((z: { id: string }) => z.id)).not.toContain(sys.body.id);
    const del = await c.http().delete(`/v1/zones/${sys.body.id}`).set(c.auth(w.body.token));
    expect(del.status).toBe(403);
    expect(del.body.error).toBe("system_zone_read_only");
    const byBootstrap = await patch(`/v1/zones/${sys.body.id}`, { operator_coauthor_badge: false });
    expect(byBootstrap.status).toBe(200);
  });
});
