// Ingest of the three runtime streams through the emit command, against the real servers.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import type Redis from "ioredis";
import { eventually, type Cluster } from "../helpers/cluster";
import { sessionsCluster, emit, newZone, until, dropZoneEventsGroup, redis, entries } from "./helpers";
import { newId } from "../../shared/ids";
import { TEST_STREAMS_KEY } from "../helpers/cluster";

let c: Cluster;
let r: Redis;
let zone: string;
beforeAll(async () => {
  c = await sessionsCluster();
  r = redis();
  zone = await newZone(c);
});
afterAll(async () => {
  await c.stop();
  await dropZoneEventsGroup(c);
  r.disconnect();
});

const stream = (name: string) => c.stream(name);
const svc = () => c.brokers.sessions!.getLocalService("sessions") as any;
const session = async (id: string) => (await c.http().get(`/v1/zones/${zone}/sessions?limit=1000`).set(c.auth())).body.items.find((s: any) => s.id === id);
const agents = async (z = zone) => (await c.http().get(`/v1/zones/${z}/agent-sessions?limit=1000`).set(c.auth())).body.items as any[];
const agent = async (id: string) => (await agents()).find((a) => a.id === id);
/** Waits until the group has read every entry of `name` and holds none unacknowledged (handled and stored). */
const settled = (name: string) =>
  eventually(async () => {
    const groups = (await r.xinfo("GROUPS", stream(name))) as unknown[][];
    const group = groups.map((row) => Object.fromEntries(row.flatMap((v, i) => (i % 2 ? [] : [[String(v), row[i + 1]]])))).find((g) => g.name === `${c.namespace}.sessions`);
    return group && Number(group.pending) === 0 && Number(group.lag) === 0 ? true : undefined;
  }, 10_000, 50);
const dlq = async (name: string) => entries(r, stream(`${name}.dlq`));

describe("caracal.sessions.lifecycle", () => {
  test("a session created is listed with every field of §3 (claims never)", async () => {
    const parent = await emit("session", "--zone", zone, "--type", "application", "--subject", "app-1", "--ttl", "600");
    const child = await emit("session", "--zone", zone, "--subject", "user-7", "--parent", parent.session_id);
    await settled("caracal.sessions.lifecycle");
    const s = await session(child.session_id);
    expect(Object.keys(s)).toEqual(["id", "zone_id", "session_type", "subject_id", "parent_id", "status", "expires_at", "authenticated_at", "created_at", "revoked_at", "revoked_reason"]);
    expect(s).toMatchObject({ id: child.session_id, zone_id: zone, session_type: "user", subject_id: "user-7", parent_id: parent.session_id, status: "active", revoked_at: null, revoked_reason: null });
    const p = await session(parent.session_id);
    expect(new Date(p.expires_at).getTime() - new Date(p.created_at).getTime()).toBe(600_000);
    expect(p.authenticated_at).toBe(p.created_at);
  });

  test("revoked: the session and its active descendants, with the entry's reason; expired: only that one", async () => {
    const root = await emit("session", "--zone", zone, "--subject", "u-rev");
    const kid = await emit("session", "--zone", zone, "--subject", "u-rev", "--parent", root.session_id);
    const grandkid = await emit("session", "--zone", zone, "--subject", "u-rev", "--parent", kid.session_id);
    const other = await emit("session", "--zone", zone, "--subject", "u-exp");
    await emit("session", "--zone", zone, "--event", "revoked", "--id", root.session_id, "--reason", "logout");
    await emit("session", "--zone", zone, "--event", "expired", "--id", other.session_id);
    await settled("caracal.sessions.lifecycle");
    for (const id of [root.session_id, kid.session_id, grandkid.session_id]) {
      expect(await session(id)).toMatchObject({ status: "revoked", revoked_reason: "logout", revoked_at: expect.stringMatching(/Z$/) });
    }
    expect(await session(other.session_id)).toMatchObject({ status: "expired", revoked_at: null, revoked_reason: null });
  });

  test("a revocation keeps the reason a session already had; revoking without a reason says session_revoked", async () => {
    const s = await emit("session", "--zone", zone);
    await emit("session", "--zone", zone, "--event", "revoked", "--id", s.session_id);
    await emit("session", "--zone", zone, "--event", "revoked", "--id", s.session_id, "--reason", "later");
    await settled("caracal.sessions.lifecycle");
    expect(await session(s.session_id)).toMatchObject({ status: "revoked", revoked_reason: "session_revoked" });
  });

  test("the command line publishes the same entries (npm run emit -- session …)", async () => {
    const node = process.execPath;
    const { stdout } = await promisify(execFile)(node, ["--import", "tsx", join(__dirname, "../../deploy/emit/index.ts"), "session", "--zone", zone, "--subject", "cli-user"], { env: process.env, cwd: join(__dirname, "../..") });
    const out = JSON.parse(stdout);
    expect(out.stream).toBe(stream("caracal.sessions.lifecycle"));
    await settled("caracal.sessions.lifecycle");
    expect(await session(out.session_id)).toMatchObject({ subject_id: "cli-user", status: "active" });
  });
});

