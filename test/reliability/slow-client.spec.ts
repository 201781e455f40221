// Slow clients cannot hold the gateway: incomplete headers and trickled bodies are cut off by the
// configured time limits (short here: 2 s for headers, 3 s for a whole request), and one client IP may
// keep only so many connections open.
import { connect, type Socket } from "node:net";
import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ processes: [], env: { HTTP_HEADERS_TIMEOUT_MS: "2000", HTTP_REQUEST_TIMEOUT_MS: "3000", HTTP_MAX_CONNECTIONS_PER_IP: "8" } });
});
afterAll(async () => {
  await c.stop();
});

/** Opens a socket that sends `head` and then one more byte of `trickle` every second; resolves when the server closes it. */
function trickle(head: string, trickleBytes: string): Promise<{ closedAfterMs: number; response: string; bytesSent: number }> {
  const url = new URL(c.url);
  return new Promise((resolve) => {
    const started = Date.now();
    const socket: Socket = connect(Number(url.port), url.hostname);
    let response = "";
    let sent = 0;
    socket.write(head);
    const timer = setInterval(() => {
      if (sent < trickleBytes.length && socket.writable) socket.write(trickleBytes[sent++]!);
    }, 1000);
    socket.on("data", (d) => (response += d.toString()));
    const done = () => {
      clearInterval(timer);
      resolve({ closedAfterMs: Date.now() - started, response, bytesSent: sent });
    };
    socket.on("close", done);
    socket.on("error", () => undefined);
    // A bound for the test itself, well past the limits under test.
    setTimeout(() => socket.destroy(), 20_000);
  });
}

test("a client sending its headers one byte a second is cut off after the headers limit with 408", async () => {
  const r = await trickle("GET /v1/zones HTTP/1.1\r\nHost: x\r\n", "X-Slow: " + "a".repeat(60));
  console.log(`slow headers: closed after ${r.closedAfterMs} ms, ${r.bytesSent} trickled bytes`);
  expect(r.closedAfterMs).toBeLessThan(6000);
  expect(r.response).toMatch(/^HTTP\/1\.1 408/);
  expect(JSON.parse(r.response.slice(r.response.indexOf("\r\n\r\n") + 4))).toMatchObject({ error: "request_timeout", request_id: expect.any(String) });
});

test("a client sending its body one byte a second is cut off after the request limit", async () => {
  const body = JSON.stringify({ name: "z".repeat(100) });
  const r = await trickle(`POST /v1/zones HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body);
  console.log(`slow body: closed after ${r.closedAfterMs} ms, ${r.bytesSent} trickled bytes`);
  expect(r.closedAfterMs).toBeLessThan(7000);
  expect(r.bytesSent).toBeLessThan(body.length);
});

test("one client IP may hold only so many open connections; the next one is refused with 429", async () => {
  const url = new URL(c.url);
  const open: Socket[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const s = connect(Number(url.port), url.hostname);
      await new Promise((r) => s.once("connect", r));
      open.push(s);
    }
    const extra = connect(Number(url.port), url.hostname);
    const got = await new Promise<string>((resolve) => {
      let text = "";
      extra.on("data", (d) => (text += d.toString()));
      extra.on("close", () => resolve(text));
      extra.on("error", () => resolve(text));
    });
    expect(got).toMatch(/^HTTP\/1\.1 429/);
    expect(got).toContain('"error":"too_many_connections"');
  } finally {
    open.forEach((s) => s.destroy());
  }
  // Once they are closed, the client is served again.
  await new Promise((r) => setTimeout(r, 100));
  expect((await c.http().get("/health")).status).toBe(200);
});
