// The launcher (`npm start`'s deploy/local/cluster.ts) under a bounded load while the zones process gets
// SIGKILL: the launcher starts it again, clients retry failed creates with their Idempotency-Key, and in
// the end every create is stored once with exactly one signed event. Then SIGTERM: the launcher stops the
// gateway first, which answers what is in flight, then the rest. Prints the table of the run.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import Redis from "ioredis";
import mongoose from "mongoose";
import { TEST_STREAMS_KEY, eventually } from "../helpers/cluster";
import { fieldsOf, verify } from "../../shared/signing";
import { withDocLock } from "../../shared/doc-lock";

const ROOT = join(__dirname, "..", "..");
const run = randomBytes(3).toString("hex");
const STREAM = `kr${run}:caracal.zone.events`;
const WORKERS = 6;
/** The load stops by itself: this long after the first success that follows the kill, and never later than LOAD_MAX_MS. */
const AFTER_RECOVERY_MS = 3_000;
const LOAD_MAX_MS = 45_000;
const KILL_AFTER_MS = 3_000;

const mongoUrl = (() => {
  const u = new URL(process.env.MONGO_URL ?? "mongodb://127.0.0.1:27017/caracal");
  u.pathname = `/test_kr_${run}`;
  return u.toString();
})();
const token = "cat_" + randomBytes(32).toString("base64url");
let launcher: ChildProcess;
let output = "";
let base = "";
let redis: Redis;
let db: mongoose.Connection;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

/** Pids of the launcher's children by process name, newest last, from its "[cluster] … started (pid N)" lines. */
const pidsOf = (name: string): number[] => [...output.matchAll(new RegExp(`\\] \\S+ ${name} started \\(pid (\\d+)\\)`, "g"))].map((m) => Number(m[1]));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  launcher = spawn(process.execPath, ["--import", "tsx", "deploy/local/cluster.ts", "--only", "gateway,zones"], {
    cwd: ROOT,
    env: {
      ...process.env,
      CARACAL_MODE: "dev",
      NAMESPACE: `kr${run}`,
      STREAM_PREFIX: `kr${run}:`,
      MONGO_URL: mongoUrl,
      PORT: String(port),
      ADMIN_TOKEN: token,
      STREAMS_HMAC_KEY: TEST_STREAMS_KEY,
      AUDIT_HMAC_KEY: TEST_STREAMS_KEY,
      ZONE_KEK: "22".repeat(32),
      LOG_LEVEL: "info",
      READY_SERVICES: "zones",
      API_V1_RATE_LIMIT_PER_MIN: "0",
      API_V1_ACTOR_RATE_LIMIT_PER_MIN: "0",
      READY_RATE_LIMIT_PER_MIN: "0",
      OUTBOX_POLL_MS: "50",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  launcher.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  launcher.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  db = await mongoose.createConnection(mongoUrl).asPromise();
  await eventually(async () => ((await fetch(`${base}/ready`).then((r) => r.ok).catch(() => false)) ? true : undefined), 120_000, 250);
}, 150_000);

afterAll(async () => {
  if (launcher && launcher.exitCode === null) {
    launcher.kill("SIGTERM");
    await new Promise((r) => launcher.once("exit", r));
  }
  await db?.dropDatabase().catch(() => undefined);
  await db?.close();
  redis?.disconnect();
});

interface Attempt {
  start: number;
  end: number;
  status: number;
}

const auth = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };

