// Metric labels come from fixed sets: 5,000 distinct junk paths (no token) add no series beyond a constant.
import { Agent, request as httpRequest } from "node:http";
import { startCluster, type Cluster } from "../helpers/cluster";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ processes: [] });
});
afterAll(async () => {
  await c.stop();
});

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

function get(path: string): Promise<number> {
  const url = new URL(c.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, agent, method: path.length % 3 === 0 ? "POST" : "GET" }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The label sets of the request metrics in /metrics (a histogram's buckets count once), and the text's size. */
async function series(): Promise<{ lines: Set<string>; bytes: number }> {
  const text = (await c.http().get("/metrics")).text;
  const lines = new Set(
    text
      .split("\n")
      .filter((l) => l.startsWith("caracal_http_request"))
      .map((l) => (/\{(.*)\}/.exec(l)?.[1] ?? "").split(",").filter((p) => !p.startsWith("le=")).join(",")),
  );
  return { lines, bytes: text.length };
}

test("5,000 distinct junk paths add at most a constant number of series", async () => {
  // Warm every label the junk can produce once (methods × the unmatched route × its statuses).
  for (const path of ["/warm-1", "/v1/warm-2", "/warm-3?x=1", "/v1/zones/%ZZ"]) await get(path);
  const before = await series();
  const paths = Array.from({ length: 5000 }, (_, i) => [`/junk-${i}`, `/v1/junk-${i}/x?q=${i}`, `/v1/zones/${i}/nothing-${i}`, `/junk/%ZZ${i}`, `/${"a".repeat(i % 50)}${i}`][i % 5]!);
  for (let i = 0; i < paths.length; i += 50) {
    const statuses = await Promise.all(paths.slice(i, i + 50).map(get));
    for (const s of statuses) expect(s).toBeLessThan(500);
  }
  const after = await series();
  const added = [...after.lines].filter((l) => !before.lines.has(l));
  console.log(`cardinality: request label sets ${before.lines.size} → ${after.lines.size} after 5,000 junk paths (added: ${added.join(" | ") || "none"}); /metrics ${before.bytes} → ${after.bytes} bytes`);
  expect(added.length).toBeLessThanOrEqual(8);
  for (const l of after.lines) expect(l).not.toMatch(/junk|nothing|%ZZ|aaaa/);
});
