// The read routes and step-up satisfy (reference-ops cases 18–22 and 25), CSV exports against golden files.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type Redis from "ioredis";
import { eventually, type Cluster } from "../helpers/cluster";
import { sessionsCluster, emit, newZone, until, dropZoneEventsGroup, redis, entries } from "./helpers";
import { verify } from "../../shared/signing";
import { TEST_STREAMS_KEY } from "../helpers/cluster";

let c: Cluster;
let r: Redis;
let writer: { id: string; token: string };
let reader: { id: string; token: string };
beforeAll(async () => {
  // With the audit process: case 19 is read through GET …/overview, which asks sessions.zoneStats.
  c = await sessionsCluster(["zones", "applications", "providers", "policies", "audit", "sessions"]);
  r = redis();
  const mint = async (capability: string) => (await c.http().post("/v1/admin-tokens").set(c.auth()).send({ name: `t-${capability}`, scope: "global", capability })).body;
  writer = await mint("write");
  reader = await mint("read");
});
afterAll(async () => {
  await c.stop();
  await dropZoneEventsGroup(c);
  r.disconnect();
});

const get = (path: string, token?: string) => c.http().get(path).set(c.auth(token));
const golden = (name: string) => readFileSync(join(__dirname, "golden", name), "utf8");
const decode = (cursor: string) => JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
const T = (hhmm: string) => `2026-05-01T00:${hhmm}:00.000Z`;

