// Shared by the audit suites: publishing decision events and waiting until the audit service stored them.
import Redis from "ioredis";
import { auditEntry, decisionEvent, publishAudit, type DecisionEventInput } from "../../deploy/emit/audit";
import { TEST_STREAMS_KEY, eventually, type Cluster } from "../helpers/cluster";

export const AUDIT_KEY = Buffer.from(TEST_STREAMS_KEY, "hex");

export function testRedis(): Redis {
  const r = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  r.on("error", () => undefined);
  return r;
}

/** Publishes signed events and returns them (as sent). */
export async function publishDecisions(redis: Redis, inputs: DecisionEventInput[]): Promise<Record<string, any>[]> {
  const events = inputs.map((i) => decisionEvent(i));
  await publishAudit(redis, events.map((e) => auditEntry(e, AUDIT_KEY)));
  return events;
}

/** Waits until `GET …/audit?<query>` lists `n` rows. */
export async function waitForAudit(c: Cluster, zoneId: string, n: number, query = "limit=1000"): Promise<any[]> {
  return eventually(async () => {
    const r = await c.http().get(`/v1/zones/${zoneId}/audit?${query}`).set(c.auth());
    return r.status === 200 && r.body.items.length >= n ? r.body.items : undefined;
  }, 10_000);
}

export const zoneId = (prefix = "z") => `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
