// GET /v1/zones/:zoneId/policy-sets/:id/versions: a set's versions, newest first, as a cursor list.
import { startCluster, type Cluster } from "../helpers/cluster";

const DOC = `# caracal:data-document
package caracal.authz
import rego.v1
app_ids := {"payments": "app-payments"}
`;

let c: Cluster;
let Z: string;
let S: string;
let other: string;
const versions: string[] = [];

const post = (path: string, body: object) => c.http().post(path).set(c.auth()).send(body);
const get = (path: string) => c.http().get(path).set(c.auth());

beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "policies"] });
  Z = (await post("/v1/zones", { name: "Versions zone" })).body.id;
  const pv = (await post(`/v1/zones/${Z}/policies`, { name: "p", content: DOC })).body.version_id as string;
  S = (await post(`/v1/zones/${Z}/policy-sets`, { name: "s" })).body.id;
  other = (await post(`/v1/zones/${Z}/policy-sets`, { name: "other" })).body.id;
  for (let i = 0; i < 3; i++) {
    const r = await post(`/v1/zones/${Z}/policy-sets/${S}/versions`, { manifest: [{ policy_version_id: pv }] });
    expect(r.status).toBe(201);
    versions.push(r.body.id);
  }
  expect((await post(`/v1/zones/${Z}/policy-sets/${other}/versions`, { manifest: [{ policy_version_id: pv }] })).status).toBe(201);
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

test("lists the set's versions newest first, in the full shape of a version GET", async () => {
  const r = await get(`/v1/zones/${Z}/policy-sets/${S}/versions`);
  expect(r.status).toBe(200);
  expect(r.body.next_cursor).toBeNull();
  expect(r.body.items.map((v: { id: string }) => v.id)).toEqual([...versions].reverse());
  expect(r.body.items.map((v: { version: number }) => v.version)).toEqual([3, 2, 1]);
  const one = await get(`/v1/zones/${Z}/policy-sets/${S}/versions/${versions[0]}`);
  expect(r.body.items[2]).toEqual(one.body);
});

test("pages with limit and cursor, with a Link to the next page; a cursor of another set is refused", async () => {
  const first = await get(`/v1/zones/${Z}/policy-sets/${S}/versions?limit=2`);
  expect(first.body.items.map((v: { version: number }) => v.version)).toEqual([3, 2]);
  expect(first.body.next_cursor).toEqual(expect.any(String));
  expect(first.headers.link).toContain('rel="next"');
  const next = await get(first.headers.link!.slice(1, first.headers.link!.indexOf(">")));
  expect(next.body.items.map((v: { version: number }) => v.version)).toEqual([1]);
  expect(next.body.next_cursor).toBeNull();
  const elsewhere = await get(`/v1/zones/${Z}/policy-sets/${other}/versions?cursor=${first.body.next_cursor}`);
  expect([elsewhere.status, elsewhere.body.error]).toEqual([400, "invalid_cursor"]);
  const bad = await get(`/v1/zones/${Z}/policy-sets/${S}/versions?limit=0`);
  expect([bad.status, bad.body.error]).toEqual([400, "invalid_query"]);
});

test("an unknown set, or a set of another zone, is 404 policy_set_not_found; an archived set still lists its history", async () => {
  const Y = (await post("/v1/zones", { name: "Elsewhere" })).body.id;
  expect((await get(`/v1/zones/${Y}/policy-sets/${S}/versions`)).body.error).toBe("policy_set_not_found");
  expect((await get(`/v1/zones/${Z}/policy-sets/nope/versions`)).status).toBe(404);
  expect((await c.http().delete(`/v1/zones/${Z}/policy-sets/${S}`).set(c.auth())).status).toBe(204);
  const r = await get(`/v1/zones/${Z}/policy-sets/${S}/versions`);
  expect(r.status).toBe(200);
  expect(r.body.items).toHaveLength(3);
});