describe("GET …/sessions (case 18, 19)", () => {
  let z: string;
  beforeAll(async () => {
    z = await newZone(c);
    await emit("session", "--zone", z, "--id", "s-1", "--set", `created_at=${T("01")},authenticated_at=${T("01")},expires_at=2030-01-01T00:00:00.000Z`);
    await emit("session", "--zone", z, "--id", "s-2", "--type", "application", "--subject", "app-1", "--set", `created_at=${T("02")},authenticated_at=${T("02")},expires_at=2030-01-01T00:00:00.000Z`);
    await emit("session", "--zone", z, "--id", "s-3", "--subject", "Son, of Anton", "--parent", "s-1", "--set", `created_at=${T("03")},authenticated_at=${T("02")},expires_at=2026-05-01T01:03:00.000Z`);
    await emit("session", "--zone", z, "--event", "revoked", "--id", "s-3", "--reason", 'said "bye", then left', "--set", `occurred_at=${T("10")}`);
    await until(c, `/v1/zones/${z}/sessions?status=revoked`, (b) => b.items.length === 1);
  });

  test("format=csv: fixed columns, CRLF, quoting, empty nulls, file name sessions-<zone>.csv (golden)", async () => {
    const res = await get(`/v1/zones/${z}/sessions?format=csv`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/csv; charset=utf-8");
    expect(res.headers["content-disposition"]).toBe(`attachment; filename="sessions-${z}.csv"`);
    expect(res.text).toBe(golden("sessions.csv"));
  });

  test("status=revoked&format=csv: the header exactly, then the revoked row only", async () => {
    const res = await get(`/v1/zones/${z}/sessions?status=revoked&format=csv`);
    const lines = res.text.split("\r\n");
    expect(lines[0]).toBe("id,session_type,subject_id,parent_id,status,authenticated_at,created_at,expires_at,revoked_at,revoked_reason");
    expect(lines.slice(1)).toEqual([golden("sessions.csv").split("\r\n")[1], ""]);
  });

  test("no rows: the header line and CRLF only", async () => {
    const res = await get(`/v1/zones/${z}/sessions?format=csv&subject_id=nobody`);
    expect(res.text).toBe("id,session_type,subject_id,parent_id,status,authenticated_at,created_at,expires_at,revoked_at,revoked_reason\r\n");
  });

  test("filters status, subject_id, session_type, parent_id; keyset pages of {items, next_cursor}", async () => {
    const ids = async (q: string) => (await get(`/v1/zones/${z}/sessions?${q}`)).body.items.map((s: any) => s.id);
    expect(await ids("")).toEqual(["s-3", "s-2", "s-1"]);
    expect(await ids("status=active")).toEqual(["s-2", "s-1"]);
    expect(await ids("subject_id=app-1")).toEqual(["s-2"]);
    expect(await ids("session_type=user")).toEqual(["s-3", "s-1"]);
    expect(await ids("parent_id=s-1")).toEqual(["s-3"]);
    const p1 = await get(`/v1/zones/${z}/sessions?limit=2`);
    expect(p1.body.items.map((s: any) => s.id)).toEqual(["s-3", "s-2"]);
    expect(decode(p1.body.next_cursor)).toMatchObject({ ts: T("02"), id: "s-2" });
    expect(p1.headers.link).toContain("rel=\"next\"");
    const p2 = await get(`/v1/zones/${z}/sessions?limit=2&cursor=${p1.body.next_cursor}`);
    expect(p2.body).toEqual({ items: [expect.objectContaining({ id: "s-1" })], next_cursor: null });
    const other = await get(`/v1/zones/${z}/sessions?limit=2&status=active&cursor=${p1.body.next_cursor}`);
    expect(other.status).toBe(400);
    expect(other.body.error).toBe("invalid_cursor");
  });

  test.each([["status=bogus"], ["status=active&status=revoked"], ["limit=0"], ["limit=1001"], ["session_type=robot"], ["format=xml"], ["parent_id=has space"]])("%s → 400 invalid_query", async (q) => {
    const res = await get(`/v1/zones/${z}/sessions?${q}`);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: "invalid_query", request_id: expect.any(String) });
  });

  test("case 19: an active session past its expires_at is listed as active, and not counted in overview.sessions.active", async () => {
    const zz = await newZone(c);
    const live = await emit("session", "--zone", zz);
    const past = await emit("session", "--zone", zz, "--ttl", "-60");
    const body = await until(c, `/v1/zones/${zz}/sessions?status=active`, (b) => b.items.length === 2);
    expect(body.items.map((s: any) => s.id).sort()).toEqual([live.session_id, past.session_id].sort());
    expect(await c.brokers.gateway!.call("sessions.zoneStats", { zone_id: zz })).toEqual({ active: 1 });
    const overview = await get(`/v1/zones/${zz}/overview`);
    expect(overview.status).toBe(200);
    expect(overview.body.sessions).toEqual({ active: 1 });
    await emit("session", "--zone", zz, "--event", "revoked", "--id", live.session_id);
    await eventually(async () => ((await c.brokers.gateway!.call<any, any>("sessions.zoneStats", { zone_id: zz })).active === 0 ? true : undefined));
    expect(await c.brokers.gateway!.call("sessions.zoneStats", { zone_id: "unknown-zone" })).toEqual({ active: 0 });
  });
});

