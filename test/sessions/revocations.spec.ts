// The three revocation flows end to end: a grant deleted (through the grants service), a DCR shutdown with
// revoke_live, a zone archived (this one with the sessions process down while it happens). Case 23 with the
// key of the reference.
import type Redis from "ioredis";
import { eventually, type Cluster } from "../helpers/cluster";
import { sessionsCluster, emit, newZone, until, dropZoneEventsGroup, redis, entries } from "./helpers";
import { verify } from "../../shared/signing";

const KEY_HEX = "01".repeat(32);
const keys = [{ kid: "k1", key: Buffer.from(KEY_HEX, "hex") }];

let c: Cluster;
let r: Redis;
beforeAll(async () => {
  c = await sessionsCluster(["zones", "applications", "providers", "grants", "sessions"], { STREAMS_HMAC_KEY: KEY_HEX, DCR_GC_INTERVAL_MS: "3600000" });
  r = redis();
});
afterAll(async () => {
  await c.stop();
  await dropZoneEventsGroup(c);
  r.disconnect();
});

const get = (path: string) => c.http().get(path).set(c.auth());
const stream = (name: string) => c.stream(name);
const post = (path: string, body: unknown) => c.http().post(path).set(c.auth()).send(body as object);
const sessionsOf = async (z: string) => new Map<string, any>((await get(`/v1/zones/${z}/sessions?limit=1000`)).body.items.map((s: any) => [s.id, s]));
const agentsOf = async (z: string) => new Map<string, any>((await get(`/v1/zones/${z}/agent-sessions?limit=1000`)).body.items.map((a: any) => [a.id, a]));

/** A zone with what a grant needs (an application, a provider, a resource) and a grant for `userId`. */
async function grantFor(userId: string): Promise<{ z: string; grant: string }> {
  const z = await newZone(c);
  const app = (await post(`/v1/zones/${z}/applications`, { name: "app", registration_method: "managed" })).body.id;
  const provider = (await post(`/v1/zones/${z}/providers`, { name: "key", kind: "api_key", config_json: { header_name: "X-Key", api_key: "k-1" } })).body.id;
  const resource = (await post(`/v1/zones/${z}/resources`, { name: "res", scopes: ["example:read"], upstream_url: "https://api.example", credential_provider_id: provider, gateway_application_id: app })).body.id;
  const g = await post(`/v1/zones/${z}/grants`, { application_id: app, user_id: userId, resource_id: resource, scopes: ["example:read"] });
  expect(g.status).toBe(201);
  return { z, grant: g.body.id };
}

