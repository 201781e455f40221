// One log line per request at info (method, route template, status, ms, request id); /ready's 503s while
// the cluster starts are logged at debug, not as errors, until /ready has once answered 200.
import { startCluster, type Cluster } from "../helpers/cluster";

const lines: string[] = [];
let c: Cluster;
beforeAll(async () => {
  // READY_SERVICES names a service that never starts: /ready answers 503 throughout.
  c = await startCluster({ processes: ["zones"], captureLogs: lines, env: { READY_SERVICES: "zones,later" } });
});
afterAll(async () => {
  await c.stop();
});

const requestLines = () =>
  lines
    .map((l) => JSON.parse(l) as { type: string; mod?: string; args: unknown[] })
    .filter((l) => l.mod === "api" && (l.args[1] === "request" || l.args[1] === "request failed"))
    .map((l) => ({ level: l.type, ...(l.args[0] as Record<string, unknown>) }) as Record<string, unknown>);

test("each request is one info line with the route template, never the raw path", async () => {
  const zone = (await c.http().post("/v1/zones").set(c.auth()).set("x-request-id", "log-create-1").send({ name: "logged" })).body;
  await c.http().get(`/v1/zones/${zone.id}`).set(c.auth()).set("x-request-id", "log-get-1");
  await c.http().get("/junk-path-123").set("x-request-id", "log-junk-1");
  const mine = requestLines().filter((l) => String(l.request_id).startsWith("log-"));
  expect(mine).toEqual([
    { level: "info", request_id: "log-create-1", method: "POST", route: "/v1/zones", status: "201", ms: expect.any(Number) },
    { level: "info", request_id: "log-get-1", method: "GET", route: "/v1/zones/:id", status: "200", ms: expect.any(Number) },
    { level: "info", request_id: "log-junk-1", method: "GET", route: "unmatched", status: "404", ms: expect.any(Number) },
  ]);
  expect(JSON.stringify(mine)).not.toContain(zone.id);
});

test("/ready's 503s are debug lines until it has once been ready", async () => {
  const r = await c.http().get("/ready").set("x-request-id", "log-ready-1");
  expect(r.status).toBe(503);
  const ready = requestLines().filter((l) => l.request_id === "log-ready-1");
  expect(ready).toEqual([{ level: "debug", request_id: "log-ready-1", method: "GET", route: "/ready", status: "503", ms: expect.any(Number) }]);
});