describe("GET …/agent-sessions (case 20)", () => {
  let z: string;
  beforeAll(async () => {
    z = await newZone(c);
    await emit("agent", "--zone", z, "--event", "spawn", "--id", "a-1", "--application", "app-1", "--set", `spawned_at=${T("01")}`);
    await emit("agent", "--zone", z, "--event", "spawn", "--id", "a-2", "--application", "app-1", "--parent", "a-1", "--labels", "refund-worker", "--set", `spawned_at=${T("02")}`);
    await emit("agent", "--zone", z, "--event", "spawn", "--id", "a-3", "--application", "app-1", "--parent", "a-1", "--labels", "voice,worker", "--lifecycle", "service", "--ttl", "60", "--set", `spawned_at=${T("03")}`);
    await emit("agent", "--zone", z, "--event", "terminate", "--id", "a-3", "--reason", "done, finally", "--set", `occurred_at=${T("09")}`);
    // Terminated, and its parent recounted (the count follows the status change).
    await until(c, `/v1/zones/${z}/agent-sessions`, (b) => b.items.some((a: any) => a.id === "a-3" && a.status === "terminated") && b.items.some((a: any) => a.id === "a-1" && a.child_count === 1));
  });

  test("format=csv: the 13 columns, labels space-joined, file name agent-sessions-<zone>.csv (golden)", async () => {
    const res = await get(`/v1/zones/${z}/agent-sessions?format=csv`);
    expect(res.headers["content-disposition"]).toBe(`attachment; filename="agent-sessions-${z}.csv"`);
    expect(res.text).toBe(golden("agent-sessions.csv"));
  });

  test("status, lifecycle, label and limit=2: a cursor of the last row's spawned_at and id, null on the last page", async () => {
    const zz = await newZone(c);
    for (const [id, at] of [["w-1", "01"], ["w-2", "02"], ["w-3", "03"], ["w-4", "04"]]) {
      await emit("agent", "--zone", zz, "--event", "spawn", "--id", id!, "--application", "app", "--lifecycle", "service", "--labels", id === "w-4" ? "other" : "refund-worker,x", "--set", `spawned_at=${T(at!)}`);
      await emit("agent", "--zone", zz, "--event", "terminate", "--id", id!);
    }
    const q = `/v1/zones/${zz}/agent-sessions?status=terminated&lifecycle=service&label=refund-worker&limit=2`;
    await until(c, `/v1/zones/${zz}/agent-sessions?status=terminated`, (b) => b.items.length === 4);
    const body = (await get(q)).body;
    expect(body.items.map((a: any) => a.id)).toEqual(["w-3", "w-2"]);
    expect(decode(body.next_cursor)).toMatchObject({ ts: T("02"), id: "w-2" });
    const next = await get(`${q}&cursor=${body.next_cursor}`);
    expect(next.body).toEqual({ items: [expect.objectContaining({ id: "w-1" })], next_cursor: null });
    expect((await get(`/v1/zones/${zz}/agent-sessions?label=refund-worker,x`)).body.items.map((a: any) => a.id)).toEqual(["w-3", "w-2", "w-1"]);
    expect((await get(`/v1/zones/${zz}/agent-sessions?label=refund-worker,other`)).body.items).toEqual([]);
    expect((await get(`/v1/zones/${zz}/agent-sessions?label=refund`)).body.items).toEqual([]);
  });

  test("application_id and parent_id filters", async () => {
    const ids = async (q: string) => (await get(`/v1/zones/${z}/agent-sessions?${q}`)).body.items.map((a: any) => a.id);
    expect(await ids("parent_id=a-1")).toEqual(["a-3", "a-2"]);
    expect(await ids("application_id=app-1&status=active")).toEqual(["a-2", "a-1"]);
    expect(await ids("application_id=app-2")).toEqual([]);
  });

  test.each([["status=bogus"], ["lifecycle=forever"], ["label="], ["label=a b"], ["label=" + "x".repeat(65)], ["application_id=a&application_id=b"]])("%s → 400 invalid_query", async (q) => {
    const res = await get(`/v1/zones/${z}/agent-sessions?${q}`);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe("invalid_query");
  });
});