describe("a grant deleted (case 23)", () => {
  test("every active session of its subject in the zone is revoked (grant_revoked), one signed caracal.sessions.revoke entry each", async () => {
    const { z, grant } = await grantFor("user-1");
    const a = await emit("session", "--zone", z, "--subject", "user-1");
    const b = await emit("session", "--zone", z, "--subject", "user-1", "--type", "application");
    const done = await emit("session", "--zone", z, "--subject", "user-1");
    const other = await emit("session", "--zone", z, "--subject", "user-2");
    await emit("session", "--zone", z, "--event", "expired", "--id", done.session_id);
    await until(c, `/v1/zones/${z}/sessions?status=expired`, (x) => x.items.length === 1);
    await until(c, `/v1/zones/${z}/sessions`, (x) => x.items.length === 4);
    expect((await c.http().delete(`/v1/zones/${z}/grants/${grant}`).set(c.auth())).status).toBe(204);
    await until(c, `/v1/zones/${z}/sessions?status=revoked`, (x) => x.items.length === 2);
    const rows = await sessionsOf(z);
    for (const id of [a.session_id, b.session_id]) expect(rows.get(id)).toMatchObject({ status: "revoked", revoked_reason: "grant_revoked" });
    expect(rows.get(done.session_id)).toMatchObject({ status: "expired" });
    expect(rows.get(other.session_id)).toMatchObject({ status: "active" });

    const revokes = await eventually(async () => {
      const list = (await entries(r, stream("caracal.sessions.revoke"))).filter((e) => e.zone_id === z);
      return list.length === 2 ? list : undefined;
    });
    expect(revokes.map((e) => e.session_id).sort()).toEqual([a.session_id, b.session_id].sort());
    for (const e of revokes) {
      const { _id, ...fields } = e;
      expect(Object.keys(fields).sort()).toEqual(["_sig", "grant_id", "kid", "outbox_id", "reason", "session_id", "zone_id"]);
      expect(fields).toMatchObject({ reason: "grant_revoked", grant_id: grant, zone_id: z });
      expect(verify(keys, stream("caracal.sessions.revoke"), fields)).toBe(true);
      expect(verify(keys, "caracal.policy.invalidate", fields)).toBe(false);
    }
  });

  test("the same zone event delivered again revokes nothing twice and publishes nothing new", async () => {
    const { z, grant } = await grantFor("user-9");
    await emit("session", "--zone", z, "--subject", "user-9");
    await until(c, `/v1/zones/${z}/sessions`, (x) => x.items.length === 1);
    expect((await c.http().delete(`/v1/zones/${z}/grants/${grant}`).set(c.auth())).status).toBe(204);
    await until(c, `/v1/zones/${z}/sessions?status=revoked`, (x) => x.items.length === 1);
    await eventually(async () => ((await entries(r, stream("caracal.sessions.revoke"))).some((e) => e.zone_id === z) ? true : undefined));
    const recent = await r.xrevrange(stream("caracal.zone.events"), "+", "-", "COUNT", 5000);
    const [_id, flat] = recent.find(([, f]) => f.includes(grant) && f.includes("deleted"))!;
    const fields = Object.fromEntries(flat.flatMap((v, i) => (i % 2 ? [] : [[v, flat[i + 1]!]])));
    const svc = c.brokers.sessions!.getLocalService("sessions") as any;
    await svc.revocations.handle([{ id: _id, fields, deliveries: 2 }]);
    await new Promise((res) => setTimeout(res, 300));
    expect((await entries(r, stream("caracal.sessions.revoke"))).filter((e) => e.zone_id === z)).toHaveLength(1);
  });
});

