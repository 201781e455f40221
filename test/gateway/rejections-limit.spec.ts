// Every request the gateway refuses counts toward the per-IP budget, including refusals made before
// authentication (404, 405, 415, 413, 400); probes (/health, /ready, /metrics) do not.
import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ processes: [], env: { API_V1_RATE_LIMIT_PER_MIN: "6", API_BODY_LIMIT_BYTES: "1024" } });
});
afterAll(async () => {
  await c.stop();
});

test("refusals spend the per-IP budget; past it even a valid request is 429 with Retry-After", async () => {
  // The budget is a fixed one-minute window: do not start right before it turns.
  const intoMinute = Date.now() % 60_000;
  if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 100));
  for (let i = 0; i < 5; i++) expect((await c.http().get("/health")).status).toBe(200);
  const refused = [
    await c.http().get("/nothing"),
    await c.http().put("/v1/zones").send({}),
    await c.http().post("/v1/zones").set("Content-Type", "text/plain").send("x"),
    await c.http().post("/v1/zones").set("Content-Type", "application/json").send(JSON.stringify({ name: "x".repeat(2048) })),
    await c.http().get("/v1/zones/%ZZ"),
  ];
  expect(refused.map((r) => r.status)).toEqual([404, 405, 415, 413, 400]);
  expect((await c.http().get("/v1/admin-tokens").set(c.auth())).status).toBe(200);
  const limited = await c.http().get("/v1/admin-tokens").set(c.auth());
  expect(limited.status).toBe(429);
  expect(limited.body.error).toBe("rate_limited");
  expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
  const junk = await c.http().get("/more-junk");
  expect(junk.status).toBe(429);
});