describe("caracal.agents.lifecycle", () => {
  test("a spawn tree of depth 2 and width 3 keeps depth and child_count; the fields of §4 in order", async () => {
    const z = await newZone(c);
    const tree = await emit("spawn-tree", "--zone", z, "--depth", "2", "--width", "3", "--labels", "voice,worker", "--lifecycle", "service");
    expect(tree.levels).toEqual([1, 3, 9]);
    await settled("caracal.agents.lifecycle");
    const rows = (await until(c, `/v1/zones/${z}/agent-sessions?limit=100`, (b) => b.items.length === 13)).items;
    expect(Object.keys(rows[0])).toEqual(["id", "application_id", "parent_id", "status", "lifecycle", "labels", "depth", "child_count", "spawned_at", "last_active_at", "terminated_at", "termination_reason", "ttl_seconds"]);
    const byDepth = (d: number) => rows.filter((a: any) => a.depth === d);
    expect(byDepth(0).map((a: any) => [a.id, a.parent_id, a.child_count])).toEqual([[tree.root, null, 3]]);
    expect(byDepth(1).map((a: any) => a.child_count)).toEqual([3, 3, 3]);
    expect(byDepth(2).map((a: any) => a.child_count)).toEqual(Array(9).fill(0));
    expect(rows.every((a: any) => a.lifecycle === "service" && a.labels.join(" ") === "voice worker" && a.application_id === tree.application_id && a.status === "active")).toBe(true);
  });

  test("terminate: the agent and its live subtree (parent_terminated), the parent's child_count drops by one", async () => {
    const z = await newZone(c);
    const tree = await emit("spawn-tree", "--zone", z, "--depth", "2", "--width", "2");
    let rows = (await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.length === 7)).items;
    const middle = rows.find((a: any) => a.depth === 1);
    await emit("agent", "--zone", z, "--event", "terminate", "--id", middle.id, "--reason", "done");
    await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.filter((a: any) => a.status === "terminated").length === 3);
    await settled("caracal.agents.lifecycle");
    rows = await agents(z);
    const byId = new Map(rows.map((a: any) => [a.id, a]));
    expect(byId.get(middle.id)).toMatchObject({ status: "terminated", termination_reason: "done", child_count: 0, terminated_at: expect.stringMatching(/Z$/) });
    for (const kid of rows.filter((a: any) => a.parent_id === middle.id)) expect(kid).toMatchObject({ status: "terminated", termination_reason: "parent_terminated" });
    expect(byId.get(tree.root)).toMatchObject({ status: "active", child_count: 1 });
  });

  test("suspend reaches the active descendants; resume only the named agent; entries apply in stream order", async () => {
    const z = await newZone(c);
    const tree = await emit("spawn-tree", "--zone", z, "--depth", "1", "--width", "2");
    await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.length === 3);
    await emit("agent", "--zone", z, "--event", "suspend", "--id", tree.root, "--reason", "requested");
    let rows = (await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.every((a: any) => a.status === "suspended"))).items;
    expect(rows).toHaveLength(3);
    await emit("agent", "--zone", z, "--event", "resume", "--id", tree.root);
    rows = (await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.some((a: any) => a.status === "active"))).items;
    expect(rows.map((a: any) => [a.depth, a.status]).sort()).toEqual([[0, "active"], [1, "suspended"], [1, "suspended"]]);
  });
});

