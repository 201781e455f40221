// Decision audit against the real servers: signed events on caracal.audit.events, ingested by the audit
// service, read through the gateway. Reference-ops test cases 1–12 and 32, adapted to {items, next_cursor}.
import { ServiceBroker } from "moleculer";
import { startCluster, eventually, type Cluster } from "../helpers/cluster";
import { auditEntry, decisionEvent, publishAudit, AUDIT_STREAM } from "../../deploy/emit/audit";
import { AUDIT_KEY, publishDecisions, testRedis, waitForAudit, zoneId } from "./helpers";

let c: Cluster;
const redis = testRedis();
const get = (path: string) => c.http().get(path).set(c.auth());
const post = (path: string, body: unknown) => c.http().post(path).set(c.auth()).send(body as object);

beforeAll(async () => {
  c = await startCluster({ processes: ["zones", "audit", "policies"], env: { AUDIT_CLAIM_IDLE_SECS: "1" } });
}, 60_000);
afterAll(async () => {
  await c.stop();
  redis.disconnect();
});

/** Entries onto this cluster's decision stream. */
const publish = (entries: Record<string, string>[]) => publishAudit(redis, entries, c.stream(AUDIT_STREAM));
const T = (s: number) => `2026-05-01T00:00:0${s}.000Z`;
const decodeCursor = (cursor: string) => JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));