describe("a DCR shutdown with revoke_live", () => {
  test("the apps' sessions and descendants revoked, their agent sessions and descendants terminated, with the entries of §12.1", async () => {
    const z = await newZone(c, { dcr_enabled: true });
    const dcr = await c.http().post(`/v1/zones/${z}/applications/dcr`).set(c.auth()).send({ name: "short-lived" });
    expect(dcr.status).toBe(201);
    const app = dcr.body.id as string;
    const appSession = await emit("session", "--zone", z, "--type", "application", "--subject", app);
    const child = await emit("session", "--zone", z, "--subject", "user-1", "--parent", appSession.session_id);
    const unrelated = await emit("session", "--zone", z, "--subject", "user-2");
    const tree = await emit("spawn-tree", "--zone", z, "--depth", "1", "--width", "2", "--application", app, "--subject-session", appSession.session_id);
    const otherAgent = await emit("agent", "--zone", z, "--event", "spawn", "--application", "managed-app");
    await emit("agent", "--zone", z, "--event", "suspend", "--id", tree.leaves[0]);
    await until(c, `/v1/zones/${z}/agent-sessions?status=suspended`, (x) => x.items.length === 1);
    await until(c, `/v1/zones/${z}/sessions`, (x) => x.items.length === 3);

    const off = await c.http().patch(`/v1/zones/${z}`).set(c.auth()).send({ dcr_enabled: false, dcr_shutdown: "revoke_live" });
    expect(off.status).toBe(200);

    await until(c, `/v1/zones/${z}/agent-sessions?status=terminated`, (x) => x.items.length === 3);
    await until(c, `/v1/zones/${z}/sessions?status=revoked`, (x) => x.items.length === 2);
    const sessions = await sessionsOf(z);
    for (const id of [appSession.session_id, child.session_id]) expect(sessions.get(id)).toMatchObject({ status: "revoked", revoked_reason: "dcr_shutdown" });
    expect(sessions.get(unrelated.session_id)).toMatchObject({ status: "active" });
    const agents = await agentsOf(z);
    for (const id of [tree.root, ...tree.leaves]) expect(agents.get(id)).toMatchObject({ status: "terminated", termination_reason: "dcr_shutdown", child_count: 0 });
    expect(agents.get(otherAgent.agent_session_id)).toMatchObject({ status: "active" });

    const revokes = await eventually(async () => {
      const list = (await entries(r, stream("caracal.sessions.revoke"))).filter((e) => e.zone_id === z);
      return list.length === 5 ? list : undefined;
    });
    const bySession = revokes.filter((e) => !e.agent_session_id).map((e) => e.session_id).sort();
    expect(bySession).toEqual([appSession.session_id, child.session_id].sort());
    const byAgent = revokes.filter((e) => e.agent_session_id);
    expect(byAgent.map((e) => e.agent_session_id).sort()).toEqual([tree.root, ...tree.leaves].sort());
    expect(byAgent.every((e) => e.session_id === appSession.session_id && e.reason === "dcr_shutdown")).toBe(true);
    const terminates = (await entries(r, stream("caracal.agents.lifecycle"))).filter((e) => e.zone_id === z && e.event === "terminate");
    expect(terminates.map((e) => [e.agent_session_id, e.parent_id ?? null, e.reason]).sort()).toEqual(
      [[tree.root, null, "dcr_shutdown"], ...tree.leaves.map((l: string) => [l, tree.root, "dcr_shutdown"])].sort(),
    );
    for (const e of [...revokes, ...terminates]) {
      const { _id, ...fields } = e;
      const name = e.event ? stream("caracal.agents.lifecycle") : stream("caracal.sessions.revoke");
      expect(verify(keys, name, fields)).toBe(true);
    }
  });
});

describe("a zone archived", () => {
  test("with the sessions process down while it happens: once back, the zone's active sessions expire and nothing new is accepted", async () => {
    const z = await newZone(c);
    const a = await emit("session", "--zone", z, "--subject", "user-1");
    const b = await emit("session", "--zone", z, "--subject", "user-2");
    await emit("session", "--zone", z, "--event", "revoked", "--id", b.session_id, "--reason", "logout");
    await until(c, `/v1/zones/${z}/sessions?status=revoked`, (x) => x.items.length === 1);
    expect(await c.brokers.gateway!.call("sessions.zoneStats", { zone_id: z })).toEqual({ active: 1 });

    await c.stopProcess("sessions");
    expect((await c.http().delete(`/v1/zones/${z}`).set(c.auth())).status).toBe(204);
    const late = await emit("session", "--zone", z, "--subject", "user-3");
    await new Promise((res) => setTimeout(res, 500));
    await c.restart("sessions");

    await until(c, `/v1/zones/${z}/sessions?status=expired`, (x) => x.items.length === 1, 15_000);
    const rows = await sessionsOf(z);
    expect(rows.get(a.session_id)).toMatchObject({ status: "expired", revoked_at: null, revoked_reason: null });
    expect(rows.get(b.session_id)).toMatchObject({ status: "revoked", revoked_reason: "logout" });
    expect(rows.has(late.session_id)).toBe(false);
    const parked = await eventually(async () => (await entries(r, stream("caracal.sessions.lifecycle.dlq"))).find((e) => e.entry_id === late.entry_ids[0]), 10_000);
    expect(parked.reason).toBe("zone_archived");
    expect(await c.brokers.gateway!.call("sessions.zoneStats", { zone_id: z })).toEqual({ active: 0 });
  });
});
