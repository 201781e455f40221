import { sessionsCluster, emit, newZone, until, dropZoneEventsGroup } from "./helpers";
import type { Cluster } from "../helpers/cluster";
let c: Cluster;
beforeAll(async () => { c = await sessionsCluster(); });
afterAll(async () => { await c.stop(); await dropZoneEventsGroup(c); });
test("smoke", async () => {
  const z = await newZone(c);
  const s = await emit("session", "--zone", z, "--subject", "u1");
  const body = await until(c, `/v1/zones/${z}/sessions`, (b) => b.items.length === 1);
  console.log(JSON.stringify(body));
  const t = await emit("spawn-tree", "--zone", z, "--depth", "2", "--width", "2");
  const ag = await until(c, `/v1/zones/${z}/agent-sessions?limit=10`, (b) => b.items.length === 7);
  console.log(JSON.stringify(ag.items.map((a: any) => [a.depth, a.child_count])));
  const csv = await c.http().get(`/v1/zones/${z}/agent-sessions?format=csv`).set(c.auth());
  console.log(csv.status, csv.headers, csv.text);
  console.log(JSON.stringify(await c.brokers.gateway!.call("sessions.ingestStats")));
  expect(s.session_id).toBe(body.items[0].id);
});
