// Property-based fuzzing of every route in the route table: malformed paths, queries, headers and bodies.
// Every generated request carries at least one defect that must refuse it; whatever else it carries is
// random. Asserts: never a 5xx, every refusal is the envelope with the response's request id, and nothing
// is written (document counts, the fixtures as read back, and no zone event on the stream).
// FUZZ_SEED and FUZZ_RUNS reproduce or widen a run; the seed in use is printed.
import fc from "fast-check";
import { request as httpRequest, Agent } from "node:http";
import { connect } from "node:net";
import mongoose from "mongoose";
import Redis from "ioredis";
import { startCluster, type Cluster } from "../helpers/cluster";
import { processNames } from "../../deploy/local/services";
import { ROUTES, type RouteDef } from "../../gateway/routes";
import { fieldsOf } from "../../shared/signing";

const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const RUNS = Number(process.env.FUZZ_RUNS ?? 3000);
const BODY_LIMIT = 16 * 1024;
/** This suite's zone-events stream (each test cluster has its own STREAM_PREFIX). */
const stream = () => c.stream("caracal.zone.events");

let c: Cluster;
let redis: Redis;
let db: mongoose.Connection;
const fixtures: Record<string, string> = {};

beforeAll(async () => {
  // Every process, so every route of the table has its service.
  c = await startCluster({ processes: processNames().filter((n) => n !== "gateway"), env: { API_BODY_LIMIT_BYTES: String(BODY_LIMIT) } });
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  db = await mongoose.createConnection(c.mongoUrl).asPromise();
  const post = async (path: string, body: object) => {
    const r = await c.http().post(path).set(c.auth()).send(body);
    if (r.status !== 201) throw new Error(`fixture ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.id as string;
  };
  fixtures.zone = await post("/v1/zones", { name: "fuzz zone" });
  const z = `/v1/zones/${fixtures.zone}`;
  fixtures.app = await post(`${z}/applications`, { name: "fuzz app", registration_method: "managed" });
  fixtures.provider = await post(`${z}/providers`, { name: "fuzz provider", kind: "api_key", config_json: { header_name: "X-Key", api_key: "k" } });
  fixtures.resource = await post(`${z}/resources`, { name: "fuzz resource", upstream_url: "https://example.test", scopes: ["read"], credential_provider_id: fixtures.provider, gateway_application_id: fixtures.app });
  fixtures.token = (await c.http().post("/v1/admin-tokens").set(c.auth()).send({ name: "fuzz token", scope: "global" })).body.id;
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await db?.close();
  await c?.stop();
});

/**
 * Every collection's document count in the cluster's database, but the admin audit's: a refused request is
 * recorded there by design (reference-ops §2.1; test/audit covers what is recorded).
 */
const AUDIT_RECORDS = new Set(["admin_audit_events", "admin_audit_heads", "audit_list_marks"]);
async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { name } of await db.db!.listCollections().toArray()) if (!AUDIT_RECORDS.has(name)) out[name] = await db.db!.collection(name).countDocuments();
  return out;
}

/** The fixtures as the API shows them (a PATCH that got through would change one). */
async function snapshot(): Promise<string> {
  const z = `/v1/zones/${fixtures.zone}`;
  const paths = [z, `${z}/applications/${fixtures.app}`, `${z}/providers/${fixtures.provider}`, `${z}/resources/${fixtures.resource}`, "/v1/admin-tokens?limit=500"];
  const bodies = await Promise.all(paths.map(async (p) => (await c.http().get(p).set(c.auth())).body));
  return JSON.stringify(bodies);
}

type Defect = "bad_path" | "bad_auth" | "encoding" | "bad_json" | "deep_json" | "nul" | "proto_key" | "scalar_body" | "too_large" | "content_type" | "missing_target";

interface Case {
  route: RouteDef;
  method: string;
  params: string[];
  tail: string;
  query: [string, string][];
  defects: Defect[];
  extraBody: unknown;
  junkHeaders: Record<string, string>;
  auth: "valid" | string;
  requestId: string | null;
}

/** Path segments that are not valid percent-encoded UTF-8 or hold a NUL. */
const badSegment = fc.constantFrom("%ZZ", "%u0041", "%", "%E0%A4%A", "%00", "a%00b", "%C0", "%FF%FE", "%%30", "x%G1");
/** Segments that are well formed but odd; a path id or not. */
const oddSegment = fc.oneof(
  fc.constantFrom("..", "%2e%2e", "%2F", "a%20b", "é", "ÿ", "%F0%9F%98%80", "x".repeat(200), "-", ":", "null", "undefined", "__proto__", "0"),
  fc.stringMatching(/^[A-Za-z0-9_.:-]{1,40}$/),
  fc.string({ unit: fc.constantFrom(..."abcXYZ019-_.~!$&'()*+,;=:@%"), minLength: 1, maxLength: 30 }),
);
const queryName = fc.oneof(fc.constantFrom("limit", "cursor", "limit[]", "cursor[$ne]", "a[b][c]", "", "x%00", "__proto__"), fc.stringMatching(/^[a-z_]{1,10}$/));
const queryValue = fc.oneof(fc.constantFrom("", "0", "-1", "1e9", "501", "abc", "%ZZ", "%00", "%%%", "null", "[]", "{}", "x".repeat(600)), fc.string({ unit: fc.constantFrom(..."ab01%=&+ "), maxLength: 20 }).map(encodeURIComponent));
const badAuth = fc.constantFrom("none", "Bearer  TOKEN", "bearer TOKEN", "Basic TOKEN", "Bearer", "Bearer ", "Bearer cat_not_a_token", "Bearer TOKEN-suffix", `Bearer ${"x".repeat(5000)}`, "Token TOKEN", "Bearer\tTOKEN");
const junkHeader = fc.dictionary(
  fc.constantFrom("x-request-id", "idempotency-key", "accept", "accept-encoding", "x-correlation-id", "if-none-match", "range", "expect-ct", "origin", "x-forwarded-for"),
  fc.oneof(fc.constantFrom("bad id with spaces", "\"quoted\"", "a".repeat(300), "*", "gzip", "bytes=0-1", "null"), fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/)),
  { maxKeys: 3 },
);

function defectsFor(route: RouteDef, method: string): Defect[] {
  const all: Defect[] = ["bad_path", "bad_auth", "encoding", "bad_json", "deep_json", "nul", "proto_key", "scalar_body", "too_large"];
  // A wrong content type refuses only methods that take a body; elsewhere it is not a defect.
  if (method === "POST" || method === "PATCH" || method === "PUT") all.push("content_type");
  // Ids that name nothing: the request reaches the service with a random body, which must refuse it
  // (validation or 404) without writing. Twice as likely, since it is the one that exercises services.
  if (route.path.includes(":") && method === route.method) all.push("missing_target", "missing_target");
  return all;
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    route: fc.constantFrom(...ROUTES),
    otherMethod: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS") }),
    paramChoice: fc.array(fc.oneof(fc.constantFrom("zone", "app", "provider", "resource", "token"), oddSegment, badSegment), { minLength: 3, maxLength: 3 }),
    tail: fc.oneof({ weight: 6, arbitrary: fc.constant("") }, fc.constantFrom("/", "//", "/zz-extra", "/%ZZ", "?", "/.")),
    query: fc.array(fc.tuple(queryName, queryValue), { maxLength: 4 }),
    defectPicks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
    extraBody: fc.oneof(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }), fc.record({ name: fc.string(), slug: fc.string(), kind: fc.string(), scopes: fc.array(fc.string()) }, { requiredKeys: [] })),
    junkHeaders: junkHeader,
    auth: badAuth,
  })
  .map(({ route, otherMethod, paramChoice, tail, query, defectPicks, extraBody, junkHeaders, auth }) => {
    const method = otherMethod ?? route.method;
    const available = defectsFor(route, method);
    const defects = [...new Set(defectPicks.map((n) => available[n % available.length]!))];
    const missing = defectPicks.some((n) => available[n % available.length] === "missing_target");
    const params = missing ? paramChoice.map((_, i) => `nx-${i}-${defectPicks[0]! % 1000}`) : paramChoice.map((p) => (Object.hasOwn(fixtures, p) ? fixtures[p]! : p));
    const requestId = junkHeaders["x-request-id"] ?? null;
    return { route, method, params, tail, query, defects, extraBody, junkHeaders, auth: defects.includes("bad_auth") ? auth : "valid", requestId };
  });

const nested = (depth: number): string => "[".repeat(depth - 1) + "{}" + "]".repeat(depth - 1);

/** The request a case describes: path, headers and body bytes. */
function build(k: Case): { path: string; headers: Record<string, string>; body: Buffer | null } {
  let i = 0;
  let path = "/v1" + k.route.path.replace(/:[A-Za-z]+/g, () => k.params[i++] ?? "x");
  if (k.defects.includes("bad_path")) {
    const segments = path.split("/");
    segments[1 + (k.params.length % Math.max(1, segments.length - 1))] = "%ZZ";
    path = segments.join("/");
  }
  path += k.tail;
  if (k.query.length) path += (path.includes("?") ? "&" : "?") + k.query.map(([n, v]) => `${n}=${v}`).join("&");
  const headers: Record<string, string> = { ...k.junkHeaders };
  if (k.auth === "valid") headers.Authorization = `Bearer ${c.adminToken}`;
  else if (k.auth !== "none") headers.Authorization = k.auth.replace("TOKEN", c.adminToken);
  let body: string | null = JSON.stringify(k.extraBody);
  const obj = (k.extraBody && typeof k.extraBody === "object" ? { ...(k.extraBody as object) } : {}) as Record<string, unknown>;
  if (k.defects.includes("nul")) body = JSON.stringify({ ...obj, name: "nul\u0000here" });
  if (k.defects.includes("proto_key")) body = JSON.stringify(obj).replace(/^\{/, '{"__proto__":{"polluted":true},').replace(",}", "}");
  if (k.defects.includes("deep_json")) body = JSON.stringify({ ...obj, name: "__DEEP__" }).replace('"__DEEP__"', nested(70 + (k.params.length * 97) % 3000));
  if (k.defects.includes("scalar_body")) body = ['"just a string"', "42", "null", "true", "-0.5e3"][k.tail.length % 5]!;
  if (k.defects.includes("bad_json")) body = ["{", '{"name":', "{'name':'x'}", "[1,2", '{"a":1}}', "nul", "\u0000", '{"name":"x",}'][k.query.length % 8]!;
  if (k.defects.includes("too_large")) body = JSON.stringify({ ...obj, name: "x".repeat(BODY_LIMIT + 10) });
  headers["Content-Type"] = k.defects.includes("content_type") ? ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", ""][k.query.length % 5]! : "application/json";
  if (k.defects.includes("encoding")) headers["Content-Encoding"] = ["gzip", "deflate", "br", "compress", "gzip, identity"][k.query.length % 5]!;
  return { path, headers, body: body === null ? null : Buffer.from(body) };
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function send(method: string, path: string, headers: Record<string, string>, body: Buffer | null): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const url = new URL(c.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, agent, headers: { ...headers, ...(body ? { "Content-Length": String(body.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

function expectEnvelope(r: { status: number; headers: Record<string, unknown>; text: string }, method: string): void {
  expect(r.status).toBeLessThan(500);
  if (r.status < 400 || method === "HEAD") return;
  const body = JSON.parse(r.text);
  expect(body).toEqual(expect.objectContaining({ error: expect.stringMatching(/^[a-z][a-z0-9_]*$/), error_description: expect.any(String), request_id: r.headers["x-request-id"] }));
}

test(`every route refuses malformed requests: never 5xx, always the envelope, nothing written (seed ${SEED}, ${RUNS} runs)`, async () => {
  console.log(`fuzz: seed ${SEED}, ${RUNS} runs (FUZZ_SEED / FUZZ_RUNS to change)`);
  const stats = { below400: new Set<string>(), statuses: {} as Record<string, number>, defects: {} as Record<string, number>, routes: new Set<string>(), methods: {} as Record<string, number> };
  const beforeCounts = await counts();
  const beforeFixtures = await snapshot();
  const streamStart = (await redis.xrevrange(stream(), "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0";
  const started = Date.now();

  await fc.assert(
    fc.asyncProperty(caseArb, async (k) => {
      const { path, headers, body } = build(k);
      const r = await send(k.method, path, headers, body);
      stats.statuses[r.status] = (stats.statuses[r.status] ?? 0) + 1;
      for (const d of k.defects) stats.defects[d] = (stats.defects[d] ?? 0) + 1;
      stats.routes.add(`${k.route.method} ${k.route.path}`);
      stats.methods[k.method] = (stats.methods[k.method] ?? 0) + 1;
      expectEnvelope(r, k.method);
      // Every case carries a defect: only OPTIONS (which never runs a handler) may answer below 400, and a
      // read whose only defect is ids that name nothing (some lists answer an empty page for any zone).
      const readOfNothing = (k.method === "GET" || k.method === "HEAD") && k.defects.every((d) => d === "missing_target");
      if (k.method !== "OPTIONS" && !readOfNothing) expect(r.status).toBeGreaterThanOrEqual(400);
      if (r.status < 400) stats.below400.add(`${k.method} ${k.route.path}`);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );

  const ms = Date.now() - started;
  console.log(`fuzz: ${RUNS} requests in ${ms} ms over ${stats.routes.size}/${ROUTES.length} routes; statuses ${JSON.stringify(stats.statuses)}; defects ${JSON.stringify(stats.defects)}; methods ${JSON.stringify(stats.methods)}; answered below 400: ${[...stats.below400].join(", ")}`);
  expect(stats.routes.size).toBe(ROUTES.length);
  expect(await counts()).toEqual(beforeCounts);
  expect(await snapshot()).toBe(beforeFixtures);
  const zoneIds = new Set(await db.db!.collection("zones").distinct("_id"));
  const entries = (await redis.xrange(stream(), `(${streamStart}`, "+")).map(([, f]) => fieldsOf(f)).filter((f) => zoneIds.has(f.zone_id as any));
  expect(entries).toEqual([]);
}, 240_000);

test("malformed HTTP on the wire gets the envelope (or a closed socket), never a 5xx, and the server keeps serving", async () => {
  const url = new URL(c.url);
  const wire = (payload: string, waitMs = 1500) =>
    new Promise<string>((resolve) => {
      const socket = connect(Number(url.port), url.hostname);
      let got = "";
      socket.on("data", (d) => (got += d.toString()));
      socket.on("close", () => resolve(got));
      socket.on("error", () => resolve(got));
      socket.write(payload);
      setTimeout(() => socket.destroy(), waitMs);
    });
  const cases = [
    "GARBAGE\r\n\r\n",
    "GET /v1/zones HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    "POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    `GET /v1/zones HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    "POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
    "FOO /v1/zones HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v1/zones HTTP/9.9\r\nHost: x\r\n\r\n",
    "GET /v1/zo\u0001nes HTTP/1.1\r\nHost: x\r\n\r\n",
  ];
  for (const payload of cases) {
    const got = await wire(payload);
    if (!got) continue;
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(got)?.[1]);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    const body = JSON.parse(got.slice(got.indexOf("\r\n\r\n") + 4));
    expect(body).toEqual(expect.objectContaining({ error: expect.any(String), request_id: expect.any(String) }));
  }
  // A body cut short: the client goes away; the server must still answer the next request.
  await wire("POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":", 200);
  expect((await c.http().get("/health")).status).toBe(200);
});
