// What the gateway refuses before routing or authentication, and the smaller HTTP conventions.
import { request as httpRequest } from "node:http";
import { gzipSync } from "node:zlib";
import { startCluster, type Cluster } from "../helpers/cluster";
import { toEnvelope } from "../../gateway/errors";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ env: { API_BODY_LIMIT_BYTES: String(64 * 1024) } });
});
afterAll(async () => {
  await c.stop();
});

/** A request sent exactly as given (no client-side normalisation of the path or the body). */
function raw(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string; json: any }> {
  const url = new URL(c.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers: { ...(body !== undefined && !headers["Transfer-Encoding"] ? { "Content-Length": String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const envelope = (r: { headers: Record<string, unknown>; json: any }, error: string) =>
  expect(r.json).toMatchObject({ error, error_description: expect.any(String), request_id: r.headers["x-request-id"] });

const nested = (depth: number): string => "[".repeat(depth - 1) + "{}" + "]".repeat(depth - 1);

describe("bad input is a 4xx envelope, never a 5xx", () => {
  test.each([["/v1/zones/%ZZ"], ["/v1/zones/%u0041"], ["/v1/zones/%E0%A4%A"], ["/v1/zones/%00"], ["/junk/%ZZ"]])("bad percent-encoding or NUL in the path %s is 400 invalid_path, even without a token", async (path) => {
    const r = await raw("GET", path);
    expect(r.status).toBe(400);
    envelope(r, "invalid_path");
  });

  test("NUL in the query is 400 invalid_query naming the parameter; a malformed escape is the parameter's own 400", async () => {
    const r = await raw("GET", "/v1/zones?limit=%00&cursor=a%00b&x%00=1", c.auth());
    expect(r.status).toBe(400);
    envelope(r, "invalid_query");
    expect(r.json.details.issues.map((i: { path: string[] }) => i.path[0])).toEqual(["limit", "cursor", "x\\u0000"]);
    const escape = await raw("GET", "/v1/zones?limit=%ZZ", c.auth());
    expect(escape.status).toBe(400);
    envelope(escape, "invalid_query");
  });

  test.each([["gzip"], ["deflate"], ["br"], ["x-unknown"]])("Content-Encoding %s is 415 unsupported_media_type, nothing created", async (encoding) => {
    const before = await c.http().get("/v1/zones?limit=500").set(c.auth());
    const body = encoding === "gzip" ? gzipSync(JSON.stringify({ name: `enc ${encoding}` })) : Buffer.from(JSON.stringify({ name: `enc ${encoding}` }));
    const r = await raw("POST", "/v1/zones", { ...c.auth(), "Content-Type": "application/json", "Content-Encoding": encoding }, body);
    expect(r.status).toBe(415);
    envelope(r, "unsupported_media_type");
    const after = await c.http().get("/v1/zones?limit=500").set(c.auth());
    expect(after.body.items.length).toBe(before.body.items.length);
  });

  test("JSON nested 65 levels is 400 invalid_json without a token; 64 levels passes the gateway", async () => {
    const deep = await raw("POST", "/v1/zones", { "Content-Type": "application/json" }, JSON.stringify({ name: JSON.parse(nested(64)) }));
    expect(deep.status).toBe(400);
    envelope(deep, "invalid_json");
    const veryDeep = await raw("POST", "/v1/zones", { "Content-Type": "application/json" }, nested(20_000));
    expect(veryDeep.status).toBe(400);
    envelope(veryDeep, "invalid_json");
    const ok = await raw("POST", "/v1/zones", { ...c.auth(), "Content-Type": "application/json" }, JSON.stringify({ name: JSON.parse(nested(63)) }));
    expect(ok.status).toBe(400);
    envelope(ok, "invalid_zone");
  });

  test("a body over the configured limit is 413 payload_too_large, declared or streamed", async () => {
    const declared = await raw("POST", "/v1/zones", { ...c.auth(), "Content-Type": "application/json" }, JSON.stringify({ name: "x".repeat(64 * 1024) }));
    expect(declared.status).toBe(413);
    envelope(declared, "payload_too_large");
    const streamed = await raw("POST", "/v1/zones", { ...c.auth(), "Content-Type": "application/json", "Transfer-Encoding": "chunked" }, JSON.stringify({ name: "y".repeat(70 * 1024) }));
    expect(streamed.status).toBe(413);
    envelope(streamed, "payload_too_large");
  });

  test("NUL bytes in any string or key are 400 with the route's body code and every finding", async () => {
    const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: "bad\u0000name", slug: "ok", "k\u0000": 1 });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("invalid_zone");
    expect(r.body.details.issues).toEqual(
      expect.arrayContaining([
        { path: ["name"], message: "must not contain NUL bytes" },
        { path: ["k\\u0000"], message: "keys must not contain NUL bytes" },
      ]),
    );
  });

  test("__proto__, constructor and prototype keys are refused anywhere in a body", async () => {
    const zone = (await c.http().post("/v1/zones").set(c.auth()).send({ name: "proto target" })).body;
    const body = '{"name":"p","__proto__":{"admin":true},"nested":{"list":[{"constructor":{}}],"prototype":1}}';
    const r = await raw("PATCH", `/v1/zones/${zone.id}`, { ...c.auth(), "Content-Type": "application/json" }, body);
    expect(r.status).toBe(400);
    envelope(r, "invalid_zone");
    expect(r.json.details.issues.map((i: { path: unknown[] }) => i.path)).toEqual(
      expect.arrayContaining([["__proto__"], ["nested", "list", 0, "constructor"], ["nested", "prototype"]]),
    );
    expect((await c.http().get(`/v1/zones/${zone.id}`).set(c.auth())).body.name).toBe("proto target");
  });

  test("a service failure that is the cluster's (RequestRejectedError, a store down) maps to 503 service_unavailable", () => {
    for (const name of ["RequestRejectedError", "ServiceNotAvailableError", "MongoServerSelectionError", "QueueIsFullError"]) {
      const env = toEnvelope({ name, message: "x", code: 500 }, "rid");
      expect([env.status, env.body.error]).toEqual([503, "service_unavailable"]);
    }
    expect(toEnvelope({ name: "BadRequestError", type: "UNABLE_DECODE_PARAM", code: 400 }, "rid").status).toBe(400);
  });
});

describe("HTTP conventions", () => {
  test("OPTIONS answers 204 with Allow and does not run the handler", async () => {
    const before = await c.http().get("/v1/zones?limit=500").set(c.auth());
    const r = await raw("OPTIONS", "/v1/zones", { ...c.auth(), "Content-Type": "application/json" }, JSON.stringify({ name: "options must not create" }));
    expect(r.status).toBe(204);
    expect(String(r.headers.allow).split(", ").sort()).toEqual(["GET", "HEAD", "OPTIONS", "POST"]);
    expect(r.text).toBe("");
    const after = await c.http().get("/v1/zones?limit=500").set(c.auth());
    expect(after.body.items.length).toBe(before.body.items.length);
    const unknown = await raw("OPTIONS", "/v1/nothing");
    expect(unknown.status).toBe(404);
  });

  test("HEAD of a GET route answers like GET without a body; HEAD elsewhere is 405", async () => {
    const zone = (await c.http().post("/v1/zones").set(c.auth()).send({ name: "head me" })).body;
    const get = await raw("GET", `/v1/zones/${zone.id}`, c.auth());
    const head = await raw("HEAD", `/v1/zones/${zone.id}`, c.auth());
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
    expect(head.headers["content-type"]).toBe(get.headers["content-type"]);
    expect(head.headers["content-length"]).toBe(get.headers["content-length"]);
    expect((await raw("HEAD", "/health")).status).toBe(200);
    const notGet = await raw("HEAD", "/v1/policies/validate", c.auth());
    expect(notGet.status).toBe(405);
  });

  test("Bearer must be followed by exactly one space", async () => {
    expect((await raw("GET", "/v1/zones", { Authorization: `Bearer ${c.adminToken}` })).status).toBe(200);
    const two = await raw("GET", "/v1/zones", { Authorization: `Bearer  ${c.adminToken}` });
    expect(two.status).toBe(401);
    envelope(two, "invalid_admin_token");
    expect((await raw("GET", "/v1/zones", { Authorization: `Bearer\t${c.adminToken}` })).status).toBe(401);
  });

  test("nosniff on /health and /docs too; the envelope and request id on 404 outside /v1", async () => {
    for (const path of ["/health", "/docs", "/docs/openapi.json", "/ready"]) {
      const r = await raw("GET", path);
      expect(r.headers["x-content-type-options"]).toBe("nosniff");
    }
    const r = await raw("GET", "/nothing-here?x=1");
    expect(r.status).toBe(404);
    envelope(r, "route_not_found");
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
  });
});