describe("child_count under a burst", () => {
  test("spawns, terminates and out-of-order children across overlapping batches: every count is its live children", async () => {
    const z = await newZone(c);
    const { Emitter } = await import("../../deploy/emit/emitter");
    const { agentSpawn, agentTransition } = await import("../../deploy/emit/builders");
    const emitter = new Emitter(r, { kid: "k1", key: Buffer.from(TEST_STREAMS_KEY, "hex") }, c.stream(""));
    const ids: string[] = [];
    const parentOf = new Map<string, string | null>();
    const list = [];
    for (let i = 0; i < 150; i++) {
      const id = newId();
      const parent = i % 3 === 0 || !ids.length ? null : ids[Math.floor((i * 7919) % ids.length)]!;
      ids.push(id);
      parentOf.set(id, parent);
      list.push(agentSpawn({ zone: z, id, application: "app", parent }));
      if (i % 5 === 4) list.push(agentTransition({ zone: z, id: ids[(i * 31) % ids.length]!, event: "terminate" }));
    }
    // Some children published before their parents, in small pieces so that batches overlap.
    const shuffled = [...list.slice(40, 60), ...list.slice(0, 40), ...list.slice(60)];
    for (let i = 0; i < shuffled.length; i += 7) await emitter.publish("caracal.agents.lifecycle", shuffled.slice(i, i + 7));
    await until(c, `/v1/zones/${z}/agent-sessions?limit=1000`, (b) => b.items.length === 150, 20_000);
    await settled("caracal.agents.lifecycle");
    const rows = await agents(z);
    const live = new Map<string, number>();
    for (const a of rows) if (a.parent_id && a.status !== "terminated") live.set(a.parent_id, (live.get(a.parent_id) ?? 0) + 1);
    const wrong = rows.filter((a) => a.child_count !== (a.status === "terminated" ? 0 : (live.get(a.id) ?? 0)) && !(a.status === "terminated" && live.get(a.id)));
    expect(wrong.map((a) => [a.id, a.status, a.child_count, live.get(a.id) ?? 0])).toEqual([]);
    for (const a of rows) expect(a.depth).toBe(a.parent_id ? rows.find((p) => p.id === a.parent_id)!.depth + 1 : 0);
  });
});

describe("caracal.stepup.challenges", () => {
  test("created with the defaults of §5, then consumed (kept, not shown)", async () => {
    const s = await emit("session", "--zone", zone);
    const ch = await emit("challenge", "--zone", zone, "--session", s.session_id);
    const mfa = await emit("challenge", "--zone", zone, "--type", "mfa");
    const got = await until(c, `/v1/zones/${zone}/step-up-challenges/${ch.challenge_id}`, () => true);
    expect(got).toEqual({
      id: ch.challenge_id,
      zone_id: zone,
      session_id: s.session_id,
      challenge_type: "human_approval",
      metadata_json: { requested_scopes: ["read"], resources: ["resource://demo"] },
      created_at: expect.stringMatching(/Z$/),
      expires_at: expect.stringMatching(/Z$/),
      satisfied_at: null,
      approver_subject_id: null,
    });
    expect(new Date(got.expires_at).getTime() - new Date(got.created_at).getTime()).toBe(30 * 60_000);
    const m = await until(c, `/v1/zones/${zone}/step-up-challenges/${mfa.challenge_id}`, () => true);
    expect(m).toMatchObject({ session_id: "", metadata_json: {} });
    expect(new Date(m.expires_at).getTime() - new Date(m.created_at).getTime()).toBe(5 * 60_000);
    await emit("challenge", "--zone", zone, "--event", "consumed", "--id", ch.challenge_id);
    await settled("caracal.stepup.challenges");
    const stored = await svc().models.Challenge.findById(ch.challenge_id).lean();
    expect(stored.consumed_at).toBeInstanceOf(Date);
  });
});

describe("out of order and redelivered entries", () => {
  test("a terminate before its spawn is held, then applied when the spawn comes", async () => {
    const id = newId();
    await emit("agent", "--zone", zone, "--event", "terminate", "--id", id, "--reason", "early");
    await settled("caracal.agents.lifecycle");
    expect((await c.brokers.gateway!.call<any>("sessions.ingestStats")).held).toBeGreaterThanOrEqual(1);
    await emit("agent", "--zone", zone, "--event", "spawn", "--id", id, "--application", "app-x");
    await eventually(async () => ((await agent(id))?.status === "terminated" ? true : undefined));
    expect(await agent(id)).toMatchObject({ status: "terminated", termination_reason: "early" });
    expect(await svc().models.Held.countDocuments({ target: `agent:${id}` })).toBe(0);
  });

  test("a child spawned before its parent waits for it: depth 1, the parent counts it", async () => {
    const parent = newId();
    const child = newId();
    await emit("agent", "--zone", zone, "--event", "spawn", "--id", child, "--application", "app-y", "--parent", parent);
    await settled("caracal.agents.lifecycle");
    expect(await agent(child)).toBeUndefined();
    await emit("agent", "--zone", zone, "--event", "spawn", "--id", parent, "--application", "app-y");
    await eventually(async () => ((await agent(child)) ? true : undefined));
    await settled("caracal.agents.lifecycle");
    expect(await agent(child)).toMatchObject({ depth: 1, parent_id: parent });
    expect(await agent(parent)).toMatchObject({ depth: 0, child_count: 1 });
  });

  test("a revocation before its session, and a consumption before its challenge, are applied when they come", async () => {
    const sid = newId();
    const cid = newId();
    await emit("session", "--zone", zone, "--event", "revoked", "--id", sid, "--reason", "early");
    await emit("challenge", "--zone", zone, "--event", "consumed", "--id", cid);
    await settled("caracal.sessions.lifecycle");
    await settled("caracal.stepup.challenges");
    await emit("session", "--zone", zone, "--id", sid);
    await emit("challenge", "--zone", zone, "--id", cid);
    await eventually(async () => ((await session(sid))?.status === "revoked" ? true : undefined));
    expect(await session(sid)).toMatchObject({ revoked_reason: "early" });
    await eventually(async () => ((await svc().models.Challenge.findById(cid).lean())?.consumed_at ? true : undefined));
  });

  test("an entry handled twice (a redelivery) changes nothing: one row, the same count, an older suspend skipped", async () => {
    const z = await newZone(c);
    const tree = await emit("spawn-tree", "--zone", z, "--depth", "1", "--width", "2");
    await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.length === 3);
    const suspend = await emit("agent", "--zone", z, "--event", "suspend", "--id", tree.root);
    await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.every((a: any) => a.status === "suspended"));
    await emit("agent", "--zone", z, "--event", "resume", "--id", tree.root);
    await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.some((a: any) => a.status === "active"));
    // The same entries again, by their ids, as the consumer would hand them over after a crash before XACK.
    const all = await entries(r, stream("caracal.agents.lifecycle"));
    const again = all.filter((e) => e.zone_id === z).map(({ _id, ...fields }) => ({ id: _id, fields, deliveries: 2 }));
    expect(again.find((e) => e.id === suspend.entry_ids[0])).toBeDefined();
    await svc().dispatch(stream("caracal.agents.lifecycle"), again);
    const rows = await agents(z);
    expect(rows).toHaveLength(3);
    expect(rows.find((a) => a.id === tree.root)).toMatchObject({ status: "active", child_count: 2 });
  });
});

