// Shared set-up of the sessions suites: a cluster with the sessions process, emit in-process, stream reads.
import Redis from "ioredis";
import { startCluster, eventually, type Cluster } from "../helpers/cluster";
import { fieldsOf } from "../../shared/signing";

/** Fast consumers for tests: short blocking reads, idle entries reclaimed after 2 s. */
export const SESSIONS_ENV = { STREAM_BLOCK_MS: "200", STREAM_CLAIM_IDLE_MS: "2000", SESSIONS_REAPER_MS: "300" };

export async function sessionsCluster(processes: string[] = ["zones", "sessions"], env: Record<string, string> = {}): Promise<Cluster> {
  return startCluster({ processes, env: { ...SESSIONS_ENV, ...env } });
}

/** `npm run emit -- …` in this process (the command's own code path), with this cluster's key and prefix. */
export async function emit(...argv: string[]): Promise<any> {
  const { emit: run } = await import("../../deploy/emit/index");
  return run(argv);
}

export const redis = () => new Redis("redis://127.0.0.1:6379");

/** Entries of a stream as objects (with `_id`), oldest first. */
export async function entries(r: Redis, stream: string, count = 10_000): Promise<Record<string, string>[]> {
  return (await r.xrange(stream, "-", "+", "COUNT", count)).map(([id, f]) => ({ _id: id, ...fieldsOf(f) }));
}

export async function newZone(c: Cluster, body: Record<string, unknown> = {}): Promise<string> {
  const r = await c.http().post("/v1/zones").set(c.auth()).send({ name: "sessions " + Math.random().toString(36).slice(2, 8), ...body });
  if (r.status !== 201) throw new Error(`zone: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/** Polls GET `path` until `check(body)` holds. */
export async function until(c: Cluster, path: string, check: (body: any) => boolean, timeoutMs = 10_000): Promise<any> {
  return eventually(async () => {
    const r = await c.http().get(path).set(c.auth());
    return r.status === 200 && check(r.body) ? r.body : undefined;
  }, timeoutMs, 100);
}

/** Deletes this cluster's streams (STREAM_PREFIX is its namespace), with their groups and DLQs. */
export async function dropZoneEventsGroup(c: Cluster): Promise<void> {
  const r = redis();
  const keys = await r.keys(c.stream("caracal.*"));
  if (keys.length) await r.del(...keys);
  r.disconnect();
}