describe("step-up challenges (cases 21, 22, 25)", () => {
  let z: string;
  let session: string;
  beforeAll(async () => {
    z = await newZone(c);
    session = (await emit("session", "--zone", z, "--subject", "user-1")).session_id;
    await until(c, `/v1/zones/${z}/sessions`, (b) => b.items.length === 1);
  });
  const challenge = async (...extra: string[]) => {
    const out = await emit("challenge", "--zone", z, ...extra);
    await until(c, `/v1/zones/${z}/step-up-challenges/${out.challenge_id}`, () => true);
    return out.challenge_id as string;
  };
  const satisfy = (id: string, token = writer.token) => c.http().post(`/v1/zones/${z}/step-up-challenges/${id}/satisfy`).set(c.auth(token));

  test("case 21: limit=1 over two gives one item and a Link to the next page; limit=501 is invalid; another zone's id is 404", async () => {
    const zz = await newZone(c);
    const a = await emit("challenge", "--zone", zz);
    const b = await emit("challenge", "--zone", zz);
    const all = await until(c, `/v1/zones/${zz}/step-up-challenges`, (x) => x.items.length === 2);
    expect(all.items.map((x: any) => x.id).sort()).toEqual([a.challenge_id, b.challenge_id].sort());
    const page = await get(`/v1/zones/${zz}/step-up-challenges?limit=1`);
    expect(page.body.items).toHaveLength(1);
    expect(page.headers.link).toMatch(new RegExp(`^</v1/zones/${zz}/step-up-challenges\\?(limit=1&cursor=[A-Za-z0-9_-]+|cursor=[A-Za-z0-9_-]+&limit=1)>; rel="next"$`));
    expect((await get(`/v1/zones/${zz}/step-up-challenges?limit=501`)).body.error).toBe("invalid_query");
    const viaOther = await get(`/v1/zones/${z}/step-up-challenges/${a.challenge_id}`);
    expect(viaOther.status).toBe(404);
    expect(viaOther.body.error).toBe("challenge_not_found");
  });

  test("case 22: satisfied once by admin:<token id>, then 409; the signed entry the runtime waits for is published", async () => {
    const id = await challenge("--session", session);
    const res = await satisfy(id);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id, satisfied_at: expect.stringMatching(/Z$/), approver_subject_id: `admin:${writer.id}` });
    expect((await get(`/v1/zones/${z}/step-up-challenges/${id}`)).body).toMatchObject({ satisfied_at: res.body.satisfied_at, approver_subject_id: `admin:${writer.id}` });
    const again = await satisfy(id);
    expect(again.status).toBe(409);
    expect(again.body.error).toBe("challenge_not_satisfiable");
    const stream = c.stream("caracal.stepup.challenges");
    const entry = await eventually(async () => (await entries(r, stream)).find((e) => e.event === "satisfied" && e.challenge_id === id));
    expect(entry).toMatchObject({ zone_id: z, session_id: session, approver_subject_id: `admin:${writer.id}`, satisfied_at: res.body.satisfied_at, outbox_id: expect.any(String), kid: "k1" });
    const { _id, ...fields } = entry;
    const keys = [{ kid: "k1", key: Buffer.from(TEST_STREAMS_KEY, "hex") }];
    expect(verify(keys, stream, fields)).toBe(true);
    expect(verify(keys, "caracal.stepup.challenges", fields)).toBe(false);
  });

  test.each([
    ["expired", ["--expires-in", "-5"]],
    ["without a session", []],
    ["whose session does not exist", ["--session", "no-such-session"]],
  ])("case 22: a challenge %s is 409 challenge_not_satisfiable", async (_what, extra) => {
    const id = await challenge(...(extra as string[]));
    const res = await satisfy(id);
    expect(res.status).toBe(409);
    expect(res.body.error).toBe("challenge_not_satisfiable");
  });

  test("case 22: an unknown id is 409 (never 404); a read-only token is 403 admin_token_read_only", async () => {
    expect((await satisfy("no-such-challenge")).body.error).toBe("challenge_not_satisfiable");
    const id = await challenge("--session", session);
    const ro = await satisfy(id, reader.token);
    expect(ro.status).toBe(403);
    expect(ro.body.error).toBe("admin_token_read_only");
  });

  test("no self-approval: the session's subject is the approver string", async () => {
    const own = await emit("session", "--zone", z, "--subject", `admin:${writer.id}`);
    await until(c, `/v1/zones/${z}/sessions?subject_id=admin:${writer.id}`, (b) => b.items.length === 1);
    const id = await challenge("--session", own.session_id);
    expect((await satisfy(id)).status).toBe(409);
    expect((await satisfy(id, c.adminToken)).status).toBe(200);
  });

  test("case 25: a refused satisfy writes nothing: no event in the document, no entry on the stream", async () => {
    const id = await challenge("--expires-in", "-5", "--session", session);
    expect((await satisfy(id)).status).toBe(409);
    const stored = await (c.brokers.sessions!.getLocalService("sessions") as any).models.Challenge.findById(id).lean();
    expect(stored._outbox ?? []).toEqual([]);
    expect(stored.satisfied_at).toBeNull();
    await new Promise((res) => setTimeout(res, 300));
    expect((await entries(r, c.stream("caracal.stepup.challenges"))).filter((e) => e.event === "satisfied" && e.challenge_id === id)).toEqual([]);
  });
});