describe("dead-letter stream", () => {
  test.each([
    ["unsigned", "missing_signature", ["--unsigned"]],
    ["badly signed", "bad_signature", ["--bad-signature"]],
    ["without zone_id", "malformed:zone_id", ["--unset", "zone_id"]],
    ["with a bad expires_at", "malformed:expires_at", ["--set", "expires_at=tomorrow"]],
    ["with an unknown session_type", "malformed:session_type", ["--set", "session_type=robot"]],
    ["with an unknown event", "unknown_event:paused", ["--set", "event=paused"]],
    ["with claims that are not a JSON object", "malformed:claims_json", ["--set", "claims_json=[1]"]],
  ])("a session entry %s is parked with reason %s and never stored", async (_what, reason, spoil) => {
    const out = await emit("session", "--zone", zone, ...spoil);
    const parked = await eventually(async () => (await dlq("caracal.sessions.lifecycle")).find((e) => e.entry_id === out.entry_ids[0]));
    expect(parked).toMatchObject({ reason, stream: stream("caracal.sessions.lifecycle"), group: `${c.namespace}.sessions` });
    expect(await session(out.session_id)).toBeUndefined();
  });

  test("agent entries: labels that are not a JSON array of labels, a missing application_id", async () => {
    const a = await emit("agent", "--zone", zone, "--event", "spawn", "--application", "app", "--set", "labels=voice worker");
    const b = await emit("agent", "--zone", zone, "--event", "spawn", "--application", "app", "--unset", "application_id");
    for (const [out, reason] of [[a, "malformed:labels"], [b, "malformed:application_id"]] as const) {
      const parked = await eventually(async () => (await dlq("caracal.agents.lifecycle")).find((e) => e.entry_id === out.entry_ids[0]));
      expect(parked.reason).toBe(reason);
    }
  });

  test("a creation for an unknown zone (zone_not_found) or an archived zone (zone_archived) is refused", async () => {
    const gone = await newZone(c);
    expect((await c.http().delete(`/v1/zones/${gone}`).set(c.auth())).status).toBe(204);
    const unknown = await emit("challenge", "--zone", "no-such-zone");
    const archived = await emit("challenge", "--zone", gone);
    const find = (id: string) => eventually(async () => (await dlq("caracal.stepup.challenges")).find((e) => e.entry_id === id));
    expect((await find(unknown.entry_ids[0])).reason).toBe("zone_not_found");
    expect((await find(archived.entry_ids[0])).reason).toBe("zone_archived");
  });

  test("an entry copied to another stream fails its signature there", async () => {
    const out = await emit("session", "--zone", zone);
    const [first] = await r.xrange(stream("caracal.sessions.lifecycle"), out.entry_ids[0], out.entry_ids[0]);
    const copied = await r.xadd(stream("caracal.stepup.challenges"), "*", ...first![1]);
    const parked = await eventually(async () => (await dlq("caracal.stepup.challenges")).find((e) => e.entry_id === copied));
    expect(parked.reason).toBe("bad_signature");
  });
});
