import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster();
});
afterAll(async () => {
  await c.stop();
});

describe("zones", () => {
  test("create trims the name and generates a slug, then -2 for the same name (cases 9, 10)", async () => {
    const a = await c.http().post("/v1/zones").set(c.auth()).send({ name: "  My Zone  " });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ name: "My Zone", slug: "my-zone", dcr_enabled: false, operator_coauthor_badge: true });
    expect(a.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.headers.location).toBe(`/v1/zones/${a.body.id}`);
    const b = await c.http().post("/v1/zones").set(c.auth()).send({ name: "  My Zone  " });
    expect(b.status).toBe(201);
    expect(b.body.slug).toBe("my-zone-2");
  });

  test("unknown body field is refused with invalid_zone", async () => {
    const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: "x", bogus: 1 });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_zone");
  });
});
