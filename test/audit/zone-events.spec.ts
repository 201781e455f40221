// The zone events feed (decision 8) against the real servers, on a Redis of its own (started and stopped by
// PID here) so the live stream can be shown to survive a Redis restart without disturbing anyone else.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import Redis from "ioredis";
import { startCluster, eventually, type Cluster } from "../helpers/cluster";

let c: Cluster;
let redisProc: ChildProcess;
let redisDir: string;
const PORT = 20_000 + Math.floor(Math.random() * 20_000);
const REDIS_URL = `redis://127.0.0.1:${PORT}`;

async function startRedis(): Promise<void> {
  redisProc = spawn("redis-server", ["--port", String(PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", redisDir], { stdio: "ignore" });
  const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on("error", () => undefined);
  await eventually(async () => {
    try {
      await probe.connect();
      return (await probe.ping()) === "PONG" ? true : undefined;
    } catch {
      probe.disconnect();
      return undefined;
    }
  }, 10_000);
  probe.disconnect();
}

async function stopRedis(): Promise<void> {
  const proc = redisProc;
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await exited;
}

beforeAll(async () => {
  redisDir = mkdtempSync(join(tmpdir(), "caracal-sse-redis-"));
  await startRedis();
  c = await startCluster({ processes: ["zones", "audit"], env: { REDIS_URL, SSE_HEARTBEAT_MS: "300" } });
}, 60_000);
afterAll(async () => {
  await c.stop();
  await stopRedis();
  rmSync(redisDir, { recursive: true, force: true });
});

const send = (method: "post" | "patch", path: string, body: unknown) => c.http()[method](path).set(c.auth()).send(body as object);
const get = (path: string) => c.http().get(path).set(c.auth());

interface SseEvent {
  id: string;
  event: string;
  data: any;
  at: number;
}

/** A minimal SSE client: frames split on blank lines; comments counted. */
function subscribe(zoneId: string, lastEventId?: string) {
  const events: SseEvent[] = [];
  const state = { comments: 0, status: 0, contentType: "" };
  const url = new URL(`${c.url}/v1/zones/${zoneId}/events/stream`);
  const req = http.get(url, { headers: { ...c.auth(), ...(lastEventId ? { "Last-Event-ID": lastEventId } : {}) } }, (res) => {
    state.status = res.statusCode ?? 0;
    state.contentType = String(res.headers["content-type"]);
    let buf = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf("\n\n"); i !== -1; i = buf.indexOf("\n\n")) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const f: Record<string, string> = {};
        for (const line of frame.split("\n")) {
          if (line.startsWith(":")) state.comments++;
          else if (line) f[line.slice(0, line.indexOf(":"))] = line.slice(line.indexOf(":") + 1).trimStart();
        }
        if (f.data) events.push({ id: f.id!, event: f.event!, data: JSON.parse(f.data), at: Date.now() });
      }
    });
  });
  req.on("error", () => undefined);
  return { events, state, close: () => req.destroy() };
}

async function newZone(): Promise<string> {
  const r = await send("post", "/v1/zones", { name: `Feed ${Math.random().toString(36).slice(2, 8)}` });
  expect(r.status).toBe(201);
  return r.body.id;
}

const until = <T>(check: () => T | undefined, ms = 5000) => eventually(async () => check(), ms, 20);

describe("GET /v1/zones/:zoneId/events", () => {
  test("the zone's change entries newest first, filtered by entity_type, action and since", async () => {
    const z = await newZone();
    await send("patch", `/v1/zones/${z}`, { name: "renamed" });
    await send("patch", `/v1/zones/${z}`, { dcr_enabled: true });
    const items = await eventually(async () => {
      const r = await get(`/v1/zones/${z}/events`);
      return r.body.items?.length === 3 ? r.body.items : undefined;
    }, 10_000);
    expect(items.map((e: any) => e.action)).toEqual(["updated", "updated", "created"]);
    expect(items[0]).toEqual({
      id: expect.any(String), stream_id: expect.stringMatching(/^\d+-\d+$/), zone_id: z, entity_type: "zone", entity_id: z, action: "updated",
      actor_id: expect.any(String), request_id: expect.any(String), occurred_at: expect.stringMatching(/Z$/), details: { changed_fields: "dcr_enabled" },
    });
    expect((await get(`/v1/zones/${z}/events?action=updated&entity_type=zone`)).body.items).toHaveLength(2);
    expect((await get(`/v1/zones/${z}/events?entity_type=application`)).body.items).toEqual([]);
    expect((await get(`/v1/zones/${z}/events?since=${items[1].occurred_at}`)).body.items.map((e: any) => e.id)).toEqual([items[0].id, items[1].id]);
    const p1 = await get(`/v1/zones/${z}/events?limit=2`);
    expect(p1.body.items).toEqual(items.slice(0, 2));
    expect((await get(`/v1/zones/${z}/events?limit=2&cursor=${p1.body.next_cursor}`)).body).toEqual({ items: items.slice(2), next_cursor: null });
    expect((await get(`/v1/zones/${z}/events?action=archived`)).body.error).toBe("invalid_query");
  });
});

