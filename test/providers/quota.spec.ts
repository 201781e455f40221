// The per-zone resource quota (API_MAX_RESOURCES_PER_ZONE), here 2, against the real servers.
import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "applications", "providers"], env: { API_MAX_RESOURCES_PER_ZONE: "2" } });
});
afterAll(async () => {
  await c.stop();
});

const post = (path: string, body: unknown) => c.http().post(path).set(c.auth()).send(body as object);

async function boundZone() {
  const z = (await post("/v1/zones", { name: "quota " + Math.random().toString(36).slice(2, 7) })).body.id as string;
  const provider = (await post(`/v1/zones/${z}/providers`, { name: "p", kind: "bearer_token", config_json: { bearer_token: "t" } })).body.id as string;
  const app = (await post(`/v1/zones/${z}/applications`, { name: "gw", registration_method: "managed" })).body.id as string;
  const resource = (identifier: string) => post(`/v1/zones/${z}/resources`, { identifier, upstream_url: "https://api.example", scopes: ["read"], credential_provider_id: provider, gateway_application_id: app });
  return { z, resource };
}

test("the third active resource is 409 resource_quota_exceeded, checked before identifier conflicts; a delete frees a place", async () => {
  const { z, resource } = await boundZone();
  const first = await resource("resource://q1");
  expect(first.status).toBe(201);
  expect((await resource("resource://q2")).status).toBe(201);
  const third = await resource("resource://q3");
  expect([third.status, third.body.error]).toEqual([409, "resource_quota_exceeded"]);
  const dup = await resource("resource://q1");
  expect([dup.status, dup.body.error]).toEqual([409, "resource_quota_exceeded"]);
  expect((await c.http().delete(`/v1/zones/${z}/resources/${first.body.id}`).set(c.auth())).status).toBe(204);
  expect((await resource("resource://q3")).status).toBe(201);
  const again = await resource("resource://q4");
  expect([again.status, again.body.error]).toEqual([409, "resource_quota_exceeded"]);
});

test("concurrent creates never pass the quota; other zones have their own", async () => {
  const { resource } = await boundZone();
  const all = await Promise.all(Array.from({ length: 5 }, (_, i) => resource(`resource://c${i}`)));
  expect(all.map((r) => r.status).sort()).toEqual([201, 201, 409, 409, 409]);
  for (const r of all.filter((x) => x.status === 409)) expect(r.body.error).toBe("resource_quota_exceeded");
  const other = await boundZone();
  expect((await other.resource("resource://c0")).status).toBe(201);
});