describe("GET /v1/zones/:zoneId/audit", () => {
  test("rows carry exactly the list columns, newest first, metadata redacted (cases 1, 6)", async () => {
    const z = zoneId();
    const meta = { token: "t", nested: { Authorization: "a" }, session_id: "s1", agent_session_id: "as1" };
    await publishDecisions(c, redis, [{ zoneId: z, at: T(1) }, { zoneId: z, at: T(3), metadata: meta }, { zoneId: z, at: T(2) }]);
    const rows = await waitForAudit(c, z, 3);
    expect(rows.map((r) => r.occurred_at)).toEqual([T(3), T(2), T(1)]);
    for (const r of rows) expect(Object.keys(r).sort()).toEqual(["decision", "evaluation_status", "event_type", "id", "ingested_at", "metadata_json", "occurred_at", "request_id", "zone_id"]);
    expect(rows[0].metadata_json).toEqual({ token: "[redacted]", nested: { Authorization: "[redacted]" }, session_id: "[redacted]", agent_session_id: "as1" });
    const bySession = await get(`/v1/zones/${z}/audit?session_id=s1`);
    expect(bySession.status).toBe(200);
    expect(bySession.body.items.map((r: any) => r.id)).toEqual([rows[0].id]);
    const other = await get(`/v1/zones/${zoneId()}/audit`);
    expect(other.body).toEqual({ items: [], next_cursor: null });
  });

  test.each(["limit=0", "limit=1001", "limit=1.5", "decision=maybe", "decision=allow&decision=deny", "since=2026-05-01T00:00:00%2B05:30", "since=2026-05-01", "until=2026-05-01T00:00Z", "format=xml", "label=" + "x".repeat(65)])(
    "?%s is 400 invalid_query (case 2)",
    async (q) => {
      const r = await get(`/v1/zones/z1/audit?${q}`);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe("invalid_query");
      expect(r.body.details.issues.length).toBeGreaterThan(0);
    },
  );

  test("microsecond since is accepted (case 2)", async () => {
    const r = await get("/v1/zones/z1/audit?since=2026-05-01T00:00:00.123456Z");
    expect(r.status).toBe(200);
  });

  test("since is inclusive, until exclusive (case 3)", async () => {
    const z = zoneId();
    await publishDecisions(c, redis, [{ zoneId: z, at: T(1) }, { zoneId: z, at: T(2) }, { zoneId: z, at: T(3) }]);
    await waitForAudit(c, z, 3);
    const r = await get(`/v1/zones/${z}/audit?since=${T(1)}&until=${T(3)}`);
    expect(r.body.items.map((x: any) => x.occurred_at)).toEqual([T(2), T(1)]);
  });

  test("pages with a cursor of {ts, id} and Link; the last page has neither (case 4)", async () => {
    const z = zoneId();
    await publishDecisions(c, redis, [{ zoneId: z, at: T(1) }, { zoneId: z, at: T(2) }, { zoneId: z, at: T(3) }]);
    const all = await waitForAudit(c, z, 3);
    const p1 = await get(`/v1/zones/${z}/audit?limit=2`);
    expect(p1.body.items.map((x: any) => x.id)).toEqual([all[0].id, all[1].id]);
    expect(decodeCursor(p1.body.next_cursor)).toEqual({ ts: T(2), id: all[1].id });
    expect(p1.headers.link).toMatch(/^<\/v1\/zones\/.+\/audit\?.*cursor=.*>; rel="next"$/);
    const p2 = await get(`/v1/zones/${z}/audit?limit=2&cursor=${p1.body.next_cursor}`);
    expect(p2.body).toEqual({ items: [all[2]], next_cursor: null });
    expect(p2.headers.link).toBeUndefined();
    // Our envelope: exactly two rows and limit=2 → no cursor (decision 1: null exactly when nothing is left).
    const z2 = zoneId();
    await publishDecisions(c, redis, [{ zoneId: z2, at: T(1) }, { zoneId: z2, at: T(2) }]);
    await waitForAudit(c, z2, 2);
    expect((await get(`/v1/zones/${z2}/audit?limit=2`)).body.next_cursor).toBeNull();
  });

  test("an undecodable cursor, or one with a bad ts, is 400 invalid_cursor; one from other filters too (case 5)", async () => {
    const bad = Buffer.from(JSON.stringify({ ts: "x", id: "y" })).toString("base64url");
    for (const cursor of ["not-json", bad]) {
      const r = await get(`/v1/zones/z1/audit?cursor=${cursor}`);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe("invalid_cursor");
    }
    const z = zoneId();
    await publishDecisions(c, redis, [{ zoneId: z, at: T(1) }, { zoneId: z, at: T(2) }]);
    await waitForAudit(c, z, 2);
    const p1 = await get(`/v1/zones/${z}/audit?limit=1`);
    const other = await get(`/v1/zones/${z}/audit?limit=1&decision=deny&cursor=${p1.body.next_cursor}`);
    expect(other.status).toBe(400);
    expect(other.body.error).toBe("invalid_cursor");
  });

  test("label matches array members exactly; decision, event_type, application_id, agent_session_id, request_id filter (case 7)", async () => {
    const z = zoneId();
    const base = { application_id: "app-1", agent_session_id: "as-1", session_id: "s-1" };
    const [a, b, d] = await publishDecisions(c, redis, [
      { zoneId: z, at: T(1), decision: "allow", metadata: { ...base, agent_labels: ["refund", "x"] } },
      { zoneId: z, at: T(2), decision: "deny", metadata: { ...base, agent_labels: ["refund-x"] } },
      { zoneId: z, at: T(3), decision: "deny", eventType: "replay_detected", metadata: { application_id: "app-2", agent_session_id: "as-2", agent_labels: [] } },
    ]);
    await waitForAudit(c, z, 3);
    const ids = async (q: string) => (await get(`/v1/zones/${z}/audit?${q}`)).body.items.map((x: any) => x.id);
    expect(await ids("label=refund")).toEqual([a!.id]);
    expect(await ids("label=refund-x")).toEqual([b!.id]);
    expect(await ids("decision=deny")).toEqual([d!.id, b!.id]);
    expect(await ids("event_type=replay_detected")).toEqual([d!.id]);
    expect(await ids("application_id=app-1")).toEqual([b!.id, a!.id]);
    expect(await ids("agent_session_id=as-2")).toEqual([d!.id]);
    expect(await ids(`request_id=${a!.request_id}`)).toEqual([a!.id]);
    expect(await ids("decision=deny&application_id=app-1")).toEqual([b!.id]);
  });

  test("fields projects in the asked order; bad fields are 400 invalid_fields before the cursor (case 8)", async () => {
    const z = zoneId();
    await publishDecisions(c, redis, [{ zoneId: z, at: T(1), metadata: { application_name: "n", resource: "r" } }, { zoneId: z, at: T(2), metadata: {} }]);
    await waitForAudit(c, z, 2);
    const r = await get(`/v1/zones/${z}/audit?fields=occurred_at,event_type,application_name,resource`);
    expect(r.status).toBe(200);
    expect(Object.keys(r.body.items[1])).toEqual(["occurred_at", "event_type", "application_name", "resource"]);
    // A metadata key the row does not have is left out.
    expect(Object.keys(r.body.items[0])).toEqual(["occurred_at", "event_type"]);
    for (const q of ["fields=id,zone_id", "fields=,,", "fields=metadata_json", "fields=session_id&cursor=not-json"]) {
      const bad = await get(`/v1/zones/${z}/audit?${q}`);
      expect(bad.status).toBe(400);
      expect(bad.body.error).toBe("invalid_fields");
    }
  });

  test("CSV exactly as §1.3: header, quoting, arrays space-joined, CRLF, file name (case 9)", async () => {
    const z = zoneId();
    await publishDecisions(c, redis, [{ zoneId: z, at: "2026-05-01T00:00:00.000Z", decision: "deny", metadata: { application_name: "Son, of Anton", requested_scopes: ["a", "b"] } }]);
    await waitForAudit(c, z, 1);
    const r = await get(`/v1/zones/${z}/audit?format=csv&fields=occurred_at,decision,application_name,requested_scopes`);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("text/csv; charset=utf-8");
    expect(r.headers["content-disposition"]).toBe(`attachment; filename="audit-${z}.csv"`);
    expect(r.text).toBe('occurred_at,decision,application_name,requested_scopes\r\n2026-05-01T00:00:00.000Z,deny,"Son, of Anton",a b\r\n');
    const all = await get(`/v1/zones/${z}/audit?format=csv`);
    expect(all.text.split("\r\n")[0]).toBe(
      "id,occurred_at,event_type,decision,evaluation_status,request_id,ingested_at,application_id,application_name,resource,requested_scopes,agent_session_id,agent_lifecycle,agent_labels,delegation_edge_id,delegation_hop_count,method,latency_ms,upstream_status,result_class,reason",
    );
    const empty = await get(`/v1/zones/${zoneId()}/audit?format=csv&fields=id,decision`);
    expect(empty.text).toBe("id,decision\r\n");
  });
});