describe("GET /v1/zones/:zoneId/events/stream", () => {
  test("a write reaches the subscriber within one second; other zones' writes do not; heartbeats flow", async () => {
    const z = await newZone();
    const other = await newZone();
    const sub = subscribe(z);
    await until(() => (sub.state.status ? true : undefined));
    expect(sub.state.status).toBe(200);
    expect(sub.state.contentType).toMatch(/^text\/event-stream/);
    await send("patch", `/v1/zones/${other}`, { name: "elsewhere" });
    const sent = Date.now();
    const r = await send("patch", `/v1/zones/${z}`, { name: "live" });
    expect(r.status).toBe(200);
    const ev = await until(() => sub.events.find((e) => e.data.request_id === r.headers["x-request-id"]), 3000);
    expect(ev.at - sent).toBeLessThan(1000);
    expect(ev).toMatchObject({ event: "zone_event", id: ev.data.stream_id, data: { zone_id: z, entity_type: "zone", action: "updated", details: { changed_fields: "name" } } });
    expect(sub.events.every((e) => e.data.zone_id === z)).toBe(true);
    await until(() => (sub.state.comments >= 3 ? true : undefined), 5000);
    sub.close();
    const nowhere = subscribe("no-such-zone");
    await until(() => (nowhere.state.status ? true : undefined));
    expect(nowhere.state.status).toBe(404);
    nowhere.close();
  });

  test("a client that reconnects with Last-Event-ID gets what it missed, in order, without a gap or a duplicate", async () => {
    const z = await newZone();
    const first = subscribe(z);
    await until(() => (first.state.status ? true : undefined));
    for (const name of ["a", "b"]) await send("patch", `/v1/zones/${z}`, { name });
    await until(() => (first.events.length === 2 ? true : undefined));
    first.close();
    const missed: string[] = [];
    for (const name of ["c", "d", "e"]) missed.push(String((await send("patch", `/v1/zones/${z}`, { name })).headers["x-request-id"]));
    const second = subscribe(z, first.events[1]!.id);
    await until(() => (second.events.length >= 3 ? true : undefined));
    const live = String((await send("patch", `/v1/zones/${z}`, { name: "f" })).headers["x-request-id"]);
    await until(() => (second.events.length >= 4 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(second.events.map((e) => e.data.request_id)).toEqual([...missed, live]);
    const ids = [...first.events, ...second.events].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    const { compareStreamIds } = await import("../../shared/zone-events");
    expect([...ids].sort(compareStreamIds)).toEqual(ids);
    second.close();
  });

  test("entries the stream has trimmed come from the stored feed", async () => {
    const z = await newZone();
    const first = subscribe(z);
    await until(() => (first.state.status ? true : undefined));
    await send("patch", `/v1/zones/${z}`, { name: "kept" });
    await until(() => (first.events.length === 1 ? true : undefined));
    first.close();
    const missed: string[] = [];
    for (const name of ["x", "y"]) missed.push(String((await send("patch", `/v1/zones/${z}`, { name })).headers["x-request-id"]));
    // Stored: created, kept, x, y.
    await eventually(async () => ((await get(`/v1/zones/${z}/events`)).body.items.length === 4 ? true : undefined), 10_000);
    // Everything in the stream so far goes, as MAXLEN trimming would do with enough traffic.
    const admin = new Redis(REDIS_URL);
    await admin.xtrim(c.stream("caracal.zone.events"), "MAXLEN", 0);
    admin.disconnect();
    const live = subscribe(z, first.events[0]!.id);
    await until(() => (live.events.length >= 2 ? true : undefined));
    const after = String((await send("patch", `/v1/zones/${z}`, { name: "z" })).headers["x-request-id"]);
    await until(() => (live.events.length >= 3 ? true : undefined));
    expect(live.events.map((e) => e.data.request_id)).toEqual([...missed, after]);
    live.close();
  });

  test("the live stream keeps working across a Redis restart", async () => {
    const z = await newZone();
    const sub = subscribe(z);
    await until(() => (sub.state.status ? true : undefined));
    await send("patch", `/v1/zones/${z}`, { name: "before restart" });
    await until(() => (sub.events.length === 1 ? true : undefined));
    await stopRedis();
    await new Promise((r) => setTimeout(r, 500));
    await startRedis();
    // The services' shared client reconnects on its own; writes wait for it (their publish would otherwise
    // fall back to the relay's sweep, which is not what this test is about).
    const { redisClient } = await import("../../shared/redis");
    await eventually(async () => (redisClient(REDIS_URL).status === "ready" && (await redisClient(REDIS_URL).ping()) === "PONG" ? true : undefined), 15_000, 100);
    const r = await eventually(async () => {
      const res = await send("patch", `/v1/zones/${z}`, { name: "after restart" });
      return res.status === 200 ? res : undefined;
    }, 15_000, 200);
    // Should the publish still have met a closing connection, the relay's sweep would bring it: run it now.
    const kick = setTimeout(() => void (c.brokers.zones!.getLocalService("zones") as any).relay.sweep().catch(() => undefined), 3000);
    const ev = await until(() => sub.events.find((e) => e.data.request_id === r.headers["x-request-id"]), 10_000).finally(() => clearTimeout(kick));
    expect(ev.data.details).toEqual({ changed_fields: "name" });
    expect(sub.events).toHaveLength(2);
    sub.close();
  });
});