test("kill -9 of the zones process under load: restarted by the launcher, failures bounded, every write stored once with one signed event", async () => {
  const attempts: Attempt[] = [];
  const logical: { name: string; status: number; id?: string }[] = [];
  const streamFrom = (await redis.xrevrange(STREAM, "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0";
  const loadStart = Date.now();
  let killedAt = 0;
  let recoveredAt = 0;
  let next = 0;

  const worker = async () => {
    while (Date.now() - loadStart < LOAD_MAX_MS && !(recoveredAt && Date.now() - recoveredAt > AFTER_RECOVERY_MS)) {
      const i = next++;
      const name = `kr ${run} ${i}`;
      let final = 0;
      let id: string | undefined;
      // Retries with the same key until the create is answered, as a careful client would.
      for (let attempt = 0; attempt < 60 && final < 200; attempt++) {
        const start = Date.now();
        const r = await fetch(`${base}/v1/zones`, {
          method: "POST",
          headers: { ...auth, "Idempotency-Key": `kr-${run}-${i}`, "X-Request-Id": `kr-${run}-${i}-${attempt}` },
          body: JSON.stringify({ name }),
          signal: AbortSignal.timeout(15_000),
        })
          .then(async (res) => ({ status: res.status, body: (await res.json().catch(() => ({}))) as { id?: string } }))
          .catch(() => ({ status: 0, body: {} as { id?: string } }));
        const end = Date.now();
        attempts.push({ start, end, status: r.status });
        if (r.status >= 200 && r.status < 300) {
          final = r.status;
          id = r.body.id;
          if (killedAt && !recoveredAt && start > killedAt) recoveredAt = end;
        } else await new Promise((res) => setTimeout(res, 200));
      }
      logical.push({ name, status: final, id });
    }
  };

  const killer = (async () => {
    await new Promise((r) => setTimeout(r, KILL_AFTER_MS));
    const pid = pidsOf("zones").at(-1)!;
    killedAt = Date.now();
    process.kill(pid, "SIGKILL");
  })();
  await Promise.all([...Array.from({ length: WORKERS }, worker), killer]);

  // The launcher logged the crash and started a new zones process.
  const zonesPids = pidsOf("zones");
  expect(zonesPids.length).toBe(2);
  expect(output).toMatch(/zones \(pid \d+\) exited \(SIGKILL\)/);
  const upLine = output.split("\n").find((l) => l.includes(`"pid":${zonesPids[1]}`) && l.includes("started successfully"));
  const upAt = upLine ? Number(JSON.parse(upLine).time) : NaN;

  // Every stored zone has its event on the stream (the writer or the restarted relay publishes it).
  const stored = await db.collection("zones").find({}, { projection: { _id: 1, name: 1 } }).toArray();
  const entries = await eventually(async () => {
    const mine = (await redis.xrange(STREAM, `(${streamFrom}`, "+")).map(([, f]) => fieldsOf(f)).filter((f) => f.request_id?.startsWith(`kr-${run}-`));
    return mine.length >= stored.length ? mine : undefined;
  }, 30_000);

  const keys = [{ kid: "k1", key: Buffer.from(TEST_STREAMS_KEY, "hex") }];
  const storedIds = new Set(stored.map((d) => String(d._id)));
  const createdBy = new Map<string, number>();
  for (const e of entries) if (e.action === "created") createdBy.set(e.entity_id!, (createdBy.get(e.entity_id!) ?? 0) + 1);
  const namesStored = new Map<string, number>();
  for (const d of stored) namesStored.set(d.name, (namesStored.get(d.name) ?? 0) + 1);
  const failed = attempts.filter((a) => a.status < 200 || a.status >= 300);
  const first503 = attempts.filter((a) => a.status === 503 && a.end > killedAt).sort((a, b) => a.end - b.end)[0];
  const table = {
    requests: attempts.length,
    failed: failed.length,
    "failed by status": Object.fromEntries([...new Set(failed.map((a) => a.status))].map((s) => [s, failed.filter((a) => a.status === s).length])),
    "creates (logical)": logical.length,
    "creates answered 2xx": logical.filter((l) => l.status >= 200 && l.status < 300).length,
    "kill → first 503 ms": first503 ? first503.end - killedAt : null,
    "recovery ms (kill → first 2xx)": recoveredAt ? recoveredAt - killedAt : null,
    "restarted process up → first 2xx ms": Number.isFinite(upAt) ? recoveredAt - upAt : null,
    "writes without events": [...storedIds].filter((id) => !createdBy.has(id)).length,
    "events without writes": entries.filter((e) => !storedIds.has(e.entity_id!)).length,
    "duplicate events": [...createdBy.values()].filter((n) => n > 1).length,
    "duplicate zones (same create stored twice)": [...namesStored.values()].filter((n) => n > 1).length,
    "events with a bad signature": entries.filter((e) => !verify(keys, STREAM, e)).length,
  };
  console.log("kill-and-restart:\n" + Object.entries(table).map(([k, v]) => `| ${k} | ${typeof v === "object" && v !== null ? JSON.stringify(v) : v} |`).join("\n"));

  expect(killedAt).toBeGreaterThan(0);
  expect(recoveredAt).toBeGreaterThan(killedAt);
  expect(recoveredAt - killedAt).toBeLessThan(20_000);
  // Once the new process is up, the first success follows within 3 s.
  expect(table["restarted process up → first 2xx ms"]).toBeLessThan(3_000);
  // Failures happen only while zones is down, and are all 503s answered within 3 s of the kill or of
  // their own start, whichever is later (no 500, no hang past the liveness timeout).
  for (const a of failed) {
    expect(a.status).toBe(503);
    expect(a.end).toBeGreaterThanOrEqual(killedAt);
    expect(a.end).toBeLessThanOrEqual(recoveredAt + 1_000);
    expect(a.end - Math.max(a.start, killedAt)).toBeLessThan(3_000);
  }
  expect(table["creates answered 2xx"]).toBe(logical.length);
  expect(stored.length).toBe(logical.length);
  expect(new Set(logical.map((l) => l.id))).toEqual(storedIds);
  expect(table["writes without events"]).toBe(0);
  expect(table["events without writes"]).toBe(0);
  expect(table["duplicate events"]).toBe(0);
  expect(table["duplicate zones (same create stored twice)"]).toBe(0);
  expect(table["events with a bad signature"]).toBe(0);
}, 180_000);

test("SIGTERM: the gateway answers what is in flight, then everything stops and the launcher exits 0", async () => {
  const zone = (await (await fetch(`${base}/v1/zones`, { method: "POST", headers: auth, body: JSON.stringify({ name: `drain ${run}` }) })).json()) as { id: string };
  // Hold the zone's document lock so that the PATCHes below are in flight when SIGTERM arrives.
  let release!: () => void;
  const held = withDocLock(redis, `test_kr_${run}:zones:${zone.id}`, () => new Promise<void>((r) => (release = r)), { waitMs: 5_000 });
  await new Promise((r) => setTimeout(r, 50));
  const inFlight = Array.from({ length: 5 }, (_, i) =>
    fetch(`${base}/v1/zones/${zone.id}`, { method: "PATCH", headers: { ...auth, "X-Request-Id": `kr-${run}-drain-${i}` }, body: JSON.stringify({ name: `drained ${i}` }) }).then((r) => r.status, () => 0),
  );
  await new Promise((r) => setTimeout(r, 500));
  const children = [...pidsOf("gateway"), ...pidsOf("zones")].filter(alive);
  const exited = new Promise<number | null>((r) => launcher.once("exit", (code) => r(code)));
  launcher.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  // The gateway no longer takes new connections while it drains.
  expect(await fetch(`${base}/health`).then((r) => r.status, () => 0)).not.toBe(200);
  release();
  await held;
  expect(await Promise.all(inFlight)).toEqual([200, 200, 200, 200, 200]);
  expect(await exited).toBe(0);
  for (const pid of children) expect(alive(pid)).toBe(false);
  const events = (await redis.xrevrange(STREAM, "+", "-", "COUNT", 2000)).map(([, f]) => fieldsOf(f)).filter((f) => f.entity_id === zone.id && f.action === "updated");
  expect(events).toHaveLength(5);
  console.log(`drain: 5 requests in flight at SIGTERM all answered 200; ${events.length} events published; launcher exited 0`);
}, 90_000);