describe("by-request and explain", () => {
  test("every event of a request, oldest first, with the policy fields; unknown 404; bad ids 400 (case 10)", async () => {
    const z = zoneId();
    const rid = `req-${Math.random().toString(36).slice(2)}`;
    await publishDecisions(c, redis, [
      { zoneId: z, requestId: rid, at: T(2), decision: "deny", policySetId: "ps1", policySetVersionId: "psv1" },
      { zoneId: z, requestId: rid, at: T(1), decision: "allow" },
      { zoneId: z, at: T(3) },
    ]);
    await waitForAudit(c, z, 3);
    const r = await get(`/v1/zones/${z}/audit/by-request/${rid}`);
    expect(r.status).toBe(200);
    // Our list envelope (decision 1), every event in one page.
    expect(r.body.next_cursor).toBeNull();
    expect(r.body.items.map((e: any) => e.occurred_at)).toEqual([T(1), T(2)]);
    expect(r.body.items[1]).toMatchObject({ policy_set_id: "ps1", policy_set_version_id: "psv1", manifest_sha: null, determining_policies_json: [{ policy: "deny-refunds-over-limit" }], diagnostics_json: [] });
    expect(r.body.items[1].metadata_json.session_id).toBe("[redacted]");
    const missing = await get(`/v1/zones/${z}/audit/by-request/missing`);
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe("request_not_found");
    for (const bad of ["with%20space", "x".repeat(129)]) {
      const b = await get(`/v1/zones/${z}/audit/by-request/${bad}`);
      expect(b.status).toBe(400);
      expect(b.body.error).toBe("invalid_params");
    }
  });

  test("explain: final deny, the denial's policy input is accepted as is by simulate and gives the same decision (cases 11, 12)", async () => {
    const zone = (await post("/v1/zones", { name: "Explain" })).body.id as string;
    const header = "# caracal:data-document\npackage caracal.authz\nimport rego.v1\n";
    const doc = async (name: string, content: string) => (await post(`/v1/zones/${zone}/policies`, { name, content })).body.version_id as string;
    const pvs = [await doc("apps", `${header}app_ids := {"payments": "app-payments"}\n`), await doc("grants", `${header}grants := {"resource://example": {"application": "payments", "roles": {"payment-execution": ["example:read"]}}}\n`)];
    const set = (await post(`/v1/zones/${zone}/policy-sets`, { name: "main" })).body.id as string;
    const version = (await post(`/v1/zones/${zone}/policy-sets/${set}/versions`, { manifest: pvs.map((id) => ({ policy_version_id: id })) })).body.id as string;

    const rid = `req-${Math.random().toString(36).slice(2)}`;
    const meta = { application_id: "app-payments", resource: "resource://example", requested_scopes: ["example:delete"], session_id: "raw-session", agent_session_id: "", delegation_edge_id: "" };
    await publishDecisions(c, redis, [
      { zoneId: zone, requestId: rid, at: T(1), decision: "allow", metadata: { ...meta, requested_scopes: ["example:read"] } },
      { zoneId: zone, requestId: rid, at: T(2), decision: "deny", metadata: meta },
    ]);
    await waitForAudit(c, zone, 2);
    const r = await get(`/v1/zones/${zone}/audit/by-request/${rid}/explain`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ request_id: rid, zone_id: zone, final_decision: "deny" });
    expect(r.body.events).toHaveLength(2);
    expect(r.body.denied).toHaveLength(1);
    const denial = r.body.denied[0];
    expect(denial.metadata.session_id).toBe("[redacted]");
    expect(denial.policy_input).toMatchObject({ schema_version: "2026-05-20", principal: { type: "Application", id: "app-payments", zone_id: zone }, action: { id: "TokenExchange" }, context: { actor_claims: {}, challenge_resolved: false }, session: { id: "raw-session" } });

    const sim = await post(`/v1/zones/${zone}/policy-sets/${set}/simulate`, { version_id: version, input: denial.policy_input });
    expect(sim.status).toBe(200);
    expect(sim.body.warnings).toEqual([]);
    expect(sim.body.explanation.evaluation).toBe("executed");
    expect(sim.body.result.decision).toBe("deny");

    const allowOnly = `req-${Math.random().toString(36).slice(2)}`;
    await publishDecisions(c, redis, [{ zoneId: zone, requestId: allowOnly, at: T(3), decision: "allow" }]);
    await waitForAudit(c, zone, 3);
    const a = await get(`/v1/zones/${zone}/audit/by-request/${allowOnly}/explain`);
    expect(a.body).toMatchObject({ final_decision: "allow", denied: [] });
    expect((await get(`/v1/zones/${zone}/audit/by-request/nope/explain`)).body.error).toBe("request_not_found");
  });
});

