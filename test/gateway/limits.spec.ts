import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ env: { ADMIN_AUTH_FAIL_LIMIT_PER_MIN: "3", API_V1_ACTOR_RATE_LIMIT_PER_MIN: "5", METRICS_BEARER: "m-secret" } });
});
afterAll(async () => {
  await c.stop();
});

test("after the auth-failure limit a bad token gets 429 rate_limited, a good one still passes", async () => {
  const codes: number[] = [];
  for (let i = 0; i < 5; i++) codes.push((await c.http().get("/v1/zones").set("Authorization", "Bearer nope")).status);
  expect(codes).toEqual([401, 401, 401, 429, 429]);
  const limited = await c.http().get("/v1/zones").set("Authorization", "Bearer nope");
  expect(limited.body.error).toBe("rate_limited");
  expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
  expect((await c.http().get("/v1/zones").set(c.auth())).status).toBe(200);
});

test("the per-actor limit fires after authentication with 429 and Retry-After", async () => {
  const t = await c.http().post("/v1/admin-tokens").set(c.auth()).send({ name: "busy", scope: "global" });
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) codes.push((await c.http().get("/v1/zones").set(c.auth(t.body.token))).status);
  expect(codes.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
  expect(codes[5]).toBe(429);
});

test("/metrics needs the configured bearer exactly", async () => {
  expect((await c.http().get("/metrics")).status).toBe(401);
  expect((await c.http().get("/metrics").set("Authorization", "Bearer wrong")).status).toBe(401);
  expect((await c.http().get("/metrics").set("Authorization", "Bearer m-secret")).status).toBe(200);
});