describe("ingest (§1.2, case 32)", () => {
  test("`emit audit` publishes signed events the service stores; with --wrong-sig they are parked", async () => {
    const { auditKind } = await import("../../deploy/emit/kinds/audit");
    const { Args } = await import("../../deploy/emit/args");
    const { Emitter } = await import("../../deploy/emit/emitter");
    const z = zoneId();
    const prefix = c.stream("");
    const out = await auditKind.run(new Args(["--zone", z, "--count", "30", "--rate", "1000", "--decision", "deny"]), new Emitter(redis, null, prefix));
    expect(out).toMatchObject({ stream: c.stream(AUDIT_STREAM), published: 30 });
    const rows = await waitForAudit(c, z, 30);
    expect(rows.every((r) => r.decision === "deny")).toBe(true);
    const from = await dlqTop();
    const bad = await auditKind.run(new Args(["--zone", z, "--wrong-sig"]), new Emitter(redis, null, prefix));
    expect((await dlqFor(from, (bad.first_event_ids as string[])[0]!)).reason).toBe("hmac_verify_failed");
  });

  /** DLQ entries written since `from` for one event id. */
  const dlqFor = (from: string, eventId: string) =>
    eventually(async () => {
      const rows = (await redis.xrange(`${c.stream(AUDIT_STREAM)}.dlq`, from, "+")) as [string, string[]][];
      const hit = rows.map(([, f]) => Object.fromEntries(f.flatMap((_, i) => (i % 2 ? [] : [[f[i], f[i + 1]]])))).find((f) => f.src_id === eventId);
      return hit as Record<string, string> | undefined;
    }, 10_000);
  const dlqTop = async () => ((await redis.xrevrange(`${c.stream(AUDIT_STREAM)}.dlq`, "+", "-", "COUNT", 1)) as unknown as [string][])[0]?.[0] ?? "0-0";
  const group = () => "audit-ingestor";
  const pendingOf = async (entryId: string) => ((await redis.xpending(c.stream(AUDIT_STREAM), group(), entryId, entryId, 10)) as unknown[]).length;

  test("a sig made with another key goes to the DLQ as hmac_verify_failed and is acknowledged", async () => {
    const from = await dlqTop();
    const z = zoneId();
    const e = decisionEvent({ zoneId: z });
    const [entryId] = await publish([auditEntry(e, Buffer.alloc(32, 7))]);
    const parked = await dlqFor(from, String(e.id));
    expect(parked).toMatchObject({ reason: "hmac_verify_failed", src_data: JSON.stringify(e), entry_id: entryId });
    expect(Number(parked.received_at)).toBeGreaterThan(Date.now() - 60_000);
    expect(await pendingOf(entryId!)).toBe(0);
    expect((await get(`/v1/zones/${z}/audit`)).body.items).toEqual([]);
  });

  test("bad JSON, missing fields and a missing data field go to the DLQ with their reason", async () => {
    const from = await dlqTop();
    await publish([{ id: "bad-json-1", data: "{nope", sig: "" }].map((f) => ({ ...f, sig: auditEntry({ id: f.id }, AUDIT_KEY, f.data).sig! })));
    expect((await dlqFor(from, "bad-json-1")).reason).toMatch(/^json_parse_error:/);
    const noZone = JSON.stringify({ id: "no-zone-1", occurred_at: T(1) });
    await publish([auditEntry({ id: "no-zone-1" }, AUDIT_KEY, noZone)]);
    expect((await dlqFor(from, "no-zone-1")).reason).toBe("json_parse_error:missing zone_id");
    await publish([{ id: "no-data-1" }]);
    expect((await dlqFor(from, "no-data-1")).reason).toBe("missing_data_field");
  });

  test("the same event again is acknowledged without a second row; changed content is tamper_on_replay with an alert (case 32)", async () => {
    const z = zoneId();
    const e = decisionEvent({ zoneId: z, at: T(1) });
    await publish([auditEntry(e, AUDIT_KEY)]);
    await waitForAudit(c, z, 1);
    // Same content, keys in another order: the same event.
    const reordered = Object.fromEntries(Object.entries(e).reverse());
    const [again] = await publish([auditEntry(reordered, AUDIT_KEY)]);
    const from = await dlqTop();
    const tampered = { ...e, metadata_json: { ...(e.metadata_json as object), application_name: "someone else" } };
    await publish([auditEntry(tampered, AUDIT_KEY)]);
    expect((await dlqFor(from, String(e.id))).reason).toBe("tamper_on_replay");
    expect(await pendingOf(again!)).toBe(0);
    const rows = (await get(`/v1/zones/${z}/audit`)).body.items;
    expect(rows).toHaveLength(1);
    expect(rows[0].metadata_json.application_name).toBe((e.metadata_json as any).application_name);
    const mongoose = (await import("mongoose")).default;
    const conn = await mongoose.createConnection(c.mongoUrl).asPromise();
    const alerts = await conn.db!.collection("audit_ingest_alerts").find({ event_id: e.id }).toArray();
    await conn.close();
    expect(alerts).toEqual([expect.objectContaining({ kind: "content_mismatch_on_replay", zone_id: z })]);
  });

  test("an entry a dead consumer took and never acknowledged is reclaimed and stored", async () => {
    const z = zoneId();
    const e = decisionEvent({ zoneId: z });
    // Added and read by a consumer of the group in one transaction, so that consumer (which then "dies")
    // holds it before the service's blocked read is served.
    const fields = auditEntry(e, AUDIT_KEY);
    const res = (await redis.multi().xadd(c.stream(AUDIT_STREAM), "*", ...Object.entries(fields).flat()).xreadgroup("GROUP", group(), "dead-consumer", "COUNT", 10, "STREAMS", c.stream(AUDIT_STREAM), ">").exec())!;
    const entryId = String(res[0]![1]);
    const held = (await redis.xpending(c.stream(AUDIT_STREAM), group(), entryId, entryId, 1)) as [string, string, number, number][];
    expect(held[0]?.[1]).toBe("dead-consumer");
    // Claimed once idle for AUDIT_CLAIM_IDLE_SECS (1 s here), then stored and acknowledged.
    await waitForAudit(c, z, 1);
    await eventually(async () => ((await pendingOf(entryId)) === 0 ? true : undefined), 10_000);
    await redis.xgroup("DELCONSUMER", c.stream(AUDIT_STREAM), group(), "dead-consumer");
  });

  test("two audit instances share the stream: every event stored once", async () => {
    const { brokerOptions } = await import("../../shared/broker");
    const { PROCESSES } = await import("../../deploy/local/services");
    const second = new ServiceBroker(brokerOptions({ nodeID: `audit-second-${c.namespace}` }));
    for (const schema of await PROCESSES.audit!()) second.createService(schema);
    await second.start();
    try {
      const z = zoneId();
      const n = 400;
      const events = Array.from({ length: n }, (_, i) => decisionEvent({ zoneId: z, at: new Date(Date.UTC(2026, 4, 1) + i * 1000) }, i));
      for (let i = 0; i < n; i += 50) {
        await publish(events.slice(i, i + 50).map((e) => auditEntry(e, AUDIT_KEY)));
        await new Promise((r) => setTimeout(r, 20));
      }
      const rows = await waitForAudit(c, z, n);
      expect(rows).toHaveLength(n);
      expect(new Set(rows.map((r) => r.id)).size).toBe(n);
      const stats = await Promise.all([c.brokers.audit!, second].map((b) => b.call("audit.ingestStats", {}, { nodeID: b.nodeID }) as Promise<any>));
      for (const s of stats) expect(s.decisions.acked).toBeGreaterThan(0);
    } finally {
      await second.stop();
    }
  });
});
